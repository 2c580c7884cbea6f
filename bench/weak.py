"""Weak supervision benchmark: three fortune-file text tasks, labelloop vs Snorkel in one run.

Tasks (bench/weak_tasks.py, each with its own keyword LFs): ``fortunes4`` (the ANCHORS.md protocol: computers,
politics, science, men-women; the ten LFs of examples/fortunes/labelloop.yaml), ``life5`` (work, law, education,
food, drugs) and ``culture5`` (songs-poems, art, literature, startrek, sports). 70/30 stratified split per seed;
LFs run on the train split with gold hidden.

Systems, same label matrix:
* labelloop: the weak stage's default (majority vote; soft labels 1 to the top class, split among tied ones, as
  Snorkel's MajorityLabelVoter; the stored label of a tie is the class voted most overall);
* labelloop-mv-shares: majority vote with vote shares as soft labels;
* labelloop-model-ties: majority vote with ties decided by a one-coin model fitted on the same votes;
* labelloop-one-coin, labelloop-dawid-skene: the EM label models (500 iterations);
* snorkel-LabelModel (500 epochs, lr 0.01) and snorkel-MajorityLabelVoter.

Metrics: label accuracy on covered train items; downstream TF-IDF (1-2-grams, min_df=2, sublinear tf) +
LogisticRegression(C=10) trained on the covered items' probabilistic labels (each row repeated per class, weighted
by its probability), scored on the gold test split (``<task>-downstream-covered``); for labelloop also with coverage
grown as the pipeline's model stage does (MiniLM embeddings + LogisticRegression label the uncovered train items,
``<task>-downstream``); Spearman correlation of learned vs empirical LF accuracies.

Run: ``python bench/weak.py [--seeds 5] [--tasks fortunes4 life5 culture5] [--no-grow]`` (snorkel from the
`bench` extra; MiniLM embeddings cached in bench/results/cache).
"""

from __future__ import annotations

import argparse
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
from prepare import split  # noqa: E402
from weak_tasks import TASKS, load_task  # noqa: E402

from labelloop.labeling.aggregate import DawidSkene, MajorityVote, OneCoinDawidSkene, Votes  # noqa: E402
from labelloop.labeling.analysis import LFAnalysis  # noqa: E402
from labelloop.labeling.apply import LFApplier  # noqa: E402
from labelloop.labeling.coverage import expand_coverage  # noqa: E402


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


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    ra, rb = np.argsort(np.argsort(a[ok])), np.argsort(np.argsort(b[ok]))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--no-grow", action="store_true", help="skip coverage growth (no MiniLM embeddings)")
    parser.add_argument("--out", default="weak", help="results name: bench/results/NAME.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from snorkel.labeling.model import LabelModel, MajorityLabelVoter

    per: dict[tuple[str, str, str], list[float]] = {}

    def add(task, system, metric, value):
        per.setdefault((task, system, metric), []).append(float(value))

    for task in args.tasks:
        texts, y, classes, lfs = load_task(task)
        C = len(classes)
        position = {t: i for i, t in enumerate(texts)}
        embeddings = None
        if not args.no_grow:
            from labelloop.models.embed import TextEmbedder

            t0 = time.perf_counter()
            embeddings = TextEmbedder(ROOT / "bench" / "results" / "cache" / "minilm").encode(texts)
            print(f"{task}: {len(texts)} texts, {C} classes; MiniLM embeddings in {time.perf_counter() - t0:.1f} s",
                  flush=True)
        for seed in range(args.seeds):
            train_x, train_y, test_x, test_y = split(texts, y, seed)
            L = LFApplier(lfs, progress=False).apply(train_x)
            covered = (L != -1).any(axis=1)
            add(f"{task}-coverage", "labelloop", "train coverage", float(covered.mean()))
            empirical = LFAnalysis(L).lf_empirical_accuracies(train_y)
            votes = Votes.from_matrix(L, n_classes=C)

            def label_source(system: str, P: np.ndarray, fit_s: float, learned: np.ndarray | None = None) -> None:
                add(f"{task}-label-model", system, "acc covered train",
                    float((P[covered].argmax(1) == train_y[covered]).mean()))
                add(f"{task}-label-model", system, "fit seconds", fit_s)
                add(f"{task}-downstream-covered", system, "test accuracy",
                    downstream(train_x, P, covered, test_x, test_y))
                if learned is not None:
                    add(f"{task}-lf-accuracy", system, "spearman learned~emp", spearman(learned, empirical))

            models = {
                "labelloop": MajorityVote(tie_break="prior", proba="winner"),
                "labelloop-mv-shares": MajorityVote(tie_break="prior"),
                "labelloop-model-ties": MajorityVote(tie_break="model", proba="winner"),
                "labelloop-one-coin": OneCoinDawidSkene(n_iter=500),
                "labelloop-dawid-skene": DawidSkene(n_iter=500),
            }
            for system, model in models.items():
                t = time.perf_counter()
                model.fit(votes)
                fit_s = time.perf_counter() - t
                P = model.predict_proba()
                label_source(system, P, fit_s, np.asarray(model.accuracies_))
                if system != "labelloop":
                    add(f"{task}-label-model", system, "converged", float(model.converged_))
                if system == "labelloop" and embeddings is not None:
                    E = embeddings[[position[t] for t in train_x]]
                    grown, labeled = expand_coverage(P, covered, E)
                    add(f"{task}-downstream", system, "test accuracy",
                        downstream(train_x, grown, labeled, test_x, test_y))

            t = time.perf_counter()
            lm = LabelModel(cardinality=C, verbose=False)
            lm.fit(L, n_epochs=500, lr=0.01, seed=seed, progress_bar=False)
            Ps = lm.predict_proba(L)
            label_source("snorkel-LabelModel", Ps, time.perf_counter() - t, lm.get_weights())
            t = time.perf_counter()
            Pm = MajorityLabelVoter(cardinality=C).predict_proba(L)
            label_source("snorkel-MajorityLabelVoter", Pm, time.perf_counter() - t)
            mine = per[(f"{task}-downstream-covered", "labelloop", "test accuracy")][-1]
            print(f"{task} seed {seed}: coverage {covered.mean():.3f}; label acc labelloop "
                  f"{per[(f'{task}-label-model', 'labelloop', 'acc covered train')][-1]:.3f}, snorkel LM "
                  f"{per[(f'{task}-label-model', 'snorkel-LabelModel', 'acc covered train')][-1]:.3f}; downstream "
                  f"labelloop {mine:.3f}, snorkel MV "
                  f"{per[(f'{task}-downstream-covered', 'snorkel-MajorityLabelVoter', 'test accuracy')][-1]:.3f}",
                  flush=True)

    rows = [row(task, system, metric, float(np.nanmean(v))) for (task, system, metric), v in per.items()]
    print(f"\nmeans over seeds 0-{args.seeds - 1} (std in results json)")
    print_table(rows, baseline="snorkel-MajorityLabelVoter")
    rows += [row(task, system, metric + " std", float(np.nanstd(v))) for (task, system, metric), v in per.items()]
    print("wrote", write_results(args.out, rows))


if __name__ == "__main__":
    main()
