"""Stage: the crowd round in Label Studio — push queue → pick up what is done → sync → aggregate → report.

Retries live on the tasks that talk to the server; the client inside already
retries a down or slow server with backoff, so a task retry is the second line
(a restart of Label Studio between attempts). Artifacts link into Label Studio
and never hold a token: tokens come from env ``LABELLOOP_LS_TOKEN``, else the
Prefect Secret block named by ``crowd.token_secret``, else the credentials file
of the server `labelloop up` manages.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from labelloop.config import LabelloopConfig
from labelloop.exceptions import ConfigError, LabelStudioError
from labelloop.flows.artifacts import artifact_key, markdown_table, publish_image, publish_markdown, publish_table
from labelloop.flows.context import open_stage
from labelloop.labeling.agreement import fleiss_kappa, kappa_heatmap, kappa_matrix, krippendorff_alpha, throughput
from labelloop.labeling.crowd import CrowdAggregator, standing_gold, standing_votes
from labelloop.ops.webhooks import register_project_webhooks
from labelloop.store import LabelIn, Store, TaskIn
from labelloop.studio.assign import ITEM_KEY, OverlapPolicy
from labelloop.studio.bots import Bot, bot_email, ensure_bot_accounts
from labelloop.studio.client import StudioClient
from labelloop.studio.preannotate import predictions_for
from labelloop.studio.projects import (FILES_DIR, ensure_file_storage, ensure_project, find_projects, local_file_url,
                                       project_url, render_image_file, task_data)
from labelloop.studio.review import ensure_expert_config, review_fields
from labelloop.studio.server import StudioServer, load_credentials
from labelloop.studio.sync import sync_annotations
from labelloop.studio.team import CrowdTeam

__all__ = ["crowd_flow", "crowd_sync_flow", "connect"]


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


def _content(store: Store, config: LabelloopConfig, ids: list[int]):
    """Item id -> Label Studio task data, from what the store holds (text, array payload, file, URI).

    Image files are never inlined: a file under the data dir goes as a
    local-files URL Label Studio serves (see :mod:`labelloop.studio.projects`);
    an image held as an array is rendered once to ``<data_dir>/files/rendered/``
    and goes the same way; a remote image goes as its URI.
    """
    modality = config.dataset.modality
    if not ids:
        return lambda item: {}
    root = config.data_path.resolve()
    items = store.items(config.dataset.name, ids=ids).set_index("id")
    payloads = dict(zip(ids, store.payloads(ids))) if modality != "text" else {}

    def given(row, column: str) -> str | None:  # pandas gives NaN for a missing value in a mixed column
        value = row.get(column)
        return value if isinstance(value, str) and value else None

    def content(item: int) -> dict:
        row = items.loc[item]
        if modality == "text":
            return task_data("text", {"text": row["text"]})
        blob = payloads.get(item)
        if modality == "image" and given(row, "path"):
            return {"image": local_file_url(row["path"], root)}
        if blob is not None:
            from labelloop.sources.arrays import decode_array

            values = decode_array(blob)
            if modality == "image":
                png = render_image_file(values, root / FILES_DIR / "rendered" / f"{row['content_hash']}.png")
                return {"image": local_file_url(png, root)}
            return task_data(modality, {"row": values})
        if modality == "image" and given(row, "uri"):
            return {"image": row["uri"]}
        return task_data(modality, {"row": row.get("meta") or {}} if modality == "tabular" else {"image": row["uri"]})
    return content


def _serve_files(config: LabelloopConfig, client: StudioClient, refs) -> None:
    """Image projects get the local-files storage that lets Label Studio serve the data dir's files."""
    if config.dataset.modality == "image":
        for ref in refs:
            ensure_file_storage(client, ref, config.data_path.resolve() / FILES_DIR)


def _latest_probs(store: Store, dataset: str) -> tuple[dict[int, np.ndarray], str]:
    last = store.standing(dataset, kinds=["model"], per="item")
    if last.empty:
        return {}, ""
    probs = {int(i): p for i, p in zip(last["item_id"], last["probs"]) if p is not None}
    return probs, str(last["source"].iloc[-1])


def _queued(store: Store, dataset: str) -> pd.DataFrame:
    queued = store.tasks(dataset, queue="crowd", state="queued")
    return queued[queued["annotator"].isna()]


