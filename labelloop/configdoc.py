"""The README's config reference, generated from the pydantic models.

``python -m labelloop.configdoc --write`` refreshes the block between the
``config-reference`` markers in README.md; a test checks they agree.
"""

from __future__ import annotations

import sys
import typing
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
    rows = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        path = f"{prefix}{field.alias or name}"
        nested = _models_in(field.annotation)
        if len(nested) == 1 and not typing.get_origin(field.annotation) in (list,):
            rows.append(f"| `{path}` | section | {_default(field)} | {field.description or nested[0].__doc__.splitlines()[0]} |")
            rows.extend(_rows(nested[0], f"{path}."))
        elif nested:
            kinds = ", ".join(f"`{m.__name__}`" for m in nested)
            rows.append(f"| `{path}` | list of {kinds} | {_default(field)} | {field.description or ''} |")
            for sub in nested:
                rows.extend(_rows(sub, f"{path}[] ({sub.__name__})."))
        else:
            rows.append(f"| `{path}` | {_type_name(field.annotation)} | {_default(field)} | {field.description or ''} |")
    return rows


def config_reference() -> str:
    """A markdown table of every config key."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|", *_rows(LabelloopConfig, "")]
    return "\n".join(lines) + "\n"


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
