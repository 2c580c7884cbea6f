"""Tasks of the route stage: read the committee's stored outputs, route, write queues and pseudo rows.

The route stage trains nothing. The model stage's committee is the teacher:
its out-of-fold probabilities find label-error suspects, its members' pool
probabilities give the pseudo-labels (class-balanced selection), the
active-learning scores and the crowd band, and its embeddings are the space of
the kNN graph (label spreading) and of diversity. Writes go through the store,
whose dedupe keys and open-task reuse make a rerun add nothing twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from labelloop.config import LabelloopConfig
from labelloop.labeling.noise import find_label_errors
from labelloop.labeling.pseudo import (GRAPH_FEATURES_MAX_ITEMS, Teaching, committee_views, graph_spaces, knn_graph,
                                      pace, teach_from_outputs, uses_graph)
from labelloop.labeling.route import RouteBudgets, Routing, route
from labelloop.labeling.select import query
from labelloop.store.kinds import FIRM_KINDS
from labelloop.store import LabelIn, Store, TaskIn
from labelloop.models.features import load_features
from labelloop.models.outputs import latest_outputs, model_turn

__all__ = ["PSEUDO_SOURCE", "outputs_task", "route_task", "write_queues_task", "write_pseudo_task",
           "chosen_pseudo", "pseudo_changes"]

PSEUDO_SOURCE = "self-training"
# FIRM_KINDS: labels a person gave; they are never routed again (unless suspect).


def _teach(config: LabelloopConfig, oof: np.ndarray, pool_members: np.ndarray, seeds: np.ndarray,
           spaces: list[np.ndarray], knn: list[tuple[np.ndarray, np.ndarray] | None] | None, turn: int) -> Teaching:
    """The loop's teacher on the stored outputs, with the pipeline's parameters (the one call
    ``SelfTrainingCommittee.select_from_outputs`` makes too)."""
    st = config.self_training
    return teach_from_outputs(
        oof, pool_members, seeds, spaces, turn=turn, rounds=st.rounds, step=st.step, graph=st.graph,
        graph_max_label_rate=st.graph_max_label_rate, n_neighbors=tuple(st.n_neighbors), alpha=st.alpha, knn=knn,
        threshold=st.threshold, min_threshold=st.min_threshold, min_agreement=st.min_agreement,
        budget=config.selection.pseudo_budget)


@task(cache_policy=NO_CACHE)
def outputs_task(config: LabelloopConfig, store: Store) -> dict[str, Any]:
    """The committee's stored outputs, aligned to one item order: trained items, then the pool."""
    dataset = config.dataset.name
    n_classes = len(config.dataset.classes)
    out = latest_outputs(store, dataset)
    ids = out.ids
    n_t = len(out.train_ids)
    resolution = store.resolve(dataset, n_classes, config.resolution.precedence)
    order = np.argsort(resolution.item_ids)
    pos = np.searchsorted(resolution.item_ids[order], ids)
    pos = np.clip(pos, 0, max(len(order) - 1, 0))
    found = (len(order) > 0) & (resolution.item_ids[order][pos] == ids) if len(order) else np.zeros(len(ids), bool)
    kinds = np.full(len(ids), "", dtype=object)
    labels = np.full(len(ids), -1, np.int64)
    kinds[found] = resolution.kind_of()[order][pos[found]]
    labels[found] = resolution.labels[order][pos[found]]
    kinds[~np.isin(kinds, ("gold", "expert", "crowd", "weak", "pseudo"))] = ""
    labels[kinds == ""] = -1
    firm = np.isin(kinds, FIRM_KINDS)
    oof = np.asarray(out.oof_proba, np.float64)
    members_pool = np.asarray(out.pool_members)
    # Trained items have one out-of-fold opinion: every member "says" it (no member disagreement to report).
    proba, members, _ = committee_views(oof, members_pool)
    X = np.asarray(out.embeddings, np.float32)
    # One neighbour search per turn, shared by label spreading and representativeness (the turn's costliest step).
    k = max([*config.self_training.n_neighbors, config.selection.representativeness_neighbors])
    knn = knn_graph(X, min(k, len(X) - 1)) if len(X) >= 2 else None
    pseudo, teacher, graph = np.full(len(ids), -1, np.int64), proba, "off"
    turn = model_turn(store, dataset)  # this turn's model stage is recorded: the route selection is its turn's
    if config.self_training.enabled:
        st = config.self_training
        # The graph's spaces: the modality's features (small ones; one loader for every stage) and the
        # embeddings, whose neighbour search is the turn's shared one.
        features = None
        if (uses_graph(st.graph, float(firm.mean()) if len(firm) else 1.0, st.graph_max_label_rate)
                and len(ids) <= GRAPH_FEATURES_MAX_ITEMS):
            features = load_features(config, store, ids.tolist())
        spaces = graph_spaces(features, X)
        knns = [None] * (len(spaces) - 1) + [knn if X.shape[1] else None] if spaces else None
        taught = _teach(config, oof, members_pool, np.where(firm, labels, -1), spaces, knns, turn)
        pseudo[taught.pseudo.index] = taught.pseudo.label
        teacher = taught.proba
        graph = f"on (committee weight {taught.committee_weight:.1f})" if taught.graph else "off"
        graph += f"; pace {pace(config.self_training.step, turn, config.self_training.rounds):.2f} (turn {turn})"
    return {"ids": ids, "X": X, "kinds": kinds, "labels": labels, "firm": firm, "proba": proba, "pseudo": pseudo,
            "teacher": teacher,
            "members": members, "oof": np.asarray(out.oof_proba), "n_trained": n_t, "info": out.info,
            "graph": graph, "turn": turn, "knn": knn, "folds": config.training.folds, "seed": config.training.seed}