@task(retries=2, retry_delay_seconds=5, name="crowd-push", cache_policy=NO_CACHE)
def push_task(config: LabelloopConfig, store: Store, client: StudioClient, run_id: str) -> dict[str, Any]:
    """Create projects, plan the round (gold mixed in) and push it; record the tasks in the store."""
    c, ds = config.crowd, config.dataset
    annotators = list(c.annotators) + [bot_email(b.name) for b in c.bots]
    team = CrowdTeam(client, ds.name, ds.modality, ds.classes, annotators, instructions=c.instructions,
                     show_predictions=not c.hide_predictions_from_crowd)
    _serve_files(config, client, team.projects().values())
    register_project_webhooks(config, client)  # no-op unless `labelloop up` started the receiver
    state = team.state()
    queued = _queued(store, ds.name)
    if queued.empty and c.seed_queue and not store.tasks(ds.name, queue="crowd").shape[0]:
        labeled = set(store.standing(ds.name, kinds=["gold", "expert", "crowd"], decode=False)["item_id"])
        free = [int(i) for i in store.items(ds.name, columns=["id"])["id"] if int(i) not in labeled]
        store.add_tasks([TaskIn(item_id=i, queue="crowd", run_id=run_id) for i in free[: c.seed_queue]])
        queued = _queued(store, ds.name)
    queued = queued.head(c.batch_size)
    gold = standing_gold(store, ds.name)
    probs, version = _latest_probs(store, ds.name)
    model_labels = {i: int(np.argmax(p)) for i, p in probs.items()}
    queue = [int(i) for i in queued["item_id"]] + list(state.answers)
    wanted = set(queue) | set(gold)
    preds = predictions_for({i: probs[i] for i in wanted if i in probs}, ds.classes, ds.modality, version) \
        if version and not c.hide_predictions_from_crowd else None
    plan, pushed = team.push(queue, _content(store, config, sorted(wanted)),
                             OverlapPolicy(c.overlap, c.initial_overlap, c.model_agreement), gold=gold,
                             gold_rate=c.gold_rate, model_labels=model_labels, predictions=preds, state=state,
                             seed=int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16))
    is_gold = {(a.annotator, a.item): a.gold for a in plan}
    projects = team.projects()
    store.add_tasks([TaskIn(item_id=item, queue="crowd", project=str(projects[a].id), annotator=a,
                            external_id=str(tid), state="pushed", is_gold=is_gold.get((a, item), False), run_id=run_id)
                     for a, pairs in pushed.items() for item, tid in pairs])
    if len(queued):
        store.update_tasks(queued["id"].tolist(), state="pushed")
    expert = _push_expert(config, store, client, probs, version, run_id)
    return {"pushed": sum(len(v) for v in pushed.values()), "gold": sum(a.gold for a in plan),
            "queued_taken": int(len(queued)), "expert_pushed": expert}


def _push_expert(config, store, client, probs, version, run_id) -> int:
    ds = config.dataset
    queued = store.tasks(ds.name, queue="expert", state="queued")
    if queued.empty:
        return 0
    ref = ensure_project(client, dataset=ds.name, role="expert", modality=ds.modality, classes=ds.classes,
                         instructions=config.crowd.expert_instructions, show_predictions=True)
    _serve_files(config, client, [ref])
    register_project_webhooks(config, client)
    ensure_expert_config(client, ref.id, ds.modality, ds.classes)  # the review panel (studio/review.py)
    present = {int(t["data"][ITEM_KEY]) for t in client.export(ref.id) if ITEM_KEY in t.get("data", {})}
    ids = [int(i) for i in queued["item_id"] if int(i) not in present]
    content = _content(store, config, ids)
    preds = predictions_for({i: probs[i] for i in ids if i in probs}, ds.classes, ds.modality, version) if version else {}
    # current label and its source, the committee's suggestion and confidence, why it is here
    review = review_fields(store, ds.name, ds.classes, config.resolution.precedence, ids, probs, queued)
    tasks = [{"data": {**content(i), **review[i], ITEM_KEY: i}, **({"predictions": [preds[i]]} if i in preds else {})}
             for i in ids]
    task_ids = client.import_tasks(ref.id, tasks) if tasks else []
    store.update_tasks(queued["id"].tolist(), state="pushed", project=str(ref.id))
    return len(task_ids)


