"""Stage: a baseline stratified k-fold model over the resolved training labels."""

from __future__ import annotations

import numpy as np
from prefect import flow

from labelloop.flows.artifacts import artifact_key, markdown_table, publish_markdown, publish_table
from labelloop.flows.context import open_stage
from labelloop.tasks.model import model_version, store_predictions_task, train_baseline_task, training_set

__all__ = ["model_flow"]


@flow(name="model", log_prints=True)
def model_flow(config_path: str, run_id: str) -> dict:
    """Resolve labels, fit the k-fold committee, store OOF and pool probabilities as ``model`` rows."""
    config, store = open_stage(config_path)
    try:
        classes = config.dataset.classes
        resolution = store.resolve(config.dataset.name, len(classes), config.resolution.precedence)
        mask = training_set(resolution, config.training.min_confidence)
        version = model_version(config, resolution, mask)
        fitted = train_baseline_task(config, store, resolution, mask)
        written = store_predictions_task(store, fitted, version, run_id)
    finally:
        store.close()
    folds = fitted["fold_scores"]
    accuracy = float(np.mean([f["accuracy"] for f in folds]))
    macro_f1 = float(np.mean([f["macro_f1"] for f in folds]))
    key = artifact_key(config.dataset.name, "kfold-metrics")
    publish_table(key, folds, description=f"Baseline {fitted['n_splits']}-fold scores (model {version})")
    publish_markdown(
        artifact_key(config.dataset.name, "model-summary"),
        f"## Baseline model `{version}`\n\n"
        f"- trained on **{len(fitted['train_ids'])}** items, predicted **{len(fitted['pool_ids'])}** pool items\n"
        f"- {fitted['n_splits']}-fold accuracy **{accuracy:.3f}**, macro-F1 **{macro_f1:.3f}** "
        f"(against the training labels of each held-out fold)\n\n{markdown_table(folds)}",
    )
    print(f"model {version}: {fitted['n_splits']}-fold accuracy {accuracy:.3f}, macro-F1 {macro_f1:.3f}; {written} rows written")
    return {
        "version": version,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "trained_on": int(len(fitted["train_ids"])),
        "pool": int(len(fitted["pool_ids"])),
        "rows_written": written,
    }
