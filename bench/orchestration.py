"""Orchestration overhead: Prefect vs plain Python calls, and a demo loop turn split by stage.

    python bench/orchestration.py [--calls 200] [--turns 2]

1. Per task: a no-op ``@task`` called N times inside one flow vs a plain function
   call; per flow: a no-op sync ``@flow`` and an async one vs a plain call.
2. A full demo turn on digits (1,797 items, 5% gold) under Prefect, timed per
   stage (fresh store each turn), against the same library work done by plain
   calls (the ``.fn`` of every task, no flows, no artifacts).
   Overhead = Prefect turn - plain turn; target: turn <= 60 s, overhead < 10 %.

Writes bench/results/orchestration.json as rows {task, system, metric, value};
``system`` is "labelloop" (on Prefect) or "plain-python" (the anchor).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

_TMP = Path(tempfile.mkdtemp(prefix="labelloop-bench-orch-"))
os.environ["PREFECT_HOME"] = str(_TMP / "prefect-home")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.pop("PREFECT_API_URL", None)

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from _common import write_results  # noqa: E402


def noop(x: int) -> int:
    return x


noop_task = task(noop, cache_policy=NO_CACHE, name="noop")


@flow(name="bench-tasks")
def many_tasks(n: int) -> int:
    return sum(noop_task(i) for i in range(n))


@flow(name="bench-noop-flow")
def noop_flow(x: int) -> int:
    return x


@flow(name="bench-noop-async-flow")
async def noop_async_flow(x: int) -> int:
    return x


def per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n


def bench_overhead(calls: int) -> list[dict]:
    noop_flow(0)  # warm-up: the ephemeral API server starts here, outside the timings
    many_tasks(2)
    plain = per_call(noop, 100_000)
    t0 = time.perf_counter(); many_tasks(0); empty = time.perf_counter() - t0
    t0 = time.perf_counter(); many_tasks(calls); full = time.perf_counter() - t0
    task_cost = (full - empty) / calls
    flows = 10
    sync_flow = per_call(noop_flow, flows)
    async_flow = per_call(lambda i: asyncio.run(noop_async_flow(i)), flows)
    return [
        {"task": "no-op call", "system": "plain-python", "metric": "seconds_per_call", "value": plain},
        {"task": "no-op task in a flow", "system": "labelloop", "metric": "seconds_per_call", "value": task_cost},
        {"task": "no-op sync flow", "system": "labelloop", "metric": "seconds_per_call", "value": sync_flow},
        {"task": "no-op async flow", "system": "labelloop", "metric": "seconds_per_call", "value": async_flow},
    ]


def fresh_project(tag: str, extra: str = "") -> Path:
    from labelloop.demo import write_digits_example

    directory = _TMP / tag
    shutil.rmtree(directory, ignore_errors=True)
    config = write_digits_example(directory)
    config.write_text(config.read_text() + extra)
    return config


def prefect_turn(config: Path) -> dict[str, float]:
    """One pipeline turn on Prefect; wall time per stage from the pipeline's stage listeners."""
    from labelloop.flows.pipeline import STAGE_LISTENERS, pipeline

    marks: dict[str, float] = {}

    def listener(stage: str, event: str) -> None:
        marks[f"{stage}:{event}"] = time.perf_counter()

    STAGE_LISTENERS.append(listener)
    try:
        t0 = time.perf_counter()
        pipeline(str(config))
        total = time.perf_counter() - t0
    finally:
        STAGE_LISTENERS.remove(listener)
    stages = {s: marks[f"{s}:end"] - marks[f"{s}:start"] for s in ("import", "model", "report")}
    stages["pipeline bookkeeping + summary"] = total - sum(stages.values())
    stages["total"] = total
    return stages


