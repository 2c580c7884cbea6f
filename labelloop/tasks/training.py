"""Tasks of the model stage: inputs, one task per group of folds, pool prediction in chunks, outputs, rows.

Pure transforms are plain tasks without retries; nothing here talks to a
server. Caching is off on purpose: inputs are large arrays and a model version
(hash of the training labels and settings) already makes reruns idempotent at
the store level. Fold groups and pool chunks are separate tasks so a Dask task
runner spreads them over its workers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE

from labelloop.config import LabelloopConfig
from labelloop.exceptions import TrainingError
from labelloop.models.embed import project_embedder
from labelloop.models.ensemble import KFoldCommittee
from labelloop.models.features import load_features
from labelloop.store import Resolution, Store
from labelloop.tasks.model import prediction_rows

__all__ = [
    "build_committee",
    "augment_training_texts",
    "prepare_training_task",
    "fit_fold_group_task",
    "predict_chunk_task",
    "store_committee_predictions_task",
    "write_manifest",
    "POOL_CHUNK",
]

# Pool items per prediction task: big enough to amortise a task, small enough to spread 1M items over workers.
POOL_CHUNK = 50_000


def build_committee(config: LabelloopConfig, checkpoint_dir: Path | None = None) -> KFoldCommittee:
    """The committee the config describes."""
    t = config.training
    if t.model == "cnn":
        params: dict[str, Any] = t.cnn.model_dump(exclude={"image_size", "grayscale"})
        augment: Any = t.augment or None
    elif t.model == "mlp":
        params = t.mlp.model_dump()
        augment = t.feature_noise.model_dump() if (t.feature_noise.noise or t.feature_noise.dropout) else None
    else:
        params, augment = {"C": t.logreg_c}, None
    return KFoldCommittee(
        model=t.model,
        model_params=params,
        n_splits=t.folds,
        epochs=t.epochs,
        min_steps=t.min_steps,
        batch_size=t.batch_size,
        lr=t.lr,
        weight_decay=t.weight_decay,
        schedule=t.schedule,
        patience=t.patience,
        loss=t.loss,
        focal_gamma=t.focal_gamma,
        class_weight=t.class_weight,
        augment=augment,
        tta=t.tta,
        calibrate=t.calibrate,
        n_classes=len(config.dataset.classes),
        parallel_folds=t.parallel_folds,
        n_jobs=t.n_jobs,
        device=t.device,
        amp=t.amp,
        seed=t.seed,
        checkpoint_dir=checkpoint_dir,
    )


@task(cache_policy=NO_CACHE)
def prepare_training_task(
    config: LabelloopConfig, store: Store, resolution: Resolution, mask: np.ndarray
) -> dict[str, Any]:
    """Training inputs, targets (probabilities), weights (each label's confidence) and the pool's inputs."""
    dataset = config.dataset.name
    train_ids = resolution.item_ids[mask]
    if len(train_ids) < config.training.folds:
        raise TrainingError(
            f"dataset {dataset}: {len(train_ids)} trainable labels cannot make {config.training.folds} folds"
        )
    all_ids = store.items(dataset, columns=["id"])["id"].to_numpy()
    pool_ids = np.setdiff1d(all_ids, train_ids)
    X = load_features(config, store, np.r_[train_ids, pool_ids])
    # Every label is weighted by its confidence (gold and expert rows carry none: weight 1).
    weight = np.clip(np.nan_to_num(resolution.confidence[mask], nan=1.0), 0.0, 1.0).astype(np.float32)
    return {
        "train_ids": train_ids,
        "pool_ids": pool_ids,
        "X_train": X[: len(train_ids)],
        "X_pool": X[len(train_ids) :],
        "Y": resolution.probs[mask].astype(np.float32),
        "weight": weight,
        "kinds": np.asarray(resolution.kind_of()[mask], dtype=str),
        "labels": resolution.labels[mask].astype(np.int64),
        "augmented": augment_training_texts(config, store, [int(i) for i in train_ids]),
    }


def augment_training_texts(config: LabelloopConfig, store: Store, train_ids: list[int]) -> Any:
    """Text augmentation (issue 13): copies of the training texts, embedded like the originals; None if off."""
    if not config.training.text_augment or not train_ids:
        return None
    from labelloop.models.text_augment import TextAugmenter, augment_texts

    frame = store.items(config.dataset.name, columns=["id", "text"], ids=train_ids).set_index("id").loc[train_ids]
    augmenter = TextAugmenter(config.training.text_augment, cache_dir=config.data_path / "cache" / "text-augment")
    return augment_texts(list(frame["text"]), augmenter, project_embedder(config).encode)


@task(cache_policy=NO_CACHE)
def fit_fold_group_task(
    committee: KFoldCommittee, X: np.ndarray, Y: np.ndarray, w: np.ndarray, folds: list[int], single_thread: bool,
    network: torch.nn.Module | None = None, augmented: Any = None,
) -> dict[str, Any]:
    """Train one group of folds as one batched network (a unit a task runner can place anywhere).

    ``network``: the untrained network, built by the caller in its own thread (torch's global seed is
    shared by the threads of a thread-pool runner, so seeding inside concurrent tasks would race).
    """
    if single_thread:
        torch.set_num_threads(1)  # CPU: one-thread workers, see KFoldCommittee.fold_groups
    if network is None:
        network = committee.init_network(X, Y.shape[1], folds)
    result = committee.fit_group(X, Y, w, folds, network, augmented)
    import os

    result["pid"] = os.getpid()
    return result


@task(cache_policy=NO_CACHE)
def predict_chunk_task(committee: KFoldCommittee, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Members' probabilities and embeddings of one chunk of the pool (and the pid that computed them)."""
    import os

    members, emb = committee.predict_outputs(X)
    return members, emb, os.getpid()


@task(cache_policy=NO_CACHE)
def store_committee_predictions_task(
    store: Store, source: str, version: str, run_id: str, parts: list[tuple[str, np.ndarray, np.ndarray]]
) -> int:
    """Write ``model`` rows with the committee's probabilities (idempotent per model version)."""
    return sum(store.add_labels(prediction_rows(ids, proba, source, version, part, run_id)) for part, ids, proba in parts)


def write_manifest(path: Path, payload: dict[str, Any]) -> Path:
    """A JSON manifest beside the checkpoints (paths, sha256, scores)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    tmp.replace(path)
    return path
