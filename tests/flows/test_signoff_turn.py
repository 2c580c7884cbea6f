"""`schedule.signoff: true`: a real turn pauses before the route stage writes, under a real Prefect API."""

from __future__ import annotations

import threading
import time

import pytest

from labelloop.store import Store

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def _with_signoff(config_path, timeout_s: int):
    text = config_path.read_text()
    text += ("selection:\n  enabled: true\n  expert_budget: 20\n  crowd_budget: 30\n"
             "self_training:\n  enabled: true\n"
             f"schedule:\n  signoff: true\n  signoff_timeout_s: {timeout_s}\n")
    config_path.write_text(text)
    return config_path


def _paused_route_runs():
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["route"])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))),
        )


def _written(config):
    store = Store(config.store_url)
    try:
        pseudo = store.labels(config.dataset.name, kinds=["pseudo"], decode=False)
        tasks = store.tasks(config.dataset.name)
        runs = store.runs(kind="pipeline")
        return len(pseudo), len(tasks), runs
    finally:
        store.close()


def test_turn_waits_for_approval_shows_the_changes_then_writes(digits_example):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.flow_runs import resume_flow_run

    from labelloop.config import load_config
    from labelloop.flows.pipeline import pipeline

    config = load_config(_with_signoff(digits_example, 300))
    seen: dict = {}

    def expert():
        deadline = time.monotonic() + 280
        while time.monotonic() < deadline:
            paused = _paused_route_runs()
            if paused:
                seen["written_while_paused"] = _written(config)[:2]
                with get_client(sync_client=True) as client:
                    arts = client.read_artifacts(
                        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["digits-signoff-route"])))
                seen["artifact"] = arts[-1].data if arts else None
                resume_flow_run(paused[0].id, run_input={"approve": True, "comment": "looks right"})
                return
            time.sleep(0.5)

    answering = threading.Thread(target=expert, daemon=True)
    answering.start()
    result = pipeline(str(digits_example))
    answering.join(timeout=10)

    assert seen["written_while_paused"] == (0, 0)  # paused before any pseudo-label or queue was written
    md = seen["artifact"]
    assert "What this turn would write" in md and "pseudo new" in md and "expert queue" in md
    assert result["route"]["signoff"] == {"approved": True, "comment": "looks right", "asked": True,
                                          "timed_out": False}
    n_pseudo, n_tasks, runs = _written(config)
    assert n_pseudo == result["route"]["pseudo_new_or_changed"] > 0
    assert n_tasks == result["route"]["tasks"]["expert"] + result["route"]["tasks"]["crowd"] > 0
    assert runs.loc[0, "status"] == "completed" and "summary" in result  # the turn went on to its report


def test_no_answer_ends_the_turn_without_writing(digits_example):
    from labelloop.config import load_config
    from labelloop.flows.pipeline import pipeline

    config = load_config(_with_signoff(digits_example, 10))
    result = pipeline(str(digits_example))
    assert result["route"]["signoff"]["timed_out"] and not result["route"]["signoff"]["approved"]
    n_pseudo, n_tasks, runs = _written(config)
    assert (n_pseudo, n_tasks) == (0, 0)
    assert runs.loc[0, "status"] == "not-approved"
    assert "report" not in result and "summary" not in result  # the turn ended at the route stage
    assert _paused_route_runs() == []  # nothing left hanging in the UI
