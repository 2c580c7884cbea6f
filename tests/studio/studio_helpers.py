"""Helpers shared by the studio tests (not fixtures)."""

from __future__ import annotations

from labelloop.store import ItemIn, LabelIn, Store


def add_text_items(store: Store, dataset: str, n: int, classes, seed: int = 0):
    """``n`` text items; returns their ids and a hidden truth (item id -> class)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    truth_list = rng.integers(0, len(classes), n)
    res = store.add_items(dataset, [ItemIn(modality="text", text=f"{dataset} item {i}: about {classes[t]}")
                                    for i, t in enumerate(truth_list)])
    return res.ids, {i: int(t) for i, t in zip(res.ids, truth_list)}


def add_gold(store: Store, truth: dict, ids) -> dict:
    store.add_labels([LabelIn(item_id=i, label=truth[i], kind="gold", source="test-gold") for i in ids])
    return {i: truth[i] for i in ids}
