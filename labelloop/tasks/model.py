"""The model stage's data rules now live in the library; this module keeps their old import path.

- :mod:`labelloop.models.inputs`: the training set, its inputs, the model version, the committee of a config;
- :mod:`labelloop.models.outputs`: the committee's stored outputs and the store's pointer to them.

New code imports from there.
"""

from __future__ import annotations

from labelloop.models.inputs import TRAINABLE_KINDS, model_version, prediction_rows, training_set
from labelloop.models.outputs import MODEL_RUN_KIND, latest_outputs, record_outputs

__all__ = [
    "TRAINABLE_KINDS",
    "training_set",
    "model_version",
    "prediction_rows",
    "record_outputs",
    "latest_outputs",
    "MODEL_RUN_KIND",
]
