"""labelloop.models: networks, augmentation, the trainer, the k-fold committee, metrics, features.

Plain Python and PyTorch; nothing here imports Prefect. Names are loaded on
first use, so importing a light submodule (``baseline``, ``features``) does not
pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ConvNet",
    "FeatureNoise",
    "FitResult",
    "ImageAugmenter",
    "KFoldCommittee",
    "MLPNet",
    "Trainer",
    "fit_temperature",
    "load_checkpoint",
    "parse_pipeline",
    "save_checkpoint",
    "softmax",
    "CommitteeOutputs",
    "OutputsWriter",
    "latest_outputs",
    "build_committee",
    "training_set",
    "load_features",
]

_WHERE = {
    "ConvNet": "networks",
    "MLPNet": "networks",
    "FeatureNoise": "augment",
    "ImageAugmenter": "augment",
    "parse_pipeline": "augment",
    "KFoldCommittee": "ensemble",
    "fit_temperature": "calibration",
    "softmax": "calibration",
    "CommitteeOutputs": "outputs",
    "OutputsWriter": "outputs",
    "latest_outputs": "outputs",
    "build_committee": "inputs",
    "training_set": "inputs",
    "load_features": "features",
    "FitResult": "trainer",
    "Trainer": "trainer",
    "load_checkpoint": "trainer",
    "save_checkpoint": "trainer",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"labelloop.models.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'labelloop.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
