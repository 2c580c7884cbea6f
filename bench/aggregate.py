"""Crowd aggregation benchmark: labelloop's engine vs crowd-kit on the ANCHORS.md crowd protocol.

Five simulated annotators over 10 classes (w0, w1 90% right; w2, w3 70% right with 80% of errors to a fixed
confusable class; w4 a uniform spammer), 3 distinct annotators per item.

* small set: the 540 digits test items, seeds 0-4;
* large set: 100,000 items x 3, seed 0;
* 10M rows (3,333,334 items x 3) through labelloop alone, in a child process (time and peak memory);
* votes + a LogisticRegression's out-of-fold probabilities on the 540 digits features as one more source.

Run: ``python bench/aggregate.py`` (crowd-kit from the `bench` extra). Writes bench/results/aggregate.json.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict, train_test_split

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
from _common import write_results  # noqa: E402
from labelloop.labeling.aggregate import DawidSkene, MajorityVote, OneCoinDawidSkene, Votes  # noqa: E402

C = 10
MAP2 = np.array([6, 7, 7, 8, 9, 6, 5, 1, 3, 4])
MAP3 = np.array([8, 4, 3, 5, 1, 3, 0, 2, 9, 8])


def simulate(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, workers, labels) long arrays for true classes ``y``, per the protocol."""
    rng = np.random.default_rng(seed)
    n = len(y)
    workers = np.argsort(rng.random((n, 5)), axis=1)[:, :3].ravel()
    items = np.repeat(np.arange(n), 3)
    t = y[items]
    u, u2 = rng.random(len(t)), rng.random(len(t))
    uniform = rng.integers(0, C, len(t))
    labels = uniform.copy()  # w4: spammer
    good = workers < 2
    labels[good] = np.where(u[good] < 0.9, t[good], uniform[good])
    for w, mapping in ((2, MAP2), (3, MAP3)):
        m = workers == w
        labels[m] = np.where(u[m] < 0.7, t[m], np.where(u2[m] < 0.8, mapping[t[m]], uniform[m]))
    return items, workers, labels


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_labelloop(items, workers, labels, n):
    votes = Votes(items, workers, labels, C, n_items=n, n_sources=5)
    res = {}
    for name, model in (("MajorityVote", MajorityVote(random_state=0)), ("DawidSkene", DawidSkene(n_iter=100)),
                        ("OneCoinDawidSkene", OneCoinDawidSkene(n_iter=100))):
        pred, dt = timed(lambda: model.fit(votes).predict())
        res[name] = (pred, dt)
    return res


def run_crowdkit(items, workers, labels):
    from crowdkit.aggregation import DawidSkene as CkDS, MajorityVote as CkMV, OneCoinDawidSkene as CkOC

    df = pd.DataFrame({"task": items, "worker": workers, "label": labels})
    res = {}
    for name, model in (("MajorityVote", CkMV()), ("DawidSkene", CkDS(n_iter=100)),
                        ("OneCoinDawidSkene", CkOC(n_iter=100))):
        out, dt = timed(lambda: model.fit_predict(df))
        res[name] = (out.sort_index().to_numpy(), dt)
    return res


def ten_million_child() -> None:
    n = 3_333_334
    rng = np.random.default_rng(0)
    y = rng.integers(0, C, n)
    items, workers, labels = simulate(y, seed=0)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    votes = Votes(items, workers, labels, C, n_items=n, n_sources=5)
    model = DawidSkene(n_iter=100).fit(votes)
    dt = time.perf_counter() - t0
    acc = float((model.predict() == y).mean())
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": len(votes), "seconds": dt, "accuracy": acc, "input_mib": (items.nbytes + workers.nbytes +
          labels.nbytes) / 2**20, "peak_rss_mib": rss1 / 1024, "rss_before_fit_mib": rss0 / 1024}))


