"""Tasks of the route stage: fit the self-training teacher, route, write queues and pseudo rows.

Pure computation (teacher, routing) is a plain task; writes go through the
store, whose dedupe keys and open-task reuse make a rerun add nothing twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from labelloop.config import LabelloopConfig
from labelloop.labeling.noise import find_label_errors
from labelloop.labeling.pseudo import KFoldCommittee, SelfTrainingCommittee
from labelloop.labeling.route import RouteBudgets, Routing, route
from labelloop.labeling.select import query
from labelloop.models.features import load_matrix
from labelloop.store import LabelIn, Store, TaskIn

__all__ = ["PSEUDO_SOURCE", "FIRM_KINDS", "teacher_task", "route_task", "write_queues_task", "write_pseudo_task"]

PSEUDO_SOURCE = "self-training"
# Labels a person gave: they train the teacher and are never routed again (unless suspect).
FIRM_KINDS = ("gold", "expert", "crowd")


@task(cache_policy=NO_CACHE)
def teacher_task(config: LabelloopConfig, store: Store) -> dict[str, Any]:
    """Fit the self-training committee on the firm labels; predict every item of the dataset."""
    dataset = config.dataset.name
    n_classes = len(config.dataset.classes)
    resolution = store.resolve(dataset, n_classes, config.resolution.precedence)
    ids = store.items(dataset, columns=["id"])["id"].to_numpy()
    kind_by_id = dict(zip(resolution.item_ids.tolist(), resolution.kind_of().tolist()))
    label_by_id = dict(zip(resolution.item_ids.tolist(), resolution.labels.tolist()))
    kinds = np.array([kind_by_id.get(int(i), "") for i in ids], dtype=object)
    labels = np.array([label_by_id.get(int(i), -1) for i in ids], dtype=np.int64)
    firm = np.isin(kinds, FIRM_KINDS)
    y = np.where(firm, labels, -1)
    X = load_matrix(store, dataset, list(ids)).astype(np.float64)
    scale = np.abs(X).max() or 1.0
    X = X / scale  # one global scale: pixel or count features keep their geometry
    st_cfg = config.self_training
    teacher = SelfTrainingCommittee(
        threshold=st_cfg.threshold,
        min_threshold=st_cfg.min_threshold,
        min_agreement=st_cfg.min_agreement,
        step=st_cfg.step,
        max_iter=st_cfg.max_iter,
        graph={"auto": "auto", "on": True, "off": False}[st_cfg.graph],
        graph_max_label_rate=st_cfg.graph_max_label_rate,
        n_neighbors=tuple(st_cfg.n_neighbors),
        alpha=st_cfg.alpha,
        random_state=config.training.seed,
    ).fit(X, y)
    proba = np.zeros((len(ids), n_classes))
    proba[:, teacher.classes_] = teacher.predict_proba(X)
    members = np.zeros((teacher.n_splits, len(ids), n_classes))
    members[:, :, teacher.classes_] = teacher.committee_.predict_proba_members(X)[:, :, : len(teacher.classes_)]
    pseudo = np.full(len(ids), -1, dtype=np.int64)
    decided = (teacher.transduction_ >= 0) & ~firm
    pseudo[decided] = teacher.transduction_[decided]
    return {"ids": ids, "X": X, "kinds": kinds, "labels": labels, "firm": firm, "proba": proba, "pseudo": pseudo,
            "members": members, "termination": teacher.termination_condition_, "n_iter": teacher.n_iter_,
            "folds": config.training.folds, "seed": config.training.seed}


@task(cache_policy=NO_CACHE)
def route_task(config: LabelloopConfig, fitted: dict[str, Any]) -> tuple[Routing, RouteBudgets, int]:
    """Label-error suspects among labeled items, then one queue per candidate."""
    sel = config.selection
    labeled = fitted["labels"] >= 0
    labeled &= np.isin(fitted["kinds"], ("gold", "expert", "crowd", "weak"))
    suspects = np.zeros(len(fitted["ids"]), dtype=bool)
    scores = np.zeros(len(fitted["ids"]))
    idx = np.flatnonzero(labeled)
    y = fitted["labels"][idx]
    counts = np.bincount(y, minlength=fitted["proba"].shape[1])
    if sel.suspects_to_expert and len(idx) and counts[counts > 0].min() >= fitted["folds"] and (counts > 0).sum() >= 2:
        oof = KFoldCommittee(n_splits=fitted["folds"], random_state=fitted["seed"]).fit(fitted["X"][idx], y).oof_proba_
        ok = ~np.isnan(oof[:, 0])
        P = np.zeros((len(idx), fitted["proba"].shape[1]))
        P[ok] = oof[ok]
        issues = find_label_errors(y[ok], P[ok], sources=fitted["kinds"][idx][ok], min_margin=sel.noise_min_margin)
        suspects[idx[ok][issues.is_issue]] = True
        scores[idx[ok]] = issues.score
    candidates = ~fitted["firm"]
    # The expert queue's active-learning batch: representativeness while labels are few (cold start),
    # then `selection.strategy` scores turned into a diverse batch by `selection.batch_mode`.
    picks = None
    if sel.expert_budget > 0 and candidates.any():
        picks = query(fitted["proba"], fitted["X"], min(sel.expert_budget, int(candidates.sum())),
                      labeled=~candidates, strategy=sel.strategy, member_proba=fitted["members"],
                      batch_mode=sel.batch_mode, uncertain_fraction=sel.uncertain_fraction,
                      cold_start_per_class=sel.cold_start_per_class, random_state=fitted["seed"])
    budgets = RouteBudgets(expert=sel.expert_budget, crowd=sel.crowd_budget, pseudo=sel.pseudo_budget)
    routing = route(
        fitted["proba"], fitted["members"], fitted["X"], candidates=candidates, suspects=suspects,
        suspect_scores=scores, budgets=budgets, pseudo_threshold=config.self_training.threshold,
        pseudo_min_agreement=config.self_training.min_agreement, crowd_band=tuple(sel.crowd_band),
        n_neighbors=sel.representativeness_neighbors, pseudo_labels=fitted["pseudo"], expert_picks=picks,
    )
    return routing, budgets, int(suspects.sum())


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def write_queues_task(store: Store, fitted: dict[str, Any], routing: Routing, run_id: str) -> dict[str, int]:
    """Expert and crowd queues as annotation tasks (an open task for the same item and queue is reused)."""
    ids = fitted["ids"]
    out = {}
    for queue in ("expert", "crowd"):
        rows = routing.frame()
        rows = rows[rows.queue == queue]
        tasks = [
            TaskIn(item_id=int(ids[r.index]), queue=queue, priority=float(r.value), run_id=run_id,
                   details={"reason": r.reason, "model_label": int(r.label), "confidence": round(float(r.confidence), 4)})
            for r in rows.itertuples()
        ]
        out[queue] = len(set(store.add_tasks(tasks)))
    return out


def standing_pseudo(store: Store, dataset: str) -> dict[int, int]:
    """Each item's standing pseudo-label from :data:`PSEUDO_SOURCE` (its newest row, unless a retraction)."""
    rows = store.labels(dataset, kinds=["pseudo"], decode=False)
    if rows.empty:
        return {}
    rows = rows[rows.source == PSEUDO_SOURCE].sort_values("id")
    last = rows.groupby("item_id")["label"].last()
    return {int(i): int(label) for i, label in last.items() if label >= 0}


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def write_pseudo_task(store: Store, dataset: str, fitted: dict[str, Any], routing: Routing, run_id: str) -> dict[str, int]:
    """Re-decide every pseudo-label: new or changed ones get a row, unsupported ones a retraction (label -1).

    Nothing is updated or deleted; the dedupe key (run id + item) makes a rerun of the same turn write nothing.
    """
    ids = fitted["ids"]
    standing = standing_pseudo(store, dataset)
    chosen = {int(ids[i]): (int(lab), float(conf), fitted["proba"][i])
              for i, q, lab, conf in zip(routing.index, routing.queue, routing.label, routing.confidence) if q == "pseudo"}
    rows: list[LabelIn] = []
    kept = 0
    for item_id, (label, conf, probs) in chosen.items():
        if standing.get(item_id) == label:
            kept += 1
            continue
        rows.append(LabelIn(item_id, label, "pseudo", PSEUDO_SOURCE, confidence=conf, probs=probs, run_id=run_id,
                            dedupe_key=f"pseudo:{run_id}:{item_id}"))
    retract = [i for i in standing if i not in chosen]
    rows += [LabelIn(i, -1, "pseudo", PSEUDO_SOURCE, run_id=run_id, dedupe_key=f"pseudo-retract:{run_id}:{i}")
             for i in retract]
    written = store.add_labels(rows)
    return {"pseudo_new_or_changed": len(rows) - len(retract), "pseudo_kept": kept, "pseudo_retracted": len(retract),
            "rows_written": written}


def queue_frame(routing: Routing, fitted: dict[str, Any]) -> pd.DataFrame:
    frame = routing.frame()
    frame["item_id"] = fitted["ids"][frame["index"].to_numpy()]
    return frame
