"""Helpers of the model stage shared with the route stage: the training set, the model version, the store pointer.

Plain functions (no Prefect) so the route stage and tests use them directly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

import numpy as np

from labelloop.config import LabelloopConfig
from labelloop.exceptions import TrainingError
from labelloop.models.outputs import CommitteeOutputs
from labelloop.store import LabelIn, Resolution, Store

__all__ = [
    "TRAINABLE_KINDS",
    "training_set",
    "model_version",
    "prediction_rows",
    "record_outputs",
    "latest_outputs",
    "MODEL_RUN_KIND",
]

# Model rows are the committee's output: they never train the next committee.
TRAINABLE_KINDS = ("gold", "expert", "crowd", "weak", "pseudo")
# The run row through which the store points to the committee's outputs (manifest path + sha256).
MODEL_RUN_KIND = "model-outputs"


def training_set(resolution: Resolution, min_confidence: float) -> np.ndarray:
    """Mask of resolved items that may be trained on."""
    trainable = resolution.mask(*TRAINABLE_KINDS)
    confident = np.nan_to_num(resolution.confidence, nan=1.0) >= min_confidence
    return trainable & confident


def model_version(config: LabelloopConfig, resolution: Resolution, mask: np.ndarray) -> str:
    """A hash of what the model is trained on: same labels and settings → same version."""
    digest = hashlib.sha256()
    digest.update(json.dumps(config.training.model_dump(mode="json"), sort_keys=True).encode())
    st = config.self_training
    digest.update(json.dumps([st.enabled, st.rounds, st.fallback, st.threshold, st.min_agreement, st.step]).encode())
    digest.update(resolution.item_ids[mask].tobytes())
    digest.update(np.round(resolution.probs[mask], 4).tobytes())
    digest.update(np.asarray(resolution.kind_of()[mask], dtype=str).astype("U8").tobytes())
    return digest.hexdigest()[:16]


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


def record_outputs(store: Store, dataset: str, run_id: str, manifest: Path, sha256: str, version: str) -> str:
    """Point the store at the committee's outputs: a run row whose summary holds the manifest's path and sha256."""
    row_id = f"{run_id}:model-outputs"
    store.start_run(MODEL_RUN_KIND, dataset, {"version": version}, run_id=row_id)
    store.finish_run(row_id, "completed", {"manifest": str(manifest), "sha256": sha256, "version": version})
    return row_id


def latest_outputs(store: Store, dataset: str, mmap: bool = True) -> CommitteeOutputs:
    """The newest committee outputs the store points to (hashes checked)."""
    runs = store.runs(limit=1000, kind=MODEL_RUN_KIND)
    runs = runs[(runs["dataset"] == dataset) & (runs["status"] == "completed")]
    if runs.empty:
        raise TrainingError(f"dataset {dataset}: no committee outputs in the store; run the model stage first")
    newest = runs.sort_values("finished_at").iloc[-1]["summary"]
    return CommitteeOutputs.load(newest["manifest"], newest["sha256"], mmap=mmap)
