"""Pipeline config: one YAML file -> pydantic models, validated before anything runs.

``load_config(path)`` is the only entry point the rest of labelloop uses. Every
error is a :class:`~labelloop.exceptions.ConfigError` whose message names the
file, the key path and the reason, e.g.
``labelloop.yaml: training.folds: must be >= 2 (got 1)``.

Each stage owns one section model below; a stage that grows adds fields to its
own section. Unknown keys are rejected everywhere (``extra="forbid"``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labelloop.exceptions import ConfigError

__all__ = [
    "LabelloopConfig",
    "DatasetConfig",
    "StoreConfig",
    "ResolutionConfig",
    "TrainingConfig",
    "CNNConfig",
    "MLPConfig",
    "FeatureNoiseConfig",
    "WeakConfig",
    "LFConfig",
    "CrowdConfig",
    "BotConfig",
    "SelectionConfig",
    "SelfTrainingConfig",
    "ScheduleConfig",
    "RunnerConfig",
    "CostConfig",
    "EvaluationConfig",
    "CollectConfig",
    "load_config",
    "parse_config",
    "SOURCE_KINDS",
    "DEFAULT_PRECEDENCE",
]

SOURCE_KINDS = ("gold", "expert", "crowd", "weak", "pseudo", "model")
DEFAULT_PRECEDENCE = ["gold", "expert", "crowd", "weak", "pseudo", "model"]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_slug(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(f"must be letters, digits, '_', '.' or '-' (got {value!r})")
    return value


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regex ({exc}) (got {pattern!r})") from None
    return pattern


class Section(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetConfig(Section):
    """What is being labeled."""

    name: str = Field(description="Dataset name (letters, digits, `_ . -`); items are stored under it.")
    modality: Literal["image", "text", "tabular"] = Field(description="Kind of item.")
    classes: list[str] = Field(description="Class names, in the order of their integer ids (at least 2).")

    _name_is_slug = field_validator("name")(classmethod(lambda cls, value: _check_slug(value)))

    @field_validator("classes")
    @classmethod
    def _classes_distinct(cls, value: list[str]) -> list[str]:
        if len(value) < 2:
            raise ValueError(f"needs at least 2 classes (got {len(value)})")
        seen: set[str] = set()
        dupes = [c for c in value if c in seen or seen.add(c)]
        if dupes:
            raise ValueError(f"class names must be distinct (repeated: {', '.join(dupes)})")
        if any(not c.strip() for c in value):
            raise ValueError("class names must not be empty")
        return value


class StoreConfig(Section):
    """Where the dataset store lives."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default `sqlite:///<data_dir>/labelloop.db`. "
        "PostgreSQL: `postgresql+psycopg://user:pass@host/db`.",
    )

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite", "postgresql")):
            raise ValueError(f"must be a sqlite:// or postgresql:// URL (got {value!r})")
        return value


class ImageFolderSource(Section):
    """Images in a folder: class sub-folders are gold labels, a flat folder is unlabeled."""

    kind: Literal["image_folder"]
    name: str | None = Field(default=None, description="Provenance name; default: the path.")
    path: Path


class TextFileSource(Section):
    """CSV or JSONL text with an optional label column."""

    kind: Literal["text_file"]
    name: str | None = None
    path: Path
    text_field: str = "text"
    label_field: str | None = Field(default=None, description="Column with gold class names, if any.")
    id_field: str | None = Field(default=None, description="Column with a stable external id, if any.")


class ArraySource(Section):
    """A NumPy `.npz` file with `X` (items), optional `y` (class ids, -1 = unlabeled) and `ids`."""

    kind: Literal["arrays"]
    name: str | None = None
    path: Path


SourceConfig = Annotated[Union[ImageFolderSource, TextFileSource, ArraySource], Field(discriminator="kind")]


