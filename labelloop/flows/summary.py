"""Stage: the per-turn summary (labels bought, accuracy gained, cost per point) and the learning curve."""

from __future__ import annotations

from typing import Any

from prefect import flow

from labelloop.flows.artifacts import artifact_key, publish_image, publish_markdown, publish_table
from labelloop.ops.summary import learning_curve_png, summary_markdown, turn_history, turn_summary
from labelloop.runtime import open_stage

__all__ = ["summary_flow"]


@flow(name="summary", log_prints=True)
def summary_flow(config_path: str, run_id: str, stage_summaries: dict[str, Any] | None = None) -> dict:
    """Publish the turn summary; its figures are returned and stored with the turn."""
    config, store = open_stage(config_path)
    try:
        summary = turn_summary(store, config, run_id, stage_summaries or {})
        history = turn_history(store, config.dataset.name, exclude_run=run_id)
    finally:
        store.close()
    dataset = config.dataset.name
    publish_markdown(artifact_key(dataset, "turn-summary"), summary_markdown(dataset, summary),
                     description=f"Turn {summary['turn']}: labels bought, accuracy gained, cost per point")
    if summary["bought"]:
        publish_table(artifact_key(dataset, "labels-bought"), summary["bought"],
                      description="Labels written this turn by source, with their cost")
    png = learning_curve_png(history + [summary], f"{dataset}: learning curve across turns")
    publish_image(artifact_key(dataset, "learning-curve"), png, "Learning curve across turns",
                  description="Accuracy against training labels, one point per turn")
    print(summary_markdown(dataset, summary))
    return {k: v for k, v in summary.items()}
