"""The route stage under a real Prefect API and a real SQLite store: queues, pseudo rows re-decided, no deletes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelloop.store import LabelIn, Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _enable(config_path, expert=15, crowd=40, pseudo=300):
    # The linear committee keeps this test fast; the route stage reads whichever committee the model stage stored.
    text = config_path.read_text().replace("  model: cnn", "  model: logreg")
    text = text.split("  cnn: {")[0] + text.split("GaussNoise: {std_range: [0.02, 0.05]}}\n")[1]
    text += (f"\nselection:\n  enabled: true\n  expert_budget: {expert}\n  crowd_budget: {crowd}\n"
             f"  pseudo_budget: {pseudo}\n\nself_training:\n  enabled: true\n  max_iter: 4\n")
    config_path.write_text(text)


def _artifacts(keys):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(keys))))
    return {a.key: a for a in sorted(found, key=lambda a: a.created)}


def test_route_stage_queues_pseudo_rows_and_redecides_without_deletes(digits_example):
    from labelloop.config import load_config
    from labelloop.flows.importing import import_flow
    from labelloop.flows.route import route_flow
    from labelloop.flows.training import training_flow
    from labelloop.tasks.route import PSEUDO_SOURCE, standing_pseudo

    _enable(digits_example)
    config = load_config(digits_example)
    store = Store(config.store_url).create()
    try:
        run1 = store.start_run("test", "digits")
        import_flow(str(digits_example), run1)
        training_flow(str(digits_example), run1)
        first = route_flow(str(digits_example), run1)
        q = first["queues"]
        assert q["expert"] <= 15 and q["crowd"] <= 40 and 0 < q["pseudo"] <= 300
        # every candidate in exactly one queue: tasks never share an item across queues
        tasks = store.tasks("digits")
        assert len(tasks) == q["expert"] + q["crowd"]
        assert tasks["item_id"].is_unique
        assert set(tasks["queue"]) == {"expert", "crowd"}
        pseudo_rows = store.labels("digits", kinds=["pseudo"])
        assert len(pseudo_rows) == q["pseudo"] and (pseudo_rows.source == PSEUDO_SOURCE).all()
        assert ((pseudo_rows["confidence"] > 0) & (pseudo_rows["confidence"] <= 1)).all()
        assert pseudo_rows["item_id"].is_unique
        assert not set(pseudo_rows.item_id) & set(tasks.item_id)
        # rerunning the same turn writes nothing twice
        again = route_flow(str(digits_example), run1)
        assert again["rows_written"] == 0
        assert len(store.tasks("digits")) == len(tasks)

        # an expert contradicts some pseudo-labels and labels items: the next turn re-decides
        rows_before = len(store.labels("digits"))
        standing = standing_pseudo(store, "digits")
        victims = sorted(standing)[:5]
        store.add_labels(LabelIn(i, (standing[i] + 1) % 10, "expert", "test-expert") for i in victims)
        # a pseudo-label the teacher would never support: forged with a wrong class
        forged = sorted(standing)[5]
        store.add_labels([LabelIn(forged, (standing[forged] + 5) % 10, "pseudo", PSEUDO_SOURCE, confidence=0.99,
                                  dedupe_key="forged")])
        run2 = store.start_run("test", "digits")
        training_flow(str(digits_example), run2)  # the next turn's committee trains on the new labels
        second = route_flow(str(digits_example), run2)
        assert second["pseudo_retracted"] >= len(victims)
        rows = store.labels("digits")
        assert len(rows) >= rows_before + len(victims) + 1  # append-only: nothing vanished
        latest = rows[rows.source == PSEUDO_SOURCE].sort_values("id").groupby("item_id")["label"].last()
        for i in victims:  # expert-labeled items left the candidates: their pseudo-label is retracted (-1)
            assert latest[i] == -1
        assert latest[forged] != (standing[forged] + 5) % 10  # the forged label is no longer standing
        # the resolution now uses the expert label, not a pseudo one
        res = store.resolve("digits", 10)
        by_id = dict(zip(res.item_ids.tolist(), res.kind_of().tolist()))
        assert all(by_id[i] == "expert" for i in victims)

        arts = _artifacts(["digits-queue-sizes", "digits-confidence-histogram", "digits-route-summary"])
        assert set(arts) == {"digits-queue-sizes", "digits-confidence-histogram", "digits-route-summary"}
        sizes = json.loads(arts["digits-queue-sizes"].data)
        assert [r["queue"] for r in sizes] == ["expert", "crowd", "pseudo", "wait"]
        assert "data:image/png;base64," in arts["digits-confidence-histogram"].data
        assert "expected" in arts["digits-route-summary"].data
    finally:
        store.close()


def test_route_stage_is_skipped_when_disabled(digits_example):
    from labelloop.flows.route import route_flow

    assert route_flow(str(digits_example), "r") == {"skipped": True}
