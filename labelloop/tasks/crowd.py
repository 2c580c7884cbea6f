"""Crowd tasks: thin wrappers over ``studio/`` (Label Studio rounds) and ``labeling/crowd.py`` (aggregation).

The push and the sync talk to Label Studio, so they retry with
:data:`~labelloop.tasks.policies.SERVER_RETRIES`: the client inside already
retries a down or slow server with backoff, a task retry is the second line (a
restart of Label Studio between attempts). Both are idempotent (Label Studio
and the store are the record of what was pushed and synced), which is what
makes retrying them safe. Aggregation is a pure transform: no retries, and no
cache (its input is the store's votes, read fresh every turn).

Tokens come from env ``LABELLOOP_LS_TOKEN``, else the Prefect Secret block
named by ``crowd.token_secret``, else the credentials file of the server
`labelloop up` manages; they are never logged.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from prefect import task
from prefect.cache_policies import NO_CACHE

from labelloop.config import LabelloopConfig
from labelloop.exceptions import LabelStudioError
from labelloop.labeling.crowd import CrowdAggregator, crowd_label_rows, standing_gold, standing_votes
from labelloop.ops.webhooks import register_project_webhooks
from labelloop.store import Store
from labelloop.studio.client import StudioClient
from labelloop.studio.preannotate import latest_model_probs
from labelloop.studio.review import push_expert_queue
from labelloop.studio.server import StudioServer, load_credentials
from labelloop.studio.sync import close_answered, sync_annotations
from labelloop.studio.team import push_crowd_queue
from labelloop.tasks.policies import SERVER_RETRIES

__all__ = ["connect", "push_task", "answer_task", "sync_task", "aggregate_task", "ANSWERERS"]

# Who answers between a round's push and its sync, inside the crowd flow. Empty in production (people answer in
# Label Studio, and the webhook-driven sync picks it up); the simulated team of a demo or a test hangs itself here
# (``labelloop.simulation.simulated_team``). Each is called ``(config, store, client)`` and returns its answers.
ANSWERERS: list[Callable[[LabelloopConfig, Store, StudioClient], int]] = []


def _secret_block(name: str) -> str | None:
    try:
        from prefect.blocks.system import Secret

        return Secret.load(name).get()
    except Exception:  # no such block / no Prefect API: fall through to the next source
        return None


def connect(config: LabelloopConfig) -> StudioClient:
    """An admin client for the configured server (token never logged)."""
    studio_dir = config.data_path / "studio"
    url = config.crowd.url
    if url is None:
        running = StudioServer.running(studio_dir)
        if running is None:
            raise LabelStudioError(f"no Label Studio running for {studio_dir} and crowd.url is not set; "
                                   "start one with `labelloop up`")
        url = running.url
    token = os.environ.get("LABELLOOP_LS_TOKEN") or _secret_block(config.crowd.token_secret)
    if not token and (studio_dir / "credentials.json").is_file():
        token = load_credentials(studio_dir).token
    if not token:
        raise LabelStudioError(f"Label Studio at {url}: no admin token (set LABELLOOP_LS_TOKEN or the Prefect "
                               f"Secret block {config.crowd.token_secret!r})")
    return StudioClient(url, token)


@task(name="crowd-push", cache_policy=NO_CACHE, **SERVER_RETRIES)
def push_task(config: LabelloopConfig, store: Store, client: StudioClient, run_id: str) -> dict[str, Any]:
    """Push the crowd queue (gold mixed in) and the expert queue; every task copy is recorded in the store."""
    gold = standing_gold(store, config.dataset.name)
    probs, version = latest_model_probs(store, config.dataset.name)
    pushed = push_crowd_queue(config, store, client, run_id, gold, probs, version)
    pushed["expert_pushed"] = push_expert_queue(config, store, client, probs, version)
    register_project_webhooks(config, client)  # no-op unless `labelloop up` started the receiver
    return pushed


@task(name="crowd-answers", cache_policy=NO_CACHE)
def answer_task(config: LabelloopConfig, store: Store, client: StudioClient) -> int:
    """Whoever hangs in :data:`ANSWERERS` answers now; returns the answers given. The flow calls it only then."""
    return sum(answer(config, store, client) for answer in list(ANSWERERS))


@task(name="crowd-sync", cache_policy=NO_CACHE, **SERVER_RETRIES)
def sync_task(config: LabelloopConfig, store: Store, client: StudioClient, run_id: str,
              full: bool = False) -> dict[str, Any]:
    """Incremental sync (a full reconcile when due or ``full``); answered task copies become ``done``."""
    report = sync_annotations(client, store, config.dataset.name, config.dataset.classes, run_id=run_id,
                              mode="full" if full else "auto", reconcile_every=config.crowd.reconcile_every_s)
    close_answered(store, config.dataset.name, report.answered_tasks)
    return {"added": report.added, "deleted": report.deleted, "annotations": report.annotations,
            "quarantined": [q.error for q in report.quarantined], "mode": report.mode, "reason": report.reason,
            "tasks_read": report.tasks_read}


@task(name="crowd-aggregate", cache_policy=NO_CACHE)
def aggregate_task(config: LabelloopConfig, store: Store, run_id: str) -> dict[str, Any]:
    """Dawid-Skene (gold-anchored) over the newest vote per (item, annotator) -> ``crowd`` rows."""
    c, ds = config.crowd, config.dataset
    votes = standing_votes(store, ds.name)
    gold = standing_gold(store, ds.name)
    agg = CrowdAggregator(c.aggregator, c.gold_min_accuracy, c.gold_min_answers, confidence=c.gold_confidence,
                          flagged_weight=c.flagged_weight).fit(votes, len(ds.classes), gold, classes=ds.classes)
    written = store.add_labels(crowd_label_rows(agg, votes, gold, run_id))
    return {"votes": votes, "aggregator": agg, "written": written, "gold": gold}
