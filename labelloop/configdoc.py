"""The README's config reference, generated from the pydantic models.

One table per top-level section, headed by the module of :mod:`labelloop.config`
that defines it (the package has one module per section), so a reader goes from
a key to its code in one step. ``python -m labelloop.configdoc --write``
refreshes the block between the ``config-reference`` markers in README.md; a test
checks they agree.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from labelloop.config import LabelloopConfig

__all__ = ["config_reference", "write_readme"]

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("typing.", "").replace("pathlib.", "").replace("NoneType", "None")
    return text.replace("|", "\\|")


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = str(field.default) if isinstance(field.default, Path) else field.default
        return f"`{value!r}`" if value is not None else "`None`"
    if field.default_factory is not None:
        value = field.default_factory()
        return "(section)" if isinstance(value, BaseModel) else f"`{value!r}`"
    return "**required**"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    return [row for name, field in model.model_fields.items() if not field.exclude for row in _field_rows(name, field, prefix)]


def _field_rows(name: str, field: Any, prefix: str) -> list[str]:
    path = f"{prefix}{field.alias or name}"
    nested = _models_in(field.annotation)
    if len(nested) == 1 and not typing.get_origin(field.annotation) in (list,):
        rows = [f"| `{path}` | section | {_default(field)} | {field.description or nested[0].__doc__.splitlines()[0]} |"]
        return rows + _rows(nested[0], f"{path}.")
    if nested:
        kinds = ", ".join(f"`{m.__name__}`" for m in nested)
        rows = [f"| `{path}` | list of {kinds} | {_default(field)} | {field.description or ''} |"]
        for sub in nested:
            rows.extend(_rows(sub, f"{path}[] ({sub.__name__})."))
        return rows
    return [f"| `{path}` | {_type_name(field.annotation)} | {_default(field)} | {field.description or ''} |"]


def _module_path(model: type[BaseModel]) -> str:
    """``labelloop.config.weak`` -> ``labelloop/config/weak.py``."""
    return model.__module__.replace(".", "/") + ".py"


def _sections() -> Iterator[tuple[str, type[BaseModel], list[str]]]:
    """(title, defining model, rows): the top-level keys first, then one entry per section."""
    top, sections = [], []
    for name, field in LabelloopConfig.model_fields.items():
        if field.exclude:
            continue
        nested = _models_in(field.annotation)
        rows = _field_rows(name, field, "")
        if nested:
            sections.append((f"`{field.alias or name}`", nested[0], rows))
        else:
            top.extend(rows)
    yield "top level", LabelloopConfig, top
    yield from sections


def config_reference() -> str:
    """Markdown: per section, the module that defines it and a table of its keys."""
    parts = []
    for title, model, rows in _sections():
        path = _module_path(model)
        table = "\n".join(["| key | type | default | meaning |", "|---|---|---|---|", *rows])
        parts.append(f"### {title} ([{path}]({path}))\n\n{table}\n")
    return "\n".join(parts)


def write_readme(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{config_reference()}{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_readme(Path(__file__).resolve().parent.parent / "README.md")
    else:
        print(config_reference())
