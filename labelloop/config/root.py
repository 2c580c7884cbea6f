"""The whole config: one field per section, and the checks that need more than one section."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from labelloop.config.base import Section, distinct
from labelloop.config.collect import CollectConfig
from labelloop.config.costs import CostConfig
from labelloop.config.crowd import CrowdConfig
from labelloop.config.dataset import DatasetConfig
from labelloop.config.evaluation import EvaluationConfig
from labelloop.config.resolution import ResolutionConfig
from labelloop.config.runner import RunnerConfig
from labelloop.config.schedule import ScheduleConfig
from labelloop.config.selection import SelectionConfig
from labelloop.config.self_training import SelfTrainingConfig
from labelloop.config.sources import SourceConfig, source_name
from labelloop.config.store import StoreConfig
from labelloop.config.training import TrainingConfig
from labelloop.config.weak import WeakConfig

__all__ = ["LabelloopConfig"]


class LabelloopConfig(Section):
    """The whole pipeline config."""

    dataset: DatasetConfig
    data_dir: Path = Field(default=Path("data"), description="Where the store, files and servers' data live.")
    store: StoreConfig = Field(default_factory=StoreConfig)
    sources: Annotated[list[SourceConfig], distinct("source names", key=source_name)] = Field(default_factory=list)
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
        """The integer id of a class name; ``ValueError`` naming the known classes when it is not one."""
        classes = self.dataset.classes
        if name not in classes:
            raise ValueError(f"unknown class {name!r}; expected one of {classes}")
        return classes.index(name)
