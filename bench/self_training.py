"""Self-training benchmark: the pipeline's committee + labelloop's selection vs sklearn on the digits protocol.

labelloop = the pipeline's loop in memory (``generalise.loop_for``: ``SelfTrainingCommittee.from_config`` with a
default config's ``self_training`` parameters, around the committee the pipeline builds for images, the CNN): the
model stage's ``self_train_turn`` and the route stage's ``teach_from_outputs``, turn after turn -- the functions
the pipeline's stages call, so this measures the path a user runs (the label graph on the pixels, where the route
stage uses the committee's stored embeddings).

ANCHORS.md protocol: X = load_digits().data / 16, one fixed stratified test split
(random_state=0, 540 test items, 1,257-item pool); stratified labeled subsets of
1 / 2 / 5 / 10 % of the pool (seeds 0-4), the rest unlabeled.

Anchors, same data, same run:
- sklearn SelfTrainingClassifier, threshold=0.9 (max_iter=10) and k_best=100,
  over LogisticRegression(max_iter=2000), SVC(probability=True), MLPClassifier(64);
- sklearn LabelSpreading / LabelPropagation, knn kernel, small grid (best mean reported);
- supervised-only on the labeled subset (same three models).

    python bench/self_training.py [--seeds 5] [--jobs 2] [--summarise]
"""

from __future__ import annotations

import argparse
import os
import sys
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

RATES = (0.01, 0.02, 0.05, 0.10)


def data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


def subset(yp: np.ndarray, rate: float, seed: int) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    n = int(round(rate * len(yp)))
    idx, _ = train_test_split(np.arange(len(yp)), train_size=n, stratify=yp, random_state=seed)
    y = np.full(len(yp), -1)
    y[idx] = yp[idx]
    return y


def base_models():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    return {
        "LogReg": lambda s: LogisticRegression(max_iter=2000),
        "SVC": lambda s: SVC(probability=True, random_state=s),
        "MLP": lambda s: MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=s),
    }


LS_GRID = [(k, a) for k in (5, 7, 10, 15) for a in (0.2, 0.5)]
LP_GRID = [5, 7, 10, 15]


def one_run(rate: float, seed: int) -> list[tuple[str, float, float]]:
    """All systems on one labeled subset: (system, accuracy, seconds)."""
    from sklearn.base import clone
    from sklearn.semi_supervised import LabelPropagation, LabelSpreading, SelfTrainingClassifier

    from generalise import loop_for

    warnings.filterwarnings("ignore")
    Xp, Xt, yp, yt = data()
    y = subset(yp, rate, seed)
    lab = y >= 0
    out = []

    def timed(name, fn):
        t = time.perf_counter()
        pred = fn()
        out.append((name, float((pred == yt).mean()), time.perf_counter() - t))

    import torch

    torch.set_num_threads(1)
    images = lambda A: A.reshape(-1, 1, 8, 8)  # noqa: E731  the CNN reads the 8x8 images
    timed("labelloop", lambda: loop_for("image", 10, seed).fit(images(Xp), y).predict(images(Xt)))
    for name, make in base_models().items():
        timed(f"supervised {name}", lambda: make(seed).fit(Xp[lab], y[lab]).predict(Xt))
        timed(f"SelfTraining {name} thr0.9",
              lambda: SelfTrainingClassifier(make(seed), threshold=0.9, max_iter=10).fit(Xp, y).predict(Xt))
        timed(f"SelfTraining {name} kbest100",
              lambda: SelfTrainingClassifier(make(seed), criterion="k_best", k_best=100).fit(Xp, y).predict(Xt))
    for k, a in LS_GRID:
        timed(f"LabelSpreading k{k} a{a}",
              lambda: LabelSpreading(kernel="knn", n_neighbors=k, alpha=a, max_iter=100).fit(Xp, y).predict(Xt))
    for k in LP_GRID:
        timed(f"LabelPropagation k{k}",
              lambda: LabelPropagation(kernel="knn", n_neighbors=k, max_iter=2000).fit(Xp, y).predict(Xt))
    return [(rate, seed, *r) for r in out]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--summarise", action="store_true",
                    help="only print the table from the runs finished so far (bench/results/self_training.runs.jsonl)")
    args = ap.parse_args()
    import json

    from joblib import Parallel, delayed

    t0 = time.perf_counter()
    log = Path(__file__).resolve().parent / "results" / "self_training.runs.jsonl"
    if not args.summarise:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("", encoding="utf-8")
        # one seed of every rate before the next seed, each run logged as it ends: a cut-short run still has rows
        jobs = [(r, s) for s in range(args.seeds) for r in RATES]
        for run in Parallel(n_jobs=args.jobs, return_as="generator_unordered")(delayed(one_run)(*j) for j in jobs):
            with log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(run) + "\n")
            print(f"[{time.perf_counter() - t0:6.0f} s] {run[0][0]:.0%} seed {run[0][1]}: labelloop "
                  f"{100 * run[0][3]:.1f}", flush=True)
    flat = [tuple(x) for line in log.read_text(encoding="utf-8").splitlines() if line for x in json.loads(line)]
    args.seeds = len({x[1] for x in flat})
    systems = sorted({x[2] for x in flat}, key=lambda s: (s != "labelloop", s))
    rows, summary = [], []
    for rate in RATES:
        task = f"digits {rate:.0%} labels"
        means = {}
        if not any(x[0] == rate for x in flat):
            continue
        for s in systems:
            accs = [x[3] for x in flat if x[0] == rate and x[2] == s]
            secs = [x[4] for x in flat if x[0] == rate and x[2] == s]
            means[s] = (np.mean(accs), np.std(accs), np.mean(secs))
        families = {
            "labelloop": ["labelloop"],
            "sklearn SelfTraining (best)": [s for s in systems if s.startswith("SelfTraining")],
            "sklearn LabelSpreading (best)": [s for s in systems if s.startswith("LabelSpreading")],
            "sklearn LabelPropagation (best)": [s for s in systems if s.startswith("LabelPropagation")],
            "supervised-only (best)": [s for s in systems if s.startswith("supervised")],
        }
        best_anchor = 0.0
        for fam, members in families.items():
            best = max(members, key=lambda s: means[s][0])
            m, sd, sec = means[best]
            rows.append(row(task, fam, "test_accuracy_%", 100 * m))
            rows.append(row(task, fam, "std_%", 100 * sd))
            rows.append(row(task, fam, "fit_predict_s", sec))
            summary.append((task, fam, best, 100 * m, 100 * sd, sec))
            if fam != "labelloop":
                best_anchor = max(best_anchor, m)
        rows.append(row(task, "best anchor", "test_accuracy_%", 100 * best_anchor))
        for s in systems:  # every configuration, for the record
            rows.append(row(task, s, "config_test_accuracy_%", 100 * means[s][0]))
    print(f"\nself-training on digits, {args.seeds} seeds, {time.perf_counter() - t0:.0f} s\n")
    print(f"{'task':<20} {'system':<34} {'best config':<28} {'acc %':>7} {'± std':>6} {'s/fit':>7}")
    for t, fam, best, m, sd, sec in summary:
        print(f"{t:<20} {fam:<34} {best:<28} {m:>7.1f} {sd:>6.1f} {sec:>7.2f}")
    print()
    print_table([r for r in rows if r["metric"] == "test_accuracy_%"], baseline="best anchor")
    path = write_results("self_training", rows)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
