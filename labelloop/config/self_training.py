"""The ``self_training`` section: pseudo-labels from the calibrated committee."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from labelloop.config.base import Section

__all__ = ["SelfTrainingConfig"]


class SelfTrainingConfig(Section):
    """Pseudo-labels from the calibrated committee (class-balanced, re-decided every turn)."""

    enabled: bool = False
    threshold: float = Field(default=0.9, gt=0.0, lt=1.0, description="Confidence a pseudo-label needs.")
    min_threshold: float = Field(default=0.5, ge=0.0, lt=1.0, description="Floor of the adaptive per-class thresholds.")
    min_agreement: float = Field(default=0.8, ge=0.0, le=1.0, description="Share of committee members that must agree.")
    step: float = Field(
        default=0.5, gt=0.0, le=1.0,
        description="Pace of the pseudo-labels: the loop's n-th selection (turn t's route stage is n = t when "
        "rounds = 0; inner rounds count too) takes at most min(1, step * n) of each class's estimated mass.",
    )
    max_iter: int = Field(default=10, ge=1, description="Most rounds of the pseudo-label selection per turn.")
    rounds: int = Field(
        default=0, ge=0, le=10,
        description="Inner self-training loop of the model stage: fit -> select pseudo-labels -> fit again, this "
        "many extra times in one turn (0 = pseudo-labels train the next turn's committee only).",
    )
    fallback: bool = Field(
        default=True,
        description="Compare the committee trained with the standing pseudo-labels to one without on the out-of-fold "
        "firm labels (and, where that passes, per fold with pseudo-labels chosen without the fold's labels); keep "
        "the supervised one when the pseudo-labels do not help.",
    )
    graph: Literal["auto", "on", "off"] = Field(
        default="auto", description="Label spreading mixed into the committee's teacher (its weight measured on "
        "held-out firm labels); the route stage spreads over the modality's features and the committee's embeddings.")
    graph_max_label_rate: float = Field(default=0.5, ge=0.0, le=1.0, description="`auto` uses the graph up to this label rate.")
    n_neighbors: list[int] = Field(default_factory=lambda: [5, 10], description="Graph degrees (one graph each).")
    alpha: float = Field(default=0.99, gt=0.0, lt=1.0, description="Label-spreading weight of the neighbours.")

    @field_validator("n_neighbors")
    @classmethod
    def _ks(cls, value: list[int]) -> list[int]:
        if not value or any(k < 1 for k in value):
            raise ValueError(f"must be a non-empty list of integers >= 1 (got {value})")
        return value

    @model_validator(mode="after")
    def _floor_below(self) -> "SelfTrainingConfig":
        if self.min_threshold > self.threshold:
            raise ValueError(
                f"min_threshold must be <= threshold (got min_threshold={self.min_threshold}, threshold={self.threshold})"
            )
        return self