@task(name="crowd-bots", cache_policy=NO_CACHE)
def bots_task(config: LabelloopConfig, store: Store, client: StudioClient) -> int:
    """Simulated annotators answer their open tasks from the hidden truth (demo and tests)."""
    c, ds = config.crowd, config.dataset
    if not c.bots or config.evaluation.truth is None:
        return 0
    from labelloop.reporting import _truth_by_item

    ids, y = _truth_by_item(store, config)
    truth = dict(zip(ids.tolist(), y.tolist()))
    tokens = ensure_bot_accounts(client, [b.name for b in c.bots], config.data_path / "studio")
    projects = {r.annotator: r for r in find_projects(client, ds.name, "crowd")}
    answered = 0
    for n, b in enumerate(c.bots):
        unknown = [x for pair in b.confusions.items() for x in pair if x not in ds.classes]
        if unknown:
            raise ConfigError(f"crowd.bots[{n}].confusions: {unknown[0]!r} is not one of dataset.classes {ds.classes}")
        conf = {ds.classes.index(k): ds.classes.index(v) for k, v in b.confusions.items()}
        bot = Bot(b.name, b.accuracy, conf, b.confusion_share, seed=config.training.seed)
        ref = projects.get(bot.email)
        if ref is not None:
            with StudioClient(client.url, tokens[b.name]) as own:
                answered += bot.answer_project(own, ref.id, truth, ds.classes, ds.modality)
    return answered


@task(retries=2, retry_delay_seconds=5, name="crowd-sync", cache_policy=NO_CACHE)
def sync_task(config: LabelloopConfig, store: Store, client: StudioClient, run_id: str,
              full: bool = False) -> dict[str, Any]:
    """Incremental sync (a full reconcile when due or ``full``); answered task copies become ``done``."""
    report = sync_annotations(client, store, config.dataset.name, config.dataset.classes, run_id=run_id,
                              mode="full" if full else "auto", reconcile_every=config.crowd.reconcile_every_s)
    # task copies with an answer are done (the store's annotation_tasks mirror Label Studio)
    if report.answered_tasks:
        open_ = store.tasks(config.dataset.name, state="pushed")
        open_ = open_[open_["external_id"].notna()]
        done = open_[open_["external_id"].astype(int).isin(report.answered_tasks)]
        if len(done):
            store.update_tasks(done["id"].tolist(), state="done")
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
    # Same votes -> same digest -> same keys: re-aggregating unchanged votes adds nothing.
    digest = hashlib.sha256(pd.util.hash_pandas_object(votes.sort_values(["item", "source"]), index=False)
                            .values.tobytes() + c.aggregator.encode()).hexdigest()[:16]
    rows = [LabelIn(item_id=int(i), label=int(p.argmax()), kind="crowd", source=f"crowd:{c.aggregator}",
                    confidence=float(p.max()), probs=p, run_id=run_id, dedupe_key=f"crowd:{digest}:{int(i)}")
            for i, p in zip(agg.items_, agg.posteriors_) if int(i) not in gold]
    written = store.add_labels(rows)
    return {"votes": votes, "aggregator": agg, "written": written, "gold": gold}


@flow(name="crowd", log_prints=True)
def crowd_flow(config_path: str, run_id: str) -> dict:
    """Push the crowd/expert queues, let bots answer, sync, aggregate, publish agreement and quality."""
    config, store = open_stage(config_path)
    if not config.crowd.enabled:
        store.close()
        return {"skipped": "crowd.enabled is false"}
    ds = config.dataset
    client = connect(config)
    try:
        pushed = push_task(config, store, client, run_id)
        answered = bots_task(config, store, client)
        if config.crowd.wait_seconds:
            time.sleep(config.crowd.wait_seconds)
        synced = sync_task(config, store, client, run_id)
        agg = aggregate_task(config, store, run_id)
        state_tasks = [t for r in find_projects(client, ds.name, "crowd") for t in client.export(r.id)]
        summary = _report(config, store, client, agg, pushed, answered, synced, state_tasks)
    finally:
        client.close()
        store.close()
    return summary