class ResolutionConfig(Section):
    """How an item's training label is chosen among its label rows."""

    precedence: list[Literal["gold", "expert", "crowd", "weak", "pseudo", "model"]] = Field(
        default_factory=lambda: list(DEFAULT_PRECEDENCE),
        description="Source kinds from strongest to weakest; kinds left out never count.",
    )

    @field_validator("precedence")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"source kinds must not repeat (got {value})")
        if not value:
            raise ValueError("needs at least one source kind")
        return value


class CNNConfig(Section):
    """Sizes of the image CNN (conv3x3-BN-ReLU-maxpool blocks, then a head)."""

    channels: list[int] = Field(default_factory=lambda: [32, 64], description="Output channels of each block.")
    hidden: int = Field(default=128, ge=0, description="Hidden fully connected width; 0 for none.")
    batch_norm: bool = True
    global_pool: bool = Field(default=True, description="Global average pooling (else flatten the last map).")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    image_size: int | None = Field(
        default=None, ge=4, description="Image files are resized to this square size; default: as stored."
    )
    grayscale: bool = Field(default=False, description="Load image files as one channel (else RGB).")

    @field_validator("channels")
    @classmethod
    def _positive_channels(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("needs at least one block")
        bad = [c for c in value if c < 1]
        if bad:
            raise ValueError(f"every block needs >= 1 channel (got {value})")
        return value


class MLPConfig(Section):
    """Sizes of the MLP head for text embeddings and tabular features."""

    hidden: list[int] = Field(default_factory=lambda: [256], description="Hidden widths; [] for a linear model.")
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)

    @field_validator("hidden")
    @classmethod
    def _positive_hidden(cls, value: list[int]) -> list[int]:
        if any(h < 1 for h in value):
            raise ValueError(f"every hidden width must be >= 1 (got {value})")
        return value


class FeatureNoiseConfig(Section):
    """Embedding-space augmentation for the MLP (text/tabular): noise and feature dropout."""

    noise: float = Field(default=0.0, ge=0.0, description="Gaussian noise, in units of each feature's std.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Probability of zeroing a feature.")


