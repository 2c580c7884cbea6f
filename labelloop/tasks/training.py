"""Tasks of the training stage: inputs, one task per group of folds, predictions, files.

Pure transforms are plain tasks without retries; nothing here talks to a
server. Caching is off on purpose: inputs are large arrays and a model version
(hash of the training labels and settings) already makes reruns idempotent at
the store level.
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
from labelloop.models.ensemble import KFoldEnsemble
from labelloop.models.features import embed_texts, load_images
from labelloop.sources.arrays import decode_array
from labelloop.store import Resolution, Store
from labelloop.tasks.model import prediction_rows

__all__ = [
    "build_ensemble",
    "load_inputs",
    "augment_training_texts",
    "prepare_training_task",
    "fit_fold_group_task",
    "store_committee_predictions_task",
    "write_manifest",
]


def build_ensemble(config: LabelloopConfig, checkpoint_dir: Path | None = None) -> KFoldEnsemble:
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
    return KFoldEnsemble(
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


def _as_chw(item_id: int, arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 1:
        side = int(round(np.sqrt(arr.size)))
        if side * side != arr.size:
            raise TrainingError(f"item {item_id}: a flat array of {arr.size} values is not a square image")
        return arr.reshape(1, side, side)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        return arr.transpose(2, 0, 1) if arr.shape[-1] in (1, 3, 4) and arr.shape[0] not in (1, 3, 4) else arr
    raise TrainingError(f"item {item_id}: array of shape {arr.shape} is not an image")


def load_inputs(config: LabelloopConfig, store: Store, item_ids: list[int]) -> np.ndarray:
    """Model inputs for ``item_ids`` in order: images ``(n, C, H, W)`` in [0, 1] or feature rows."""
    dataset, model = config.dataset.name, config.training.model
    modality = config.dataset.modality
    frame = store.items(dataset, columns=["id", "path", "text"], ids=item_ids).set_index("id").loc[item_ids]
    if modality == "text":
        if model == "cnn":
            raise TrainingError(f"dataset {dataset}: training.model 'cnn' needs image items (modality is 'text')")
        return embed_texts(list(frame["text"]), cache_dir=config.data_path / "cache" / "minilm")
    payloads = store.payloads(item_ids)
    rows: list[np.ndarray | None] = []
    file_pos, file_ids, file_paths = [], [], []
    for pos, (item_id, payload, path) in enumerate(zip(item_ids, payloads, frame["path"])):
        if payload is not None:
            try:
                arr = decode_array(payload)
            except ValueError as exc:
                raise TrainingError(f"item {item_id}: stored array cannot be decoded ({exc})") from None
            rows.append(_as_chw(item_id, arr).astype(np.float32) if model == "cnn" else arr.astype(np.float32).ravel())
        elif path:
            rows.append(None)
            file_pos.append(pos)
            file_ids.append(item_id)
            file_paths.append(path)
        else:
            raise TrainingError(f"item {item_id}: has neither a payload nor a file to read")
    if file_paths:
        cnn = config.training.cnn
        images = load_images(file_paths, file_ids, size=cnn.image_size, grayscale=cnn.grayscale)
        for pos, img in zip(file_pos, images):
            rows[pos] = img if model == "cnn" else img.ravel()
    shapes = {r.shape for r in rows if r is not None}
    if len(shapes) > 1:
        raise TrainingError(f"dataset {dataset}: items have different shapes {sorted(shapes)}")
    if not rows:
        return np.zeros((0, 0), np.float32)
    X = np.stack(rows)
    if model == "cnn":
        top = float(X.max()) if X.size else 1.0
        if top > 1.0:  # e.g. 0..16 digits or 0..255 pixels stored as arrays: augmentation expects [0, 1]
            X = X / (255.0 if top > 16 else top)
    return X.astype(np.float32, copy=False)


@task(cache_policy=NO_CACHE)
def prepare_training_task(
    config: LabelloopConfig, store: Store, resolution: Resolution, mask: np.ndarray
) -> dict[str, Any]:
    """Training inputs, targets (probabilities), weights (pseudo-labels by confidence) and the pool."""
    dataset = config.dataset.name
    train_ids = resolution.item_ids[mask]
    if len(train_ids) < config.training.folds:
        raise TrainingError(
            f"dataset {dataset}: {len(train_ids)} trainable labels cannot make {config.training.folds} folds"
        )
    all_ids = store.items(dataset, columns=["id"])["id"].to_numpy()
    pool_ids = np.setdiff1d(all_ids, train_ids)
    X = load_inputs(config, store, [int(i) for i in train_ids] + [int(i) for i in pool_ids])
    weight = np.ones(len(train_ids), np.float32)
    pseudo = resolution.mask("pseudo")[mask]
    conf = np.nan_to_num(resolution.confidence[mask], nan=1.0)
    weight[pseudo] = conf[pseudo]
    return {
        "train_ids": train_ids,
        "pool_ids": pool_ids,
        "X_train": X[: len(train_ids)],
        "X_pool": X[len(train_ids) :],
        "Y": resolution.probs[mask].astype(np.float32),
        "weight": weight,
        "augmented": augment_training_texts(config, store, [int(i) for i in train_ids]),
    }


def augment_training_texts(config: LabelloopConfig, store: Store, train_ids: list[int]) -> Any:
    """Text augmentation (issue 13): copies of the training texts, embedded like the originals; None if off."""
    if not config.training.text_augment or not train_ids:
        return None
    from labelloop.models.text_augment import TextAugmenter, augment_texts

    frame = store.items(config.dataset.name, columns=["id", "text"], ids=train_ids).set_index("id").loc[train_ids]
    augmenter = TextAugmenter(config.training.text_augment, cache_dir=config.data_path / "cache" / "text-augment")
    cache = config.data_path / "cache" / "minilm"
    return augment_texts(list(frame["text"]), augmenter, lambda texts: embed_texts(texts, cache_dir=cache))


@task(cache_policy=NO_CACHE)
def fit_fold_group_task(
    ensemble: KFoldEnsemble,
    X: np.ndarray,
    Y: np.ndarray,
    w: np.ndarray,
    folds: list[int],
    single_thread: bool,
    augmented: Any = None,
) -> dict[str, Any]:
    """Train one group of folds as one batched network (a unit a task runner can place anywhere)."""
    if single_thread:
        torch.set_num_threads(1)  # CPU: one-thread workers, see KFoldEnsemble.fold_groups
    network = ensemble.init_network(X, Y.shape[1], folds)
    return ensemble.fit_group(X, Y, w, folds, network, augmented)


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
