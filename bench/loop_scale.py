"""One turn of the loop (import -> model -> route -> report) on pools of 10k, 100k (and 1M) items.

Data: jittered 8x8 digits (scikit-learn's 1,797 digits, each copy shifted by up
to one pixel with Gaussian noise), 200 gold labels (20 per class), selection
and self-training on, the demo's CNN committee with albumentations. For 1M
items (``--million``) the items are 64-d tabular rows (the digits' pixels
jittered) and the committee is the MLP.

Every stage runs in its own process against one real ``prefect server``, so
its seconds and peak RSS are its own (the process's ``ru_maxrss``; the turn's
peak is the largest stage's). Anchor: the pre-change route stage (a second SVC
committee and an exact kNN graph fitted inside the route stage) of commit
``PRE_CHANGE``, exported from this repository's history with ``git archive``
(or a checkout given by ``--anchor-path``), on the same kind of pool at 3,000
items, in the same run.

    PYTHONPATH=$PWD .venv/bin/python bench/loop_scale.py [--sizes 10000 100000] [--million] [--anchor 3000]

Rows: ``task="<stage> N=<n>"`` / ``"turn N=<n>"``, ``metric="seconds"`` / ``"peak_rss_mb"``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _common import print_table, row, write_results  # noqa: E402

STAGES = ("import", "model", "route", "report")
LOOP = """
selection:
  enabled: true
  expert_budget: 50
  crowd_budget: 200

self_training:
  enabled: true
"""


def jittered_digits(n: int, seed: int = 0, tabular: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``n`` digits, each a random original shifted by up to one pixel, with noise (0..16 scale)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(d.target), n)
    out = np.empty((n, 8, 8), np.float32)
    for s in range(0, n, 50_000):
        idx = pick[s : s + 50_000]
        imgs = d.images[idx].astype(np.float32)
        dx, dy = rng.integers(-1, 2, len(idx)), rng.integers(-1, 2, len(idx))
        for sx in (-1, 0, 1):
            for sy in (-1, 0, 1):
                m = (dx == sx) & (dy == sy)
                imgs[m] = np.roll(imgs[m], (sy, sx), axis=(1, 2))
        imgs += rng.normal(0, 1.0, imgs.shape).astype(np.float32)
        out[s : s + len(idx)] = np.clip(imgs, 0, 16)
    X = np.rint(out).astype(np.uint8)
    return (X.reshape(n, 64) if tabular else X), d.target[pick].astype(np.int16)


# The last commit whose route stage fitted its own SVC committee (the anchor of this bench).
PRE_CHANGE = "14bbfce"


def pre_change_tree(directory: Path) -> Path:
    """The pre-change source tree, exported from git history (no worktree registered)."""
    if not (directory / "labelloop").exists():
        directory.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", PRE_CHANGE], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return directory


def write_project(directory: Path, n: int, tabular: bool, gold: int = 200, anchor: bool = False) -> Path:
    from labelloop.demo import DIGITS_CONFIG

    directory.mkdir(parents=True, exist_ok=True)
    X, y = jittered_digits(n, tabular=tabular)
    ids = np.array([f"d{i:07d}" for i in range(n)])
    rng = np.random.default_rng(1)
    gold_idx = np.concatenate([rng.choice(np.flatnonzero(y == c), gold // 10, replace=False) for c in range(10)])
    observed = np.full(n, -1, np.int16)
    observed[gold_idx] = y[gold_idx]
    np.savez(directory / "digits.npz", X=X, y=observed, ids=ids)
    np.savez(directory / "truth.npz", ids=ids, y=y)
    config = DIGITS_CONFIG + LOOP
    if tabular:
        config = config.replace("modality: image ", "modality: tabular").split("training:")[0]
        config += "training:\n  model: mlp\n  folds: 5\n  seed: 0\n\nevaluation:\n  truth: truth.npz\n" + LOOP
    path = directory / "labelloop.yaml"
    path.write_text(config)
    return path


def rss_tracer(step_mb: float = 64.0):
    """Sample this process's RSS; each time it rises ``step_mb`` above the last record, note the main stack.

    Returns a function giving the records ``(rss_mb, stack)``: where the peak memory was reached.
    """
    import threading
    import traceback

    main = threading.main_thread().ident
    page = os.sysconf("SC_PAGE_SIZE") / 2**20
    records: list[tuple[float, str]] = []

    def sample() -> None:
        top = 0.0
        while True:
            with open("/proc/self/statm") as fh:
                rss = int(fh.read().split()[1]) * page
            if rss > top + step_mb:
                top = rss
                frame = sys._current_frames().get(main)
                stack = traceback.extract_stack(frame)[-6:] if frame is not None else []
                records.append((rss, " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack))))
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    return lambda: list(records)


def child(stage: str, config: str, run_id: str) -> None:
    """Run one stage in this process; print its seconds and this process's peak RSS as JSON."""
    import resource

    trace = rss_tracer() if os.environ.get("LOOP_SCALE_TRACE_RSS") else None

    from labelloop.flows.importing import import_flow
    from labelloop.flows.report import report_flow
    from labelloop.flows.route import route_flow

    flows = {"import": import_flow, "route": route_flow, "report": report_flow}
    if stage == "model":
        from labelloop.flows.training import training_flow

        flows["model"] = training_flow
    t0 = time.perf_counter()
    result = flows[stage](config, run_id)
    seconds = time.perf_counter() - t0
    if trace is not None:  # where the memory grew (LOOP_SCALE_TRACE_RSS=1 / --trace-rss)
        for rss, stack in trace()[-14:]:
            print(f"RSS {rss:8.0f} MiB  {stack}", file=sys.stderr)
    print("RESULT " + json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                  "summary": {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))}}))


