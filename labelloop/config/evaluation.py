"""The ``evaluation`` section: hidden truth for examples and simulations (never trained on)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from labelloop.config.base import Section

__all__ = ["EvaluationConfig"]


class EvaluationConfig(Section):
    """Hidden truth, for examples and simulations only: never used to train."""

    truth: Path | None = Field(
        default=None, description="`.npz` with `ids` (items' external ids) and `y` (true class ids)."
    )
