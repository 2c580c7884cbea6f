"""Import tasks: one per configured source (idempotent, so no cache is needed)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from labelloop.runtime import open_stage
from labelloop.sources import import_source, source_name

__all__ = ["import_source_task"]


@task(task_run_name="import-{index}", cache_policy=NO_CACHE)
def import_source_task(config_path: str, index: int, run_id: str) -> dict:
    """Import source number ``index`` of the config; returns its report as a dict."""
    config, store = open_stage(config_path)
    try:
        report = import_source(store, config, config.sources[index], run_id=run_id)
    finally:
        store.close()
    return {**report.as_row(), "warnings": report.warnings, "name": source_name(config.sources[index])}
