"""Tasks of the weak-labeling stage: apply LFs, fit the label model, store ``weak`` rows.

Pure transforms are plain tasks without retries; nothing here talks to a
network. Cache policy is NO_CACHE on purpose: the inputs are a store and
live LF objects, and idempotence comes from the store's dedupe keys instead.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from labelloop.config import LabelloopConfig
from labelloop.labeling.aggregate import DawidSkene, MajorityVote, OneCoinDawidSkene, Votes
from labelloop.labeling.analysis import LFAnalysis
from labelloop.labeling.apply import LFApplier
from labelloop.labeling.lf import LabelingFunction
from labelloop.store import LabelIn, Store

__all__ = [
    "LF_SET_PREFIX",
    "load_items_task",
    "apply_lfs_task",
    "fit_label_model_task",
    "analyse_task",
    "store_weak_labels_task",
    "known_labels",
]

# Weak rows are written with source "lfs@<version>"; older versions are recognised by this prefix.
LF_SET_PREFIX = "lfs@"


@task(cache_policy=NO_CACHE)
def load_items_task(store: Store, dataset: str) -> pd.DataFrame:
    """Items the LFs see: id, text, uri, path, meta, split, external_id."""
    return store.items(dataset, columns=["id", "external_id", "text", "uri", "path", "meta", "split"])


@task(cache_policy=NO_CACHE)
def apply_lfs_task(lfs: list[LabelingFunction], items: pd.DataFrame, config: LabelloopConfig) -> dict[str, Any]:
    """The label matrix, with fault counts and errors naming LF and item id."""
    applier = LFApplier(lfs, batch_size=config.weak.batch_size, n_jobs=config.weak.n_jobs, progress=False,
                        n_classes=len(config.dataset.classes))
    records = items.to_dict("records")
    L = applier.apply(records, ids=items["id"].tolist())
    return {"L": L, "fault_counts": applier.fault_counts_, "errors": [str(e) for e in applier.errors_]}


def known_labels(store: Store, dataset: str, item_ids: np.ndarray, n_classes: int,
                 kinds: tuple[str, ...] = ("gold", "expert")) -> np.ndarray:
    """Class id per item resolved from its standing gold/expert opinions (gold first), ``-1`` where none.

    The store's resolution over ``kinds`` only (for anchoring the label model and for the LF analysis).
    """
    resolved = store.resolve(dataset, n_classes, precedence=list(kinds))
    y = np.full(len(item_ids), -1, dtype=np.int64)
    position = pd.Series(np.arange(len(item_ids)), index=item_ids)
    found = np.isin(resolved.item_ids, item_ids)
    y[position.loc[resolved.item_ids[found]].to_numpy()] = resolved.labels[found]
    return y


@task(cache_policy=NO_CACHE)
def fit_label_model_task(L: np.ndarray, y_known: np.ndarray, config: LabelloopConfig) -> Any:
    """Fit the configured label model on the LF votes, anchored on known labels when asked."""
    weak = config.weak
    votes = Votes.from_matrix(L, n_classes=len(config.dataset.classes))
    if weak.label_model == "majority":
        model = MajorityVote(tie_break=weak.tie_break, random_state=config.training.seed, proba=weak.majority_proba,
                             tie_model=OneCoinDawidSkene(n_iter=weak.n_iter, smoothing=weak.smoothing))
        model.fit(votes, gold=_gold(weak, y_known))
        if weak.tie_break != "model":
            # Learned LF accuracies go beside the empirical ones (agreement with the majority is no estimate):
            # from a one-coin fit on the same votes, whose convergence is then what the report states.
            learned = OneCoinDawidSkene(n_iter=weak.n_iter, smoothing=weak.smoothing).fit(votes, gold=_gold(weak, y_known))
            model.accuracies_, model.tie_model_ = learned.accuracies_, learned
            model.n_iter_, model.converged_, model.loss_history_ = learned.n_iter_, learned.converged_, learned.loss_history_
        return model
    if weak.label_model == "one_coin":
        model = OneCoinDawidSkene(n_iter=weak.n_iter, smoothing=weak.smoothing)
    else:
        model = DawidSkene(n_iter=weak.n_iter, smoothing=weak.smoothing)
    return model.fit(votes, gold=_gold(weak, y_known))


def _gold(weak: Any, y_known: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    if weak.use_gold and (y_known >= 0).any():
        idx = np.flatnonzero(y_known >= 0)
        return idx, y_known[idx]
    return None


@task(cache_policy=NO_CACHE)
def analyse_task(L: np.ndarray, lfs: list[LabelingFunction], y_known: np.ndarray, model: Any,
                 fault_counts: dict[str, int]) -> pd.DataFrame:
    """The LF analysis table (empirical accuracy where gold exists, learned accuracy from the model)."""
    analysis = LFAnalysis(L, [lf.name for lf in lfs])
    summary = analysis.lf_summary(Y=y_known if (y_known >= 0).any() else None, model=model)
    summary.insert(1, "Kind", [lf.kind for lf in lfs])
    summary["Faults"] = [fault_counts.get(lf.name, 0) for lf in lfs]
    return summary


@task(cache_policy=NO_CACHE)
def store_weak_labels_task(store: Store, dataset: str, item_ids: np.ndarray, L: np.ndarray, posteriors: np.ndarray,
                           version: str, run_id: str, labels: np.ndarray | None = None) -> dict[str, int]:
    """Append ``weak`` rows for covered items; retract older LF sets' opinions on items this set no longer covers.

    Dedupe keys hold the LF-set version, the item and the rounded probabilities,
    so running the stage again on unchanged data writes nothing.
    """
    source = f"{LF_SET_PREFIX}{version}"
    covered = (L != -1).any(axis=1)

    def rows():
        # The label is the model's prediction (a majority tie decided by tie_break), not the first tied class.
        chosen = np.asarray(labels) if labels is not None else np.asarray(posteriors).argmax(1)
        for item_id, p, label in zip(item_ids[covered], posteriors[covered], chosen[covered]):
            p = np.asarray(p, dtype=np.float32)
            digest = hashlib.sha1(np.round(p, 4).tobytes()).hexdigest()[:10]
            yield LabelIn(int(item_id), int(label), "weak", source, confidence=float(p.max()), probs=p,
                          run_id=run_id, dedupe_key=f"weak:{source}:{int(item_id)}:{digest}")

    written = store.add_labels(rows())
    retracted = 0
    standing = store.standing(dataset, kinds=["weak"], decode=False)
    if not standing.empty:
        uncovered = set(item_ids[~covered].tolist())
        stale = standing[standing["source"].str.startswith(LF_SET_PREFIX) & (standing["source"] != source)
                         & standing["item_id"].isin(uncovered)]
        if not stale.empty:
            retracted = store.add_labels(
                LabelIn(int(r.item_id), -1, "weak", r.source, run_id=run_id,
                        dedupe_key=f"weak-retract:{r.source}:{int(r.item_id)}:{int(r.id)}")
                for r in stale.itertuples()
            )
    return {"written": int(written), "retracted": int(retracted), "covered": int(covered.sum())}
