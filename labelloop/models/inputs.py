"""What the committee trains on, and the committee a config describes.

The model stage's data rules, as plain functions (no Prefect) so the route
stage, benches and tests use them directly:

- :func:`training_set`: which resolved labels may be trained on;
- :func:`training_inputs`: features, probability targets and confidence weights of
  the training set, and the pool's features;
- :func:`model_version`: a hash of what the committee is trained on;
- :func:`build_committee`: the :class:`~labelloop.models.ensemble.KFoldCommittee` of ``training:``;
- :func:`prediction_rows`: the committee's probabilities as ``model`` label rows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from labelloop.exceptions import TrainingError
from labelloop.models.ensemble import KFoldCommittee
from labelloop.models.embed import project_embedder
from labelloop.models.features import load_features
from labelloop.store import TRAINABLE_KINDS, LabelIn, Resolution, Store

__all__ = [
    "TRAINABLE_KINDS",
    "COMMITTEE_SETTINGS",
    "training_set",
    "training_inputs",
    "augment_training_texts",
    "model_version",
    "build_committee",
    "prediction_rows",
]

# `training:` settings a KFoldCommittee takes under the same name.
COMMITTEE_SETTINGS = ("model", "epochs", "min_steps", "batch_size", "lr", "weight_decay", "schedule", "patience",
                      "loss", "focal_gamma", "class_weight", "tta", "calibrate", "parallel_folds", "n_jobs", "device",
                      "amp", "seed")


def training_set(resolution: Resolution, min_confidence: float) -> np.ndarray:
    """Mask of resolved items that may be trained on."""
    trainable = resolution.mask(*TRAINABLE_KINDS)
    confident = np.nan_to_num(resolution.confidence, nan=1.0) >= min_confidence
    return trainable & confident


def training_inputs(config: Any, store: Store, resolution: Resolution, mask: np.ndarray) -> dict[str, Any]:
    """Training inputs, targets (probabilities), weights (each label's confidence) and the pool's inputs.

    ``X_train`` and ``X_pool`` are views of one float32 feature array (no copy).
    """
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


def augment_training_texts(config: Any, store: Store, train_ids: list[int]) -> Any:
    """Text augmentation (issue 13): copies of the training texts, embedded like the originals; None if off."""
    if not config.training.text_augment or not train_ids:
        return None
    from labelloop.models.text_augment import TextAugmenter, augment_texts

    frame = store.items(config.dataset.name, columns=["id", "text"], ids=train_ids).set_index("id").loc[train_ids]
    augmenter = TextAugmenter(config.training.text_augment, cache_dir=config.data_path / "cache" / "text-augment")
    return augment_texts(list(frame["text"]), augmenter, project_embedder(config).encode)


def model_version(config: Any, resolution: Resolution, mask: np.ndarray) -> str:
    """A hash of what the model is trained on: same labels and settings → same version."""
    digest = hashlib.sha256()
    digest.update(json.dumps(config.training.model_dump(mode="json"), sort_keys=True).encode())
    st = config.self_training
    digest.update(json.dumps([st.enabled, st.rounds, st.fallback, st.threshold, st.min_agreement, st.step]).encode())
    digest.update(resolution.item_ids[mask].tobytes())
    digest.update(np.round(resolution.probs[mask], 4).tobytes())
    digest.update(np.asarray(resolution.kind_of()[mask], dtype=str).astype("U8").tobytes())
    return digest.hexdigest()[:16]


def build_committee(config: Any, checkpoint_dir: Path | None = None) -> KFoldCommittee:
    """The committee ``training:`` describes (network sizes and augmentation of its model)."""
    t = config.training
    if t.model == "cnn":
        params: dict[str, Any] = t.cnn.model_dump(exclude={"image_size", "grayscale"})
        augment: Any = t.augment or None
    elif t.model == "mlp":
        params = t.mlp.model_dump()
        augment = t.feature_noise.model_dump() if (t.feature_noise.noise or t.feature_noise.dropout) else None
    else:
        params, augment = {"C": t.logreg_c}, None
    settings = {name: getattr(t, name) for name in COMMITTEE_SETTINGS}
    return KFoldCommittee(**settings, model_params=params, n_splits=t.folds, augment=augment,
                          n_classes=len(config.dataset.classes), checkpoint_dir=checkpoint_dir)


def prediction_rows(ids: np.ndarray, proba: np.ndarray, source: str, version: str, part: str,
                    run_id: str) -> Iterator[LabelIn]:
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