def main() -> None:
    rows: list[dict] = []
    X, y_all = load_digits(return_X_y=True)
    X = X / 16
    _, X_test, _, y_test = train_test_split(X, y_all, test_size=0.3, stratify=y_all, random_state=0)

    acc: dict[tuple[str, str, str], list[float]] = {}
    fit_s: dict[tuple[str, str, str], list[float]] = {}
    extra_acc, alone_acc = [], []
    for seed in range(5):
        it, wk, lb = simulate(y_test, seed)
        for system, res in (("labelloop", run_labelloop(it, wk, lb, len(y_test))), ("crowd-kit", run_crowdkit(it, wk, lb))):
            for method, (pred, dt) in res.items():
                acc.setdefault(("540", method, system), []).append(float((pred == y_test).mean()))
                fit_s.setdefault(("540", method, system), []).append(dt)
        # Votes + a simple classifier's out-of-fold probabilities, trained on the votes' own DS labels (no gold).
        votes = Votes(it, wk, lb, C, n_items=len(y_test), n_sources=5)
        ds_labels = DawidSkene().fit(votes).predict()
        oof = cross_val_predict(LogisticRegression(max_iter=2000), X_test, ds_labels, cv=5, method="predict_proba")
        alone_acc.append(float((ds_labels == y_test).mean()))
        extra_acc.append(float((DawidSkene().fit(votes, extra_proba=oof).predict() == y_test).mean()))

    rng = np.random.default_rng(0)
    y_big = rng.integers(0, C, 100_000)
    it, wk, lb = simulate(y_big, 0)
    for system, res in (("labelloop", run_labelloop(it, wk, lb, 100_000)), ("crowd-kit", run_crowdkit(it, wk, lb))):
        for method, (pred, dt) in res.items():
            acc[("100k", method, system)] = [float((pred == y_big).mean())]
            fit_s[("100k", method, system)] = [dt]

    child = subprocess.run([sys.executable, __file__, "--ten-million-child"], capture_output=True, text=True, check=True)
    big = json.loads(child.stdout.strip().splitlines()[-1])

    print(f"{'set':5} {'method':18} {'labelloop acc':>13} {'crowd-kit acc':>13} {'ll fit s':>9} {'ck fit s':>9} {'speedup':>8}")
    for (dset, method, system), values in sorted(acc.items()):
        if system != "labelloop":
            continue
        a_l, a_c = np.mean(values), np.mean(acc[(dset, method, "crowd-kit")])
        t_l, t_c = np.mean(fit_s[(dset, method, "labelloop")]), np.mean(fit_s[(dset, method, "crowd-kit")])
        print(f"{dset:5} {method:18} {100 * a_l:12.1f}% {100 * a_c:12.1f}% {t_l:9.3f} {t_c:9.3f} {t_c / t_l:7.1f}x")
        for sysname, a, t in (("labelloop", a_l, t_l), ("crowd-kit", a_c, t_c)):
            rows.append({"task": f"crowd-{dset}-{method}", "system": sysname, "metric": "accuracy", "value": a})
            rows.append({"task": f"crowd-{dset}-{method}", "system": sysname, "metric": "fit_seconds", "value": t})
    print(f"\n540 digits, DawidSkene votes alone: {100 * np.mean(alone_acc):.1f}%; votes + LogReg OOF probabilities as an "
          f"extra source: {100 * np.mean(extra_acc):.1f}% (crowd-kit DS votes alone: "
          f"{100 * np.mean(acc[('540', 'DawidSkene', 'crowd-kit')]):.1f}%)")
    rows.append({"task": "crowd-540-votes+oof", "system": "labelloop", "metric": "accuracy", "value": float(np.mean(extra_acc))})
    print(f"10M rows ({big['rows']:,} votes): DawidSkene fit {big['seconds']:.1f} s, accuracy {100 * big['accuracy']:.1f}%, "
          f"peak RSS {big['peak_rss_mib']:.0f} MiB (input arrays {big['input_mib']:.0f} MiB)")
    rows += [
        {"task": "crowd-10M-DawidSkene", "system": "labelloop", "metric": "fit_seconds", "value": big["seconds"]},
        {"task": "crowd-10M-DawidSkene", "system": "labelloop", "metric": "accuracy", "value": big["accuracy"]},
        {"task": "crowd-10M-DawidSkene", "system": "labelloop", "metric": "peak_rss_mib", "value": big["peak_rss_mib"]},
    ]
    print("wrote", write_results("aggregate", rows))


if __name__ == "__main__":
    if "--ten-million-child" in sys.argv:
        ten_million_child()
    else:
        main()
