"""Pipeline config: one YAML file -> pydantic models, validated before anything runs.

``load_config(path)`` is the only entry point the rest of labelloop uses. Every
error is a :class:`~labelloop.exceptions.ConfigError` whose message names the
file, the key path and the reason, e.g.
``labelloop.yaml: training.folds: must be >= 2 (got 1)``.

One module per section; a stage that grows adds fields to its own module::

    base           Section (unknown keys are errors) and the shared checks: slug, regex, cron,
                   http URL, and the one duplicate-name check (`distinct`)
    dataset        dataset:        what is being labeled
    store          store:          where the dataset store lives
    sources        sources:        files imported into the store
    resolution     resolution:     source precedence (the kinds themselves: labelloop.store.kinds)
    weak           weak:           labeling functions and the label model
    crowd          crowd:          Label Studio crowd, experts and simulated annotators
    selection      selection:      active selection and routing
    self_training  self_training:  pseudo-labels
    training       training:       the k-fold committee
    schedule       schedule:       crons, sign-off, webhooks
    runner         runner:         thread pool or Dask
    costs          costs:          label costs for the turn summary
    evaluation     evaluation:     hidden truth (simulations only)
    collect        collect:        the crawler
    root           LabelloopConfig: every section, and the checks across sections
    load           load_config / parse_config: YAML in, ConfigError lines out
"""

from labelloop.config.base import Section
from labelloop.config.collect import (
    CollectConfig,
    FetchConfig,
    FollowConfig,
    ItemRule,
    PolitenessConfig,
    RenderConfig,
    SiteConfig,
)
from labelloop.config.costs import CostConfig
from labelloop.config.crowd import BotConfig, CrowdConfig
from labelloop.config.dataset import DatasetConfig
from labelloop.config.evaluation import EvaluationConfig
from labelloop.config.load import load_config, parse_config
from labelloop.config.resolution import ResolutionConfig
from labelloop.config.root import LabelloopConfig
from labelloop.config.runner import RunnerConfig
from labelloop.config.schedule import ScheduleConfig
from labelloop.config.selection import SelectionConfig
from labelloop.config.self_training import SelfTrainingConfig
from labelloop.config.sources import ArraySource, ImageFolderSource, SourceConfig, TextFileSource
from labelloop.config.store import StoreConfig
from labelloop.config.training import CNNConfig, FeatureNoiseConfig, MLPConfig, TrainingConfig
from labelloop.config.weak import LFConfig, WeakConfig

__all__ = [
    "load_config",
    "parse_config",
    "LabelloopConfig",
    "Section",
    "DatasetConfig",
    "StoreConfig",
    "SourceConfig",
    "ImageFolderSource",
    "TextFileSource",
    "ArraySource",
    "ResolutionConfig",
    "WeakConfig",
    "LFConfig",
    "CrowdConfig",
    "BotConfig",
    "SelectionConfig",
    "SelfTrainingConfig",
    "TrainingConfig",
    "CNNConfig",
    "MLPConfig",
    "FeatureNoiseConfig",
    "ScheduleConfig",
    "RunnerConfig",
    "CostConfig",
    "EvaluationConfig",
    "CollectConfig",
    "SiteConfig",
    "ItemRule",
    "FollowConfig",
    "PolitenessConfig",
    "FetchConfig",
    "RenderConfig",
]
