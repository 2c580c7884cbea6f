"""Stage: import every configured source."""

from __future__ import annotations

from prefect import flow

from labelloop.config import load_config
from labelloop.flows.artifacts import artifact_key, markdown_table, publish_markdown, publish_table
from labelloop.tasks.importing import import_source_task

__all__ = ["import_flow"]


@flow(name="import", log_prints=True)
def import_flow(config_path: str, run_id: str) -> dict:
    """Import the config's sources; a skipped file or row is a warning in the report, not a failure."""
    config = load_config(config_path)
    reports = [import_source_task(config_path, index, run_id) for index in range(len(config.sources))]
    rows = [{k: r[k] for k in ("source", "added", "existing", "labels_added", "skipped")} for r in reports]
    warnings = [w for r in reports for w in r["warnings"]]
    key = artifact_key(config.dataset.name, "import")
    publish_table(key, rows, description="Items and gold labels added per source in this turn")
    if warnings:
        shown = "\n".join(f"- {w}" for w in warnings[:50])
        more = f"\n- … and {len(warnings) - 50} more" if len(warnings) > 50 else ""
        publish_markdown(artifact_key(config.dataset.name, "import-warnings"), f"## Skipped inputs\n\n{shown}{more}\n")
    summary = {
        "added": sum(r["added"] for r in reports),
        "existing": sum(r["existing"] for r in reports),
        "labels_added": sum(r["labels_added"] for r in reports),
        "skipped": sum(r["skipped"] for r in reports),
        "warnings": warnings,
    }
    print(f"import: {summary['added']} new items, {summary['existing']} already stored, "
          f"{summary['labels_added']} gold labels, {summary['skipped']} skipped")
    print(markdown_table(rows))
    return summary
