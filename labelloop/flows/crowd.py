"""Stage: the crowd round in Label Studio — push queues → (a simulated team answers) → sync → aggregate → report.

Tasks in :mod:`labelloop.tasks.crowd`; Label Studio rounds, payloads and files
in ``studio/``; aggregation in ``labeling/crowd.py``. In production people answer
in Label Studio between turns (the webhook-driven ``crowd-sync`` flow picks
their answers up); only a demo or test hangs a simulated team in
``tasks.crowd.ANSWERERS`` (:func:`labelloop.simulation.simulated_team`).
Artifacts link into Label Studio and never hold a token.
"""

from __future__ import annotations

import time

import pandas as pd
from prefect import flow

from labelloop.flows.artifacts import artifact_key, markdown_table, publish_image, publish_markdown, publish_table
from labelloop.labeling.agreement import fleiss_kappa, kappa_heatmap, kappa_matrix, krippendorff_alpha, throughput
from labelloop.runtime import open_stage
from labelloop.studio.projects import find_projects, project_url
from labelloop.studio.team import answer_log
from labelloop.tasks.crowd import ANSWERERS, aggregate_task, answer_task, connect, push_task, sync_task

__all__ = ["crowd_flow", "crowd_sync_flow"]


@flow(name="crowd", log_prints=True)
def crowd_flow(config_path: str, run_id: str) -> dict:
    """Push the crowd/expert queues, sync the answers, aggregate, publish agreement and quality."""
    config, store = open_stage(config_path)
    if not config.crowd.enabled:
        store.close()
        return {"skipped": "crowd.enabled is false"}
    client = connect(config)
    try:
        pushed = push_task(config, store, client, run_id)
        answered = answer_task(config, store, client) if ANSWERERS else 0
        synced = sync_task(config, store, client, run_id)
        agg = aggregate_task(config, store, run_id)
        summary = _report(config, client, agg, pushed, answered, synced)
    finally:
        client.close()
        store.close()
    return summary


def _report(config, client, agg, pushed, answered, synced) -> dict:
    ds, votes, model = config.dataset, agg["votes"], agg["aggregator"]
    log = answer_log(client, ds.name)
    tp = throughput(log) if len(log) else pd.DataFrame()
    quality = model.annotator_report()
    if len(quality):  # who answered how much and how fast, next to their gold accuracy and flags
        quality.insert(1, "answers", quality["annotator"].map(votes["source"].value_counts()).fillna(0).astype(int))
        quality["per_hour"] = quality["annotator"].map(tp["per_hour"]) if len(tp) else float("nan")
    quality = quality.to_dict("records")
    fk = fleiss_kappa(votes, len(ds.classes)) if len(votes) else float("nan")
    ka = krippendorff_alpha(votes, len(ds.classes)) if len(votes) else float("nan")
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
    confusions = "; ".join(f"{r.annotator}: {r.true_class} -> {r.answered_class} {r.rate:.2f} ({r.evidence:g})"
                           for r in model.confusions_.itertuples())
    md = (f"## Crowd round\n\n- pushed **{pushed['pushed']}** task copies ({pushed['gold']} gold), "
          f"{pushed['expert_pushed']} expert tasks; simulated answers {answered}\n"
          f"- synced **{synced['added']}** new label rows ({synced['deleted']} deletions recorded), "
          f"{len(quarantined)} annotations quarantined\n"
          f"- crowd aggregate ({config.crowd.aggregator}): **{agg['written']}** new `crowd` rows over "
          f"{len(model.items_)} items\n- Fleiss' kappa **{fk:.3f}**, Krippendorff's alpha **{ka:.3f}**\n"
          f"- flagged (gold accuracy statistically below {config.crowd.gold_min_accuracy}, weight "
          f"{config.crowd.flagged_weight:g}): {', '.join(model.flagged_) or 'none'}; excluded (worse than chance): "
          f"{', '.join(model.excluded_) or 'none'}\n- systematic confusions (true -> answered, rate, evidence): "
          f"{confusions or 'none'}\n\n### Label Studio projects\n\n{links or '_(none)_'}\n")
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
