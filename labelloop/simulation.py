"""Closed-loop simulation: pipeline turns, with a simulated team answering the queues in between.

Each turn runs the real pipeline under Prefect; then an :class:`~labelloop.labeling.oracle.Oracle`
built from the hidden truth answers the expert queue and the crowd queue. The rows are the
user's learning curve: labels bought against accuracy on the hidden truth. For examples and
benchmarks only: real answers come from Label Studio.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["simulate"]


def simulate(
    config_path: Path,
    turns: int = 3,
    expert_noise: float = 0.0,
    crowd_noise: float = 0.2,
    overlap: int = 3,
    seed: int = 0,
    on_turn: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``turns`` pipeline turns on a config whose ``evaluation.truth`` is set; one row per turn."""
    from labelloop.config import load_config
    from labelloop.exceptions import ConfigError
    from labelloop.flows.pipeline import pipeline
    from labelloop.labeling.oracle import Oracle
    from labelloop.reporting import latest_model_predictions
    from labelloop.store import Store

    config = load_config(config_path)
    if config.evaluation.truth is None:
        raise ConfigError(f"{config_path.name}: evaluation.truth: a simulation needs the hidden truth file")
    truth_file = np.load(config.resolve_path(config.evaluation.truth))
    by_external = dict(zip(truth_file["ids"].astype(str), truth_file["y"].astype(int)))
    rows: list[dict[str, Any]] = []
    experts = votes = 0
    oracle = None
    for turn in range(1, turns + 1):
        result = pipeline(str(config_path))
        store = Store(config.store_url)
        try:
            items = store.items(config.dataset.name, columns=["id", "external_id"])
            truth = {int(i): by_external[str(e)] for i, e in zip(items["id"], items["external_id"])}
            if oracle is None:
                oracle = Oracle(truth, len(config.dataset.classes), expert_noise, crowd_noise, overlap, seed)
            res = store.resolve(config.dataset.name, len(config.dataset.classes), config.resolution.precedence)
            kinds = res.kind_of()
            trainable = kinds != "model"  # model rows are predictions, not training labels
            correct = np.array([truth[int(i)] == int(label) for i, label in zip(res.item_ids, res.labels)], dtype=bool)
            pseudo = kinds == "pseudo"
            predictions = latest_model_predictions(store, config.dataset.name)
            row = {
                "turn": turn,
                "expert answers": experts,
                "crowd votes": votes,
                "labels bought": experts + votes,
                "pseudo-labels": int(pseudo.sum()),
                "pseudo acc": float(correct[pseudo].mean()) if pseudo.any() else float("nan"),
                "training labels": int(trainable.sum()),
                "label acc": float(correct[trainable].mean()) if trainable.any() else float("nan"),
                "model acc": float(np.mean([truth[i] == p for i, p in predictions.items()])),
                "run_id": result["run_id"],
            }
            answers = oracle.answer(store, config.dataset.name)
        finally:
            store.close()
        rows.append(row)
        if on_turn:
            on_turn(row)
        experts += answers.expert  # answered after the turn: they count from the next turn on
        votes += answers.crowd_votes
    return rows
