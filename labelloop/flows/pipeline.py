"""One turn of the whole loop: each stage is a sub-flow, called in the order of the story.

Adding a stage is adding a module under ``labelloop/flows`` and one call here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from prefect import flow

from labelloop.config import load_config
from labelloop.flows.collect import collect_flow
from labelloop.flows.context import open_stage
from labelloop.flows.crowd import crowd_flow
from labelloop.flows.importing import import_flow
from labelloop.flows.training import training_flow
from labelloop.flows.report import report_flow
from labelloop.flows.route import route_flow
from labelloop.flows.summary import summary_flow
from labelloop.flows.weak import weak_flow
from labelloop.ops.runner import quiet_subflows, turn_task_runner

__all__ = ["pipeline", "STAGE_LISTENERS"]

# Callables told `(stage, "start" | "end")`; the CLI hangs its progress bar here.
STAGE_LISTENERS: list[Callable[[str, str], None]] = []


def _notify(stage: str, event: str) -> None:
    for listener in STAGE_LISTENERS:
        listener(stage, event)


@flow(name="pipeline", log_prints=True)
def pipeline(config_path: str, run_id: str | None = None) -> dict[str, Any]:
    """Run one turn of the loop: (collect →) import → weak → crowd → model → route → report.

    The crowd stage pushes the queues the previous turn's routing filled and syncs
    the answers given since, so this turn's model already trains on them.
    """
    config = load_config(config_path)  # fail on a bad config before anything runs
    _, store = open_stage(config_path)
    run_id = store.start_run("pipeline", config.dataset.name, {"config": str(config_path)}, run_id=run_id)
    summaries: dict[str, Any] = {}
    # One task runner for the turn (runner section): Prefect's threads, or one Dask cluster for every stage.
    runner_scope = contextlib.ExitStack()
    try:
        runner = runner_scope.enter_context(turn_task_runner(config.runner))
        runner_scope.enter_context(quiet_subflows())
        stages: list[tuple[str, Callable[..., dict]]] = [
            ("import", import_flow),
            ("weak", weak_flow),
            ("crowd", crowd_flow),
            ("model", training_flow),  # THE k-fold committee: trains once, stores OOF, pool and embedding outputs
            ("route", route_flow),  # trains nothing: routes by the stored outputs
        ]
        if config.collect.sites:  # scrape sources feed the store before the import of files
            stages.insert(0, ("collect", collect_flow))
        for name, stage in stages:
            _notify(name, "start")
            if runner is not None:
                stage = stage.with_options(task_runner=runner)
            summaries[name] = stage(config_path, run_id)
            _notify(name, "end")
        _notify("report", "start")
        summaries["report"] = report_flow(config_path, run_id, {k: v for k, v in summaries.items()})
        _notify("report", "end")
        summaries["summary"] = summary_flow(config_path, run_id, {k: v for k, v in summaries.items()})
    except BaseException:
        runner_scope.close()
        store.finish_run(run_id, "failed", {k: _jsonable(v) for k, v in summaries.items()})
        store.close()
        raise
    runner_scope.close()
    store.finish_run(run_id, "completed", {k: _jsonable(v) for k, v in summaries.items()})
    store.close()
    return {"run_id": run_id, **summaries}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
