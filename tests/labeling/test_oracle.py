"""The simulated team answers open queue tasks into a real SQLite store."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.labeling.oracle import Oracle
from labelloop.store import ItemIn, Store, TaskIn


@pytest.fixture
def sqlite_store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'oracle.db'}").create()
    yield s
    s.close()


def test_oracle_answers_each_open_task_once(sqlite_store):
    ids = sqlite_store.add_items("d", [ItemIn("text", text=f"item {i}") for i in range(30)]).ids
    truth = {i: k % 3 for k, i in enumerate(ids)}
    sqlite_store.add_tasks([TaskIn(i, "expert") for i in ids[:10]] + [TaskIn(i, "crowd") for i in ids[10:25]])
    oracle = Oracle(truth, 3, expert_noise=0.0, crowd_noise=0.0, overlap=3)
    got = oracle.answer(sqlite_store, "d")
    assert (got.expert, got.crowd_items, got.crowd_votes, got.wrong) == (10, 15, 45, 0)
    labels = sqlite_store.labels("d")
    assert sorted(labels.kind.unique()) == ["crowd", "expert"]
    assert all(truth[int(r.item_id)] == r.label for r in labels.itertuples())
    assert set(sqlite_store.tasks("d").state) == {"done"}
    again = oracle.answer(sqlite_store, "d")  # no open tasks left: nothing answered twice
    assert again.expert == again.crowd_items == 0 and len(sqlite_store.labels("d")) == 25


def test_noisy_experts_are_wrong_about_as_often_as_told(sqlite_store):
    ids = sqlite_store.add_items("d", [ItemIn("text", text=f"x{i}") for i in range(400)]).ids
    truth = {i: k % 4 for k, i in enumerate(ids)}
    sqlite_store.add_tasks([TaskIn(i, "expert") for i in ids])
    got = Oracle(truth, 4, expert_noise=0.3, seed=1).answer(sqlite_store, "d")
    assert 0.2 < got.wrong / got.expert < 0.4


def test_oracle_parameter_errors():
    with pytest.raises(ValueError, match=r"crowd_noise must be in \[0, 1\), got 1.0"):
        Oracle({}, 2, crowd_noise=1.0)
    with pytest.raises(ValueError, match=r"overlap must be >= 1, got 0"):
        Oracle({}, 2, overlap=0)
