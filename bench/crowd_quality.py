"""Annotator quality in the crowd stage: mixed crowds, sparse and dense, labelloop vs crowd-kit in one run.

Crowds (10 annotators) of five profiles, designed here (ANCHORS.md, "crowd aggregation beyond the protocol"):

* 2 experts: 95 % right, errors uniform;
* 3 average: 75 % right, errors uniform (honest: they must not be flagged);
* 2 systematic confusers: 85 % right in general, but on two true classes each they answer one fixed other class
  90 % of the time (they must be named, with those classes);
* 1 lazy: half the time the first class, otherwise 80 % right;
* 2 spammers: uniform random.

Items: the 540 digits test labels of the ANCHORS.md split (10 classes) and 600 items of a 4-class task; each item
gets 2 (sparse) or 5 (dense) distinct annotators at random; 7 % of items are gold (8-27 gold answers per person).
Seeds 0-4 draw the crowd's answers and the gold items.

Systems (accuracy on the non-gold items):
* labelloop-stage: ``CrowdAggregator()`` as the crowd stage runs it (gold-anchored Dawid-Skene, Wilson flags);
* labelloop-DS-gold: plain gold-anchored Dawid-Skene (``DawidSkene().fit(votes, gold)``), the bar to match;
* labelloop-point-flags: the former stage (exclude gold accuracy < 0.7 after 3 answers);
* labelloop-one-coin: ``CrowdAggregator(method="one_coin")``;
* crowd-kit DawidSkene, GLAD (n_iter 30) and MACE (all votes, no gold); GLAD and MACE on the first
  ``--slow-seeds`` seeds only (default 2: they take 10-60 s per fit on a shared 2-core machine).

Quality metrics: share of honest (expert, average) annotator draws flagged; share of planted confusions named
(per confuser: both named); confusions named on honest annotators.

Run: ``.venv/bin/python bench/crowd_quality.py [--seeds 5] [--no-glad]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from _common import print_table, row, write_results  # noqa: E402

from labelloop.labeling.aggregate import DawidSkene, Votes  # noqa: E402
from labelloop.labeling.agreement import gold_accuracy  # noqa: E402
from labelloop.labeling.crowd import CrowdAggregator  # noqa: E402

GOLD_SHARE = 0.07


def tasks() -> dict[str, tuple[np.ndarray, dict[str, dict[int, int]]]]:
    """Truth per task and the confusers' planted (true -> answered) maps."""
    X, y = load_digits(return_X_y=True)
    _, _, _, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    rng = np.random.default_rng(1234)
    four = rng.choice(4, size=600, p=[0.4, 0.3, 0.2, 0.1])
    return {
        "digits10": (y_test, {"confuser0": {3: 5, 8: 1}, "confuser1": {7: 1, 4: 9}}),
        "topics4": (four, {"confuser0": {0: 1, 2: 3}, "confuser1": {1: 0, 3: 2}}),
    }


PROFILES = {"expert0": "expert", "expert1": "expert", "average0": "average", "average1": "average",
            "average2": "average", "confuser0": "confuser", "confuser1": "confuser", "lazy0": "lazy",
            "spammer0": "spammer", "spammer1": "spammer"}
HONEST = {"expert", "average"}


def answer(profile: str, who: str, truth: int, C: int, confusions: dict, rng) -> int:
    def noisy(acc: float) -> int:
        if rng.random() < acc:
            return truth
        return int((truth + rng.integers(1, C)) % C)

    if profile == "expert":
        return noisy(0.95)
    if profile == "average":
        return noisy(0.75)
    if profile == "confuser":
        planted = confusions[who]
        if truth in planted and rng.random() < 0.9:
            return planted[truth]
        return noisy(0.85)
    if profile == "lazy":
        return 0 if rng.random() < 0.5 else noisy(0.8)
    return int(rng.integers(C))  # spammer


def simulate(y: np.ndarray, confusions: dict, per_item: int, seed: int) -> tuple[pd.DataFrame, dict[int, int]]:
    rng = np.random.default_rng(seed)
    C = int(y.max()) + 1
    names = list(PROFILES)
    rows = []
    for item, t in enumerate(y):
        for who in rng.choice(names, per_item, replace=False):
            rows.append((item, str(who), answer(PROFILES[who], str(who), int(t), C, confusions, rng)))
    gold_items = rng.choice(len(y), int(round(GOLD_SHARE * len(y))), replace=False)
    return pd.DataFrame(rows, columns=["item", "source", "label"]), {int(i): int(y[i]) for i in gold_items}


