"""The ``crowd`` section: crowd and expert labeling in Label Studio (people and simulated annotators)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from labelloop.config.base import Section, Slug, distinct

__all__ = ["CrowdConfig", "BotConfig"]


class BotConfig(Section):
    """A simulated annotator (demo, tests, benchmarks): a real Label Studio user answering from the truth."""

    name: Slug = Field(description="Account `<name>@bots.labelloop.example.org`.")
    accuracy: float = Field(default=0.9, ge=0.0, le=1.0, description="Probability of the true class.")
    confusions: dict[str, str] = Field(
        default_factory=dict, description="True class name -> class most of its errors go to.")
    confusion_share: float = Field(default=0.8, ge=0.0, le=1.0, description="Share of errors sent there.")


class CrowdConfig(Section):
    """Crowd and expert labeling in Label Studio."""

    enabled: bool = False
    url: str | None = Field(
        default=None, description="A Label Studio already running; default: the one `labelloop up` starts "
        "under `<data_dir>/studio`.")
    token_secret: str = Field(
        default="labelloop-label-studio-token",
        description="Prefect Secret block holding the admin token when env LABELLOOP_LS_TOKEN is unset.")
    annotators: list[str] = Field(default_factory=list, description="Emails of the crowd (people).")
    bots: Annotated[list[BotConfig], distinct("bot names", key=lambda bot: bot.name)] = Field(
        default_factory=list, description="Simulated annotators (answer only in `labelloop studio demo` and tests; "
        "a production turn never runs them).")
    experts: list[str] = Field(default_factory=list, description="Emails of experts (informational).")
    overlap: int = Field(default=3, ge=1, description="k: the most annotators an item gets.")
    initial_overlap: int = Field(default=2, ge=1, description="Annotators asked first; more only on disagreement.")
    model_agreement: bool = Field(
        default=False, description="One annotator agreeing with the committee settles an item.")
    gold_rate: float = Field(default=0.1, ge=0.0, lt=1.0, description="Share of each person's tasks that are gold.")
    gold_min_accuracy: float = Field(
        default=0.7, ge=0.0, le=1.0, description="Annotators whose gold accuracy is statistically below this "
        "(Wilson upper bound < it) are flagged; only those statistically worse than chance are excluded.")
    gold_min_answers: int = Field(default=3, ge=1, description="Gold answers needed before flagging.")
    gold_confidence: float = Field(default=0.95, gt=0.0, lt=1.0,
                                   description="Level of the Wilson interval on each annotator's gold accuracy.")
    flagged_weight: float = Field(
        default=1.0, ge=0.0, le=1.0, description="How much a flagged annotator's votes count in the aggregate "
        "(Dawid-Skene already weights each vote by the annotator's fitted confusion matrix).")
    batch_size: int = Field(default=200, ge=1, description="Most new queue items pushed per run.")
    seed_queue: int = Field(
        default=0, ge=0, description="When the crowd queue is empty, queue this many items that have no "
        "gold/expert/crowd label (demo without a routing stage).")
    hide_predictions_from_crowd: bool = Field(default=True, description="Leave pre-annotations out of crowd tasks.")
    instructions: str = Field(default="", description="Shown to the crowd (HTML allowed).")
    expert_instructions: str = Field(default="", description="Shown to experts.")
    aggregator: Literal["dawid_skene", "one_coin", "majority"] = Field(
        default="dawid_skene", description="dawid_skene (a confusion matrix per annotator), one_coin (one accuracy "
        "per annotator), majority.")
    reconcile_every_s: float | None = Field(
        default=3600.0, gt=0, description="Seconds between full reconciles of the Label Studio sync (every project "
        "exported; catches deleted tasks); syncs in between read only changed tasks. null: reconcile only when a "
        "project lost tasks.")

    @model_validator(mode="after")
    def _enough_people(self) -> "CrowdConfig":
        if self.initial_overlap > self.overlap:
            raise ValueError(f"initial_overlap must be <= overlap={self.overlap} (got {self.initial_overlap})")
        people = len(self.annotators) + len(self.bots)
        if self.enabled and people < self.overlap:
            raise ValueError(f"overlap={self.overlap} needs at least {self.overlap} annotators and bots (got {people})")
        return self