class TrainingConfig(Section):
    """The stratified k-fold model stage."""

    folds: int = Field(default=5, ge=2, le=20, description="Number of stratified folds.")
    seed: int = Field(default=0, description="Seed for folds and models.")
    model: Literal["auto", "logreg", "mlp", "cnn"] = Field(
        default="auto",
        description="auto = cnn for images, mlp for text (MiniLM embeddings) and tabular; logreg = a linear model "
        "on the modality's features.",
    )
    max_pool_rows: int | None = Field(
        default=200_000, ge=0,
        description="Pool predictions also written as `model` label rows up to this pool size (the files under "
        "data_dir always hold all of them); null = always.",
    )
    min_confidence: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Soft labels below this confidence are not trained on."
    )
    cnn: CNNConfig = Field(default_factory=CNNConfig)
    mlp: MLPConfig = Field(default_factory=MLPConfig)
    logreg_c: float = Field(default=1.0, gt=0.0, description="Inverse regularisation of the logreg model.")
    epochs: int = Field(default=20, ge=1, le=10000)
    min_steps: int = Field(
        default=200, ge=0, description="At least this many optimizer steps: small training sets get more epochs."
    )
    batch_size: int = Field(default=64, ge=2)
    lr: float = Field(default=1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    schedule: Literal["cosine", "constant"] = "cosine"
    patience: int | None = Field(
        default=5, ge=1, description="Early stopping on each fold's validation split; null trains every epoch."
    )
    loss: Literal["cross_entropy", "focal"] = "cross_entropy"
    focal_gamma: float = Field(default=2.0, ge=0.0)
    class_weight: Literal["balanced"] | list[float] | None = Field(
        default=None, description="'balanced' or one weight per class."
    )
    augment: list[Any] = Field(
        default_factory=list,
        description="albumentations transforms for training images, e.g. "
        "[{Affine: {rotate: [-10, 10]}}, {GaussNoise: {std_range: [0.03, 0.08]}}]; for text (model mlp): "
        "[{BackTranslation: {pivots: [spa, cat], batch_size: 500, weight: 1.0}}, "
        "{SynonymReplacement: {p: 0.15, copies: 1, senses: 1, seed: 0, weight: 1.0}}] "
        "(Apertium and WordNet, offline; copies cached under data_dir/cache).",
    )
    feature_noise: FeatureNoiseConfig = Field(default_factory=FeatureNoiseConfig)
    tta: int = Field(default=0, ge=0, le=32, description="Augmented copies averaged into pool predictions.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(default=True, description="Mixed precision on CUDA (bf16 where supported, else fp16).")
    calibrate: bool = Field(default=True, description="Temperature scaling fitted on out-of-fold logits.")
    parallel_folds: int | None = Field(
        default=None, ge=1, description="Folds per batched network (and per Prefect task); default: automatic."
    )
    n_jobs: int | None = Field(
        default=None, ge=1, description="CPU workers (one torch thread each) splitting the folds; default 1."
    )

    @field_validator("class_weight")
    @classmethod
    def _weights_positive(cls, value: Any) -> Any:
        if isinstance(value, list) and any(not w >= 0 for w in value):
            raise ValueError(f"class weights must be >= 0 (got {value})")
        return value

    @field_validator("augment")
    @classmethod
    def _known_transforms(cls, value: list[Any]) -> list[Any]:
        if value:
            # --- text augmentation (issue 13): text transforms are checked by their own module.
            from labelloop.models.text_augment import is_text_entry, parse_text_pipeline

            text = [is_text_entry(e) for e in value]
            if any(text) and not all(text):
                raise ValueError("text transforms (BackTranslation, SynonymReplacement) and image transforms cannot be mixed")
            if all(text):
                parse_text_pipeline(value)
                return value
            # Built with albumentations itself, so its own parameter rules apply.
            from labelloop.models.augment import parse_pipeline

            parse_pipeline(value)
        return value

    @property
    def text_augment(self) -> list[Any]:
        """The ``augment`` entries when they are text transforms (else [])."""
        from labelloop.models.text_augment import is_text_entry

        return self.augment if self.augment and is_text_entry(self.augment[0]) else []

    @model_validator(mode="after")
    def _augment_needs_images(self) -> "TrainingConfig":
        if self.text_augment:
            if self.model not in ("mlp", "auto"):
                raise ValueError(f"text augmentation applies to model 'mlp' (MiniLM embeddings) only (got model {self.model!r})")
        elif self.augment and self.model not in ("cnn", "auto"):
            raise ValueError(f"augment applies to model 'cnn' only (got model {self.model!r}); use feature_noise")
        if self.tta and not self.augment:
            raise ValueError(f"tta: {self.tta} needs an augment pipeline")
        if self.tta and self.text_augment:
            raise ValueError(f"tta: {self.tta} applies to image augmentation only (text copies are made for training)")
        return self


class LFConfig(Section):
    """One labeling function declared in the config (keyword list, regex, or a Python function by import path)."""

    name: str = Field(description="Unique LF name (letters, digits, `_ . -`); shown in analyses and errors.")
    kind: Literal["keyword", "regex", "heuristic"] = Field(description="keyword list, regex, or heuristic (import path).")
    class_: str | None = Field(default=None, alias="class", description="Class name voted (keyword and regex LFs).")
    keywords: list[str] | None = Field(default=None, description="keyword: words or small regexes, matched as whole words.")
    pattern: str | None = Field(default=None, description="regex: a Python regular expression (`re.search`).")
    path: str | None = Field(default=None, description="heuristic: `package.module:function`, `f(x) -> class id or -1`.")
    ignore_case: bool = Field(default=True, description="Case-insensitive matching (keyword, regex).")
    field: str = Field(default="text", description="Item field holding the text.")

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"LF name must be letters, digits, '_', '.' or '-' (got {value!r})")
        return value

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
    lfs: list[LFConfig] = Field(default_factory=list, description="Labeling functions (keyword, regex, heuristic).")
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
    def _lfs_named_once(self) -> "WeakConfig":
        names = [lf.name for lf in self.lfs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"LF names must be distinct (repeated: {', '.join(dupes)})")
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


class BotConfig(Section):
    """A simulated annotator (demo, tests, benchmarks): a real Label Studio user answering from the truth."""

    name: str = Field(description="Account `<name>@bots.labelloop.example.org`.")
    accuracy: float = Field(default=0.9, ge=0.0, le=1.0, description="Probability of the true class.")
    confusions: dict[str, str] = Field(
        default_factory=dict, description="True class name -> class most of its errors go to.")
    confusion_share: float = Field(default=0.8, ge=0.0, le=1.0, description="Share of errors sent there.")

    _name_is_slug = field_validator("name")(classmethod(lambda cls, value: _check_slug(value)))


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
    bots: list[BotConfig] = Field(default_factory=list, description="Simulated annotators (answer only in "
                                  "`labelloop studio demo` and tests; a production turn never runs them).")
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
        names = [b.name for b in self.bots]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"bots: names must be distinct (repeated: {', '.join(dupes)})")
        return self


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


