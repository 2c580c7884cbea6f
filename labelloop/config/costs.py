"""The ``costs`` section: what one label of each source kind costs (turn summary's cost per accuracy point)."""

from __future__ import annotations

from pydantic import Field

from labelloop.config.base import Section

__all__ = ["CostConfig"]


class CostConfig(Section):
    """What one label of each source kind costs, for the turn summary's cost per accuracy point."""

    gold: float = Field(default=0.0, ge=0.0)
    expert: float = Field(default=1.0, ge=0.0, description="Cost of one expert label (any currency or unit).")
    crowd: float = Field(default=0.1, ge=0.0, description="Cost of one crowd annotation.")
    weak: float = Field(default=0.0, ge=0.0)
    pseudo: float = Field(default=0.0, ge=0.0)
    model: float = Field(default=0.0, ge=0.0)
    annotator: float = Field(default=0.1, ge=0.0)
    unit: str = Field(default="$", description="Shown next to costs in reports.")
