"""Active-learning benchmark: labelloop's query vs modAL 0.4.2.1 on the digits protocol.

ANCHORS.md protocol: X = load_digits().data / 16, fixed stratified test split
(random_state=0); start with 10 labels (1 random item per class), batches of 10
up to 200 labels; the evaluation model of every strategy is a fresh
LogisticRegression(max_iter=2000) on the labels gathered so far. AULC =
trapezoid area under accuracy vs labels (10..200) / 190. Seeds 0-4.

modAL 0.4.2.1 breaks on scikit-learn >= 1.8, so it runs in its own virtual
environment (``.venv-modal`` at the repository root, created here when missing:
modAL-python==0.4.2.1, scikit-learn==1.7.2) as a subprocess on the same data
and the same starting labels.

Query speed: labelloop's query on the 1,257-item pool, and on a synthetic
1,000,000-item pool (10 classes, 32 features) in a fresh process with its peak RSS.

    python bench/active.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The checkout's labelloop, also in worker processes and subprocesses (they inherit the environment).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                         os.environ.get("PYTHONPATH")]))
from _common import print_table, row, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODAL_VENV = ROOT / ".venv-modal"
START, STEP, STOP, TARGET = 10, 10, 200, 0.922
LABELS = np.arange(START, STOP + 1, STEP)


def data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


def start_labels(yp: np.ndarray, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(rng.choice(np.flatnonzero(yp == c))) for c in range(10)]


def curve_stats(accs: list[float]) -> dict:
    a = np.asarray(accs)
    hit = LABELS[np.argmax(a >= TARGET)] if (a >= TARGET).any() else np.nan
    return {"@50": a[list(LABELS).index(50)], "@100": a[list(LABELS).index(100)], "@200": a[-1],
            "aulc": float(np.trapezoid(a, LABELS) / (STOP - START)), "labels_to_target": float(hit)}


# ------------------------------------------------------------------ labelloop
def labelloop_curve(seed: int, strategy: str, batch_mode: str) -> tuple[list[float], list[float]]:
    from sklearn.linear_model import LogisticRegression

    from labelloop.labeling.select import query

    Xp, Xt, yp, yt = data()
    lab = np.array(start_labels(yp, seed))
    accs, qtimes = [], []
    rng = np.random.default_rng(seed)
    while True:
        model = LogisticRegression(max_iter=2000).fit(Xp[lab], yp[lab])
        accs.append(float((model.predict(Xt) == yt).mean()))
        if len(lab) >= STOP:
            return accs, qtimes
        t = time.process_time()  # CPU time: wall time on a shared 2-core machine measures the neighbours
        new = query(model.predict_proba(Xp), Xp, STEP, labeled=lab, strategy=strategy, batch_mode=batch_mode,
                    random_state=rng)
        qtimes.append(time.process_time() - t)
        lab = np.r_[lab, new]


# ------------------------------------------------------------------ modAL (subprocess)
MODAL_SCRIPT = r'''
import json, sys, time, warnings
import numpy as np
warnings.filterwarnings("ignore")
from sklearn.linear_model import LogisticRegression
from modAL.models import ActiveLearner, Committee
from modAL.uncertainty import uncertainty_sampling, margin_sampling, entropy_sampling
from modAL.disagreement import vote_entropy_sampling
spec = json.load(open(sys.argv[1]))
Xp, yp, Xt, yt = (np.array(spec[k]) for k in ("Xp", "yp", "Xt", "yt"))
START, STEP, STOP = spec["start"], spec["step"], spec["stop"]
out = {}
for name, strat in [("random", None), ("least_confidence", uncertainty_sampling), ("margin", margin_sampling),
                    ("entropy", entropy_sampling), ("qbc_vote_entropy", "qbc")]:
    out[name] = []
    for seed, init in enumerate(spec["init"]):
        rng = np.random.default_rng(seed)
        lab = list(init)
        accs, qt = [], []
        if strat == "qbc":
            np.random.seed(seed)
            members = [ActiveLearner(LogisticRegression(max_iter=2000), X_training=Xp[lab], y_training=yp[lab],
                                     bootstrap_init=True) for _ in range(5)]
            learner = Committee(members, query_strategy=vote_entropy_sampling)
        elif strat is not None:
            learner = ActiveLearner(LogisticRegression(max_iter=2000), query_strategy=strat,
                                    X_training=Xp[lab], y_training=yp[lab])
        while True:
            m = LogisticRegression(max_iter=2000).fit(Xp[lab], yp[lab])
            accs.append(float((m.predict(Xt) == yt).mean()))
            if len(lab) >= STOP:
                break
            pool = np.setdiff1d(np.arange(len(yp)), lab)
            t = time.process_time()
            if strat is None:
                pick = rng.choice(pool, STEP, replace=False)
            else:
                idx, _ = learner.query(Xp[pool], n_instances=STEP)
                pick = pool[np.asarray(idx)]
                if strat == "qbc":
                    learner.teach(Xp[pick], yp[pick], bootstrap=True)
                else:
                    learner.teach(Xp[pick], yp[pick])
            qt.append(time.process_time() - t)
            lab += [int(i) for i in pick]
        out[name].append({"accs": accs, "query_s": qt})
json.dump(out, open(sys.argv[2], "w"))
'''


def ensure_modal_venv() -> Path:
    python = MODAL_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {MODAL_VENV} (modAL-python==0.4.2.1, scikit-learn==1.7.2) ...", flush=True)
        subprocess.run(["python3", "-m", "venv",
                        str(MODAL_VENV)], check=True)
        subprocess.run([str(MODAL_VENV / "bin" / "pip"), "install", "-q", "modAL-python==0.4.2.1",
                        "scikit-learn==1.7.2"], check=True)
    return python


def modal_curves(seeds: int) -> dict:
    python = ensure_modal_venv()
    Xp, Xt, yp, yt = data()
    with tempfile.TemporaryDirectory() as tmp:
        spec, result, script = Path(tmp, "spec.json"), Path(tmp, "out.json"), Path(tmp, "run_modal.py")
        spec.write_text(json.dumps({"Xp": Xp.tolist(), "yp": yp.tolist(), "Xt": Xt.tolist(), "yt": yt.tolist(),
                                    "start": START, "step": STEP, "stop": STOP,
                                    "init": [start_labels(yp, s) for s in range(seeds)]}))
        script.write_text(MODAL_SCRIPT)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run([str(python), str(script), str(spec), str(result)], check=True, env=env)
        return json.loads(result.read_text())


# ------------------------------------------------------------------ 1M-item pool
def big_pool_query(n: int) -> dict:
    """Run in a fresh process: peak RSS is the query's, plus the pool arrays themselves."""
    import resource

    from labelloop.labeling.select import query

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 32), dtype=np.float32)
    logits = rng.standard_normal((n, 10), dtype=np.float32) * 3
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    labeled = rng.choice(n, 100, replace=False)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times, cpu = [], []
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        picked = query(P, X, 10, labeled=labeled, strategy="margin", random_state=0)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    arrays = (X.nbytes + P.nbytes) / 2**20
    return {"query_s": float(np.median(times)), "query_cpu_s": float(np.median(cpu)), "peak_rss_mb": peak, "rss_before_mb": base,
            "pool_arrays_mb": arrays, "picked": len(set(picked.tolist()))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--_big_child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._big_child:
        print(json.dumps(big_pool_query(args._big_child)))
        return
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    systems: dict[str, list[dict]] = {}
    qtimes: dict[str, list[float]] = {}
    for strategy, mode, name in [("margin", "representative", "labelloop margin+representative"),
                                 ("margin", "diverse", "labelloop margin+diverse"),
                                 ("random", "greedy", "labelloop random")]:
        for seed in range(args.seeds):
            accs, qt = labelloop_curve(seed, strategy, mode)
            systems.setdefault(name, []).append(curve_stats(accs))
            qtimes.setdefault(name, []).extend(qt)
    print(f"labelloop done in {time.perf_counter() - t0:.0f} s; running modAL ...", flush=True)
    t1 = time.perf_counter()
    for name, runs in modal_curves(args.seeds).items():
        systems[f"modAL {name}"] = [curve_stats(r["accs"]) for r in runs]
        qtimes[f"modAL {name}"] = [q for r in runs for q in r["query_s"]]
    print(f"modAL done in {time.perf_counter() - t1:.0f} s", flush=True)
    big = json.loads(subprocess.run([sys.executable, __file__, "--_big_child", str(args.big)], check=True,
                                    capture_output=True, text=True).stdout)

    rows = []
    print(f"\nactive learning on digits, {args.seeds} seeds (fresh LogisticRegression on the gathered labels)\n")
    print(f"{'system':<34} {'@50':>6} {'@100':>6} {'@200':>6} {'AULC %':>7} {'labels→92.2%':>13} {'reached':>8} {'query CPU ms':>13}")
    for name, stats in systems.items():
        m = {k: float(np.nanmean([s[k] for s in stats])) for k in ("@50", "@100", "@200", "aulc")}
        hits = [s["labels_to_target"] for s in stats]
        reached = int(np.sum(np.isfinite(hits)))
        lt = float(np.nanmean(hits)) if reached else float("nan")
        q_ms = 1000 * float(np.median(qtimes[name])) if qtimes[name] else float("nan")
        print(f"{name:<34} {100*m['@50']:>6.1f} {100*m['@100']:>6.1f} {100*m['@200']:>6.1f} {100*m['aulc']:>7.1f} "
              f"{lt:>13.0f} {reached:>5}/{len(stats)} {q_ms:>13.2f}")
        system = "labelloop" if name == "labelloop margin+representative" else name
        for metric, value in [("acc@50_%", 100 * m["@50"]), ("acc@100_%", 100 * m["@100"]),
                              ("acc@200_%", 100 * m["@200"]), ("AULC_%", 100 * m["aulc"]),
                              ("labels_to_92.2%", lt), ("seeds_reaching_92.2%", reached),
                              ("query_cpu_ms_1257_pool", q_ms)]:
            rows.append(row("digits active learning", system, metric, value))
    rows.append(row(f"query on {args.big:,}-item pool", "labelloop", "query_s", big["query_s"]))
    rows.append(row(f"query on {args.big:,}-item pool", "labelloop", "query_cpu_s", big["query_cpu_s"]))
    rows.append(row(f"query on {args.big:,}-item pool", "labelloop", "peak_rss_mb", big["peak_rss_mb"]))
    rows.append(row(f"query on {args.big:,}-item pool", "labelloop", "pool_arrays_mb", big["pool_arrays_mb"]))
    print(f"\nquery on a {args.big:,}-item pool (10 classes, 32 features): {big['query_s']:.3f} s wall, "
          f"{big['query_cpu_s']:.3f} s CPU (machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores), "
          f"peak RSS {big['peak_rss_mb']:.0f} MiB (before the query {big['rss_before_mb']:.0f} MiB; "
          f"pool arrays {big['pool_arrays_mb']:.0f} MiB)\n")
    print_table([r for r in rows if r["task"] == "digits active learning" and r["metric"] in
                 ("AULC_%", "labels_to_92.2%", "acc@50_%", "acc@200_%")], baseline="modAL margin")
    path = write_results("active", rows)
    print(f"\nwrote {path}  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
