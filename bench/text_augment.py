"""Text augmentation benchmark: the MiniLM MLP committee on fortunes, with and without augmented copies.

Data: the ANCHORS.md fortunes four-topic protocol (computers, politics, science, men-women from Debian's
/usr/share/games/fortunes); 70/30 stratified split per seed; a stratified 5 % or 10 % of the train split is
labeled (gold), the rest unused. Every system trains on the same labeled items and is scored on the same test
split; inputs are MiniLM embeddings from the training path (``labelloop.models.embed.TextEmbedder``, the one embedder).

Systems (one run, interleaved per seed):
- ``mlp``: labelloop's k-fold MLP committee (config defaults: 5 folds, hidden [256], dropout 0.1), no copies;
- ``mlp+backtranslation``: + one Apertium round trip per pivot (eng-spa-eng, eng-cat-eng);
- ``mlp+synonyms``: + two WordNet synonym-replacement copies (p 0.15);
- ``mlp+both``: all four copies;
- anchor learner ``sklearn-logreg`` / ``sklearn-logreg+both``: scikit-learn LogisticRegression on the same
  embeddings without / with the same copies (does the gain hold for a learner labelloop does not own?);
- ``tfidf-logreg`` / ``tfidf-logreg+both``: the ANCHORS.md bag-of-words downstream model on the texts, where a
  paraphrase brings new tokens instead of a nearby embedding.

Rows: task ``fortunes-5%`` / ``fortunes-10%``, system, metric (``test accuracy`` mean over seeds,
``test accuracy std``, ``gain vs no copies (points)``, ``seeds with a gain``, ``copies per item``); the
measured why (``copy-original cosine`` of MiniLM embeddings beside the ``nearest labeled neighbour cosine``,
and the share of copies / originals a reference LogisticRegression trained on the whole gold train split
puts in the original's class); augmentation cost (``augment``: texts/s cold, and the cache's second pass).
Results in bench/results/text_augment.json.

Run: ``PYTHONPATH=. .venv/bin/python bench/text_augment.py [--seeds 5]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "fortunes"), str(ROOT / "bench")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import row, write_results  # noqa: E402
from prepare import load_fortunes, split  # noqa: E402

from labelloop.config import TrainingConfig  # noqa: E402
from labelloop.models.ensemble import KFoldCommittee  # noqa: E402
from labelloop.models.embed import TextEmbedder  # noqa: E402
from labelloop.models.text_augment import AugmentedRows, TextAugmenter  # noqa: E402

CACHE = ROOT / "bench" / "results" / "cache"
FRACTIONS = (0.05, 0.10)
AUGMENTERS = {
    "backtranslation": [{"BackTranslation": {"pivots": ["spa", "cat"]}}],
    "synonyms": [{"SynonymReplacement": {"p": 0.15, "copies": 2}}],
}


def committee(seed: int) -> KFoldCommittee:
    """The committee a `training: {model: mlp}` config builds (its defaults), on CPU."""
    t = TrainingConfig(model="mlp", seed=seed)
    return KFoldCommittee(
        model="mlp", model_params=t.mlp.model_dump(), n_splits=t.folds, epochs=t.epochs, min_steps=t.min_steps,
        batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay, schedule=t.schedule, patience=t.patience,
        n_classes=4, device="cpu", seed=seed,
    )


def rows_for(idx: np.ndarray, copies: dict[int, list[tuple[int, float]]], X_copy: np.ndarray) -> AugmentedRows:
    """The copies of the labeled items ``idx`` (positions into all texts), as rows for the committee."""
    origin, pos, weight = [], [], []
    for local, item in enumerate(idx):
        for j, w in copies.get(int(item), []):
            origin.append(local)
            pos.append(j)
            weight.append(w)
    return AugmentedRows(X_copy[pos], np.asarray(origin, np.int64), np.asarray(weight, np.float32))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    texts, y = load_fortunes()
    index = {t: i for i, t in enumerate(texts)}
    t0 = time.perf_counter()
    X = TextEmbedder(cache_dir=CACHE / "minilm").encode(texts)
    print(f"{len(texts)} fortunes; MiniLM embeddings in {time.perf_counter() - t0:.1f} s (cached after the first run)")

    # Which items are ever labeled: the union over seeds and fractions (same draws as below).
    plans = []
    for seed in range(args.seeds):
        train_texts, train_y, test_texts, test_y = split(texts, y, seed)
        train_pos = np.array([index[t] for t in train_texts])
        test_pos = np.array([index[t] for t in test_texts])
        for frac in FRACTIONS:
            lab, _ = train_test_split(train_pos, train_size=frac, stratify=train_y, random_state=seed)
            plans.append((seed, frac, np.asarray(lab), test_pos))
    labeled = sorted({int(i) for _, _, lab, _ in plans for i in lab})

    rows: list[dict] = []
    copies_of: dict[str, dict[int, list[tuple[int, float]]]] = {}
    flat_all: list[str] = []
    for name, entries in AUGMENTERS.items():
        for label, wipe in (("cold", True), ("cached", False)):
            cache = CACHE / "text-augment" / f"bench-{name}"
            if wipe and cache.exists():
                import shutil

                shutil.rmtree(cache)
            aug = TextAugmenter(entries, cache_dir=cache)
            t0 = time.perf_counter()
            per_text = aug.copies([texts[i] for i in labeled])
            secs = time.perf_counter() - t0
            rows.append(row("augment", name, f"texts/s ({label})", len(labeled) / secs))
            print(f"{name}: {len(labeled)} texts {label} in {secs:.1f} s (computed {aug.computed_}, cached {aug.cached_})")
        mapping: dict[int, list[tuple[int, float]]] = {}
        for item, cps in zip(labeled, per_text):
            mapping[item] = []
            for text, w in cps:
                mapping[item].append((len(flat_all), w))
                flat_all.append(text)
        copies_of[name] = mapping
        n_copies = sum(len(v) for v in mapping.values())
        rows.append(row("augment", name, "copies per item", n_copies / len(labeled)))
    copies_of["both"] = {i: copies_of["backtranslation"].get(i, []) + copies_of["synonyms"].get(i, []) for i in labeled}
    t0 = time.perf_counter()
    X_copy = TextEmbedder(cache_dir=CACHE / "minilm").encode(flat_all)
    print(f"{len(flat_all)} copies embedded in {time.perf_counter() - t0:.1f} s")

    acc: dict[tuple[str, str], list[float]] = {}
    n_copies: dict[tuple[str, str], list[float]] = {}
    diag: dict[tuple[str, str, str], list[float]] = {}
    reference: dict[int, LogisticRegression] = {}
    for seed, frac, lab, test_pos in plans:
        task = f"fortunes-{int(round(frac * 100))}%"
        Xl, yl, Xt, yt = X[lab], y[lab], X[test_pos], y[test_pos]
        # Why copies help or not, measured: how far a copy moves from its original in embedding space (vs the
        # nearest other labeled item), and whether a reference model trained on the whole gold train split
        # still puts the copy in its original's class.
        if seed not in reference:
            train_pos = np.setdiff1d(np.arange(len(texts)), test_pos)
            reference[seed] = LogisticRegression(C=10, max_iter=3000).fit(X[train_pos], y[train_pos])
        sims = Xl @ Xl.T
        np.fill_diagonal(sims, -1.0)
        diag.setdefault((task, "originals", "nearest labeled neighbour cosine"), []).append(float(sims.max(1).mean()))
        diag.setdefault((task, "originals", "reference model keeps label"), []).append(
            float((reference[seed].predict(Xl) == yl).mean()))
        for kind in ("backtranslation", "synonyms"):
            extra = rows_for(lab, copies_of[kind], X_copy)
            diag.setdefault((task, kind, "copy-original cosine"), []).append(
                float((extra.X * Xl[extra.origin]).sum(1).mean()))
            diag.setdefault((task, kind, "reference model keeps label"), []).append(
                float((reference[seed].predict(extra.X) == yl[extra.origin]).mean()))
        for system in ("mlp", "mlp+backtranslation", "mlp+synonyms", "mlp+both"):
            kind = system.partition("+")[2]
            extra = rows_for(lab, copies_of[kind], X_copy) if kind else None
            t0 = time.perf_counter()
            model = committee(seed).fit(Xl, yl, augmented=extra)
            a = float((model.predict(Xt) == yt).mean())
            acc.setdefault((task, system), []).append(a)
            n_copies.setdefault((task, system), []).append(len(extra) / len(lab) if extra is not None else 0.0)
            print(f"seed {seed} {task} {system:<22} acc {a:.4f}  ({time.perf_counter() - t0:.1f} s)", flush=True)
        # A bag-of-words student, where a paraphrase brings new tokens rather than a nearby point: the ANCHORS.md
        # downstream model (TF-IDF 1-2-grams, min_df 2, sublinear; LogisticRegression C=10) on the same items.
        for system, kind in (("tfidf-logreg", None), ("tfidf-logreg+both", "both")):
            extra = rows_for(lab, copies_of[kind], X_copy) if kind else None
            docs = [texts[i] for i in lab] + ([flat_all[j] for i in lab for j, _ in copies_of[kind].get(int(i), [])]
                                              if kind else [])
            labels = np.concatenate([yl, yl[extra.origin]]) if extra is not None else yl
            vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
            clf = LogisticRegression(C=10, max_iter=3000).fit(vec.fit_transform(docs), labels)
            a = float((clf.predict(vec.transform([texts[i] for i in test_pos])) == yt).mean())
            acc.setdefault((task, system), []).append(a)
            print(f"seed {seed} {task} {system:<22} acc {a:.4f}", flush=True)
        for system, kind in (("sklearn-logreg", None), ("sklearn-logreg+both", "both")):
            extra = rows_for(lab, copies_of[kind], X_copy) if kind else None
            Xf = np.concatenate([Xl, extra.X]) if extra is not None else Xl
            yf = np.concatenate([yl, yl[extra.origin]]) if extra is not None else yl
            clf = LogisticRegression(C=10, max_iter=3000).fit(Xf, yf)
            a = float((clf.predict(Xt) == yt).mean())
            acc.setdefault((task, system), []).append(a)
            print(f"seed {seed} {task} {system:<22} acc {a:.4f}", flush=True)

    for (task, system), values in acc.items():
        base = acc[(task, system.partition("+")[0])]
        rows.append(row(task, system, "test accuracy", np.mean(values)))
        rows.append(row(task, system, "test accuracy std", np.std(values)))
        rows.append(row(task, system, "gain vs no copies (points)", 100 * (np.mean(values) - np.mean(base))))
        rows.append(row(task, system, "seeds with a gain", float(np.sum(np.array(values) > np.array(base)))))
        if (task, system) in n_copies:
            rows.append(row(task, system, "copies per item", np.mean(n_copies[(task, system)])))
    for (task, system, metric), values in diag.items():
        rows.append(row(task, system, metric, np.mean(values)))
    path = write_results("text_augment", rows)

    print(f"\nfortunes four-topic, MiniLM embeddings, {args.seeds} seeds; test accuracy % (mean ± std), "
          "gain in points and ratio vs the same learner without copies")
    print(f"{'task':<14} {'system':<22} {'accuracy %':>14} {'gain (pts)':>11} {'ratio':>7} {'seeds +':>8}")
    for (task, system), values in acc.items():
        base = acc[(task, system.partition("+")[0])]
        m, s = 100 * np.mean(values), 100 * np.std(values)
        wins = int(np.sum(np.array(values) > np.array(base)))
        print(f"{task:<14} {system:<22} {m:>8.2f} ± {s:<4.2f} {m - 100 * np.mean(base):>+11.2f} "
              f"{np.mean(values) / np.mean(base):>7.3f} {wins:>5}/{len(values)}")
    print("\nwhy: embedding-space distance of the copies and their labels under a full-gold reference model")
    for (task, system, metric), values in diag.items():
        print(f"{task:<14} {system:<22} {metric:<34} {np.mean(values):.3f}")
    for r in rows:
        if r["task"] == "augment":
            print(f"augment {r['system']:<16} {r['metric']:<20} {r['value']:.1f}")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
