"""The per-turn summary a lead reads first: labels bought by source, accuracy gained, cost per point.

Plain Python over the store (no Prefect): ``turn_summary`` computes the figures
of one turn against the previous completed turn of the same dataset, and
``learning_curve_png`` draws accuracy against training labels across turns.

The accuracy followed across turns is the model's accuracy against hidden truth
when ``evaluation.truth`` is configured (examples, simulations), otherwise the
committee's k-fold accuracy on its own training labels (all a real project has).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from labelloop.config import LabelloopConfig
from labelloop.store import Store

__all__ = ["turn_summary", "turn_history", "learning_curve_png", "summary_markdown"]


def _accuracy(stage_summaries: dict[str, Any]) -> tuple[float | None, str]:
    """The turn's headline accuracy and where it comes from."""
    report = stage_summaries.get("report") or {}
    for row in report.get("quality") or []:
        if row.get("labels") == "model predictions, all items":
            return float(row["accuracy"]), "model vs hidden truth"
    model = stage_summaries.get("model") or {}
    if model.get("accuracy") is not None:
        return float(model["accuracy"]), "k-fold accuracy"
    return None, "none"


def turn_history(store: Store, dataset: str, exclude_run: str | None = None) -> list[dict[str, Any]]:
    """Summaries of the completed pipeline turns of ``dataset``, oldest first."""
    runs = store.runs(limit=10_000, kind="pipeline")
    if runs.empty:
        return []
    runs = runs[(runs["dataset"] == dataset) & (runs["status"] == "completed")].sort_values("started_at")
    history = []
    for row in runs.to_dict("records"):
        if row["id"] == exclude_run:
            continue
        summary = (row.get("summary") or {}).get("summary")
        if isinstance(summary, dict) and "training_labels" in summary:
            history.append({"run_id": row["id"], **summary})
    return history


def turn_summary(store: Store, config: LabelloopConfig, run_id: str, stage_summaries: dict[str, Any]) -> dict[str, Any]:
    """Figures of turn ``run_id``: labels written by source and kind, their cost, accuracy gained.

    Returns a JSON-friendly dict; it is stored with the turn, so the next turn
    (and the learning curve) reads it back from the runs table.
    """
    dataset = config.dataset.name
    labels = store.labels(dataset, decode=False)
    this_turn = labels[(labels["run_id"] == run_id) & (labels["label"] >= 0)] if len(labels) else labels
    costs = config.costs
    bought = []
    if len(this_turn):
        for (kind, source), group in this_turn.groupby(["kind", "source"]):
            unit_cost = float(getattr(costs, kind, 0.0))
            bought.append({"kind": kind, "source": source, "labels": int(len(group)),
                           "items": int(group["item_id"].nunique()), "cost": round(unit_cost * len(group), 4)})
    bought.sort(key=lambda r: (-r["cost"], -r["labels"]))
    total_cost = float(sum(r["cost"] for r in bought))
    resolution = store.resolve(dataset, len(config.dataset.classes), config.resolution.precedence)
    trainable = int(resolution.mask("gold", "expert", "crowd", "weak", "pseudo").sum())
    accuracy, accuracy_source = _accuracy(stage_summaries)
    history = turn_history(store, dataset, exclude_run=run_id)
    previous = history[-1] if history else None
    gained = None
    if accuracy is not None and previous and previous.get("accuracy") is not None \
            and previous.get("accuracy_source") == accuracy_source:
        gained = round(100.0 * (accuracy - float(previous["accuracy"])), 4)
    cost_per_point = round(total_cost / gained, 4) if gained is not None and gained > 0 and total_cost > 0 else None
    return {
        "turn": len(history) + 1,
        "training_labels": trainable,
        "items": store.count_items(dataset),
        "labels_bought": int(sum(r["labels"] for r in bought if r["kind"] not in ("model",))),
        "cost": round(total_cost, 4),
        "cost_unit": costs.unit,
        "accuracy": accuracy,
        "accuracy_source": accuracy_source,
        "accuracy_gained_points": gained,
        "cost_per_point": cost_per_point,
        "bought": bought,
    }


def summary_markdown(dataset: str, summary: dict[str, Any]) -> str:
    """The summary as the markdown artifact a lead reads."""
    unit = summary["cost_unit"]
    acc = summary["accuracy"]
    gained = summary["accuracy_gained_points"]
    per_point = summary["cost_per_point"]
    lines = [
        f"# Turn {summary['turn']} of `{dataset}`",
        "",
        "| figure | value |",
        "|---|---|",
        f"| items | {summary['items']} |",
        f"| training labels (gold, expert, crowd, weak, pseudo) | {summary['training_labels']} |",
        f"| labels bought this turn (all sources but model) | {summary['labels_bought']} |",
        f"| cost of this turn | {summary['cost']:.2f} {unit} |",
        f"| accuracy ({summary['accuracy_source']}) | {'n/a' if acc is None else f'{100 * acc:.2f} %'} |",
        f"| accuracy gained since last turn | {'n/a (first turn)' if gained is None else f'{gained:+.2f} points'} |",
        f"| cost per accuracy point | {'n/a' if per_point is None else f'{per_point:.2f} {unit}'} |",
        "",
        "## Labels written this turn, by source",
        "",
    ]
    if summary["bought"]:
        lines += ["| kind | source | labels | items | cost |", "|---|---|---|---|---|"]
        lines += [f"| {r['kind']} | {r['source']} | {r['labels']} | {r['items']} | {r['cost']:.2f} {unit} |"
                  for r in summary["bought"]]
    else:
        lines.append("_(no labels written this turn)_")
    return "\n".join(lines) + "\n"


def learning_curve_png(points: list[dict[str, Any]], title: str) -> bytes:
    """Accuracy against training labels, one point per turn, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers and workers
    import matplotlib.pyplot as plt

    usable = [p for p in points if p.get("accuracy") is not None]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    try:
        if usable:
            x = np.array([p["training_labels"] for p in usable])
            y = np.array([100 * p["accuracy"] for p in usable])
            ax.plot(x, y, marker="o", color="#2463eb")
            for p, xi, yi in zip(usable, x, y):
                ax.annotate(f"t{p['turn']}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
            ax.set_ylabel(f"accuracy % ({usable[-1]['accuracy_source']})")
        else:
            ax.text(0.5, 0.5, "no accuracy yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("training labels")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()
