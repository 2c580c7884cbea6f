"""Stage: the turn's report (label counts by class and source, quality vs hidden truth)."""

from __future__ import annotations

from prefect import flow

from labelloop.flows.artifacts import artifact_key, markdown_table, publish_markdown, publish_table
from labelloop.reporting import label_summary, truth_accuracy
from labelloop.runtime import open_stage

__all__ = ["report_flow"]


@flow(name="report", log_prints=True)
def report_flow(config_path: str, run_id: str, stage_summaries: dict | None = None) -> dict:
    """Publish label counts and, where hidden truth is configured, label quality."""
    config, store = open_stage(config_path)
    try:
        summary = label_summary(store, config)
        quality = truth_accuracy(store, config)
    finally:
        store.close()
    dataset = config.dataset.name
    publish_table(artifact_key(dataset, "label-counts"), summary["per_class"],
                  description="Resolved training labels per class, by the source that won")
    lines = [
        f"# Turn report: {dataset}",
        "",
        f"- items: **{summary['items']}**; with a training label: **{summary['resolved']}**; "
        f"unlabeled: **{summary['unlabeled']}**",
        f"- precedence: {' > '.join(config.resolution.precedence)}",
        "",
        "## Winning label source per class",
        "",
        markdown_table(summary["per_class"]),
    ]
    for stage, stage_summary in (stage_summaries or {}).items():
        shown = {k: v for k, v in stage_summary.items() if not isinstance(v, (list, dict))}
        lines += [f"## Stage `{stage}`", "", markdown_table([shown]) if shown else "_(no figures)_", ""]
    if quality:
        lines += ["## Quality against hidden truth (simulation only)", "", markdown_table(quality)]
        publish_table(artifact_key(dataset, "truth-accuracy"), quality, description="Accuracy vs hidden truth")
    publish_markdown(artifact_key(dataset, "turn-report"), "\n".join(lines), description="One pipeline turn")
    print("\n".join(lines))
    return {"summary": summary, "quality": quality}
