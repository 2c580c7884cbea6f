"""Flow: new answers arrived in Label Studio — sync them, and start a turn once enough came in.

The deployment ``<dataset>-crowd-sync`` runs this flow; the automation
``labelloop deploy`` creates runs it on every ``labelloop.annotations.changed``
event (sent by the webhook receiver, :mod:`labelloop.ops.webhooks`), and a cron
(``schedule.stages.crowd-sync``) may run it too. The sync is the crowd stage's
incremental one, so a run started twice for one answer adds nothing twice.

With ``schedule.turn_after_answers: N``, once N answers were synced since the
last turn started it emits ``labelloop.turn.due``; the second automation runs
the ``<dataset>-pipeline`` deployment on it. No event while a turn is already
waiting to start, so a burst of answers queues one turn, not many.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prefect import flow, get_run_logger

from labelloop.config import load_config
from labelloop.runtime import open_stage
from labelloop.studio.sync import answers_since_last_turn

__all__ = ["annotations_flow", "TURN_EVENT"]

TURN_EVENT = "labelloop.turn.due"


def _turn_waiting(dataset: str) -> bool:
    """True when a run of ``<dataset>-pipeline`` is scheduled or pending (not started yet)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter, DeploymentFilterName, FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[f"{dataset}-pipeline"])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                any_=[StateType.SCHEDULED, StateType.PENDING]))),
            limit=50,
        )
    now = datetime.now(timezone.utc)
    # A cron's future runs are scheduled too; only one due now (or late) is a turn waiting.
    return any(r.expected_start_time is None or r.expected_start_time <= now for r in runs)


@flow(name="annotations", log_prints=True)
def annotations_flow(config_path: str, full: bool = False) -> dict[str, Any]:
    """Sync new Label Studio answers into the store; emit ``labelloop.turn.due`` past the configured count."""
    from labelloop.flows.crowd import crowd_sync_flow

    config = load_config(config_path)
    synced = crowd_sync_flow(config_path, full=full)
    threshold = config.schedule.turn_after_answers
    out: dict[str, Any] = {"sync": synced, "turn_due": False}
    if threshold is None:
        return out
    _, store = open_stage(config_path)
    try:
        new = answers_since_last_turn(store, config.dataset.name)
    finally:
        store.close()
    out["answers_since_turn"] = new
    if new >= threshold and not _turn_waiting(config.dataset.name):
        from prefect.events import emit_event

        from labelloop.ops.webhooks import dataset_resource

        emit_event(event=TURN_EVENT, resource=dataset_resource(config.dataset.name),
                   payload={"answers_since_turn": new, "threshold": threshold})
        out["turn_due"] = True
    get_run_logger().info("%d answers since the last turn (turn after %d): turn due %s", new, threshold,
                          out["turn_due"])
    return out