def run_stage(stage: str, config: Path, run_id: str, env: dict[str, str], pythonpath: str) -> dict:
    cmd = [sys.executable, __file__, "--child", stage, str(config), run_id]
    proc = subprocess.run(cmd, env={**env, "PYTHONPATH": pythonpath}, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"stage {stage} on {config} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    for line in proc.stderr.splitlines():
        if line.startswith("RSS "):
            print(f"  {stage} {line}", flush=True)
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--million", action="store_true", help="also 1,000,000 tabular items (MLP)")
    ap.add_argument("--tabular", type=int, nargs="*", default=[],
                    help="tabular pool sizes (MLP), e.g. 200000 to predict the 1M row's memory at a fifth of the time")
    ap.add_argument("--anchor", type=int, default=3000, help="pool size of the pre-change route stage (0 = skip)")
    ap.add_argument("--anchor-path", default=None, help="a checkout of the pre-change code (default: git archive)")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--trace-rss", action="store_true", help="print where each stage's memory grew (main thread's stack)")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), help="stages to run (a project already in --dir is reused)")
    args = ap.parse_args()

    from labelloop.ops.prefect_server import PrefectServer, prefect_env

    work = args.dir or Path(tempfile.mkdtemp(prefix="labelloop-scale-"))
    server = PrefectServer(home=work / "prefect").start()
    extra = {"NO_ALBUMENTATIONS_UPDATE": "1", **({"LOOP_SCALE_TRACE_RSS": "1"} if args.trace_rss else {})}
    env = prefect_env(work / "prefect", api_url=server.api_url, extra=extra)
    rows: list[dict] = []
    try:
        jobs = [(n, False) for n in args.sizes] + [(n, True) for n in args.tabular]
        jobs += [(1_000_000, True)] if args.million else []
        if args.anchor:
            args.anchor_path = args.anchor_path or str(pre_change_tree(work / "pre-change"))
            # The pre-change route stage (fits its own SVC committee + kNN graph) on the same kind of pool.
            config = write_project(work / f"anchor{args.anchor}", args.anchor, False)
            run_id = uuid.uuid4().hex
            run_stage("import", config, run_id, env, args.anchor_path)
            old = run_stage("route", config, run_id, env, args.anchor_path)
            new_config = write_project(work / f"new{args.anchor}", args.anchor, False)
            for stage in ("import", "model"):
                run_stage(stage, new_config, run_id, env, str(ROOT))
            new = run_stage("route", new_config, run_id, env, str(ROOT))
            for system, res in (("pre-change route", old), ("labelloop", new)):
                rows.append(row(f"route N={args.anchor}", system, "seconds", res["seconds"]))
                rows.append(row(f"route N={args.anchor}", system, "peak_rss_mb", res["peak_rss_mb"]))
            print(f"anchor N={args.anchor}: pre-change route {old['seconds']:.1f} s, labelloop route {new['seconds']:.1f} s",
                  flush=True)
        for n, tabular in jobs:
            name = f"t{n}" if tabular and n != 1_000_000 else f"n{n}"
            existing = work / name / "labelloop.yaml"
            config = existing if existing.exists() else write_project(work / name, n, tabular)
            run_id = uuid.uuid4().hex
            total, peak = 0.0, 0.0
            for stage in [s for s in STAGES if s in args.stages]:
                res = run_stage(stage, config, run_id, env, str(ROOT))
                total += res["seconds"]
                peak = max(peak, res["peak_rss_mb"])
                rows.append(row(f"{stage} N={n}", "labelloop", "seconds", res["seconds"]))
                rows.append(row(f"{stage} N={n}", "labelloop", "peak_rss_mb", res["peak_rss_mb"]))
                print(f"N={n} {stage}: {res['seconds']:.1f} s, peak RSS {res['peak_rss_mb']:.0f} MiB "
                      f"{json.dumps(res['summary'])[:300]}", flush=True)
            rows.append(row(f"turn N={n}", "labelloop", "seconds", total))
            rows.append(row(f"turn N={n}", "labelloop", "peak_rss_mb", peak))
        turns = {r["task"]: r["value"] for r in rows if r["task"].startswith("turn") and r["metric"] == "seconds"}
        if "turn N=10000" in turns and "turn N=100000" in turns:
            rows.append(row("turn(100k)/turn(10k)", "labelloop", "ratio", turns["turn N=100000"] / turns["turn N=10000"]))
    finally:
        server.stop()
    print()
    print_table(rows, baseline="pre-change route")
    print(f"\nresults: {write_results('loop_scale', rows)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        main()
