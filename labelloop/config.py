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
    "WeakConfig",
    "LFConfig",
    "CrowdConfig",
    "SelectionConfig",
    "SelfTrainingConfig",
    "ScheduleConfig",
    "EvaluationConfig",
    "load_config",
    "parse_config",
    "SOURCE_KINDS",
    "DEFAULT_PRECEDENCE",
]

SOURCE_KINDS = ("gold", "expert", "crowd", "weak", "pseudo", "model")
DEFAULT_PRECEDENCE = ["gold", "expert", "crowd", "weak", "pseudo", "model"]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Section(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetConfig(Section):
    """What is being labeled."""

    name: str = Field(description="Dataset name (letters, digits, `_ . -`); items are stored under it.")
    modality: Literal["image", "text", "tabular"] = Field(description="Kind of item.")
    classes: list[str] = Field(description="Class names, in the order of their integer ids (at least 2).")

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"must be letters, digits, '_', '.' or '-' (got {value!r})")
        return value

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


class TrainingConfig(Section):
    """The stratified k-fold model stage."""

    folds: int = Field(default=5, ge=2, le=20, description="Number of stratified folds.")
    seed: int = Field(default=0, description="Seed for folds and models.")
    model: Literal["logreg"] = Field(default="logreg", description="Baseline model.")
    min_confidence: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Soft labels below this confidence are not trained on."
    )


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
    # one_coin by default: most LFs vote a single class, and a full confusion matrix per LF is then
    # under-determined (only its abstain pattern is seen); one accuracy per LF, with class-conditional
    # abstain rates, is the steadier model (Snorkel's choice as well).
    label_model: Literal["one_coin", "dawid_skene", "majority"] = Field(
        default="one_coin", description="How votes become probabilistic labels: one_coin (one accuracy per LF), "
        "dawid_skene (a confusion matrix per LF; for LFs that vote several classes), majority."
    )
    n_iter: int = Field(default=100, ge=1, description="Maximum EM iterations of the label model.")
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


class CrowdConfig(Section):
    """Crowd and expert labeling in Label Studio."""

    enabled: bool = False


class SelectionConfig(Section):
    """Active selection and routing by confidence."""

    enabled: bool = False


class SelfTrainingConfig(Section):
    """Pseudo-labels from the committee."""

    enabled: bool = False


class ScheduleConfig(Section):
    """Cron schedules of the deployments (standard 5-field cron)."""

    pipeline: str | None = Field(default=None, description="Cron of a full loop turn, e.g. `0 2 * * *`.")
    timezone: str = "UTC"

    @field_validator("pipeline")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"must be a 5-field cron expression (got {value!r})")
        return value


class EvaluationConfig(Section):
    """Hidden truth, for examples and simulations only: never used to train."""

    truth: Path | None = Field(
        default=None, description="`.npz` with `ids` (items' external ids) and `y` (true class ids)."
    )


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
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)

    # Not part of the YAML: where the file was, so relative paths resolve against it.
    config_path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _weak_classes_known(self) -> "LabelloopConfig":
        self.weak.check_classes(self.dataset.classes)
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