def plain_turn(config_path: Path) -> dict[str, float]:
    """The same library work by plain calls: no flow runs, no task runs, no artifacts."""
    from labelloop.config import load_config
    from labelloop.flows.context import open_stage
    from labelloop.ops.summary import turn_summary
    from labelloop.reporting import label_summary, truth_accuracy
    from labelloop.sources import import_source
    from labelloop.tasks.model import model_version, store_predictions_task, train_baseline_task, training_set

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    config, store = open_stage(config_path)
    run_id = store.start_run("pipeline", config.dataset.name, {})
    t = time.perf_counter()
    for source in config.sources:
        import_source(store, config, source, run_id=run_id)
    times["import"] = time.perf_counter() - t
    t = time.perf_counter()
    resolution = store.resolve(config.dataset.name, len(config.dataset.classes), config.resolution.precedence)
    mask = training_set(resolution, config.training.min_confidence)
    version = model_version(config, resolution, mask)
    fitted = train_baseline_task.fn(config, store, resolution, mask)
    store_predictions_task.fn(store, fitted, version, run_id)
    times["model"] = time.perf_counter() - t
    t = time.perf_counter()
    label_summary(store, config)
    quality = truth_accuracy(store, config)
    times["report"] = time.perf_counter() - t
    t = time.perf_counter()
    summary = turn_summary(store, config, run_id, {"report": {"quality": quality}})
    store.finish_run(run_id, "completed", {"summary": summary})
    store.close()
    times["pipeline bookkeeping + summary"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    load_config(config_path)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="no-op tasks per flow")
    parser.add_argument("--turns", type=int, default=2, help="demo turns per system (fresh store each)")
    parser.add_argument("--dask", action="store_true", help="also time a turn on a 2-worker local Dask cluster")
    args = parser.parse_args()

    rows = bench_overhead(args.calls)
    systems = {"labelloop": prefect_turn, "plain-python": plain_turn}
    measured: dict[str, list[dict[str, float]]] = {s: [] for s in systems}
    for i in range(args.turns):
        for system, run in systems.items():
            measured[system].append(run(fresh_project(f"{system}-{i}")))
    if args.dask:
        extra = "runner:\n  kind: dask\n  n_workers: 2\n  processes: false\n"
        measured["labelloop-dask"] = [prefect_turn(fresh_project("dask", extra))]
    for system, turns in measured.items():
        for stage in turns[0]:
            rows.append({"task": f"demo turn: {stage}", "system": system, "metric": "seconds",
                         "value": statistics.median(t[stage] for t in turns)})

    value = {(r["task"], r["system"]): r["value"] for r in rows}
    print(f"\nPrefect overhead on this machine ({os.cpu_count()} cores)\n")
    print(f"{'what':34s} {'seconds':>10s} {'x plain call':>14s}")
    plain = value[("no-op call", "plain-python")]
    for name in ("no-op call", "no-op task in a flow", "no-op sync flow", "no-op async flow"):
        system = "plain-python" if name == "no-op call" else "labelloop"
        v = value[(name, system)]
        print(f"{name:34s} {v:10.6f} {v / plain:14,.0f}")
    print(f"\nDemo loop turn on digits (median of {args.turns}, fresh store each)\n")
    header = f"{'stage':32s} {'prefect s':>10s} {'plain s':>9s} {'ratio':>7s}"
    if args.dask:
        header += f" {'dask s':>8s}"
    print(header)
    for stage in measured["labelloop"][0]:
        p = value[(f"demo turn: {stage}", "labelloop")]
        q = value[(f"demo turn: {stage}", "plain-python")]
        line = f"{stage:32s} {p:10.2f} {q:9.2f} {p / q if q else float('nan'):7.2f}"
        if args.dask:
            line += f" {value[(f'demo turn: {stage}', 'labelloop-dask')]:8.2f}"
        print(line)
    total_p = value[("demo turn: total", "labelloop")]
    total_q = value[("demo turn: total", "plain-python")]
    overhead = total_p - total_q
    share = overhead / total_p
    rows.append({"task": "demo turn", "system": "labelloop", "metric": "orchestration_overhead_seconds", "value": overhead})
    rows.append({"task": "demo turn", "system": "labelloop", "metric": "orchestration_overhead_share", "value": share})
    print(f"\norchestration overhead: {overhead:.2f} s = {share:.1%} of the Prefect turn "
          f"(target < 10 %); turn {total_p:.1f} s (target <= 60 s)")
    print(f"results: {write_results('orchestration', rows)}")


if __name__ == "__main__":
    main()
