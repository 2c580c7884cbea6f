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

__all__ = ["pipeline", "STAGE_LISTENERS", "NEEDS_LABELS"]

# Callables told `(stage, "start" | "end" | "skipped: <why>")`; the CLI hangs its progress bar here.
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
    status = "completed"
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
        why: str | None = None
        for name, stage in stages:
            _notify(name, "start")
            # -- stages that need labels wait for them (a project that starts from the web has none yet) --
            if name == NEEDS_LABELS[0]:  # one look at the labels: the stages after it see the same ones
                why = _why_no_labels(config_path)
            if name in NEEDS_LABELS and why:
                print(f"stage {name} skipped: {why}")
                summaries[name] = {"skipped": True, "reason": why}
                _notify(name, f"skipped: {why}")
                continue
            # ------------------------------------------------------------------------------------------------
            if runner is not None:
                stage = stage.with_options(task_runner=runner)
            summaries[name] = stage(config_path, run_id)
            _notify(name, "end")
            if not _signed_off(summaries[name]):  # schedule.signoff refused or timed out: the turn ends here
                status = "not-approved"
                print(f"turn {run_id} ends after {name}: sign-off {summaries[name]['signoff']['comment']!r}")
                break
        if status == "completed":
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
    store.finish_run(run_id, status, {k: _jsonable(v) for k, v in summaries.items()})
    store.close()
    return {"run_id": run_id, **summaries}


# Stages that train on or route by the resolved labels: skipped (with the reason, in the log and the turn
# report) while fewer than 2 classes have labels; the next turn runs them once labels exist.
NEEDS_LABELS = ("model", "route")


def _why_no_labels(config_path: str) -> str | None:
    """Why the label-needing stages cannot run yet, or ``None`` when they can."""
    config, store = open_stage(config_path)
    try:
        resolution = store.resolve(config.dataset.name, len(config.dataset.classes), config.resolution.precedence)
        items = store.count_items(config.dataset.name)
    finally:
        store.close()
    present = sorted({config.dataset.classes[int(c)] for c in set(resolution.labels.tolist())})
    if len(present) >= 2:
        return None
    return (
        f"needs training labels of at least 2 classes; {len(resolution)} of {items} items are labeled"
        + (f" (only class {present[0]!r})" if present else "")
        + ": label some items (Label Studio, gold imports or weak labeling functions), the next turn picks them up"
    )


def _signed_off(summary: Any) -> bool:
    """False when a stage asked for sign-off (flows/signoff.py) and did not get it."""
    return not (isinstance(summary, dict) and isinstance(summary.get("signoff"), dict)
                and not summary["signoff"].get("approved", True))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