class SelfTrainingConfig(Section):
    """Pseudo-labels from the calibrated committee (class-balanced, re-decided every turn)."""

    enabled: bool = False
    threshold: float = Field(default=0.9, gt=0.0, lt=1.0, description="Confidence a pseudo-label needs.")
    min_threshold: float = Field(default=0.5, ge=0.0, lt=1.0, description="Floor of the adaptive per-class thresholds.")
    min_agreement: float = Field(default=0.8, ge=0.0, le=1.0, description="Share of committee members that must agree.")
    step: float = Field(default=0.25, gt=0.0, le=1.0, description="Share of each class's mass added per round.")
    max_iter: int = Field(default=10, ge=1, description="Most rounds of the pseudo-label selection per turn.")
    rounds: int = Field(
        default=0, ge=0, le=10,
        description="Inner self-training loop of the model stage: fit -> select pseudo-labels -> fit again, this "
        "many extra times in one turn (0 = pseudo-labels train the next turn's committee only).",
    )
    fallback: bool = Field(
        default=True,
        description="Compare the committee trained with pseudo-labels to one without on the out-of-fold firm labels; "
        "keep the supervised one when the pseudo-labels do not help.",
    )
    graph: Literal["auto", "on", "off"] = Field(default="auto", description="Label-spreading teacher.")
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


def _check_cron(value: str | None) -> str | None:
    if value is not None and len(value.split()) != 5:
        raise ValueError(f"must be a 5-field cron expression (got {value!r})")
    return value


class RunnerConfig(Section):
    """Where the pipeline's tasks run: in the flow's threads, or on a Dask cluster."""

    kind: Literal["default", "dask"] = Field(
        default="default", description="`default`: Prefect's thread pool; `dask`: a DaskTaskRunner (needs `prefect-dask`)."
    )
    address: str | None = Field(
        default=None, description="An existing Dask scheduler, e.g. `tcp://10.0.0.5:8786`; unset: a local cluster per turn."
    )
    n_workers: int = Field(default=2, ge=1, description="Workers of the local Dask cluster.")
    threads_per_worker: int = Field(default=1, ge=1, description="Threads per local Dask worker.")
    processes: bool = Field(
        default=True, description="Local Dask workers as processes (true) or threads of this process (false)."
    )

    @model_validator(mode="after")
    def _address_needs_dask(self) -> "RunnerConfig":
        if self.address is not None and self.kind != "dask":
            raise ValueError(f"address is set ({self.address!r}) but kind is {self.kind!r}; set kind: dask")
        if self.address is not None and not re.match(r"^(tcp|tls|inproc|ucx)://", self.address):
            raise ValueError(f"address must be a Dask scheduler URL such as tcp://host:8786 (got {self.address!r})")
        return self


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


