"""The ``weak`` section: labeling functions declared in the config and the label model."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from labelloop.config.base import Section, Slug, distinct

__all__ = ["WeakConfig", "LFConfig"]


class LFConfig(Section):
    """One labeling function declared in the config (keyword list, regex, or a Python function by import path)."""

    name: Slug = Field(description="Unique LF name (letters, digits, `_ . -`); shown in analyses and errors.")
    kind: Literal["keyword", "regex", "heuristic"] = Field(description="keyword list, regex, or heuristic (import path).")
    class_: str | None = Field(default=None, alias="class", description="Class name voted (keyword and regex LFs).")
    keywords: list[str] | None = Field(default=None, description="keyword: words or small regexes, matched as whole words.")
    pattern: str | None = Field(default=None, description="regex: a Python regular expression (`re.search`).")
    path: str | None = Field(default=None, description="heuristic: `package.module:function`, `f(x) -> class id or -1`.")
    ignore_case: bool = Field(default=True, description="Case-insensitive matching (keyword, regex).")
    field: str = Field(default="text", description="Item field holding the text.")

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    @model_validator(mode="after")
    def _kind_fields(self) -> "LFConfig":
        lf = f"LF {self.name!r}"
        needs = {"keyword": "keywords", "regex": "pattern", "heuristic": "path"}[self.kind]
        for key in ("keywords", "pattern", "path"):
            given = getattr(self, key) is not None
            if key == needs and not given:
                raise ValueError(f"{lf}: kind {self.kind!r} needs '{key}'")
            if key != needs and given:
                raise ValueError(f"{lf}: '{key}' does not apply to kind {self.kind!r} (it needs '{needs}')")
        if self.kind in ("keyword", "regex") and not self.class_:
            raise ValueError(f"{lf}: kind {self.kind!r} needs 'class' (the class name it votes)")
        if self.kind == "heuristic" and self.class_ is not None:
            raise ValueError(f"{lf}: 'class' does not apply to kind 'heuristic' (the function returns class ids)")
        if self.kind == "keyword":
            if not self.keywords or any(not isinstance(k, str) or not k.strip() for k in self.keywords):
                raise ValueError(f"{lf}: keywords must be a non-empty list of non-empty strings (got {self.keywords!r})")
            for word in self.keywords:
                try:
                    re.compile(word)
                except re.error as exc:
                    raise ValueError(f"{lf}: keyword {word!r} is not a valid regex ({exc})") from None
        if self.kind == "regex":
            try:
                re.compile(self.pattern or "")
            except re.error as exc:
                raise ValueError(f"{lf}: invalid regex {self.pattern!r} ({exc})") from None
        if self.kind == "heuristic":
            module, _, attr = (self.path or "").partition(":")
            if not module or not attr or not all(p.isidentifier() for p in module.split(".") + attr.split(".")):
                raise ValueError(f"{lf}: path must look like 'package.module:function' (got {self.path!r})")
        return self


class WeakConfig(Section):
    """Weak labeling: labeling functions and the label model."""

    enabled: bool = False
    lfs: Annotated[list[LFConfig], distinct("LF names", key=lambda lf: lf.name)] = Field(
        default_factory=list, description="Labeling functions (keyword, regex, heuristic)."
    )
    # majority by default: on three fortune-file text tasks (bench/weak.py) no EM label model (one_coin,
    # dawid_skene, Snorkel's LabelModel) beat plain majority vote downstream, and some lost badly (dawid_skene
    # 57 % label accuracy on one task, majority 80 %). Deciding ties with a learned one-coin model (tie_break:
    # model) did not help either (fortunes: 91.4 vs 91.6); Snorkel's winner-takes-all soft labels beat vote shares
    # downstream on every task (majority_proba).
    label_model: Literal["majority", "one_coin", "dawid_skene"] = Field(
        default="majority", description="How votes become probabilistic labels: majority (vote shares; ties "
        "decided by `tie_break`), one_coin (one accuracy per LF, EM), dawid_skene (a confusion matrix per LF, EM).",
    )
    tie_break: Literal["prior", "model", "random"] = Field(
        default="prior", description="label_model majority: how ties are decided (prior: the class voted most "
        "overall; model: the tied class a one-coin model fitted on the same votes finds most probable; random: "
        "seeded by training.seed). Learned LF accuracies are reported from a one-coin fit either way.")
    majority_proba: Literal["winner", "shares"] = Field(
        default="winner", description="label_model majority: soft labels as Snorkel's MajorityLabelVoter (winner: "
        "1 to the top class, split among tied ones) or vote shares; winner trains the downstream model better.")
    n_iter: int = Field(default=500, ge=1, description="Maximum EM iterations of the label model (and of the "
                        "tie-break model); whether EM converged is reported.")
    smoothing: float = Field(default=1.0, ge=0.0, description="Dirichlet pseudo-count per confusion row and class prior (spread over its cells).")
    use_gold: bool = Field(default=True, description="Anchor the label model on items with gold/expert labels.")
    batch_size: int = Field(default=2048, ge=1, description="Items per applier batch.")
    n_jobs: int = Field(default=1, ge=1, description="Worker processes for large item sets (>= 20,000 items).")

    @model_validator(mode="after")
    def _lfs_when_enabled(self) -> "WeakConfig":
        if self.enabled and not self.lfs:
            raise ValueError("weak labeling is enabled but no 'lfs' are declared")
        return self

    def check_classes(self, classes: list[str]) -> None:
        """Refuse an LF voting a class the dataset does not have (needs the dataset section, so it runs last)."""
        for index, lf in enumerate(self.lfs):
            if lf.class_ is not None and lf.class_ not in classes:
                raise ValueError(
                    f"weak.lfs[{index}]: LF {lf.name!r}: unknown class {lf.class_!r}; expected one of {classes}"
                )
