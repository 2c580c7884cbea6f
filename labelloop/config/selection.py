"""The ``selection`` section: active selection and routing by confidence (the route stage)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from labelloop.config.base import Section

__all__ = ["SelectionConfig"]


class SelectionConfig(Section):
    """Active selection and routing by confidence (the `route` stage)."""

    enabled: bool = False
    strategy: Literal[
        "random", "least_confidence", "margin", "entropy", "vote_entropy", "kl_disagreement", "bald"
    ] = Field(default="margin", description="Uncertainty score for active selection.")
    batch_mode: Literal["representative", "diverse", "greedy"] = Field(
        default="representative", description="How scores become a diverse batch."
    )
    uncertain_fraction: float = Field(default=0.3, gt=0.0, le=1.0, description="Share of the pool counted as uncertain.")
    cold_start_per_class: int = Field(default=3, ge=0, description="Labels per class before uncertainty takes over.")
    expert_budget: int = Field(default=50, ge=0, description="Items sent to the expert queue per turn.")
    crowd_budget: int = Field(default=200, ge=0, description="Items sent to the crowd queue per turn.")
    pseudo_budget: int | None = Field(default=None, ge=0, description="Pseudo-labels per turn; null = no cap.")
    crowd_band: tuple[float, float] = Field(
        default=(0.4, 0.9), description="[low, high) committee confidence of the crowd queue."
    )
    representativeness_neighbors: int = Field(default=10, ge=1, description="k of the density estimate.")
    suspects_to_expert: bool = Field(default=True, description="Send label-error suspects to the expert queue.")
    noise_min_margin: float = Field(
        default=0.2, ge=-1.0, le=1.0, description="Committee margin that makes a label a suspect (unknown source)."
    )

    @field_validator("crowd_band")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"must be [low, high] with 0 <= low < high <= 1 (got [{low}, {high}])")
        return value
