"""A simulated labeling team for closed-loop simulations: answers open queue tasks from hidden truth.

Experts answer with ``expert_noise`` (share of wrong answers, uniform over the
other classes); crowd items get ``overlap`` independent workers with
``crowd_noise`` each, and their majority vote (ties: the first worker) becomes
the ``crowd`` label. Only for examples and benchmarks: real labels come from
Label Studio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelloop.store import LabelIn, Store

__all__ = ["Oracle", "OracleAnswers"]


@dataclass
class OracleAnswers:
    expert: int = 0
    crowd_items: int = 0
    crowd_votes: int = 0
    wrong: int = 0


class Oracle:
    """Answers the open ``expert`` and ``crowd`` tasks of a dataset.

    Parameters
    ----------
    truth : dict item id -> class id
    n_classes : int
    expert_noise, crowd_noise : float, share of wrong answers in [0, 1)
    overlap : int, workers per crowd item
    seed : int
    """

    def __init__(self, truth: dict[int, int], n_classes: int, expert_noise: float = 0.0, crowd_noise: float = 0.2,
                 overlap: int = 3, seed: int = 0):
        for name, v in (("expert_noise", expert_noise), ("crowd_noise", crowd_noise)):
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        if overlap < 1:
            raise ValueError(f"overlap must be >= 1, got {overlap}")
        self.truth = truth
        self.n_classes = n_classes
        self.expert_noise = expert_noise
        self.crowd_noise = crowd_noise
        self.overlap = overlap
        self.rng = np.random.default_rng(seed)

    def _answer(self, item_id: int, noise: float) -> int:
        true = self.truth[item_id]
        if self.rng.random() >= noise:
            return true
        return int((true + self.rng.integers(1, self.n_classes)) % self.n_classes)

    def answer(self, store: Store, dataset: str) -> OracleAnswers:
        """Answer every open expert/crowd task, write the labels, close the tasks."""
        out = OracleAnswers()
        tasks = store.tasks(dataset, state=["queued", "pushed"])
        rows, done = [], []
        for t in tasks.itertuples():
            item = int(t.item_id)
            if item not in self.truth:
                continue
            if t.queue == "expert":
                label = self._answer(item, self.expert_noise)
                rows.append(LabelIn(item, label, "expert", "oracle-expert", confidence=1.0,
                                    dedupe_key=f"oracle:expert:{t.id}"))
                out.expert += 1
            elif t.queue == "crowd":
                votes = [self._answer(item, self.crowd_noise) for _ in range(self.overlap)]
                counts = np.bincount(votes, minlength=self.n_classes)
                label = int(votes[0]) if counts[votes[0]] == counts.max() else int(counts.argmax())
                rows.append(LabelIn(item, label, "crowd", "oracle-crowd-majority",
                                    confidence=float(counts.max() / self.overlap), dedupe_key=f"oracle:crowd:{t.id}"))
                out.crowd_items += 1
                out.crowd_votes += self.overlap
            else:
                continue
            out.wrong += int(label != self.truth[item])
            done.append(int(t.id))
        store.add_labels(rows)
        if done:
            store.update_tasks(done, state="done")
        return out
