"""Reading a config: YAML -> :class:`~labelloop.config.root.LabelloopConfig`, every error as one ConfigError.

pydantic reports each fault with a location tuple and a type; :func:`parse_config`
turns them into ``file: key.path: reason (got x)`` lines, all faults of a file at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from labelloop.config.root import LabelloopConfig
from labelloop.config.sources import SOURCE_TAGS
from labelloop.exceptions import ConfigError

__all__ = ["load_config", "parse_config"]


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit} (got {got!r})"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {got!r})"
    if kind == "union_tag_invalid":
        return f"unknown kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"needs a '{ctx.get('discriminator', 'kind').strip(chr(39))}' key"
    message = error["msg"]
    message = message.removeprefix("Value error, ")
    if "(got" not in message and got is not None and not isinstance(got, (dict, list)):
        message = f"{message} (got {got!r})"
    return message


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part in SOURCE_TAGS and parts and parts[-1].endswith("]"):
            continue  # pydantic puts the union tag in the path; the user never wrote it
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def parse_config(data: Any, source: str = "<config>", config_path: Path | None = None) -> LabelloopConfig:
    """Validate already-loaded YAML data; errors name ``source``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections (got {type(data).__name__})")
    try:
        config = LabelloopConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_key_path(e['loc'])}: {_describe(e)}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
    config.config_path = config_path
    return config


def load_config(path: str | Path) -> LabelloopConfig:
    """Read and validate a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path.name}: {where}not valid YAML ({problem})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path.name}: not UTF-8 text ({exc.reason})") from None
    return parse_config(data, source=path.name, config_path=path.resolve())
