"""Stage: route by the committee's stored outputs (this stage trains nothing).

The model stage's committee is the teacher: its stored out-of-fold
probabilities find label-error suspects, its members' pool probabilities give
the pseudo-labels, the active-learning scores and the crowd band.

Every unlabeled or weakly labeled item (and every label-error suspect) lands in
exactly one queue: expert and crowd queues are written as annotation tasks,
confident items as ``pseudo`` label rows, re-decided every turn (a pseudo-label
the new teacher no longer supports gets a retraction row; nothing is deleted).
Artifacts: the queue-size table, the confidence histogram, what each queue is
expected to buy.
"""

from __future__ import annotations

import io

import numpy as np
from prefect import flow

from labelloop.flows.artifacts import artifact_key, markdown_table, publish_image, publish_markdown, publish_table
from labelloop.flows.signoff import approve_route_writes
from labelloop.labeling.route import QUEUES, Routing, queue_summary
from labelloop.runtime import open_stage
from labelloop.tasks.route import outputs_task, route_task, write_pseudo_task, write_queues_task

__all__ = ["route_flow", "confidence_histogram_png"]


def confidence_histogram_png(routing: Routing, band: tuple[float, float], threshold: float) -> bytes:
    """Committee confidence of the routed items, stacked by queue, with the band edges drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    bins = np.linspace(0, 1, 21)
    data = [routing.confidence[routing.queue == q] for q in QUEUES]
    ax.hist(data, bins=bins, stacked=True, label=list(QUEUES))
    for x, name in ((band[0], "crowd band"), (band[1], ""), (threshold, "pseudo threshold")):
        ax.axvline(x, color="k", linestyle="--", linewidth=0.8)
    ax.set_xlabel("committee confidence")
    ax.set_ylabel("items")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


@flow(name="route", log_prints=True)
def route_flow(config_path: str, run_id: str) -> dict:
    """Read the committee's outputs, route every candidate to one queue, write tasks and pseudo rows, publish the report."""
    config, store = open_stage(config_path)
    if not (config.selection.enabled or config.self_training.enabled):
        store.close()
        print("route: selection and self_training are disabled in the config; nothing to do")
        return {"skipped": True}
    dataset = config.dataset.name
    try:
        fitted = outputs_task(config, store)
        routing, budgets, n_suspects = route_task(config, fitted)
        # schedule.signoff: an expert approves what would change before anything is written
        signoff = approve_route_writes(config, store, fitted, routing)
        queued = write_queues_task(store, fitted, routing, run_id) if config.selection.enabled and signoff.approved else {}
        pseudo = (write_pseudo_task(store, dataset, fitted, routing, run_id)
                  if config.self_training.enabled and signoff.approved else {})
    finally:
        store.close()
    info = fitted["info"]
    summary = queue_summary(routing, budgets)
    rows = summary.to_dict("records")
    publish_table(artifact_key(dataset, "queue-sizes"), rows,
                  description="Items per queue this turn, budgets, and what each queue is expected to buy")
    band = tuple(config.selection.crowd_band)
    publish_image(artifact_key(dataset, "confidence-histogram"),
                  confidence_histogram_png(routing, band, config.self_training.threshold),
                  "Committee confidence by queue")
    gain = [
        f"- **expert**: {summary.loc[0, 'items']} items (label-error suspects: {n_suspects}); answers are expected to "
        f"correct about **{summary.loc[0, 'expected_gain']:.0f}** predictions",
        f"- **crowd**: {summary.loc[1, 'items']} items in the band [{band[0]}, {band[1]}); expected corrections "
        f"**{summary.loc[1, 'expected_gain']:.0f}**",
        f"- **pseudo**: {summary.loc[2, 'items']} items; expected correct pseudo-labels "
        f"**{summary.loc[2, 'expected_gain']:.0f}** (mean confidence {summary.loc[2, 'mean_confidence']:.3f})",
        f"- **wait**: {summary.loc[3, 'items']} items",
    ]
    publish_markdown(
        artifact_key(dataset, "route-summary"),
        f"## Routing, run `{run_id}`\n\n" + "\n".join(gain) + "\n\n" + markdown_table(rows)
        + f"\nTeacher: the model stage's committee `{info.get('source', '?')}`; self-training: "
        f"{info.get('termination', '?')}"
        + (f" — **fell back to supervised-only**: {info.get('fallback_reason', '')}" if info.get("fallback") else "")
        + (f" (check: {info['check']})" if info.get("check") else "")
        + f"; pseudo-labels: the committee mixed with label spreading {fitted['graph']}.\n",
        description="What each queue is expected to buy",
    )
    counts = {q: int((routing.queue == q).sum()) for q in QUEUES}
    print(f"route: {counts}; suspects {n_suspects}; pseudo {pseudo}; tasks {queued}")
    return {"queues": counts, "suspects": n_suspects, "tasks": queued, **pseudo, "signoff": signoff.as_dict(),
            "teacher": info.get("source"), "self_training": info.get("termination"),
            "fallback": bool(info.get("fallback")), "fallback_reason": info.get("fallback_reason", ""),
            "check": info.get("check"), "teacher_graph": fitted["graph"]}
