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
    "CrowdConfig",
    "SelectionConfig",
    "SelfTrainingConfig",
    "ScheduleConfig",
    "RunnerConfig",
    "CostConfig",
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


class WeakConfig(Section):
    """Weak labeling: labeling functions and the label model."""

    enabled: bool = False


class CrowdConfig(Section):
    """Crowd and expert labeling in Label Studio."""

    enabled: bool = False


class SelectionConfig(Section):
    """Active selection and routing by confidence."""

    enabled: bool = False


class SelfTrainingConfig(Section):
    """Pseudo-labels from the committee."""

    enabled: bool = False


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
        description="Pause for an expert's sign-off in the UI where a stage asks for it (off for unattended runs).",
    )
    signoff_timeout_s: int = Field(default=3600, ge=10, description="How long a sign-off waits before the run fails.")
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

    # Not part of the YAML: where the file was, so relative paths resolve against it.
    config_path: Path | None = Field(default=None, exclude=True)

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
