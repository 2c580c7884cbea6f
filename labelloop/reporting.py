"""What a lead wants to read after a turn: label counts by class and source, and
(for examples and simulations only) how good the labels are against hidden truth."""

from __future__ import annotations

from typing import Any

import numpy as np

from labelloop.config import LabelloopConfig
from labelloop.exceptions import ConfigError
from labelloop.store import Store

__all__ = ["label_summary", "truth_accuracy", "latest_model_predictions"]


def label_summary(store: Store, config: LabelloopConfig) -> dict[str, Any]:
    """Resolved training labels per class and winning source, plus raw row counts."""
    classes = config.dataset.classes
    dataset = config.dataset.name
    resolution = store.resolve(dataset, len(classes), config.resolution.precedence)
    kinds = resolution.kind_of()
    rows = []
    for index, name in enumerate(classes):
        in_class = resolution.labels == index
        row: dict[str, Any] = {"class": name, "total": int(in_class.sum())}
        for kind in resolution.kinds:
            row[kind] = int((in_class & (kinds == kind)).sum())
        rows.append(row)
    n_items = store.count_items(dataset)
    return {
        "items": n_items,
        "resolved": len(resolution),
        "unlabeled": n_items - len(resolution),
        "by_kind": resolution.report["by_kind"],
        "per_class": rows,
        "raw_rows": store.label_counts(dataset).to_dict("records"),
    }


def _truth_by_item(store: Store, config: LabelloopConfig) -> tuple[np.ndarray, np.ndarray]:
    path = config.resolve_path(config.evaluation.truth)
    try:
        with np.load(path, allow_pickle=False) as data:
            ids, y = data["ids"].astype(str), data["y"].astype(int)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"evaluation.truth: {path} is not an .npz with 'ids' and 'y' ({exc})") from exc
    truth = dict(zip(ids, y))
    items = store.items(config.dataset.name, columns=["id", "external_id"])
    known = items["external_id"].astype(str).isin(truth.keys())
    item_ids = items.loc[known, "id"].to_numpy()
    return item_ids, np.array([truth[e] for e in items.loc[known, "external_id"].astype(str)])


def latest_model_predictions(store: Store, dataset: str) -> dict[int, int]:
    """Item id → class of the newest standing ``model`` row."""
    latest = store.standing(dataset, kinds=["model"], per="item", decode=False)
    return dict(zip(latest["item_id"].astype(int).tolist(), latest["label"].astype(int).tolist()))


def truth_accuracy(store: Store, config: LabelloopConfig) -> list[dict[str, Any]]:
    """Accuracy against the hidden truth, per winning label source and for the model's predictions."""
    if config.evaluation.truth is None:
        return []
    item_ids, y = _truth_by_item(store, config)
    truth = dict(zip(item_ids.tolist(), y.tolist()))
    classes = config.dataset.classes
    resolution = store.resolve(config.dataset.name, len(classes), config.resolution.precedence)
    kinds = resolution.kind_of()
    rows = []
    for kind in resolution.kinds:
        chosen = [(int(i), int(l)) for i, l, k in zip(resolution.item_ids, resolution.labels, kinds) if k == kind and int(i) in truth]
        if chosen:
            correct = sum(truth[i] == label for i, label in chosen)
            rows.append({"labels": f"training labels from {kind}", "items": len(chosen), "accuracy": correct / len(chosen)})
    predictions = latest_model_predictions(store, config.dataset.name)
    scored = [(truth[i], p) for i, p in predictions.items() if i in truth]
    if scored:
        rows.append({
            "labels": "model predictions, all items",
            "items": len(scored),
            "accuracy": sum(t == p for t, p in scored) / len(scored),
        })
    return rows
