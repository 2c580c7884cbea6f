"""Stage: THE k-fold committee (CNN / MLP / linear), the one teacher of the loop.

Story: resolve the training labels (gold, expert, crowd, weak, standing
pseudo-labels; each weighted by its confidence) -> load the modality's
features -> train the folds (one task per group of folds, so a Dask task
runner can spread them) -> check that the pseudo-labels help (out-of-fold
accuracy on the firm labels with them >= without; else fall back to
supervised-only) -> optional inner self-training rounds (fit -> select ->
fit) -> predict the pool in chunks (one task per chunk) -> store the outputs
(OOF probabilities, member pool probabilities, embeddings) as files under the
data directory with a manifest the store points to -> ``model`` rows ->
per-fold metrics, confusion matrix, reliability diagram.

When this model version's outputs are already on disk and intact the stage
reuses them: the same labels and settings give the same committee.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from prefect import flow

from labelloop.config import LabelloopConfig
from labelloop.exceptions import LabelloopError, TrainingError
from labelloop.flows.artifacts import artifact_key, markdown_table, publish_image, publish_markdown, publish_table
from labelloop.runtime import open_stage
from labelloop.labeling.pseudo import LabelGraph, uses_graph
from labelloop.labeling.self_train import TurnResult, self_train_turn
from labelloop.store.kinds import FIRM_KINDS
from labelloop.models import metrics
from labelloop.models.ensemble import KFoldCommittee
from labelloop.models.inputs import build_committee, model_version, training_set
from labelloop.models.outputs import (
    CommitteeOutputs,
    FileRows,
    OutputsWriter,
    file_sha256,
    model_turn,
    record_outputs,
    write_json,
)
from labelloop.models.text_augment import AugmentedRows
from labelloop.tasks.training import (
    POOL_CHUNK,
    fit_fold_group_task,
    predict_chunk_task,
    prepare_training_task,
    store_committee_predictions_task,
)

__all__ = ["training_flow", "fit_committee", "predict_pool", "save_outputs"]

# Prediction chunks submitted ahead of the one being written: enough to keep a few workers busy,
# few enough that memory stays a few chunks (4 x 50,000 items x (256-d embedding + 5 x 10 probabilities)
# x 4 bytes = 245 MB) and not the pool.
PREDICT_AHEAD = 4


def fit_committee(committee: KFoldCommittee, X: np.ndarray, Y: np.ndarray, w: np.ndarray,
                  item_ids: np.ndarray | None = None, augmented: AugmentedRows | None = None,
                  folds: list[tuple[np.ndarray, np.ndarray]] | None = None) -> KFoldCommittee:
    """Fit ``committee`` with one task per group of folds (spread by the flow's task runner).

    ``augmented``: text copies of rows of ``X``; each trains only in its original's folds.
    ``folds``: ``(train, validation)`` positions replacing the committee's own plan (the per-fold check).
    """
    X, Y, w = committee.prepare(X, Y, w, item_ids)
    if folds is not None:
        committee.folds_ = list(folds)
    groups, _ = committee.fold_groups()
    threads_before = torch.get_num_threads()
    t0 = time.perf_counter()
    try:
        on_cpu = committee.device_type() == "cpu"
        networks = [committee.init_network(X, Y.shape[1], g) for g in groups]  # seeded here, in one thread
        futures = [fit_fold_group_task.submit(committee, X, Y, w, g, on_cpu, net, augmented)
                   for g, net in zip(groups, networks)]
        results = [f.result() for f in futures]
    finally:
        torch.set_num_threads(threads_before)
    committee.finish(X, Y, w, results, wall_seconds=time.perf_counter() - t0)
    committee.fit_pids_ = sorted({r.get("pid") for r in results})
    return committee


def predict_pool(
    committee: KFoldCommittee, X: np.ndarray, chunk: int = POOL_CHUNK, members: np.ndarray | FileRows | None = None,
    embeddings: np.ndarray | FileRows | None = None, embed: bool = True, ahead: int = PREDICT_AHEAD,
) -> tuple[np.ndarray | FileRows, np.ndarray | FileRows, list[int]]:
    """Members' probabilities ``(k, n, C)`` and embeddings ``(n, d)`` of ``X``, one task per chunk.

    ``members`` / ``embeddings``: arrays or file rows to fill (e.g. the
    :class:`~labelloop.models.outputs.FileRows` of an ``OutputsWriter``), else
    new in-memory arrays; ``embed=False`` skips the embeddings (0 columns). At most ``ahead``
    chunks are submitted before the oldest is written and let go, so memory is
    a few chunks however large the pool. Returns the pids that predicted.
    """
    n = len(X)
    if members is None:
        members = np.empty((committee.n_splits, n, committee.n_classes_), np.float32)
    starts = list(range(0, n, chunk))
    pending: deque[tuple[int, Any]] = deque()
    pids: set[int] = set()
    for i in range(len(starts)):
        pending.append((starts[i], predict_chunk_task.submit(committee, X[starts[i] : starts[i] + chunk], embed)))
        if len(pending) < ahead and i + 1 < len(starts):
            continue
        while pending and (len(pending) >= ahead or i + 1 == len(starts)):
            s, future = pending.popleft()
            m, e, pid = future.result()
            del future  # the future holds its result: drop it with the chunk
            members[:, s : s + m.shape[1]] = m
            if embed:
                if embeddings is None:
                    embeddings = np.empty((n, e.shape[1]), np.float32)
                embeddings[s : s + len(e)] = e
            pids.add(pid)
            del m, e
    if not embed or embeddings is None:
        embeddings = np.zeros((n, 0) if not embed else (0, 0), np.float32)
    return members, embeddings, sorted(pids)


def save_outputs(committee: KFoldCommittee, data: dict[str, Any], used: np.ndarray, info: dict[str, Any],
                 directory: Path) -> tuple[Path, str]:
    """Predict and write the committee's outputs chunk by chunk into mapped files; return the manifest and its sha256.

    Everything the committee did not train on as a resolved label is the pool:
    the original pool and any standing pseudo-label dropped by the fallback
    (the route stage re-decides both). The pool's member probabilities and the
    embeddings go straight from each prediction chunk into their ``.npy`` files,
    so a million-item pool is never held whole.
    """
    X_train = data["X_train"]
    dropped = np.setdiff1d(np.arange(len(X_train)), used)
    trained = X_train if not len(dropped) else X_train[used]
    n_t, n_pool = len(trained), len(data["X_pool"])
    n_p = n_pool + len(dropped)
    writer = OutputsWriter(directory)
    members = writer.rows("pool_members", (committee.n_splits, n_p, committee.n_classes_), axis=1)
    emb = writer.rows("embeddings", (n_t + n_p, committee.embedding_dim()))
    _, _, pids = predict_pool(committee, data["X_pool"], members=members.rows(0, n_pool),
                              embeddings=emb.rows(n_t, n_t + n_pool))
    if len(dropped):
        predict_pool(committee, X_train[dropped], members=members.rows(n_pool), embeddings=emb.rows(n_t + n_pool))
    predict_pool(committee, trained, embeddings=emb.rows(0, n_t))  # trained items: their embeddings only
    writer.put("train_ids", data["train_ids"][used].astype(np.int64))
    writer.put("oof_proba", committee.oof_proba_[:n_t].astype(np.float32))
    writer.put("train_kinds", data["kinds"][used])
    writer.put("train_labels", data["labels"][used])
    writer.put("train_weight", data["weight"][used])
    writer.put("pool_ids", np.r_[data["pool_ids"], data["train_ids"][dropped]].astype(np.int64))
    info["predict_pids"] = pids
    return writer.close(info)


def _turn_graph(config: LabelloopConfig, data: dict[str, Any]) -> LabelGraph | None:
    """The label graph of the model stage's teacher (per-fold check, inner rounds) over the training rows then the
    pool, on the modality's features -- only when ``self_training.graph`` asks for it and something needs it."""
    st = config.self_training
    kinds = data["kinds"]
    needed = (st.enabled and st.rounds) or (st.fallback and (kinds == "pseudo").any())
    n = len(data["X_train"]) + len(data["X_pool"])
    rate = float(np.isin(kinds, FIRM_KINDS).sum()) / max(n, 1)
    if not needed or n < 2 or not uses_graph(st.graph, rate, st.graph_max_label_rate):
        return None
    X = np.concatenate([np.asarray(data["X_train"]).reshape(len(data["X_train"]), -1),
                        np.asarray(data["X_pool"]).reshape(len(data["X_pool"]), -1)]).astype(np.float32)
    return LabelGraph(tuple(st.n_neighbors), st.alpha).fit(X)


def _self_train(config: LabelloopConfig, data: dict[str, Any], ckpt_dir: Path, turn: int) -> TurnResult:
    """The turn's committee (:func:`labelloop.labeling.self_train.self_train_turn`), its folds spread as tasks."""
    st = config.self_training
    result = self_train_turn(
        lambda X, Y, w, ids=None, augmented=None, folds=None: fit_committee(build_committee(config), X, Y, w, ids,
                                                                           augmented, folds),
        lambda committee, X: predict_pool(committee, X, embed=False)[0],
        data["X_train"], data["Y"], data["weight"], data["kinds"], data["labels"], data["train_ids"], data["X_pool"],
        rounds=st.rounds if st.enabled else 0, fallback=st.fallback, threshold=st.threshold,
        min_threshold=st.min_threshold, min_agreement=st.min_agreement, step=st.step,
        budget=config.selection.pseudo_budget, min_rows=config.training.folds, augmented=data.get("augmented"),
        graph=_turn_graph(config, data), turn=turn)
    if result.info["fallback"]:
        print(f"model: pseudo-labels do not help ({result.info['fallback_reason']}); supervised-only committee this turn")
    if ckpt_dir is not None:  # only the chosen committee's folds are written (candidates train without files)
        result.committee.checkpoint_dir = ckpt_dir
        result.committee.checkpoints_ = result.committee._save_checkpoints()
    return result


def _saved_outputs(directory: Path) -> CommitteeOutputs | None:
    """The outputs saved for this model version, if their files are all there and unchanged."""
    manifest = directory / "outputs.json"
    if not manifest.exists():
        return None
    try:
        return CommitteeOutputs.load(manifest, mmap=True)
    except (LabelloopError, OSError, KeyError, ValueError) as exc:
        print(f"outputs in {directory} cannot be reused ({exc}); training again")
        return None


@flow(name="training", log_prints=True)
def training_flow(config_path: str, run_id: str) -> dict[str, Any]:
    """Train the committee on the resolved labels and store its OOF, pool and embedding outputs."""
    config, store = open_stage(config_path)
    dataset, classes = config.dataset.name, config.dataset.classes
    try:
        resolution = store.resolve(dataset, len(classes), config.resolution.precedence)
        mask = training_set(resolution, config.training.min_confidence)
        version = model_version(config, resolution, mask)
        source = f"kfold-{config.training.model}@{version}"
        ckpt_dir = config.data_path / "models" / dataset / version
        out_dir = ckpt_dir / "outputs"
        outputs = _saved_outputs(out_dir)
        resumed = outputs is not None
        committee = None
        fit_part: list[tuple[str, np.ndarray, np.ndarray]] = []
        if outputs is None:
            data = prepare_training_task(config, store, resolution, mask)
            turn = _self_train(config, data, ckpt_dir, model_turn(store, dataset, run_id))
            committee, info, used = turn.committee, turn.info, turn.used
            info.update(version=version, source=source, model=config.training.model, n_splits=committee.n_splits,
                        temperature=committee.temperature_, fold_scores=committee.fold_scores_,
                        fit_pids=getattr(committee, "fit_pids_", []), device=committee.device_,
                        checkpoints=committee.checkpoints_)
            manifest, digest = save_outputs(committee, data, used, info, out_dir)
            outputs = CommitteeOutputs.load(manifest, digest, verify=False)  # mapped: just written and hashed
            # Items of a class with fewer labels than folds are never held out, so they have no out-of-fold
            # opinion: they get the committee's own (in-sample) one, written apart as part "fit".
            unseen = np.isnan(outputs.oof_proba[:, 0])
            if unseen.any():
                in_sample = committee.predict_proba(data["X_train"][used][unseen])
                fit_part = [("fit", outputs.train_ids[unseen], in_sample)]
        else:
            manifest = out_dir / "outputs.json"
            digest = file_sha256(manifest)
        record_outputs(store, dataset, run_id, manifest, digest, version)
        info = outputs.info
        oof = np.asarray(outputs.oof_proba)
        seen = ~np.isnan(oof[:, 0])
        parts = [("oof", np.asarray(outputs.train_ids)[seen], oof[seen]), *fit_part]
        max_rows = config.training.max_pool_rows
        if max_rows is None or len(outputs.pool_ids) <= max_rows:
            parts.append(("pool", np.asarray(outputs.pool_ids), outputs.pool_proba))
        written = store_committee_predictions_task(store, source, version, run_id, parts)
    finally:
        store.close()

    folds = info["fold_scores"]
    accuracy = float(np.mean([f["accuracy"] for f in folds]))
    macro_f1 = float(np.mean([f["macro_f1"] for f in folds]))
    hard = np.asarray(outputs.train_labels)[seen]
    cm = metrics.confusion_matrix(hard, oof[seen].argmax(1), len(classes))
    curve = metrics.reliability_curve(oof[seen], hard)
    ece = metrics.expected_calibration_error(oof[seen], hard)
    cm_png = metrics.plot_confusion(cm, classes, ckpt_dir / "confusion.png", title=f"OOF confusion, {source}")
    rel_png = metrics.plot_reliability(curve, ckpt_dir / "reliability.png", title=f"OOF reliability (ECE {ece:.3f})")
    checkpoint_manifest = write_json(ckpt_dir / "manifest.json", {"source": source, "version": version, "run_id": run_id,
                                                "temperature": info["temperature"], "checkpoints": info["checkpoints"],
                                                "fold_scores": folds, "outputs": str(manifest)})
    publish_table(artifact_key(dataset, "kfold-metrics"), folds,
                  description=f"{config.training.model} {config.training.folds}-fold scores (model {version})")
    publish_image(artifact_key(dataset, "confusion-matrix"), cm_png.read_bytes(), "Out-of-fold confusion matrix")
    publish_image(artifact_key(dataset, "reliability"), rel_png.read_bytes(), f"Reliability (ECE {ece:.3f})")
    fallback_line = ""
    check = f" (check: {info['check']})" if info.get("check") else ""
    if info.get("fallback"):
        fallback_line = f"- **fell back to supervised-only**{check}: {info['fallback_reason']}\n"
    elif info.get("fallback_reason"):
        fallback_line = f"- standing pseudo-labels kept{check}: {info['fallback_reason']}\n"
    publish_markdown(
        artifact_key(dataset, "model-summary"),
        f"## Committee `{source}`\n\n"
        f"- trained on **{len(outputs.train_ids)}** items"
        + (f" (+ {info['augmented_copies']} augmented text copies)" if info.get("augmented_copies") else "")
        + f", predicted **{len(outputs.pool_ids)}** pool items\n"
        f"- {config.training.folds}-fold accuracy **{accuracy:.3f}**, macro-F1 **{macro_f1:.3f}**, "
        f"OOF ECE **{ece:.3f}** after temperature scaling (T = {info['temperature']:.3f})\n"
        f"- self-training: {info['termination']}; inner rounds {info['rounds']}, "
        f"inner pseudo-labels {info['inner_pseudo']}\n" + fallback_line
        + f"- device `{info['device']}`; outputs `{manifest}`"
        + (" — reused: the training labels and settings have not changed since they were written" if resumed else "")
        + f"\n\n{markdown_table(folds)}",
    )
    print(f"training {source}: {config.training.folds}-fold accuracy {accuracy:.3f}, macro-F1 {macro_f1:.3f}, "
          f"ECE {ece:.3f}; {written} rows written; {info['termination']}")
    return {
        "version": version,
        "resumed": resumed,
        "source": source,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "ece": ece,
        "temperature": info["temperature"],
        "trained_on": int(len(outputs.train_ids)),
        "pool": int(len(outputs.pool_ids)),
        "augmented_copies": int(info.get("augmented_copies", 0)),
        "rows_written": written,
        "checkpoints": info["checkpoints"],
        "outputs": str(manifest),
        "manifest": str(checkpoint_manifest),
        "fallback": bool(info.get("fallback")),
        "self_training": info["termination"],
        "check": info.get("check"),
        "fit_pids": info.get("fit_pids", []),
        "predict_pids": info.get("predict_pids", []),
    }
