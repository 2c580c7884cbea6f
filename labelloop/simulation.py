"""Simulated teams, for examples, demos, tests and benchmarks only: real answers come from people.

* :func:`simulate`: pipeline turns under Prefect; after each, an
  :class:`~labelloop.labeling.oracle.Oracle` built from the hidden truth answers
  the expert and crowd queues in the store. The rows are the user's learning
  curve: labels bought against accuracy on the hidden truth.
* :func:`simulated_team`: inside it, the config's ``crowd.bots`` (real Label
  Studio users) answer their open tasks between a crowd round's push and its
  sync, so one turn shows a whole round. The production crowd flow has no bots
  and never waits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["simulate", "simulated_team", "bot_answers"]


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


def bot_answers(config, store, client) -> int:
    """The config's ``crowd.bots`` answer their open crowd tasks from the hidden truth; returns the answers."""
    from labelloop.exceptions import ConfigError
    from labelloop.reporting import _truth_by_item
    from labelloop.studio.bots import Bot, answer_open_tasks

    c, ds = config.crowd, config.dataset
    if not c.bots or config.evaluation.truth is None:
        return 0
    bots = []
    for n, b in enumerate(c.bots):
        unknown = [x for pair in b.confusions.items() for x in pair if x not in ds.classes]
        if unknown:
            raise ConfigError(f"crowd.bots[{n}].confusions: {unknown[0]!r} is not one of dataset.classes {ds.classes}")
        conf = {ds.classes.index(k): ds.classes.index(v) for k, v in b.confusions.items()}
        bots.append(Bot(b.name, b.accuracy, conf, b.confusion_share, seed=config.training.seed))
    ids, y = _truth_by_item(store, config)
    return answer_open_tasks(client, bots, dict(zip(ids.tolist(), y.tolist())), ds.name, ds.classes, ds.modality,
                             config.data_path / "studio")


@contextmanager
def simulated_team() -> Iterator[None]:
    """Crowd rounds run inside get their bots' answers between push and sync (``tasks.crowd.ANSWERERS``)."""
    from labelloop.tasks.crowd import ANSWERERS

    ANSWERERS.append(bot_answers)
    try:
        yield
    finally:
        ANSWERERS.remove(bot_answers)
