"""The training section of the config: validated up front, messages name the key."""

from __future__ import annotations

import pytest

from labelloop.config import parse_config
from labelloop.exceptions import ConfigError

BASE = {"dataset": {"name": "digits", "modality": "image", "classes": [str(i) for i in range(10)]}}


def parse(training):
    return parse_config({**BASE, "training": training}, source="labelloop.yaml").training


def test_model_defaults_per_modality():
    """auto: a CNN for images, an MLP for text embeddings and tabular rows; a CNN on text is refused."""
    for modality, model in (("image", "cnn"), ("text", "mlp"), ("tabular", "mlp")):
        cfg = parse_config({"dataset": {**BASE["dataset"], "modality": modality}}, source="labelloop.yaml")
        assert cfg.training.model == model
    with pytest.raises(ConfigError, match="training.model 'cnn' needs image items"):
        parse_config({"dataset": {**BASE["dataset"], "modality": "text"}, "training": {"model": "cnn"}},
                     source="labelloop.yaml")


def test_defaults_and_a_full_section():
    t = parse({})
    assert t.model == "cnn" and t.epochs == 20 and t.patience == 5 and t.augment == []
    t = parse({
        "model": "cnn", "epochs": 10, "loss": "focal", "class_weight": "balanced", "device": "cpu", "tta": 2,
        "cnn": {"channels": [16, 32], "hidden": 0, "image_size": 28},
        "augment": [{"Affine": {"rotate": [-10, 10]}}, {"GaussNoise": {"std_range": [0.03, 0.08]}}],
    })
    assert t.cnn.channels == [16, 32] and len(t.augment) == 2


@pytest.mark.parametrize(
    "training,message",
    [
        ({"model": "cnn", "augment": [{"Blur2": {}}]},
         r"labelloop.yaml: training.augment: augment\[0\]: unknown albumentations transform 'Blur2'"),
        ({"model": "cnn", "augment": [{"GaussNoise": {"std_range": [0.1, 0.2], "var_limit": 3}}]},
         r"training.augment: augment\[0\]: GaussNoise: unknown parameter\(s\) 'var_limit'"),
        ({"model": "mlp", "augment": ["HorizontalFlip"]}, r"training: augment applies to model 'cnn' only"),
        ({"epochs": 0}, r"training.epochs: must be >= 1 \(got 0\)"),
        ({"batch_size": 1}, r"training.batch_size: must be >= 2 \(got 1\)"),
        ({"model": "resnet"}, r"training.model: must be one of"),
        ({"device": "tpu"}, r"training.device: must be one of"),
        ({"cnn": {"channels": [8, 0]}}, r"training.cnn.channels: every block needs >= 1 channel"),
        ({"cnn": {"widht": 3}}, r"training.cnn.widht: unknown key"),
        ({"model": "cnn", "tta": 4}, r"training: tta: 4 needs an augment pipeline"),
    ],
)
def test_bad_training_sections_are_refused(training, message):
    with pytest.raises(ConfigError, match=message):
        parse(training)
