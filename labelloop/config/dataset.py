"""The ``dataset`` section: what is being labeled."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from labelloop.config.base import Section, Slug, distinct

__all__ = ["DatasetConfig"]


class DatasetConfig(Section):
    """What is being labeled."""

    name: Slug = Field(description="Dataset name (letters, digits, `_ . -`); items are stored under it.")
    modality: Literal["image", "text", "tabular"] = Field(description="Kind of item.")
    classes: Annotated[list[str], distinct("class names")] = Field(
        description="Class names, in the order of their integer ids (at least 2)."
    )

    @field_validator("classes")
    @classmethod
    def _classes_usable(cls, value: list[str]) -> list[str]:
        if len(value) < 2:
            raise ValueError(f"needs at least 2 classes (got {len(value)})")
        if any(not c.strip() for c in value):
            raise ValueError("class names must not be empty")
        return value
