"""Tasks of the baseline model stage: resolve, train, store predictions."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from labelloop.config import LabelloopConfig
from labelloop.models.baseline import KFoldBaseline
from labelloop.models.features import load_matrix
from labelloop.store import LabelIn, Resolution, Store

__all__ = ["training_set", "model_version", "train_baseline_task", "store_predictions_task", "prediction_rows"]

# Model rows are the committee's output: they never train the next committee.
TRAINABLE_KINDS = ("gold", "expert", "crowd", "weak", "pseudo")


def training_set(resolution: Resolution, min_confidence: float) -> np.ndarray:
    """Mask of resolved items that may be trained on."""
    trainable = resolution.mask(*TRAINABLE_KINDS)
    confident = np.nan_to_num(resolution.confidence, nan=1.0) >= min_confidence
    return trainable & confident


def model_version(config: LabelloopConfig, resolution: Resolution, mask: np.ndarray) -> str:
    """A hash of what the model is trained on: same labels and settings → same version."""
    digest = hashlib.sha256()
    digest.update(json.dumps(config.training.model_dump(mode="json"), sort_keys=True).encode())
    digest.update(resolution.item_ids[mask].tobytes())
    digest.update(np.round(resolution.probs[mask], 4).tobytes())
    return digest.hexdigest()[:16]


@task(cache_policy=NO_CACHE)
def train_baseline_task(config: LabelloopConfig, store: Store, resolution: Resolution, mask: np.ndarray) -> dict:
    """Fit the k-fold committee; predict the pool (every item without a trainable label)."""
    dataset = config.dataset.name
    train_ids = resolution.item_ids[mask]
    all_ids = store.items(dataset, columns=["id"])["id"].to_numpy()
    pool_ids = np.setdiff1d(all_ids, train_ids)
    X = load_matrix(store, dataset, list(train_ids) + list(pool_ids))
    X_train, X_pool = X[: len(train_ids)], X[len(train_ids) :]
    committee = KFoldBaseline(n_splits=config.training.folds, random_state=config.training.seed)
    committee.fit(X_train, resolution.probs[mask], n_classes=len(config.dataset.classes))
    pool_proba = committee.predict_proba(X_pool) if len(pool_ids) else np.zeros((0, committee.n_classes_))
    return {
        "train_ids": train_ids,
        "pool_ids": pool_ids,
        "oof_proba": committee.oof_proba_,
        "pool_proba": pool_proba,
        "fold_scores": [vars(s) for s in committee.fold_scores_],
        "n_splits": committee.n_splits_,
    }


def prediction_rows(ids: np.ndarray, proba: np.ndarray, source: str, version: str, part: str, run_id: str):
    """``model`` label rows of one committee output; the dedupe key makes a rerun of a version write nothing."""
    for item_id, p in zip(ids, proba):
        yield LabelIn(
            int(item_id),
            int(p.argmax()),
            "model",
            source,
            confidence=float(p.max()),
            probs=np.asarray(p, dtype=np.float32),
            run_id=run_id,
            dedupe_key=f"model:{version}:{part}:{int(item_id)}",
        )


@task(cache_policy=NO_CACHE)
def store_predictions_task(store: Store, fitted: dict, version: str, run_id: str) -> int:
    """Write out-of-fold and pool probabilities as ``model`` label rows (idempotent per version)."""
    source = f"baseline-logreg@{version}"
    written = store.add_labels(prediction_rows(fitted["train_ids"], fitted["oof_proba"], source, version, "oof", run_id))
    written += store.add_labels(prediction_rows(fitted["pool_ids"], fitted["pool_proba"], source, version, "pool", run_id))
    return written