@task(cache_policy=NO_CACHE)
def route_task(config: LabelloopConfig, fitted: dict[str, Any]) -> tuple[Routing, RouteBudgets, int]:
    """Label-error suspects among labeled items (from the stored OOF probabilities), then one queue per candidate."""
    sel = config.selection
    n_t = fitted["n_trained"]
    suspects = np.zeros(len(fitted["ids"]), dtype=bool)
    scores = np.zeros(len(fitted["ids"]))
    kinds_t = fitted["kinds"][:n_t]
    checked = np.isin(kinds_t, ("gold", "expert", "crowd", "weak")) & ~np.isnan(fitted["oof"][:, 0])
    idx = np.flatnonzero(checked)
    if sel.suspects_to_expert and len(idx):
        issues = find_label_errors(fitted["labels"][idx], np.asarray(fitted["oof"][idx], np.float64),
                                   sources=kinds_t[idx], min_margin=sel.noise_min_margin)
        suspects[idx[issues.is_issue]] = True
        scores[idx] = issues.score
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
        graph=fitted["knn"],
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
    rows = store.standing(dataset, kinds=["pseudo"], sources=[PSEUDO_SOURCE], decode=False)
    return dict(zip(rows["item_id"].astype(int).tolist(), rows["label"].astype(int).tolist()))


def chosen_pseudo(fitted: dict[str, Any], routing: Routing) -> dict[int, tuple[int, float, np.ndarray]]:
    """This turn's pseudo-labels: item id -> (label, the teacher's confidence, the teacher's probabilities)."""
    ids, T = fitted["ids"], fitted["teacher"]
    return {int(ids[i]): (int(lab), float(T[i, lab]), T[i])
            for i, q, lab in zip(routing.index, routing.queue, routing.label) if q == "pseudo"}


def pseudo_changes(standing: dict[int, int], chosen: dict[int, tuple]) -> tuple[list[int], int, list[int]]:
    """What writing ``chosen`` over ``standing`` changes: (new or changed items, kept count, retracted items).

    >>> pseudo_changes({1: 0, 2: 1, 3: 1}, {1: (0,), 2: (0,), 4: (1,)})
    ([2, 4], 1, [3])
    """
    changed = [i for i, c in chosen.items() if standing.get(i) != c[0]]
    retract = [i for i in standing if i not in chosen]
    return changed, len(chosen) - len(changed), retract


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def write_pseudo_task(store: Store, dataset: str, fitted: dict[str, Any], routing: Routing, run_id: str) -> dict[str, int]:
    """Re-decide every pseudo-label: new or changed ones get a row, unsupported ones a retraction (label -1).

    Nothing is updated or deleted; the dedupe key (run id + item) makes a rerun of the same turn write nothing.
    """
    standing = standing_pseudo(store, dataset)
    chosen = chosen_pseudo(fitted, routing)
    changed, kept, retract = pseudo_changes(standing, chosen)
    rows = [LabelIn(i, chosen[i][0], "pseudo", PSEUDO_SOURCE, confidence=chosen[i][1], probs=chosen[i][2],
                    run_id=run_id, dedupe_key=f"pseudo:{run_id}:{i}") for i in changed]
    rows += [LabelIn(i, -1, "pseudo", PSEUDO_SOURCE, run_id=run_id, dedupe_key=f"pseudo-retract:{run_id}:{i}")
             for i in retract]
    written = store.add_labels(rows)
    return {"pseudo_new_or_changed": len(changed), "pseudo_kept": kept, "pseudo_retracted": len(retract),
            "rows_written": written}


def queue_frame(routing: Routing, fitted: dict[str, Any]) -> pd.DataFrame:
    frame = routing.frame()
    frame["item_id"] = fitted["ids"][frame["index"].to_numpy()]
    return frame
