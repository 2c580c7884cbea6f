"""Label-error detection benchmark: labelloop vs cleanlab 2.9.0 on the digits protocol.

ANCHORS.md protocol: X = load_digits().data / 16, the fixed 1,257-item pool;
10 % symmetric noise (126 labels flipped to a uniformly chosen other class),
seeds 0-4. Out-of-fold probabilities from 5-fold StratifiedKFold
``cross_val_predict`` (LogisticRegression(max_iter=2000), SVC(probability=True)),
then:

- cleanlab ``find_label_issues`` (prune_by_noise_rate, its default) on those OOF probabilities;
- the naive rule "OOF argmax != label";
- labelloop ``find_label_errors`` on the same OOF probabilities;
- labelloop ``find_label_errors`` on the model stage's committee (``KFoldCommittee(model="mlp")``, its
  temperature-calibrated out-of-fold probabilities: what the route stage reads).

Also: test accuracy of LogisticRegression trained on the pool after removing the flagged items.
cleanlab is AGPL-3: imported here only, never by labelloop.

    python bench/noise.py [--seeds 5]
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import print_table, row, write_results  # noqa: E402

N_FLIPS = 126


def prf(flag: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = float((flag & truth).sum())
    p = tp / max(flag.sum(), 1)
    r = tp / max(truth.sum(), 1)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from cleanlab.filter import find_label_issues
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
    from sklearn.svm import SVC

    from labelloop.labeling.noise import find_label_errors
    from labelloop.models.ensemble import KFoldCommittee

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xp, Xt, yp, yt = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    results: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    timing: dict[tuple[str, str], list[float]] = {}

    def record(model: str, system: str, flag: np.ndarray, truth: np.ndarray, noisy: np.ndarray, secs: float):
        keep = ~flag
        acc = (LogisticRegression(max_iter=2000).fit(Xp[keep], noisy[keep]).predict(Xt) == yt).mean()
        results.setdefault((model, system), []).append((*prf(flag, truth), acc))
        timing.setdefault((model, system), []).append(secs)

    t0 = time.perf_counter()
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        flips = rng.choice(len(yp), N_FLIPS, replace=False)
        noisy = yp.copy()
        noisy[flips] = (yp[flips] + rng.integers(1, 10, size=N_FLIPS)) % 10
        truth = noisy != yp
        skf = StratifiedKFold(5, shuffle=True, random_state=seed)
        for name, model in [("LogReg", LogisticRegression(max_iter=2000)),
                            ("SVC", SVC(probability=True, random_state=seed))]:
            P = cross_val_predict(model, Xp, noisy, cv=skf, method="predict_proba")
            t = time.perf_counter()
            flag_cl = np.zeros(len(yp), dtype=bool)
            flag_cl[find_label_issues(noisy, P)] = True
            record(name, "cleanlab", flag_cl, truth, noisy, time.perf_counter() - t)
            record(name, "OOF argmax != label", P.argmax(axis=1) != noisy, truth, noisy, 0.0)
            t = time.perf_counter()
            flag_ll = find_label_errors(noisy, P).is_issue
            record(name, "labelloop", flag_ll, truth, noisy, time.perf_counter() - t)
        t = time.perf_counter()
        # the model stage's committee (MLP, the tabular default): its out-of-fold probabilities
        oof = KFoldCommittee(model="mlp", seed=seed).fit(Xp, noisy).oof_proba_
        oof_s = time.perf_counter() - t
        t = time.perf_counter()
        flag = find_label_errors(noisy, oof).is_issue
        record("labelloop committee", "labelloop", flag, truth, noisy, time.perf_counter() - t + oof_s)
        # cleanlab on labelloop's committee probabilities: same inputs, their detector
        t = time.perf_counter()
        flag_cl = np.zeros(len(yp), dtype=bool)
        flag_cl[find_label_issues(noisy, oof)] = True
        record("labelloop committee", "cleanlab", flag_cl, truth, noisy, time.perf_counter() - t)

    rows = []
    print(f"\nlabel-error detection, digits pool, {N_FLIPS} flipped labels, {args.seeds} seeds "
          f"({time.perf_counter() - t0:.0f} s)\n")
    print(f"{'OOF model':<22} {'detector':<22} {'precision':>9} {'recall':>7} {'F1':>6} {'LogReg acc after removal':>25}")
    for (model, system), vals in results.items():
        p, r, f, acc = (100 * np.mean([v[i] for v in vals]) for i in range(4))
        print(f"{model:<22} {system:<22} {p:>9.1f} {r:>7.1f} {f:>6.1f} {acc:>25.1f}")
        task = f"OOF {model}"
        for metric, value in [("precision_%", p), ("recall_%", r), ("F1_%", f), ("logreg_acc_after_removal_%", acc),
                              ("detect_s", float(np.mean(timing[(model, system)])))]:
            rows.append(row(task, system, metric, value))
    print()
    print_table([r for r in rows if r["metric"] == "F1_%"], baseline="cleanlab")
    path = write_results("noise", rows)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
