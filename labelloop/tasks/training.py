"""Tasks of the model stage: inputs, one task per group of folds, pool prediction in chunks, ``model`` rows.

Pure transforms are plain tasks without retries; nothing here talks to a
server. Caching is off on purpose: inputs are large arrays and a model version
(hash of the training labels and settings) already makes reruns idempotent at
the store level. Fold groups and pool chunks are separate tasks so a Dask task
runner spreads them over its workers.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE

from labelloop.config import LabelloopConfig
from labelloop.models.ensemble import KFoldCommittee
from labelloop.models.inputs import prediction_rows, training_inputs
from labelloop.store import Resolution, Store

__all__ = [
    "prepare_training_task",
    "fit_fold_group_task",
    "predict_chunk_task",
    "store_committee_predictions_task",
    "POOL_CHUNK",
]

# Pool items per prediction task: big enough to amortise a task, small enough to spread 1M items over workers.
POOL_CHUNK = 50_000


@task(cache_policy=NO_CACHE)
def prepare_training_task(
    config: LabelloopConfig, store: Store, resolution: Resolution, mask: np.ndarray
) -> dict[str, Any]:
    """Training inputs, targets, confidence weights and the pool's inputs (:func:`~labelloop.models.inputs.training_inputs`)."""
    return training_inputs(config, store, resolution, mask)


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
    result["pid"] = os.getpid()
    return result


@task(cache_policy=NO_CACHE)
def predict_chunk_task(committee: KFoldCommittee, X: np.ndarray, embed: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """Members' probabilities and (with ``embed``) embeddings of one chunk of the pool, and the pid that computed them."""
    members, emb = committee.predict_outputs(X, embed=embed)
    return members, emb, os.getpid()


@task(cache_policy=NO_CACHE)
def store_committee_predictions_task(
    store: Store, source: str, version: str, run_id: str, parts: list[tuple[str, np.ndarray, np.ndarray]]
) -> int:
    """Write ``model`` rows with the committee's probabilities (idempotent per model version)."""
    return sum(store.add_labels(prediction_rows(ids, proba, source, version, part, run_id)) for part, ids, proba in parts)
