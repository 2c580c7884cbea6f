"""Orchestration overhead: Prefect vs plain Python calls, and a digits loop turn split by stage.

    python bench/orchestration.py [--calls 200] [--turns 2] [--dask] [--before REV]

1. Per task: a no-op ``@task`` called N times inside one flow vs a plain function
   call; per flow: a no-op sync ``@flow`` and an async one vs a plain call.
2. A pipeline turn on digits (1,797 items, 5% gold; fresh store each turn), timed
   per stage, for the demo config (what ``labelloop demo`` runs: the CNN committee,
   routing and self-training on) and the same with ``training.model: logreg`` (a
   short turn, where a fixed cost shows most).

   **Orchestration overhead** of a Prefect turn is measured inside that turn: its
   wall time minus the time spent in labelloop's own code, i.e. in the bodies of
   the pipeline flow, of the stages and of their tasks (a body's time excludes the
   Prefect calls it makes: flow and task calls, ``submit``). Tasks submitted to
   worker threads add their engine time (run time minus body time), counted as if
   it were not overlapped. Artifacts, logs and prints are stage work (they are
   what a lead reads), so they count as body time. Target: <= 1.5 s per turn.

   The anchor runs exactly the same pipeline code with flows and tasks turned into
   plain calls and artifacts dropped (``plain_calls``): its turn time and the
   Prefect turn's are printed side by side (a cross-check from separate runs, so
   noisier than the in-turn measure). ``--dask`` adds a demo turn on a 2-worker
   local Dask cluster; ``--before REV`` also times the pipeline of git revision
   REV (exported with ``git archive``, one subprocess per turn, interleaved).

Writes bench/results/orchestration.json as rows {task, system, metric, value};
``system`` is "labelloop" (on Prefect), "labelloop@REV" (``--before``) or
"plain-python" (the anchor).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
CODE = Path(os.environ.get("LABELLOOP_BENCH_CODE", ROOT))  # --before: the exported tree of an older revision
sys.path.insert(0, str(CODE))
sys.path.insert(0, str(Path(__file__).resolve().parent))

_TMP = Path(tempfile.mkdtemp(prefix="labelloop-bench-orch-"))
os.environ["PREFECT_HOME"] = str(_TMP / "prefect-home")
os.environ.pop("PREFECT_API_URL", None)
from labelloop.runtime import prepare_prefect_env  # noqa: E402

prepare_prefect_env()  # analytics off, startup timeout, quiet logs: before Prefect is imported

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from _common import write_results  # noqa: E402

TARGET_S = 1.5


def noop(x: int) -> int:
    return x


noop_task = task(noop, cache_policy=NO_CACHE, name="noop")


@flow(name="bench-tasks")
def many_tasks(n: int) -> float:
    """Seconds per no-op task run, timed inside the flow (the flow run's own cost is not in it)."""
    start = time.perf_counter()
    for i in range(n):
        noop_task(i)
    return (time.perf_counter() - start) / max(n, 1)


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
    task_cost = many_tasks(calls)
    flows = 10
    sync_flow = per_call(noop_flow, flows)
    async_flow = per_call(lambda i: asyncio.run(noop_async_flow(i)), flows)
    return [
        {"task": "no-op call", "system": "plain-python", "metric": "seconds_per_call", "value": plain},
        {"task": "no-op task in a flow", "system": "labelloop", "metric": "seconds_per_call", "value": task_cost},
        {"task": "no-op sync flow", "system": "labelloop", "metric": "seconds_per_call", "value": sync_flow},
        {"task": "no-op async flow", "system": "labelloop", "metric": "seconds_per_call", "value": async_flow},
    ]


VARIANTS = {
    "demo": None,  # the demo config as written (labelloop demo)
    "logreg": "training:\n  model: logreg\n  folds: 5\n  seed: 0\n",
}


def fresh_project(tag: str, variant: str) -> Path:
    """The digits example as ``labelloop demo`` writes it; a variant replaces its training section."""
    import re

    from labelloop.demo import write_digits_example

    directory = _TMP / tag
    shutil.rmtree(directory, ignore_errors=True)
    config = write_digits_example(directory, loop=True)
    if VARIANTS[variant]:
        text = re.sub(r"(?m)^training:\n(?:[ #].*\n|\n)*?(?=^\S)", VARIANTS[variant], config.read_text())
        config.write_text(text)
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


class BodyClock:
    """Time spent in labelloop's own code during a Prefect turn, per thread.

    Entering a flow or task body (Prefect's ``call_with_parameters``) starts the
    clock of that thread; calling into Prefect from a body (a flow or task call,
    ``submit``, ``map``) stops it until the call returns. Task runs on other
    threads (submitted tasks) record their whole engine time too, so their
    engine overhead is ``engine - body`` on those threads.
    """

    def __init__(self) -> None:
        self.home = threading.get_ident()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._states: list[SimpleNamespace] = []
        self.worker_engine = 0.0

    def _state(self) -> SimpleNamespace:
        s = getattr(self._local, "state", None)
        if s is None:  # a plain object per thread: the list below is read from the turn's thread
            s = self._local.state = SimpleNamespace(stack=[], in_body=False, since=0.0, body=0.0,
                                                    thread=threading.get_ident())
            with self._lock:
                self._states.append(s)
        return s

    def _push(self, body: bool) -> None:
        s, now = self._state(), time.perf_counter()
        if s.in_body:
            s.body += now - s.since
        s.stack.append(s.in_body)
        s.in_body, s.since = body, now

    def _pop(self) -> None:
        s, now = self._state(), time.perf_counter()
        if s.in_body:
            s.body += now - s.since
        s.in_body, s.since = s.stack.pop(), now

    def body_seconds(self) -> tuple[float, float]:
        """(body time on the turn's thread, body time of task runs on other threads)."""
        home = sum(s.body for s in self._states if s.thread == self.home)
        return home, sum(s.body for s in self._states if s.thread != self.home)

    def _wrap(self, fn, body: bool):
        clock = self

        def wrapped(*args, **kwargs):
            clock._push(body)
            try:
                return fn(*args, **kwargs)
            finally:
                clock._pop()

        return wrapped

    def _wrap_engine(self, fn):
        clock = self

        def wrapped(*args, **kwargs):
            if threading.get_ident() == clock.home:
                return fn(*args, **kwargs)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                with clock._lock:
                    clock.worker_engine += elapsed

        return wrapped

    @contextlib.contextmanager
    def installed(self):
        import prefect.flow_engine as flow_engine
        import prefect.task_engine as task_engine
        from prefect.flows import Flow
        from prefect.tasks import Task

        patches = [(Flow, "__call__", False), (Task, "__call__", False), (Task, "submit", False),
                   (Task, "map", False), (flow_engine, "call_with_parameters", True),
                   (task_engine, "call_with_parameters", True)]
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
        engines = [task_engine] + [sys.modules[m] for m in ("prefect_dask.client",) if m in sys.modules]
        saved += [(m, "run_task_sync", m.run_task_sync) for m in engines]
        for owner, name, body in patches:
            setattr(owner, name, self._wrap(getattr(owner, name), body))
        for m in engines:
            m.run_task_sync = self._wrap_engine(m.run_task_sync)
        try:
            yield self
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)