class ScheduleConfig(Section):
    """Cron schedules of the deployments (standard 5-field cron) and how scheduled runs behave.

    A stage left unset has a deployment without a schedule (run it from the UI or
    ``prefect deployment run``).
    """

    pipeline: str | None = Field(default=None, description="Cron of a full loop turn, e.g. `0 2 * * *` (nightly).")
    stages: dict[str, str] = Field(
        default_factory=dict,
        description="Cron per stage deployment, e.g. `{collect: '0 * * * *', crowd: '*/10 * * * *'}`.",
    )
    timezone: str = "UTC"
    work_pool: str = Field(default="labelloop", description="Process work pool the deployments run on.")
    signoff: bool = Field(
        default=False,
        description="Pause each turn before the route stage writes pseudo-labels and queues, until an expert approves in "
        "the Prefect UI (off for unattended runs).",
    )
    signoff_timeout_s: int = Field(
        default=3600, ge=10, description="How long a sign-off waits; past it the turn ends without writing.")
    webhooks: bool = Field(
        default=True,
        description="With crowd enabled: `labelloop up` starts a webhook receiver and `labelloop deploy` an "
        "automation, so answers submitted in Label Studio start a crowd sync within seconds (crons keep working).",
    )
    webhook_min_interval_s: float = Field(
        default=10.0, ge=0, description="At most one sync started by webhooks per this many seconds (the first at "
        "once, later deliveries folded into one trailing sync).")
    turn_after_answers: int | None = Field(
        default=None, ge=1, description="Start a whole turn once this many new answers were synced since the last "
        "turn started (needs `webhooks`); null: turns only on the `pipeline` cron.")
    prefect_database_url: str | None = Field(
        default=None,
        description="Prefect's own database for `labelloop up`, e.g. `postgresql+asyncpg://user@host/prefect`; "
        "default SQLite under the data dir.",
    )

    @field_validator("pipeline")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return _check_cron(value)

    @field_validator("stages")
    @classmethod
    def _stage_crons(cls, value: dict[str, str]) -> dict[str, str]:
        for stage, cron in value.items():
            if not _NAME_RE.match(stage):
                raise ValueError(f"stage name must be letters, digits, '_', '.' or '-' (got {stage!r})")
            try:
                _check_cron(cron)
            except ValueError as exc:
                raise ValueError(f"{stage}: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"must be an IANA time zone such as UTC or Europe/Paris (got {value!r})") from None
        return value

    @field_validator("prefect_database_url")
    @classmethod
    def _prefect_db(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(f"must be a sqlite+aiosqlite:// or postgresql+asyncpg:// URL (got {value!r})")
        return value


class EvaluationConfig(Section):
    """Hidden truth, for examples and simulations only: never used to train."""

    truth: Path | None = Field(
        default=None, description="`.npz` with `ids` (items' external ids) and `y` (true class ids)."
    )


class PolitenessConfig(Section):
    """How hard the crawler may hit a site. robots.txt is always obeyed; these only add restraint."""

    per_host_concurrency: int = Field(default=8, ge=1, le=64, description="Requests in flight per host.")
    max_concurrency: int = Field(default=32, ge=1, le=512, description="Requests in flight over all hosts.")
    min_delay: float = Field(
        default=0.0, ge=0.0, le=600.0,
        description="Seconds between the starts of two requests to one host; robots.txt Crawl-delay wins when longer.",
    )
    global_rate: float | None = Field(
        default=None, gt=0.0, description="Requests per second over all hosts; none = no global cap."
    )
    failure_backoff: float = Field(
        default=1.0, ge=0.0, le=600.0,
        description="Seconds added between requests to a host after its first failure; doubles per failure in a row.",
    )
    max_backoff: float = Field(default=60.0, ge=0.0, le=3600.0, description="Cap of the per-host failure back-off.")
    max_retry_after: float = Field(
        default=120.0, ge=0.0, description="A Retry-After longer than this makes the crawler give the URL up."
    )


class FetchConfig(Section):
    """The HTTP client."""

    timeout: float = Field(default=30.0, gt=0.0, description="Seconds for connect, read and write each.")
    retries: int = Field(default=3, ge=0, le=20, description="Retries on 429, 5xx and connection errors.")
    backoff_base: float = Field(default=0.5, ge=0.0, description="First retry waits about this many seconds; doubles per retry.")
    backoff_max: float = Field(default=30.0, ge=0.0, description="Cap of the wait between retries.")
    max_bytes: int = Field(default=10_000_000, ge=1024, description="Responses larger than this are abandoned.")
    max_redirects: int = Field(default=5, ge=0, le=20, description="Redirects followed per URL (each checked against scope and robots.txt).")
    http2: bool = Field(default=True, description="Offer HTTP/2 (negotiated over TLS; plain http stays HTTP/1.1).")


class RenderConfig(Section):
    """Headless Chromium for pages that need JavaScript."""

    pool_size: int = Field(default=2, ge=1, le=16, description="Browsers kept open and reused across pages.")
    page_load_timeout: float = Field(default=30.0, gt=0.0, description="Seconds a page may take to load in the browser.")
    wait_timeout: float = Field(default=10.0, gt=0.0, description="Seconds to wait for the page's wait_selector.")
    poll_frequency: float = Field(default=0.02, gt=0.0, le=1.0, description="How often the wait checks the selector.")
    chromium: Path = Field(default=Path("/usr/bin/chromium"), description="Debian's Chromium (never downloaded).")
    chromedriver: Path = Field(default=Path("/usr/bin/chromedriver"), description="Debian's chromedriver (never downloaded).")
    extra_args: list[str] = Field(default_factory=list, description="More Chromium flags (e.g. host resolver rules).")


class ItemRule(Section):
    """Items found on a page by CSS selectors: one text item per container, or one image item per image."""

    name: str = Field(description="Rule name, reported when its selectors match nothing.")
    kind: Literal["text", "image"] = Field(default="text", description="One text item per container, or one image item per image.")
    pages: str | None = Field(default=None, description="Regex; the rule applies only to page URLs that match it.")
    container: str = Field(default="body", description="CSS selector of one item's element.")
    text: str | None = Field(default=None, description="CSS selector (inside the container) of a text item's text.")
    fields: dict[str, str] = Field(default_factory=dict, description="Extra metadata: field name -> CSS selector.")
    image_selector: str | None = Field(default=None, description="CSS selector of image elements (inside the container).")
    image_attr: str = Field(default="src", description="Attribute holding the image URL.")
    image_regex: str | None = Field(default=None, description="Regex over the container's HTML; group 1 (or 0) is an image URL.")

    @model_validator(mode="after")
    def _kind_needs_selector(self) -> "ItemRule":
        if self.kind == "text" and not self.text:
            raise ValueError(f"item rule {self.name!r}: kind 'text' needs a 'text' selector")
        if self.kind == "image" and not (self.image_selector or self.image_regex):
            raise ValueError(f"item rule {self.name!r}: kind 'image' needs 'image_selector' or 'image_regex'")
        return self

    @field_validator("pages", "image_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return value if value is None else _check_regex(value)


class FollowConfig(Section):
    """Which links are followed."""

    selector: str = Field(default="a[href]", description="CSS selector of link elements (href attribute).")
    allow: list[str] = Field(default_factory=list, description="Regexes; when set, a link must match one.")
    deny: list[str] = Field(default_factory=list, description="Regexes; a link matching one is never followed.")
    max_depth: int = Field(default=3, ge=0, le=100, description="Links from start URLs are depth 1.")

    @field_validator("allow", "deny")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regex ({exc}) (got {pattern!r})") from None
        return value


def _check_http_url(url: str, wrong_scheme: str) -> None:
    """An absolute http(s) URL with a host and, if any, a valid port."""
    from urllib.parse import urlsplit

    if not re.match(r"^https?://[^/\s]+", url):
        raise ValueError(f"{wrong_scheme} (got {url!r})")
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError:
        raise ValueError(f"has an invalid port (got {url!r})") from None
    if not parts.hostname or parts.netloc.endswith(":"):
        raise ValueError(f"needs a host and, after ':', a port number (got {url!r})")


class SiteConfig(Section):
    """One site to crawl."""

    name: str = Field(description="Crawl name (slug); the frontier and provenance are kept under it.")
    start_urls: list[str] = Field(description="Where the crawl starts (http or https).")
    scope: list[str] = Field(
        default_factory=list,
        description="URL prefixes the crawl stays inside (links and redirects); default: the start URLs' origins.",
    )
    terms: str = Field(description="Note of the source's terms of use / licence and why crawling it is allowed.")
    javascript: list[str] = Field(
        default_factory=list, description="Regexes of page URLs that need JavaScript (rendered by Chromium)."
    )
    wait_selector: str | None = Field(default=None, description="CSS selector a rendered page must show before it is read.")
    items: list[ItemRule] = Field(default_factory=list, description="Item rules (CSS selectors); their kind must match dataset.modality.")
    follow: FollowConfig = Field(default_factory=FollowConfig)
    max_pages: int | None = Field(
        default=None, ge=1,
        description="Pages requested per run (URLs skipped by robots.txt or the scope do not count); the rest stays queued.",
    )

    _slug = field_validator("name")(classmethod(lambda cls, value: _check_slug(value)))

    @field_validator("start_urls")
    @classmethod
    def _http_only(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one start URL")
        for url in value:
            _check_http_url(url, "only http:// and https:// URLs are crawled")
        return value

    @field_validator("scope")
    @classmethod
    def _scope_http(cls, value: list[str]) -> list[str]:
        for url in value:
            _check_http_url(url, "scope entries must be http:// or https:// URL prefixes")
        return value

    @field_validator("terms")
    @classmethod
    def _terms_written(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must say what the source's terms allow (got an empty note)")
        return value

    @field_validator("javascript")
    @classmethod
    def _js_regexes(cls, value: list[str]) -> list[str]:
        return [_check_regex(pattern) for pattern in value]


class CollectConfig(Section):
    """The collect stage: a polite crawler feeding items into the store."""

    sites: list[SiteConfig] = Field(default_factory=list, description="Sites to crawl; none = stage off.")
    user_agent: str = Field(
        default="labelloop/0.1 (+https://github.com/labelloop/labelloop; data-labeling crawler)",
        description="Honest User-Agent sent with every request and matched against robots.txt.",
    )
    politeness: PolitenessConfig = Field(default_factory=PolitenessConfig)
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    near_duplicate_distance: int = Field(
        default=4, ge=0, le=64, description="Images whose perceptual hashes differ in at most this many bits are flagged."
    )
    recrawl: bool = Field(
        default=True,
        description="A run after a finished crawl re-checks known pages with conditional requests (ETag / Last-Modified).",
    )
    parse_workers: int | None = Field(
        default=None, ge=0, le=64,
        description="Processes that parse pages once the crawl's own core is saturated; none = the other cores "
        "(at most 4), 0 = always parse in the crawl's process.",
    )

    @field_validator("user_agent")
    @classmethod
    def _ua(cls, value: str) -> str:
        if not value.strip() or value.strip().lower().startswith(("mozilla", "chrome")):
            raise ValueError(f"must be an honest, non-empty crawler name, not a browser's (got {value!r})")
        return value

    @model_validator(mode="after")
    def _sites_named_once(self) -> "CollectConfig":
        names = [s.name for s in self.sites]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"each site needs a distinct name (repeated: {', '.join(dupes)})")
        return self


class LabelloopConfig(Section):
    """The whole pipeline config."""

    dataset: DatasetConfig
    data_dir: Path = Field(default=Path("data"), description="Where the store, files and servers' data live.")
    store: StoreConfig = Field(default_factory=StoreConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    resolution: ResolutionConfig = Field(default_factory=ResolutionConfig)
    weak: WeakConfig = Field(default_factory=WeakConfig)
    crowd: CrowdConfig = Field(default_factory=CrowdConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    self_training: SelfTrainingConfig = Field(default_factory=SelfTrainingConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    costs: CostConfig = Field(default_factory=CostConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    collect: CollectConfig = Field(default_factory=CollectConfig)

    # Not part of the YAML: where the file was, so relative paths resolve against it.
    config_path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _model_for_modality(self) -> "LabelloopConfig":
        t = self.training
        if t.model == "auto":
            t.model = "cnn" if self.dataset.modality == "image" else "mlp"
        if t.model == "cnn" and self.dataset.modality != "image":
            raise ValueError(f"training.model 'cnn' needs image items (dataset.modality is {self.dataset.modality!r})")
        if t.augment and not t.text_augment and t.model != "cnn":
            raise ValueError(f"training.augment applies to model 'cnn' only (got model {t.model!r}); use feature_noise")
        return self

    @model_validator(mode="after")
    def _weak_classes_known(self) -> "LabelloopConfig":
        self.weak.check_classes(self.dataset.classes)
        return self

    @model_validator(mode="after")
    def _text_augment_needs_text(self) -> "LabelloopConfig":
        if self.training.text_augment and self.dataset.modality != "text":
            raise ValueError(
                f"training.augment: text transforms need a text dataset (dataset.modality is {self.dataset.modality!r})"
            )
        return self

    @model_validator(mode="after")
    def _sources_named_once(self) -> "LabelloopConfig":
        names = [s.name or str(s.path) for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sources: each source needs a distinct name (repeated: {', '.join(dupes)})")
        return self

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent if self.config_path else Path.cwd()

    def resolve_path(self, path: Path) -> Path:
        """A path from the config, made absolute against the config file's folder."""
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def data_path(self) -> Path:
        return self.resolve_path(self.data_dir)

    @property
    def store_url(self) -> str:
        if self.store.url:
            return self.store.url
        return f"sqlite:///{self.data_path / 'labelloop.db'}"

    def class_index(self, name: str) -> int:
        """The integer id of a class name; ``KeyError`` when unknown."""
        return self.dataset.classes.index(name)


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit} (got {got!r})"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {got!r})"
    if kind == "union_tag_invalid":
        return f"unknown kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"needs a '{ctx.get('discriminator', 'kind').strip(chr(39))}' key"
    message = error["msg"]
    message = message.removeprefix("Value error, ")
    if "(got" not in message and got is not None and not isinstance(got, (dict, list)):
        message = f"{message} (got {got!r})"
    return message


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part in ("image_folder", "text_file", "arrays") and parts and parts[-1].endswith("]"):
            continue  # pydantic puts the union tag in the path; the user never wrote it
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def parse_config(data: Any, source: str = "<config>", config_path: Path | None = None) -> LabelloopConfig:
    """Validate already-loaded YAML data; errors name ``source``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections (got {type(data).__name__})")
    try:
        config = LabelloopConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_key_path(e['loc'])}: {_describe(e)}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
    config.config_path = config_path
    return config


def load_config(path: str | Path) -> LabelloopConfig:
    """Read and validate a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path.name}: {where}not valid YAML ({problem})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path.name}: not UTF-8 text ({exc.reason})") from None
    return parse_config(data, source=path.name, config_path=path.resolve())
