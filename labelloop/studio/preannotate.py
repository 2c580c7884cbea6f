"""Committee predictions as Label Studio pre-annotations (model version and score).

Showing a model's guess to annotators anchors them: they agree with it more
often than they would on their own, which inflates agreement and hides the
model's mistakes. ``crowd.hide_predictions_from_crowd`` (default on) therefore
leaves predictions out of crowd tasks entirely (not only hidden in the UI, since
the API would still serve them); expert and review projects always get them.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from labelloop.studio.projects import CONTROL, OBJECT

__all__ = ["to_prediction", "predictions_for", "latest_model_probs"]


def to_prediction(probs: Sequence[float], classes: Sequence[str], modality: str, model_version: str) -> dict:
    """One Label Studio prediction: the arg-max class, its probability as ``score``.

    >>> p = to_prediction([0.2, 0.8], ["cat", "dog"], "image", "committee-3")
    >>> p["model_version"], p["score"], p["result"][0]["value"]
    ('committee-3', 0.8, {'choices': ['dog']})
    """
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (len(classes),):
        raise ValueError(f"probs must have one entry per class ({len(classes)}), got shape {probs.shape}")
    best = int(np.argmax(probs))
    return {
        "model_version": str(model_version),
        "score": round(float(probs[best]), 6),
        "result": [{"from_name": CONTROL, "to_name": OBJECT[modality], "type": "choices",
                    "value": {"choices": [classes[best]]}}],
    }


def predictions_for(probs: Mapping[int, Sequence[float]], classes: Sequence[str], modality: str,
                    model_version: str) -> dict[int, dict]:
    """Item -> prediction for every item with committee probabilities."""
    return {int(item): to_prediction(p, classes, modality, model_version) for item, p in probs.items()}


def latest_model_probs(store, dataset: str) -> tuple[dict[int, np.ndarray], str]:
    """Item -> the newest ``model`` row's class probabilities, and that committee's version (``""``: none yet)."""
    last = store.standing(dataset, kinds=["model"], per="item")
    if last.empty:
        return {}, ""
    probs = {int(i): p for i, p in zip(last["item_id"], last["probs"]) if p is not None}
    return probs, str(last["source"].iloc[-1])
