"""Stage: the stratified k-fold committee (CNN / MLP), replacing the baseline model stage.

Story: resolve the training labels -> load the inputs -> train the folds (one
task per group of folds, so a Dask task runner can spread them; skipped when
this model version's checkpoints are already on disk and intact) -> calibrate
on the out-of-fold logits -> predict the pool -> write ``model`` rows with the
committee's probabilities -> publish per-fold metrics, the confusion matrix and
a reliability diagram.

``training.model: logreg`` keeps the foundation's baseline stage, which this
flow calls unchanged.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from prefect import flow

from labelloop.exceptions import LabelloopError
from labelloop.flows.artifacts import artifact_key, markdown_table, publish_image, publish_markdown, publish_table
from labelloop.flows.context import open_stage
from labelloop.models import metrics
from labelloop.models.ensemble import KFoldEnsemble
from labelloop.tasks.model import model_version, training_set
from labelloop.tasks.training import (
    build_ensemble,
    fit_fold_group_task,
    prepare_training_task,
    store_committee_predictions_task,
    write_manifest,
)

__all__ = ["training_flow"]


def _saved_committee(manifest: Path, version: str) -> KFoldEnsemble | None:
    """The committee saved for this model version, if its files are all there and unchanged."""
    if not manifest.exists():
        return None
    try:
        saved = json.loads(manifest.read_text())
        if saved.get("version") != version:
            return None
        return KFoldEnsemble.load(saved["checkpoints"])
    except (LabelloopError, OSError, KeyError, ValueError, RuntimeError) as exc:
        print(f"checkpoints in {manifest.parent} cannot be reused ({exc}); training again")
        return None


@flow(name="training", log_prints=True)
def training_flow(config_path: str, run_id: str) -> dict[str, Any]:
    """Train the committee on the resolved labels and store its OOF and pool probabilities."""
    config, store = open_stage(config_path)
    if config.training.model == "logreg":
        store.close()
        from labelloop.flows.model import model_flow

        return model_flow(config_path, run_id)
    dataset, classes = config.dataset.name, config.dataset.classes
    try:
        resolution = store.resolve(dataset, len(classes), config.resolution.precedence)
        mask = training_set(resolution, config.training.min_confidence)
        version = model_version(config, resolution, mask)
        source = f"kfold-{config.training.model}@{version}"
        ckpt_dir = config.data_path / "models" / dataset / version
        data = prepare_training_task(config, store, resolution, mask)
        ensemble = _saved_committee(ckpt_dir / "manifest.json", version)
        resumed = ensemble is not None
        if ensemble is None:
            ensemble = build_ensemble(config, checkpoint_dir=ckpt_dir)
            X, Y, w = ensemble.prepare(data["X_train"], data["Y"], data["weight"], data["train_ids"])
            groups, _ = ensemble.fold_groups()
            threads_before = torch.get_num_threads()
            t0 = time.perf_counter()
            try:
                on_cpu = ensemble.device_type() == "cpu"
                futures = [fit_fold_group_task.submit(ensemble, X, Y, w, g, on_cpu, data["augmented"]) for g in groups]
                results = [f.result() for f in futures]
            finally:
                torch.set_num_threads(threads_before)
            ensemble.finish(X, Y, w, results, wall_seconds=time.perf_counter() - t0)
        Y = data["Y"]
        X_pool = data["X_pool"]
        pool_proba = ensemble.predict_proba(X_pool) if len(X_pool) else np.zeros((0, len(classes)))
        written = store_committee_predictions_task(
            store,
            source,
            version,
            run_id,
            [("oof", data["train_ids"], ensemble.oof_proba_), ("pool", data["pool_ids"], pool_proba)],
        )
    finally:
        store.close()

    folds = ensemble.fold_scores_
    accuracy = float(np.mean([f["accuracy"] for f in folds]))
    macro_f1 = float(np.mean([f["macro_f1"] for f in folds]))
    hard = np.asarray(Y).argmax(1)
    oof_pred = ensemble.oof_proba_.argmax(1)
    cm = metrics.confusion_matrix(hard, oof_pred, len(classes))
    curve = metrics.reliability_curve(ensemble.oof_proba_, hard)
    ece = metrics.expected_calibration_error(ensemble.oof_proba_, hard)
    cm_png = metrics.plot_confusion(cm, classes, ckpt_dir / "confusion.png", title=f"OOF confusion, {source}")
    rel_png = metrics.plot_reliability(curve, ckpt_dir / "reliability.png", title=f"OOF reliability (ECE {ece:.3f})")
    manifest = write_manifest(
        ckpt_dir / "manifest.json",
        {
            "source": source,
            "version": version,
            "run_id": run_id,
            "temperature": ensemble.temperature_,
            "checkpoints": ensemble.checkpoints_,
            "fold_scores": folds,
        },
    )
    publish_table(
        artifact_key(dataset, "kfold-metrics"),
        folds,
        description=f"{config.training.model} {config.training.folds}-fold scores (model {version})",
    )
    publish_image(artifact_key(dataset, "confusion-matrix"), cm_png.read_bytes(), "Out-of-fold confusion matrix")
    publish_image(artifact_key(dataset, "reliability"), rel_png.read_bytes(), f"Reliability (ECE {ece:.3f})")
    publish_markdown(
        artifact_key(dataset, "model-summary"),
        f"## Committee `{source}`\n\n"
        f"- trained on **{len(data['train_ids'])}** items"
        + (f" (+ {len(data['augmented'])} augmented text copies)" if data["augmented"] is not None else "")
        + f", predicted **{len(data['pool_ids'])}** pool items\n"
        f"- {config.training.folds}-fold accuracy **{accuracy:.3f}**, macro-F1 **{macro_f1:.3f}**, "
        f"OOF ECE **{ece:.3f}** after temperature scaling (T = {ensemble.temperature_:.3f})\n"
        f"- device `{ensemble.device_}`"
        + (f", mixed precision `{ensemble.amp_dtype_}`" if ensemble.amp_dtype_ else "")
        + f"; {ensemble.train_samples_per_s_:,.0f} training items/s\n"
        f"- checkpoints: `{ckpt_dir}` (sha256 in `{manifest.name}`)"
        + (" — reused: the training labels and settings have not changed since they were written" if resumed else "")
        + f"\n\n{markdown_table(folds)}",
    )
    print(
        f"training {source}: {config.training.folds}-fold accuracy {accuracy:.3f}, macro-F1 {macro_f1:.3f}, "
        f"ECE {ece:.3f}; {written} rows written"
    )
    return {
        "version": version,
        "resumed": resumed,
        "source": source,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "ece": ece,
        "temperature": ensemble.temperature_,
        "trained_on": int(len(data["train_ids"])),
        "augmented_copies": len(data["augmented"]) if data["augmented"] is not None else 0,
        "pool": int(len(data["pool_ids"])),
        "rows_written": written,
        "checkpoints": ensemble.checkpoints_,
        "manifest": str(manifest),
    }
