"""Weak supervision benchmark: the fortunes protocol of ANCHORS.md, labelloop vs Snorkel in one run.

Data: Debian's fortune files computers / politics / science / men-women (examples/fortunes/prepare.py);
70/30 stratified split per seed (0-4); the ten keyword LFs of examples/fortunes/labelloop.yaml run on the
train split with gold hidden.

Systems, same label matrix:
* labelloop: one-coin Dawid-Skene label model (abstains modeled) on the covered items; then coverage grows as in
  the pipeline's model stage: a LogisticRegression over MiniLM sentence embeddings, trained on the covered items'
  labels, gives the uncovered train items soft labels (labelloop.labeling.coverage.expand_coverage);
* snorkel LabelModel (500 epochs, lr 0.01) and MajorityLabelVoter, covered items only (as in ANCHORS.md).

Metrics: label accuracy on covered train items; downstream TF-IDF (1-2-grams, min_df=2, sublinear tf) +
LogisticRegression(C=10) trained on the probabilistic labels (each row repeated per class, weighted by its
probability) and scored on the gold test split.

Run: ``python bench/weak.py`` (snorkel from the `bench` extra; MiniLM embeddings cached in bench/results/cache).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "fortunes"), str(ROOT / "bench")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import print_table, row, write_results  # noqa: E402
from prepare import CLASSES, load_fortunes, split  # noqa: E402

from labelloop.config import load_config  # noqa: E402
from labelloop.labeling.aggregate import MajorityVote, OneCoinDawidSkene, Votes  # noqa: E402
from labelloop.labeling.apply import LFApplier  # noqa: E402
from labelloop.labeling.coverage import expand_coverage  # noqa: E402
from labelloop.labeling.lf import lfs_from_config  # noqa: E402
from labelloop.models.embed import TextEmbedder  # noqa: E402

SEEDS = range(5)


def downstream(train_texts, probs, mask, test_texts, test_y) -> float:
    """TF-IDF + LogReg(C=10) on the masked items' probabilistic labels; accuracy on gold test."""
    texts = [t for t, m in zip(train_texts, mask) if m]
    P = probs[mask]
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    X = vec.fit_transform(texts)
    C = P.shape[1]
    X_rep = sp.vstack([X] * C)
    y_rep = np.repeat(np.arange(C), len(P))
    w = P.T.ravel()
    keep = w > 0
    clf = LogisticRegression(C=10, max_iter=3000).fit(X_rep[keep], y_rep[keep], sample_weight=w[keep])
    return float((clf.predict(vec.transform(test_texts)) == test_y).mean())


def main() -> None:
    warnings.filterwarnings("ignore")
    from snorkel.labeling.model import LabelModel, MajorityLabelVoter

    config = load_config(ROOT / "examples" / "fortunes" / "labelloop.yaml")
    lfs = lfs_from_config(config.weak.lfs, CLASSES)
    texts, y = load_fortunes()
    t0 = time.perf_counter()
    embeddings = TextEmbedder(ROOT / "bench" / "results" / "cache").encode(texts)
    print(f"{len(texts)} fortunes; MiniLM embeddings in {time.perf_counter() - t0:.1f} s (cached after the first run)")
    position = {t: i for i, t in enumerate(texts)}

    per: dict[tuple[str, str, str], list[float]] = {}

    def add(task, system, metric, value):
        per.setdefault((task, system, metric), []).append(value)

    for seed in SEEDS:
        train_x, train_y, test_x, test_y = split(texts, y, seed)
        L = LFApplier(lfs, progress=False).apply(train_x)
        covered = (L != -1).any(axis=1)
        add("fortunes-coverage", "labelloop", "train coverage", float(covered.mean()))

        t = time.perf_counter()
        P = OneCoinDawidSkene().fit(Votes.from_matrix(L, n_classes=len(CLASSES))).predict_proba()
        fit_s = time.perf_counter() - t
        add("fortunes-label-model", "labelloop", "acc covered train", float((P[covered].argmax(1) == train_y[covered]).mean()))
        add("fortunes-label-model", "labelloop", "fit seconds", fit_s)
        add("fortunes-downstream-covered", "labelloop", "test accuracy", downstream(train_x, P, covered, test_x, test_y))
        E = embeddings[[position[t] for t in train_x]]
        grown, labeled = expand_coverage(P, covered, E)
        add("fortunes-downstream", "labelloop", "test accuracy", downstream(train_x, grown, labeled, test_x, test_y))
        add("fortunes-downstream", "labelloop", "train items labeled", float(labeled.mean()))
        add("fortunes-uncovered", "labelloop", "acc of grown labels", float((grown[~covered].argmax(1) == train_y[~covered]).mean()))

        mv = MajorityVote(tie_break="prior").fit(Votes.from_matrix(L, n_classes=len(CLASSES)))
        add("fortunes-majority", "labelloop", "acc covered train", float((mv.predict()[covered] == train_y[covered]).mean()))

        t = time.perf_counter()
        lm = LabelModel(cardinality=len(CLASSES), verbose=False)
        lm.fit(L, n_epochs=500, lr=0.01, seed=seed, progress_bar=False)
        Ps = lm.predict_proba(L)
        fit_s = time.perf_counter() - t
        add("fortunes-label-model", "snorkel-LabelModel", "acc covered train", float((Ps[covered].argmax(1) == train_y[covered]).mean()))
        add("fortunes-label-model", "snorkel-LabelModel", "fit seconds", fit_s)
        acc = downstream(train_x, Ps, covered, test_x, test_y)  # Snorkel's labels cover only the covered items
        for task in ("fortunes-downstream-covered", "fortunes-downstream"):
            add(task, "snorkel-LabelModel", "test accuracy", acc)

        Pm = MajorityLabelVoter(cardinality=len(CLASSES)).predict_proba(L)
        add("fortunes-majority", "snorkel-MajorityLabelVoter", "acc covered train",
            float((Pm[covered].argmax(1) == train_y[covered]).mean()))
        acc = downstream(train_x, Pm, covered, test_x, test_y)
        for task in ("fortunes-downstream-covered", "fortunes-downstream"):
            add(task, "snorkel-MajorityLabelVoter", "test accuracy", acc)
        print(f"seed {seed}: coverage {covered.mean():.3f}, labelloop covered acc "
              f"{per[('fortunes-label-model', 'labelloop', 'acc covered train')][-1]:.3f}, snorkel "
              f"{per[('fortunes-label-model', 'snorkel-LabelModel', 'acc covered train')][-1]:.3f}; downstream labelloop "
              f"{per[('fortunes-downstream', 'labelloop', 'test accuracy')][-1]:.3f}, snorkel "
              f"{per[('fortunes-downstream', 'snorkel-LabelModel', 'test accuracy')][-1]:.3f}", flush=True)

    rows = [row(task, system, metric, float(np.mean(v))) for (task, system, metric), v in per.items()]
    print(f"\nmeans over seeds {list(SEEDS)} (std in results json)")
    print_table(rows, baseline="snorkel-LabelModel")
    for (task, system, metric), v in per.items():
        rows.append(row(task, system, metric + " std", float(np.std(v))))
    print("wrote", write_results("weak", rows))


if __name__ == "__main__":
    main()