def timed_turn(config: Path, clock: BodyClock | None = None) -> dict[str, float]:
    """One pipeline turn; wall time per stage from the pipeline's stage listeners (and the overhead, with a clock)."""
    from labelloop.flows.pipeline import STAGE_LISTENERS, pipeline

    marks: dict[str, float] = {}
    order: list[str] = []

    def listener(stage: str, event: str) -> None:
        marks[f"{stage}:{event}"] = time.perf_counter()
        if event == "start":
            order.append(stage)

    STAGE_LISTENERS.append(listener)
    try:
        with clock.installed() if clock else contextlib.nullcontext():
            t0 = time.perf_counter()
            pipeline(str(config))
            total = time.perf_counter() - t0
    finally:
        STAGE_LISTENERS.remove(listener)
    stages = {s: marks[f"{s}:end"] - marks[f"{s}:start"] for s in order if f"{s}:end" in marks}
    stages["turn flow + summary"] = total - sum(stages.values())
    stages["total"] = total
    if clock:
        home, workers = clock.body_seconds()
        stages["body"] = home
        stages["overhead"] = total - home + max(0.0, clock.worker_engine - workers)
    return stages


def prefect_turn(config: Path) -> dict[str, float]:
    return timed_turn(config, BodyClock())


def plain_turn(config: Path) -> dict[str, float]:
    with plain_calls():
        return timed_turn(config)


def _export(rev: str) -> Path:
    """The source tree of git revision ``rev`` (no worktree registered)."""
    directory = _TMP / f"code-{rev}"
    directory.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return directory


