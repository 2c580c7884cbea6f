"""One turn of the whole loop: each stage is a named task run of the turn, called in the order of the story.

Adding a stage is adding a module under ``labelloop/flows`` (its ``@flow``, which
deployments and ``labelloop stage`` run on their own) and one entry here.

Why task runs and not sub-flow runs: a sub-flow run costs 0.3-1 s of API round
trips (create the run and its tracking task run, look for an earlier one, three
state changes, re-read it) and a heartbeat thread; a task run reports its states
as events and costs ~10 ms. The UI still shows each stage as its own run, named
after the stage flow, with the stage's tasks nested under it and its artifacts
attached. A stage runs as a sub-flow where it needs a flow run of its own: to
pause for sign-off (``schedule.signoff: true``; only a flow run can pause and
take the expert's input), and on a Dask runner (``runner.kind: dask``: each
stage's flow run gets the turn's ``DaskTaskRunner``; a Dask turn is long, its
stages' runs cost little next to it).

A turn called in-process (``labelloop run``, a script, a test) runs without a
heartbeat thread, see :class:`_InProcessTurn`; bench/orchestration.py measures
what orchestration costs a turn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from prefect import Flow, Task
from prefect.cache_policies import NO_CACHE
from prefect.context import SettingsContext, get_settings_context

from labelloop.config import load_config
from labelloop.flows.collect import collect_flow
from labelloop.runtime import open_stage
from labelloop.flows.crowd import crowd_flow
from labelloop.flows.importing import import_flow
from labelloop.flows.training import training_flow
from labelloop.flows.report import report_flow
from labelloop.flows.route import route_flow
from labelloop.flows.summary import summary_flow
from labelloop.flows.weak import weak_flow
from labelloop.ops.runner import turn_task_runner

__all__ = ["pipeline", "stage_task", "STAGE_LISTENERS", "NEEDS_LABELS", "MAY_PAUSE"]

# Callables told `(stage, "start" | "end" | "skipped: <why>")`; the CLI hangs its progress bar here.
STAGE_LISTENERS: list[Callable[[str, str], None]] = []


def _notify(stage: str, event: str) -> None:
    for listener in STAGE_LISTENERS:
        listener(stage, event)


@cache
def stage_task(stage: Flow) -> Task:
    """The stage flow's body as a task named after it (one per stage, made once)."""
    return Task(fn=stage.fn, name=stage.name, task_run_name=stage.name, cache_policy=NO_CACHE,
                log_prints=stage.log_prints, timeout_seconds=stage.timeout_seconds)


class _InProcessTurn(Flow):
    """The turn's flow; called in-process it runs without Prefect's flow-run heartbeat thread.

    A sync flow run joins its heartbeat thread on exit, which costs up to 1 s (the
    thread sleeps in 1 s steps): a third of the turn's orchestration budget.
    Heartbeats let an automation mark a run whose process died unseen as crashed;
    a deployment's run, started by a worker, does not go through this call and
    keeps them, while an in-process caller sees its own crash.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with _no_heartbeats():
            return super().__call__(*args, **kwargs)


@contextlib.contextmanager
def _no_heartbeats() -> Iterator[None]:
    """Flow runs started in the block have no heartbeat thread."""
    context = get_settings_context()
    settings = context.settings  # copied, not rebuilt: temporary_settings() re-reads the environment (~0.5 s)
    quiet = settings.model_copy(update={"flows": settings.flows.model_copy(update={"heartbeat_frequency": None})})
    with SettingsContext(profile=context.profile, settings=quiet):
        yield


def _turn_flow(**options: Any) -> Callable[[Callable[..., Any]], Flow]:
    return lambda fn: _InProcessTurn(fn, **options)


@_turn_flow(name="pipeline", log_prints=True)
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
        stages: list[tuple[str, Flow]] = [
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
            summaries[name] = _run(stage, runner, name in MAY_PAUSE and config.schedule.signoff, config_path, run_id)
            _notify(name, "end")
            if not _signed_off(summaries[name]):  # schedule.signoff refused or timed out: the turn ends here
                status = "not-approved"
                print(f"turn {run_id} ends after {name}: sign-off {summaries[name]['signoff']['comment']!r}")
                break
        if status == "completed":
            _notify("report", "start")
            summaries["report"] = _run(report_flow, runner, False, config_path, run_id, dict(summaries))
            _notify("report", "end")
            summaries["summary"] = _run(summary_flow, runner, False, config_path, run_id, dict(summaries))
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

# Stages that ask for sign-off (flows/signoff.py) before they write: with `schedule.signoff: true` they run as
# sub-flows, since only a flow run can pause for the expert's answer.
MAY_PAUSE = ("route",)


def _run(stage: Flow, runner: Any | None, pauses: bool, *args: Any) -> Any:
    """Run a stage: a task run of the turn, or a sub-flow run to pause (sign-off) or to use the turn's Dask runner."""
    if runner is None and not pauses:
        return stage_task(stage)(*args)
    with _no_heartbeats():  # the turn's run keeps its own: a stage's adds nothing
        return (stage.with_options(task_runner=runner) if runner is not None else stage)(*args)


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
