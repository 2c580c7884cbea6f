"""The ``resolution`` section: how an item's training label is chosen among its label rows.

The kinds and their default order belong to the store (:mod:`labelloop.store.kinds`);
this section only lets a config pick and reorder them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from labelloop.config.base import Section, distinct
from labelloop.store.kinds import DEFAULT_PRECEDENCE, SOURCE_KINDS

__all__ = ["ResolutionConfig"]

SourceKind = Literal[SOURCE_KINDS]  # type: ignore[valid-type]


class ResolutionConfig(Section):
    """How an item's training label is chosen among its label rows."""

    precedence: Annotated[list[SourceKind], distinct("source kinds")] = Field(
        default_factory=lambda: list(DEFAULT_PRECEDENCE),
        description="Source kinds from strongest to weakest; kinds left out never count.",
    )

    @field_validator("precedence")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one source kind")
        return value
