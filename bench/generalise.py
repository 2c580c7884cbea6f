"""Does the self-training loop generalise? labelloop vs supervised-only vs sklearn, five offline data sets.

One run, same data, same labeled subsets for every system:

- ``labelloop``: the pipeline's loop in memory -- ``SelfTrainingCommittee.from_config`` runs the model stage
  (``labeling.self_train.self_train_turn``, with its fallback check) and the route stage's selection
  (``labeling.pseudo.teach_from_outputs``: the committee mixed with label spreading, class-balanced) turn after
  turn, with a default config's ``self_training`` parameters, around the committee the pipeline builds
  (``models.inputs.build_committee``: MLP for tabular and text embeddings, CNN for images -- the modality
  defaults). The one difference from a pipeline run: the label graph is built on the input features, where the
  route stage uses the committee's stored embeddings;
- ``supervised``: the same committee on the same labels only (the loop's first model stage, the very same fit);
- ``sklearn (best)``: the best mean over SelfTrainingClassifier(LogisticRegression) with threshold 0.9 and with
  k_best, and LabelSpreading(knn, 7, 0.2) -- every configuration is also written as ``config_test_accuracy_%``.

Data sets (all ship offline): ``breast_cancer 1:3`` (binary, subsampled to a 1:3 ratio), ``wine`` (3 classes,
178 items), ``digits`` (8x8 images, CNN), ``fortunes`` (Debian fortune files computers / politics / science /
men-women through the packaged MiniLM, ANCHORS.md protocol), ``blobs25`` (make_classification, 25 classes).
Fixed stratified 70/30 split (random_state=0); seeds change the stratified labeled subset of the pool at
2 / 5 / 10 % (at least one label per class and five in all: one per fold).

    python bench/generalise.py [--seeds 5] [--jobs 2] [--datasets digits,wine]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "examples" / "fortunes")]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
from _common import print_table, row, write_results  # noqa: E402

RATES = (0.02, 0.05, 0.10)
DATASETS = ("breast_cancer 1:3", "wine", "digits", "fortunes", "blobs25")
CACHE = ROOT / "bench" / "results" / "cache"


def load(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """``(X, y, modality)``; images are (n, 1, 8, 8) in [0, 1], the rest feature rows."""
    from sklearn import datasets
    from sklearn.preprocessing import StandardScaler

    if name == "breast_cancer 1:3":
        X, y = datasets.load_breast_cancer(return_X_y=True)
        rng = np.random.default_rng(0)
        keep = np.r_[rng.choice(np.flatnonzero(y == 0), int((y == 1).sum()) // 3, replace=False), np.flatnonzero(y == 1)]
        return StandardScaler().fit_transform(X[keep]), y[keep], "tabular"
    if name == "wine":
        X, y = datasets.load_wine(return_X_y=True)
        return StandardScaler().fit_transform(X), y, "tabular"
    if name == "digits":
        X, y = datasets.load_digits(return_X_y=True)
        return (X / 16.0).reshape(-1, 1, 8, 8), y, "image"
    if name == "blobs25":
        X, y = datasets.make_classification(3000, 20, n_informative=12, n_redundant=4, n_classes=25,
                                            n_clusters_per_class=1, class_sep=2.0, random_state=0)
        return StandardScaler().fit_transform(X), y, "tabular"
    if name == "fortunes":
        from prepare import load_fortunes

        from labelloop.models.embed import TextEmbedder

        texts, y = load_fortunes()
        X = TextEmbedder(cache_dir=CACHE / "minilm").encode(texts)
        return np.asarray(X, dtype=np.float32), np.asarray(y), "text"
    raise ValueError(f"unknown data set {name!r}; expected one of {DATASETS}")


def loop_for(modality: str, n_classes: int, seed: int):
    """The pipeline's self-training loop with a config's defaults: ``SelfTrainingCommittee.from_config`` around
    the committee the pipeline builds for this modality (the modality's default model)."""
    from labelloop.labeling.pseudo import SelfTrainingCommittee

    config = _config(modality, n_classes, seed)
    return SelfTrainingCommittee.from_config(config, committee_for(modality, n_classes, seed))


def committee_for(modality: str, n_classes: int, seed: int):
    """The committee the pipeline builds from its config for this modality (the modality's default model)."""
    from labelloop.models.inputs import build_committee

    return build_committee(_config(modality, n_classes, seed))


def _config(modality: str, n_classes: int, seed: int):
    from labelloop.config import LabelloopConfig

    model = "cnn" if modality == "image" else "mlp"
    return LabelloopConfig.model_validate({
        "dataset": {"name": "bench", "classes": [f"c{i}" for i in range(n_classes)], "modality": modality},
        # patience: null -- with 2-5 % labels a fold validates on 1-5 items, and early stopping on them stops
        # at epoch 1 (an untrained, uniform committee; reported to the committee side). Train min_steps instead.
        "training": {"model": model, "seed": seed, "patience": None},
        "self_training": {"enabled": True},
    })


def one_run(name: str, rate: float, seed: int) -> list[tuple]:
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    X, y, modality = load(name)
    n_classes = int(y.max()) + 1
    Xp, Xt, yp, yt = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    n_lab = max(n_classes, 5, int(round(rate * len(yp))))  # the committee needs one item per fold
    lab, _ = train_test_split(np.arange(len(yp)), train_size=n_lab, stratify=yp, random_state=seed)
    yl = np.full(len(yp), -1)
    yl[lab] = yp[lab]
    flat_p, flat_t = Xp.reshape(len(Xp), -1), Xt.reshape(len(Xt), -1)
    out = []

    t = time.perf_counter()
    st = loop_for(modality, n_classes, seed).fit(Xp, yl)
    secs = time.perf_counter() - t
    out.append(("labelloop", float((st.predict(Xt) == yt).mean()), secs, st.fallback_ is not None
                and not st.fallback_.use_pseudo))
    sup = st.supervised_.predict_proba(Xt).argmax(axis=1)
    out.append(("supervised", float((sup == yt).mean()), float("nan"), False))
    k_best = max(10, int(0.05 * len(yp)))
    anchors = {
        "SelfTraining LogReg thr0.9": lambda: SelfTrainingClassifier(LogisticRegression(max_iter=2000), threshold=0.9),
        f"SelfTraining LogReg kbest{k_best}": lambda: SelfTrainingClassifier(
            LogisticRegression(max_iter=2000), criterion="k_best", k_best=k_best),
        "LabelSpreading knn7 a0.2": lambda: LabelSpreading(kernel="knn", n_neighbors=7, alpha=0.2, max_iter=100),
    }
    for system, make in anchors.items():
        t = time.perf_counter()
        acc = float((make().fit(flat_p, yl).predict(flat_t) == yt).mean())
        out.append((system, acc, time.perf_counter() - t, False))
    return [(name, rate, seed, *o) for o in out]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds first-seed .. first-seed + seeds - 1; with a first seed > 0 runs are appended")
    ap.add_argument("--summarise", action="store_true",
                    help="only print the table from the runs finished so far (bench/results/generalise.runs.jsonl)")
    args = ap.parse_args()
    import json

    from joblib import Parallel, delayed

    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    log = ROOT / "bench" / "results" / "generalise.runs.jsonl"
    t0 = time.perf_counter()
    if not args.summarise:
        log.parent.mkdir(parents=True, exist_ok=True)
        if args.first_seed == 0:
            log.write_text("", encoding="utf-8")
        if "fortunes" in names:
            load("fortunes")  # embed once in this process (cached) before the workers start
        # cheap data sets first, one seed of every row before the next seed: a cut-short run still covers the rows
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        jobs = [(n, r, s) for s in seeds for n in names for r in RATES]
        for run in Parallel(n_jobs=args.jobs, return_as="generator_unordered")(delayed(one_run)(*j) for j in jobs):
            with log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(run) + "\n")
            print(f"[{time.perf_counter() - t0:6.0f} s] {run[0][0]} {run[0][1]:.0%} seed {run[0][2]}: "
                  + ", ".join(f"{x[3]} {100 * x[4]:.1f}" for x in run), flush=True)
    flat = [tuple(x) for line in log.read_text(encoding="utf-8").splitlines() if line for x in json.loads(line)]
    summarise(flat, names)


