"""When new answers make a whole turn due (labelloop/flows/annotations.py)."""

from __future__ import annotations

import time

from labelloop.studio.sync import answers_since_last_turn
from labelloop.store import ItemIn, LabelIn


def test_counts_label_studio_answers_since_the_last_turn_started(store):
    ids = store.add_items("ds", [ItemIn(modality="text", text=f"t{i}") for i in range(6)]).ids
    store.add_labels([LabelIn(item_id=i, label=0, kind="gold", source="seed") for i in ids[:2]])
    store.add_labels([LabelIn(item_id=ids[0], label=1, kind="annotator", source="a@x", dedupe_key="ls:1:t0")])
    assert answers_since_last_turn(store, "ds") == 1  # no turn yet: every answer counts
    store.start_run("pipeline", "other-dataset", {})  # another dataset's turn changes nothing here
    assert answers_since_last_turn(store, "ds") == 1
    time.sleep(0.01)
    store.start_run("pipeline", "ds", {})
    time.sleep(0.01)
    assert answers_since_last_turn(store, "ds") == 0
    store.add_labels([
        LabelIn(item_id=ids[1], label=2, kind="annotator", source="a@x", dedupe_key="ls:2:t1"),
        LabelIn(item_id=ids[2], label=2, kind="expert", source="e@x", dedupe_key="ls:3:t1"),
        LabelIn(item_id=ids[0], label=-1, kind="annotator", source="a@x", dedupe_key="ls:1:deleted"),  # a retraction
        LabelIn(item_id=ids[3], label=3, kind="annotator", source="bot", dedupe_key="other:4"),  # not from Label Studio
    ])
    assert answers_since_last_turn(store, "ds") == 2
