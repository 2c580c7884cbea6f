"""Orchestration overhead: Prefect vs plain Python calls, and a digits loop turn split by stage.

    python bench/orchestration.py [--calls 200] [--turns 2] [--dask]

1. Per task: a no-op ``@task`` called N times inside one flow vs a plain function
   call; per flow: a no-op sync ``@flow`` and an async one vs a plain call.
2. A pipeline turn on digits (1,797 items, 5% gold; fresh store each turn), timed
   per stage, for the demo config (baseline logreg committee) and the same with
   ``training.model: cnn``. The anchor runs exactly the same pipeline code with
   flows and tasks turned into plain calls and artifacts dropped (``plain_calls``),
   so the difference is what orchestration costs. Target: turn <= 60 s with
   overhead < 10 %. ``--dask`` adds a demo turn on a 2-worker local Dask cluster.

Writes bench/results/orchestration.json as rows {task, system, metric, value};
``system`` is "labelloop" (on Prefect) or "plain-python" (the anchor).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
os.environ.pop("PREFECT_API_URL", None)
from labelloop.runtime import prepare_prefect_env  # noqa: E402

prepare_prefect_env()  # analytics off, startup timeout, quiet logs: before Prefect is imported

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


class _Done:
    """What ``Task.submit`` returns when tasks are plain calls: the result, already computed."""

    def __init__(self, value):
        self.value = value

    def result(self, *args, **kwargs):
        return self.value

    def wait(self, *args, **kwargs):
        return None


@contextlib.contextmanager
def plain_calls():
    """Flows and tasks become plain function calls; artifacts are not sent anywhere.

    The anchor of the comparison: exactly the pipeline's own code (every stage,
    every library call) with the orchestration taken out.
    """
    import labelloop.flows.artifacts as artifacts
    from prefect.flows import Flow
    from prefect.tasks import Task

    saved = (Flow.__call__, Task.__call__, Task.submit,
             artifacts.create_markdown_artifact, artifacts.create_table_artifact)
    Flow.__call__ = lambda self, *a, **k: self.fn(*a, **k)
    Task.__call__ = lambda self, *a, **k: self.fn(*a, **k)
    Task.submit = lambda self, *a, **k: _Done(self.fn(*a, **k))
    artifacts.create_markdown_artifact = lambda *a, **k: None
    artifacts.create_table_artifact = lambda *a, **k: None
    try:
        yield
    finally:
        (Flow.__call__, Task.__call__, Task.submit,
         artifacts.create_markdown_artifact, artifacts.create_table_artifact) = saved


def timed_turn(config: Path) -> dict[str, float]:
    """One pipeline turn; wall time per stage from the pipeline's stage listeners."""
    from labelloop.flows.pipeline import STAGE_LISTENERS, pipeline

    marks: dict[str, float] = {}
    order: list[str] = []

    def listener(stage: str, event: str) -> None:
        marks[f"{stage}:{event}"] = time.perf_counter()
        if event == "start":
            order.append(stage)

    STAGE_LISTENERS.append(listener)
    try:
        t0 = time.perf_counter()
        pipeline(str(config))
        total = time.perf_counter() - t0
    finally:
        STAGE_LISTENERS.remove(listener)
    stages = {s: marks[f"{s}:end"] - marks[f"{s}:start"] for s in order if f"{s}:end" in marks}
    stages["turn flow + summary"] = total - sum(stages.values())
    stages["total"] = total
    return stages


def prefect_turn(config: Path) -> dict[str, float]:
    return timed_turn(config)


def plain_turn(config: Path) -> dict[str, float]:
    with plain_calls():
        return timed_turn(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="no-op tasks per flow")
    parser.add_argument("--turns", type=int, default=2, help="demo turns per system (fresh store each)")
    parser.add_argument("--dask", action="store_true", help="also time a turn on a 2-worker local Dask cluster")
    args = parser.parse_args()

    rows = bench_overhead(args.calls)
    variants = {"demo": "", "cnn": "training:\n  folds: 5\n  seed: 0\n  model: cnn\n"}
    systems = {"labelloop": prefect_turn, "plain-python": plain_turn}
    measured: dict[tuple[str, str], list[dict[str, float]]] = {}
    for variant, extra in variants.items():
        for i in range(args.turns):
            for system, run in systems.items():
                config = fresh_project(f"{variant}-{system}-{i}", extra)
                if extra:  # the variant replaces the example's training section
                    text = config.read_text().replace("training:\n  folds: 5\n  seed: 0\n", "", 1)
                    config.write_text(text)
                measured.setdefault((variant, system), []).append(run(config))
    if args.dask:
        extra = "runner:\n  kind: dask\n  n_workers: 2\n  processes: false\n"
        measured[("demo", "labelloop-dask")] = [prefect_turn(fresh_project("dask", extra))]
    for (variant, system), turns in measured.items():
        for stage in turns[0]:
            rows.append({"task": f"{variant} turn: {stage}", "system": system, "metric": "seconds",
                         "value": statistics.median(t[stage] for t in turns)})

    value = {(r["task"], r["system"]): r["value"] for r in rows}
    print(f"\nPrefect overhead on this machine ({os.cpu_count()} cores)\n")
    print(f"{'what':34s} {'seconds':>10s} {'x plain call':>14s}")
    plain = value[("no-op call", "plain-python")]
    for name in ("no-op call", "no-op task in a flow", "no-op sync flow", "no-op async flow"):
        system = "plain-python" if name == "no-op call" else "labelloop"
        v = value[(name, system)]
        print(f"{name:34s} {v:10.6f} {v / plain:14,.0f}")
    for variant in variants:
        print(f"\n{variant} turn on digits (median of {args.turns}, fresh store each)\n")
        dask = args.dask and variant == "demo"
        header = f"{'stage':28s} {'prefect s':>10s} {'plain s':>9s} {'overhead s':>11s}"
        print(header + (f" {'dask s':>8s}" if dask else ""))
        for stage in measured[(variant, "labelloop")][0]:
            p = value[(f"{variant} turn: {stage}", "labelloop")]
            q = value.get((f"{variant} turn: {stage}", "plain-python"), float("nan"))
            line = f"{stage:28s} {p:10.2f} {q:9.2f} {p - q:11.2f}"
            if dask:
                line += f" {value[(f'{variant} turn: {stage}', 'labelloop-dask')]:8.2f}"
            print(line)
        total_p = value[(f"{variant} turn: total", "labelloop")]
        total_q = value[(f"{variant} turn: total", "plain-python")]
        overhead = total_p - total_q
        share = overhead / total_p
        rows.append({"task": f"{variant} turn", "system": "labelloop", "metric": "orchestration_overhead_seconds",
                     "value": overhead})
        rows.append({"task": f"{variant} turn", "system": "labelloop", "metric": "orchestration_overhead_share",
                     "value": share})
        print(f"orchestration overhead: {overhead:.2f} s = {share:.1%} of the Prefect turn "
              f"(target < 10 %); turn {total_p:.1f} s (target <= 60 s)")
    print(f"results: {write_results('orchestration', rows)}")


if __name__ == "__main__":
    main()
