"""One pipeline turn under a real Prefect API: rows in the store and artifacts in Prefect."""

from __future__ import annotations

import json

import pytest

from labelloop.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


def read_artifacts(keys):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(keys))))
    latest = {}
    for artifact in sorted(found, key=lambda a: a.created):
        latest[artifact.key] = artifact
    return latest


def stage_runs(config_path) -> tuple[list, dict[str, object], list]:
    """The first turn run on ``config_path``: its sub-flow runs, its task runs by name, and its artifacts.

    Task runs reach the API as events, so they are read until the turn's seven stages are there.
    """
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter, ArtifactFilterFlowRunId, FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId,
        FlowRunFilterParentFlowRunId)

    with get_client(sync_client=True) as client:
        turns = [r for r in client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["pipeline"])))
                 if r.parameters.get("config_path") == str(config_path)]
        turn = min(turns, key=lambda r: r.start_time)
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[turn.id])))
        deadline = time.monotonic() + 60
        while True:
            tasks = {t.name: t for t in client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[turn.id])))}
            if set(STAGES) <= set(tasks) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[turn.id])))
    return subflows, tasks, artifacts


STAGES = ("import", "weak_labeling", "crowd", "training", "route", "report", "summary")


def test_pipeline_turn_writes_rows_and_artifacts_and_is_idempotent(digits_example):
    from labelloop.config import load_config
    from labelloop.flows.pipeline import pipeline

    import numpy as np

    gold = int((np.load(digits_example.parent / "digits.npz")["y"] >= 0).sum())
    result = pipeline(str(digits_example))
    config = load_config(digits_example)
    store = Store(config.store_url)
    try:
        assert store.count_items("digits") == 1797
        counts = store.label_counts("digits").groupby("kind")["rows"].sum().to_dict()
        assert counts["gold"] == gold
        assert counts["model"] == 1797  # OOF for the gold items, pool predictions for the rest
        runs = store.runs(kind="pipeline")
        assert runs.loc[0, "id"] == result["run_id"] and runs.loc[0, "status"] == "completed"
        assert result["model"]["trained_on"] == gold
        assert 0.5 < result["model"]["accuracy"] <= 1.0

        keys = ["digits-import", "digits-kfold-metrics", "digits-model-summary", "digits-label-counts",
                "digits-turn-report", "digits-truth-accuracy"]
        artifacts = read_artifacts(keys)
        assert set(artifacts) == set(keys)
        assert artifacts["digits-kfold-metrics"].type == "table"
        folds = json.loads(artifacts["digits-kfold-metrics"].data)
        assert len(folds) == 5 and all(0 <= f["accuracy"] <= 1 for f in folds)
        report = artifacts["digits-turn-report"].data
        assert "Turn report: digits" in report and "Quality against hidden truth" in report
        per_class = json.loads(artifacts["digits-label-counts"].data)
        assert sum(row["gold"] for row in per_class) == gold

        # the UI shows each stage as a task run of the turn named after its stage flow (no sub-flow runs),
        # with the stage's own tasks nested under it and the stage's artifacts attached to it
        subflows, tasks, turn_artifacts = stage_runs(digits_example)
        assert subflows == []
        assert set(STAGES) <= set(tasks) and all(tasks[s].state.is_completed() for s in STAGES)
        prepare = next(t for name, t in tasks.items() if name.startswith("prepare_training_task"))
        assert [p.id for p in prepare.task_inputs["__parents__"]] == [tasks["training"].id]
        by_key = {a.key: a for a in turn_artifacts}
        assert by_key["digits-kfold-metrics"].task_run_id == tasks["training"].id
        assert by_key["digits-turn-report"].task_run_id == tasks["report"].id

        # a second turn on unchanged inputs writes nothing twice
        again = pipeline(str(digits_example))
        assert again["import"]["added"] == 0 and again["import"]["labels_added"] == 0
        assert again["model"]["rows_written"] == 0
        assert store.count_labels("digits") == gold + 1797
    finally:
        store.close()


def test_bad_config_fails_before_anything_runs(tmp_path):
    from labelloop.exceptions import ConfigError
    from labelloop.flows.pipeline import pipeline

    path = tmp_path / "labelloop.yaml"
    path.write_text("dataset: {name: x, modality: text, classes: [a, b]}\ntraining: {folds: 1}\n")
    with pytest.raises(ConfigError, match=r"training\.folds: must be >= 2 \(got 1\)"):
        pipeline(str(path))
    assert not (tmp_path / "data").exists()