def summarise(flat: list[tuple], names: list[str]) -> None:
    rows, lines = [], []
    wins_sup = wins_anchor = total = 0
    for n in names:
        for rate in RATES:
            task = f"{n} {rate:.0%}"
            here = [x for x in flat if x[0] == n and abs(x[1] - rate) < 1e-9]
            if not here:
                continue
            seeds = len({x[2] for x in here})
            systems = list(dict.fromkeys(x[3] for x in here))
            mean = {s: 100 * np.mean([x[4] for x in here if x[3] == s]) for s in systems}
            anchor_sys = [s for s in systems if s not in ("labelloop", "supervised")]
            best = max(anchor_sys, key=lambda s: mean[s])
            fallbacks = sum(bool(x[6]) for x in here if x[3] == "labelloop")
            secs = np.mean([x[5] for x in here if x[3] == "labelloop"])
            rows += [row(task, "labelloop", "test_accuracy_%", mean["labelloop"]),
                     row(task, "supervised", "test_accuracy_%", mean["supervised"]),
                     row(task, "sklearn (best)", "test_accuracy_%", mean[best]),
                     row(task, "labelloop", "fallbacks", fallbacks),
                     row(task, "labelloop", "seeds", seeds),
                     row(task, "labelloop", "fit_s", secs)]
            rows += [row(task, s, "config_test_accuracy_%", mean[s]) for s in anchor_sys]
            total += 1
            wins_sup += mean["labelloop"] >= mean["supervised"] - 1e-9
            wins_anchor += mean["labelloop"] >= mean[best] - 1e-9
            lines.append(f"{task:<24} {mean['labelloop']:>9.1f} {mean['supervised']:>10.1f} {mean[best]:>9.1f}  "
                         f"{best:<28} {fallbacks:>3}/{seeds} {secs:>7.1f}")
    print(f"\n{'task':<24} {'labelloop':>9} {'supervised':>10} {'sklearn':>9}  {'best sklearn config':<28} "
          f"{'fallbk':>5} {'fit s':>7}")
    print("\n".join(lines))
    print(f"\nlabelloop >= supervised on {wins_sup}/{total} rows; >= best sklearn on {wins_anchor}/{total} rows\n")
    print_table([r for r in rows if r["metric"] == "test_accuracy_%"], baseline="supervised")
    print(f"\nwrote {write_results('generalise', rows)}")


if __name__ == "__main__":
    main()