def before_turn(code: Path, variant: str) -> dict[str, float]:
    """One Prefect turn of an older revision's pipeline, timed by this bench in a subprocess."""
    out = _TMP / "before.json"
    env = {**os.environ, "LABELLOOP_BENCH_CODE": str(code), "PYTHONPATH": str(code)}
    env.pop("PREFECT_HOME", None)
    proc = subprocess.run([sys.executable, __file__, "--one-turn", variant, "--json", str(out)], env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"the --before turn failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="no-op tasks per flow")
    parser.add_argument("--turns", type=int, default=2, help="turns per system and variant (fresh store each)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--dask", action="store_true", help="also time a turn on a 2-worker local Dask cluster")
    parser.add_argument("--before", metavar="REV", help="also time the pipeline of git revision REV")
    parser.add_argument("--one-turn", metavar="VARIANT", help=argparse.SUPPRESS)  # --before's subprocess
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one_turn:
        noop_flow(0)  # the ephemeral API server starts here, outside the timing
        args.json.write_text(json.dumps(prefect_turn(fresh_project("one", args.one_turn))))
        return
    rows = bench_overhead(args.calls)
    systems = {"labelloop": prefect_turn, "plain-python": plain_turn}
    if args.before:
        code = _export(args.before)
        systems[f"labelloop@{args.before}"] = lambda config, variant: before_turn(code, variant)
    measured: dict[tuple[str, str], list[dict[str, float]]] = {}
    for variant in args.variants:
        for i in range(args.turns):
            for system, run in systems.items():  # interleaved, so a load change hits every system alike
                config = fresh_project(f"{variant}-{system}-{i}", variant)
                turn = run(config, variant) if "@" in system else run(config)
                measured.setdefault((variant, system), []).append(turn)
    if args.dask:
        extra = "runner:\n  kind: dask\n  n_workers: 2\n  processes: false\n"
        config = fresh_project("dask", "demo")
        config.write_text(config.read_text() + extra)
        measured[("demo", "labelloop-dask")] = [prefect_turn(config)]
    for (variant, system), turns in measured.items():
        for stage in turns[0]:
            if stage in ("body", "overhead"):
                continue
            rows.append({"task": f"{variant} turn: {stage}", "system": system, "metric": "seconds",
                         "value": statistics.median(t[stage] for t in turns)})
        if "overhead" in turns[0]:
            overhead = statistics.median(t["overhead"] for t in turns)
            share = statistics.median(t["overhead"] / t["total"] for t in turns)
            rows.append({"task": f"{variant} turn", "system": system, "metric": "orchestration_overhead_seconds",
                         "value": overhead})
            rows.append({"task": f"{variant} turn", "system": system, "metric": "orchestration_overhead_share",
                         "value": share})

    value = {(r["task"], r["system"], r["metric"]): r["value"] for r in rows}
    print(f"\nPrefect overhead on this machine ({os.cpu_count()} cores)\n")
    print(f"{'what':34s} {'seconds':>10s} {'x plain call':>14s}")
    plain = value[("no-op call", "plain-python", "seconds_per_call")]
    for name in ("no-op call", "no-op task in a flow", "no-op sync flow", "no-op async flow"):
        system = "plain-python" if name == "no-op call" else "labelloop"
        v = value[(name, system, "seconds_per_call")]
        print(f"{name:34s} {v:10.6f} {v / plain:14,.0f}")
    prefects = [s for s in systems if s != "plain-python"] + (["labelloop-dask"] if args.dask else [])
    for variant in args.variants:
        shown = [s for s in prefects if (variant, s) in measured] + ["plain-python"]
        print(f"\n{variant} turn on digits, seconds (median of {args.turns}, fresh store each)\n")
        print(f"{'stage':28s}" + "".join(f" {s:>18s}" for s in shown))
        for stage in measured[(variant, "labelloop")][0]:
            if stage in ("body", "overhead"):
                continue
            cells = [value.get((f"{variant} turn: {stage}", s, "seconds"), float("nan")) for s in shown]
            print(f"{stage:28s}" + "".join(f" {c:18.2f}" for c in cells))
        cells = [value.get((f"{variant} turn", s, "orchestration_overhead_seconds"), float("nan")) for s in shown]
        print(f"{'orchestration overhead':28s}" + "".join(f" {c:18.2f}" for c in cells[:-1]) + f" {'-':>18s}")
        for s in shown[:-1]:
            over = value[(f"{variant} turn", s, "orchestration_overhead_seconds")]
            total = value[(f"{variant} turn: total", s, "seconds")]
            anchor = total - value[(f"{variant} turn: total", "plain-python", "seconds")]
            print(f"{s}: overhead {over:.2f} s = {over / total:.1%} of the turn (target <= {TARGET_S} s: "
                  f"{'met' if over <= TARGET_S else 'NOT met'}); turn minus the plain anchor's: {anchor:.2f} s")
    print(f"results: {write_results('orchestration', rows)}")


if __name__ == "__main__":
    main()