def plain_ds(votes: pd.DataFrame, C: int, gold: dict[int, int]) -> pd.Series:
    v, items, _ = Votes.from_frame(votes, n_classes=C)
    pos = {it: i for i, it in enumerate(items)}
    model = DawidSkene().fit(v, gold={pos[i]: c for i, c in gold.items() if i in pos})
    return pd.Series(model.predict(), index=items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-glad", action="store_true", help="skip crowd-kit GLAD (the slow one)")
    parser.add_argument("--slow-seeds", type=int, default=2,
                        help="run crowd-kit GLAD and MACE (10-60 s per fit on 2 cores) on the first N seeds only")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from crowdkit.aggregation import GLAD, MACE
    from crowdkit.aggregation import DawidSkene as CKDawidSkene

    per: dict[tuple[str, str, str], list[float]] = {}

    def add(task, system, metric, value):
        per.setdefault((task, system, metric), []).append(float(value))

    for task, (y, confusions) in tasks().items():
        C = int(y.max()) + 1
        for regime, per_item in (("sparse", 2), ("dense", 5)):
            name = f"{task}-{regime}"
            for seed in range(args.seeds):
                votes, gold = simulate(y, confusions, per_item, seed)
                test = np.array([i for i in range(len(y)) if i not in gold])

                def score(system: str, pred: pd.Series, seconds: float) -> None:
                    p = pred.reindex(test)
                    add(name, system, "accuracy", float((p.to_numpy() == y[test]).mean()))
                    add(name, system, "fit seconds", seconds)

                t = time.perf_counter()
                stage = CrowdAggregator().fit(votes, C, gold)
                score("labelloop-stage", stage.predict(), time.perf_counter() - t)
                t = time.perf_counter()
                score("labelloop-DS-gold", plain_ds(votes, C, gold), time.perf_counter() - t)
                t = time.perf_counter()
                # the former rule: point estimate below 0.7 after 3 gold answers -> excluded (items only they
                # answered keep their votes)
                bad = gold_accuracy(votes, gold).query("n_gold >= 3 and accuracy < 0.7").index
                good = ~votes["source"].isin(bad)
                kept = votes[good | ~votes["item"].isin(votes.loc[good, "item"])]
                score("labelloop-point-flags", plain_ds(kept, C, gold), time.perf_counter() - t)
                t = time.perf_counter()
                score("labelloop-one-coin", CrowdAggregator(method="one_coin").fit(votes, C, gold).predict(),
                      time.perf_counter() - t)

                data = votes.rename(columns={"item": "task", "source": "worker"})
                t = time.perf_counter()
                score("crowdkit-DawidSkene", CKDawidSkene(n_iter=100).fit_predict(data), time.perf_counter() - t)
                if seed < args.slow_seeds:
                    t = time.perf_counter()
                    score("crowdkit-MACE", MACE(random_state=seed).fit_predict(data), time.perf_counter() - t)
                if seed < args.slow_seeds and not args.no_glad:
                    t = time.perf_counter()
                    score("crowdkit-GLAD", GLAD(n_iter=30).fit_predict(data), time.perf_counter() - t)

                # quality judgements of the stage
                acc = stage.gold_accuracy_
                honest = [w for w, p in PROFILES.items() if p in HONEST and w in acc.index]
                add(name, "labelloop-stage", "honest flagged share", float(acc.loc[honest, "flagged"].mean()))
                point = [w for w in honest if acc.loc[w, "n_gold"] >= 3 and acc.loc[w, "accuracy"] < 0.7]
                add(name, "labelloop-point-flags", "honest flagged share", len(point) / len(honest))
                found = set(zip(stage.confusions_["annotator"], stage.confusions_["true_class"],
                                stage.confusions_["answered_class"]))
                planted = [(w, k, l) for w, m in confusions.items() for k, l in m.items()]
                add(name, "labelloop-stage", "confusions named share",
                    float(np.mean([p in found for p in planted])))
                add(name, "labelloop-stage", "confusers fully named",
                    float(np.mean([all((w, k, l) in found for k, l in m.items()) for w, m in confusions.items()])))
                add(name, "labelloop-stage", "honest confusions named",
                    float(sum(1 for f in found if PROFILES[f[0]] in HONEST)))
                add(name, "labelloop-stage", "spammers flagged share",
                    float(acc.loc[["spammer0", "spammer1"], "flagged"].mean()))
                print(f"{name} seed {seed}: stage {per[(name, 'labelloop-stage', 'accuracy')][-1]:.3f}, "
                      f"DS-gold {per[(name, 'labelloop-DS-gold', 'accuracy')][-1]:.3f}, "
                      f"point-flags {per[(name, 'labelloop-point-flags', 'accuracy')][-1]:.3f}, "
                      f"crowd-kit DS {per[(name, 'crowdkit-DawidSkene', 'accuracy')][-1]:.3f}; flagged "
                      f"{stage.flagged_}, excluded {stage.excluded_}; named "
                      f"{sorted(f'{a}:{k}->{l}' for a, k, l in found)}", flush=True)

    rows = [row(t, s, m, float(np.mean(v))) for (t, s, m), v in per.items()]
    print(f"\nmeans over seeds 0-{args.seeds - 1}")
    print_table([dict(r, system=r["system"].replace("labelloop-stage", "labelloop")) for r in rows],
                baseline="labelloop-DS-gold")
    rows += [row(t, s, m + " std", float(np.std(v))) for (t, s, m), v in per.items()]
    print("wrote", write_results("crowd_quality", rows))


if __name__ == "__main__":
    main()