def _report(config, store, client, agg, pushed, answered, synced, tasks) -> dict:
    ds = config.dataset
    votes, model = agg["votes"], agg["aggregator"]
    users = {u["id"]: u["email"] for u in client.users()}
    anns = pd.DataFrame([{"source": users.get(a["completed_by"], str(a["completed_by"])), "created_at": a["created_at"],
                          "lead_time": a.get("lead_time")} for t in tasks for a in t.get("annotations") or []])
    tp = throughput(anns) if len(anns) else pd.DataFrame()
    quality = []
    acc = model.gold_accuracy_
    ds_model = getattr(model, "model_", None)
    est = dict(zip(getattr(model, "sources_", []), np.asarray(ds_model.accuracies_))) if ds_model is not None and hasattr(ds_model, "accuracies_") else {}
    for who in sorted(set(votes["source"])):
        quality.append({"annotator": who, "answers": int((votes["source"] == who).sum()),
                        "gold_answers": int(acc.loc[who, "n_gold"]) if who in acc.index else 0,
                        "gold_accuracy": float(acc.loc[who, "accuracy"]) if who in acc.index else float("nan"),
                        "estimated_accuracy": float(est.get(who, float("nan"))),
                        "per_hour": float(tp.loc[who, "per_hour"]) if who in tp.index else float("nan"),
                        "flagged": who in model.flagged_, "excluded": who in model.excluded_,
                        "confusions": "; ".join(f"{r.true_class} -> {r.answered_class} {r.rate:.2f} ({r.evidence:g})"
                                                for r in model.confusions_.itertuples() if r.annotator == who)})
    n = len(ds.classes)
    fk = fleiss_kappa(votes, n) if len(votes) else float("nan")
    ka = krippendorff_alpha(votes, n) if len(votes) else float("nan")
    key = lambda topic: artifact_key(ds.name, topic)  # noqa: E731
    if quality:
        publish_table(key("crowd-annotators"), quality, description="Per annotator: gold accuracy, Dawid-Skene "
                      "estimated accuracy, throughput, systematic confusions; flagged = statistically below the bar")
    if len(votes) and votes["source"].nunique() >= 2:
        png = kappa_heatmap(kappa_matrix(votes), config.data_path / "reports" / "crowd-kappa.png")
        publish_image(key("crowd-kappa"), png.read_bytes(), "Cohen's kappa between annotators")
    links = "\n".join(f"- [{r.title}]({project_url(client.url, r.id)}) ({r.role}"
                      + (f", {r.annotator}" if r.annotator else "") + ")" for r in find_projects(client, ds.name))
    quarantined = synced["quarantined"]
    md = (f"## Crowd round\n\n- pushed **{pushed['pushed']}** task copies ({pushed['gold']} gold), "
          f"{pushed['expert_pushed']} expert tasks; bots answered {answered}\n"
          f"- synced **{synced['added']}** new label rows ({synced['deleted']} deletions recorded), "
          f"{len(quarantined)} annotations quarantined\n"
          f"- crowd aggregate ({config.crowd.aggregator}): **{agg['written']}** new `crowd` rows over "
          f"{len(model.items_)} items\n- Fleiss' kappa **{fk:.3f}**, Krippendorff's alpha **{ka:.3f}**\n"
          f"- flagged (gold accuracy statistically below {config.crowd.gold_min_accuracy}, weight "
          f"{config.crowd.flagged_weight:g}): {', '.join(model.flagged_) or 'none'}; excluded (worse than chance): "
          f"{', '.join(model.excluded_) or 'none'}\n"
          f"- systematic confusions (true -> answered, rate, evidence): "
          f"{'; '.join(f'{r.annotator}: {r.true_class} -> {r.answered_class} {r.rate:.2f} ({r.evidence:g})' for r in model.confusions_.itertuples()) or 'none'}\n\n### Label Studio projects\n\n{links or '_(none)_'}\n")
    if quarantined:
        md += "\n### Quarantined annotations\n\n" + "\n".join(f"- {q}" for q in quarantined[:50]) + "\n"
    if quality:
        md += "\n### Annotators\n\n" + markdown_table(quality)
    publish_markdown(key("crowd-round"), md)
    print(md)
    return {"pushed": pushed, "answered": answered, "synced": synced["added"], "deleted": synced["deleted"],
            "quarantined": len(quarantined), "crowd_rows": agg["written"], "fleiss_kappa": fk,
            "krippendorff_alpha": ka, "flagged": list(model.flagged_)}


@flow(name="crowd-sync", log_prints=True)
def crowd_sync_flow(config_path: str, run_id: str | None = None, full: bool = False) -> dict:
    """Pull new, edited and deleted answers from Label Studio into the store; nothing else.

    What webhooks (and a frequent cron) run: incremental, so its cost follows
    what changed; safe to overlap with another sync or a whole turn. ``full``
    forces a reconcile (every project exported, deleted tasks caught).
    """
    config, store = open_stage(config_path)
    if not config.crowd.enabled:
        store.close()
        return {"skipped": "crowd.enabled is false", "added": 0}
    client = connect(config)
    run_id = run_id or f"crowd-sync-{time.strftime('%Y%m%dT%H%M%S')}"
    try:
        synced = sync_task(config, store, client, run_id, full=full)
    finally:
        client.close()
        store.close()
    print(f"crowd sync ({synced['mode']}{', ' + synced['reason'] if synced['reason'] else ''}): "
          f"{synced['added']} rows added, {synced['deleted']} deletions, {synced['tasks_read']} tasks read, "
          f"{len(synced['quarantined'])} quarantined")
    return synced
