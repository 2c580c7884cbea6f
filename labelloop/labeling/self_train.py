"""The model stage's self-training turn: the loop's one model step, in the pipeline and in memory.

Library code (no Prefect): the caller says how to fit a fresh committee and how
to predict a pool, so the model stage spreads fold groups and pool chunks over
its task runner while :class:`~labelloop.labeling.pseudo.SelfTrainingCommittee`
and tests pass plain functions.

One turn (:func:`self_train_turn`):

1. With standing pseudo-labels (turn t's route stage chose them; they train
   turn t+1's committee) and ``fallback``: fit the committee without them
   (supervised) and with them, and keep them only when they help
   (:func:`~labelloop.labeling.pseudo.pseudo_labels_help`: out-of-fold accuracy
   on the firm labels with them >= without). First on the committee trained
   with the standing labels themselves (``info["check"] = "optimistic"``: the
   route stage that chose them saw every firm label); where that passes and the
   committee exposes its folds, again per fold (``"per-fold"``): fold k trains
   on its labels plus as many pseudo-labels per class as the standing set has,
   chosen by a teacher that never saw fold k's held-out labels (supervised
   member k, mixed with label spreading without them). Wrong standing labels
   fail the first check; gains that only come from the leak fail the second.
   Kept pseudo-labels train the turn's committee, their weights aligned to the
   class prior the supervised committee sees
   (:func:`~labelloop.labeling.pseudo.prior_aligned_weights`).
2. ``rounds`` inner rounds: the same teacher as the route stage
   (:func:`~labelloop.labeling.pseudo.teach`: members, plus the label graph
   when one is given) picks pool pseudo-labels at the loop's pace, the
   committee is refitted on the base rows + them, and the round is kept only if
   it does not lower the out-of-fold accuracy on the firm labels; a round that
   adds nothing new ends the loop (``no_change``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from labelloop.labeling.pseudo import (
    FallbackDecision,
    LabelGraph,
    estimate_prior,
    pace,
    prior_aligned_weights,
    pseudo_labels_help,
    teach,
)
from labelloop.models.text_augment import rows_of
from labelloop.store.kinds import FIRM_KINDS

__all__ = ["firm_rows", "fit_on_folds", "TurnResult", "self_train_turn"]


# fit(X, Y, w, item_ids=None, augmented=None, folds=None) -> a freshly fitted committee
# predict(committee, X) -> members (k, n, C)
FitFn = Callable[..., Any]
PredictFn = Callable[[Any, NDArray], NDArray]
_FOLD_API = ("folds_", "prepare", "fold_groups", "fit_group", "finish")


def firm_rows(kinds: NDArray) -> NDArray[np.bool_]:
    """Rows whose label a person gave; every non-pseudo row when there are none.

    >>> firm_rows(np.array(["gold", "pseudo", "weak"])).tolist(), firm_rows(np.array(["weak", "pseudo"])).tolist()
    ([True, False, False], [True, False])
    """
    kinds = np.asarray(kinds)
    firm = np.isin(kinds, FIRM_KINDS)
    return firm if firm.any() else kinds != "pseudo"


def fit_on_folds(committee: Any, X: NDArray, Y: NDArray, w: NDArray, item_ids: Any = None,
                 augmented: Any = None, folds: Sequence[tuple[NDArray, NDArray]] | None = None) -> Any:
    """Fit ``committee`` in this process; ``folds``: ``(train, validation)`` positions replacing its own plan."""
    if folds is None:
        return committee.fit(X, Y, sample_weight=w, item_ids=item_ids, augmented=augmented)
    X, Y, w = committee.prepare(X, Y, w, item_ids)
    committee.folds_ = list(folds)
    groups, _ = committee.fold_groups()
    results = [committee.fit_group(X, Y, w, g, committee.init_network(X, Y.shape[1], g), augmented) for g in groups]
    return committee.finish(X, Y, w, results)


@dataclass
class TurnResult:
    """What :func:`self_train_turn` chose.

    ``used``: positions of the training rows the committee trained on (the
    standing pseudo-labels are left out after a fallback); ``extra``: pool
    positions it took as inner-round pseudo-labels (``extra_labels``,
    ``extra_confidence``); ``decision``: the check of the standing pseudo-labels
    (None without any); ``info``: what happened, for the outputs and the artifacts.
    """

    committee: Any
    used: NDArray[np.int64]
    extra: NDArray[np.int64]
    extra_labels: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    extra_confidence: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    decision: FallbackDecision | None = None
    info: dict[str, Any] = field(default_factory=dict)


def self_train_turn(
    fit: FitFn,
    predict: PredictFn,
    X: NDArray,
    Y: NDArray,
    w: NDArray,
    kinds: NDArray,
    labels: NDArray,
    item_ids: NDArray,
    X_pool: NDArray,
    *,
    rounds: int = 0,
    fallback: bool = True,
    threshold: float = 0.9,
    min_threshold: float = 0.5,
    min_agreement: float = 0.8,
    step: float = 0.5,
    budget: int | None = None,
    max_share_gap: float = 0.05,
    min_rows: int = 2,
    augmented: Any = None,
    graph: LabelGraph | None = None,
    turn: int = 1,
) -> TurnResult:
    """Train the turn's committee; fall back to supervised-only when the standing pseudo-labels do not help.

    Parameters
    ----------
    fit : callable
        ``fit(X, Y, w, item_ids, augmented, folds=None)`` -> a fresh, fitted committee with ``oof_proba_``
        (``folds``: its ``(train, validation)`` positions, for the per-fold check).
    predict : callable
        ``predict(committee, X)`` -> the members' probabilities ``(k, n, C)``.
    X, Y, w, kinds, labels, item_ids : arrays over the training rows
        Inputs, probability targets, weights, label kind (``gold`` ... ``pseudo``), hard labels, store ids.
    X_pool : array
        Items without a resolved label.
    rounds : int, default=0
        Inner fit -> select rounds (0: none).
    fallback : bool, default=True
        Check standing pseudo-labels against supervised-only training.
    threshold, min_threshold, min_agreement, step, budget, max_share_gap
        The selection rule (:func:`~labelloop.labeling.pseudo.teach`); inner round ``r`` of turn ``turn`` is
        paced by :func:`~labelloop.labeling.pseudo.pace`.
    min_rows : int, default=2
        Non-pseudo rows needed to train the supervised committee (one per fold).
    augmented : AugmentedRows, optional
        Text copies of training rows (each trains only in its original's folds).
    graph : LabelGraph, optional
        Label spreading over the training rows then the pool (in that order): the graph teacher of the
        per-fold check and the inner rounds (``self_training.graph`` decides whether there is one).
    turn : int, default=1
        The loop's turn (1, 2, ...), for the pace.
    """
    n_classes = Y.shape[1]
    used = np.arange(len(X))
    info: dict[str, Any] = {"fallback": False, "fallback_reason": "", "check": None, "rounds": 0, "inner_pseudo": 0,
                            "termination": "supervised", "turn": int(turn),
                            "augmented_copies": len(augmented) if augmented is not None else 0}
    pseudo = kinds == "pseudo"
    firm = firm_rows(kinds)
    decision = None
    if pseudo.any() and fallback and (~pseudo).sum() >= min_rows:
        keep = np.flatnonzero(~pseudo)
        supervised = fit(X[keep], Y[keep], w[keep], item_ids[keep], rows_of(augmented, keep))
        # Standing pseudo-labels are the confident part of the pool, not a random sample of it: align their
        # class mass to the prior the supervised committee sees over everything a person did not label.
        # the candidates: standing pseudo-labelled rows, then the pool (predicted apart: the pool is never copied)
        cand_members = np.concatenate([predict(supervised, part) for part in (X[pseudo], X_pool) if len(part)], axis=1)
        prior = estimate_prior(labels[keep], cand_members.mean(0), n_classes)
        w_fit = w.copy()
        w_fit[pseudo] = prior_aligned_weights(labels[pseudo], w[pseudo], prior)
        rows = np.flatnonzero(firm & ~pseudo)
        at = np.searchsorted(keep, rows)
        committee = fit(X, Y, w_fit, item_ids, augmented)
        # Optimistic: the committee trained with the standing pseudo-labels on its own out-of-fold rows. It checks
        # the very labels standing, but the route stage that chose them saw every firm label.
        decision = pseudo_labels_help(labels[rows], supervised.oof_proba_[at], committee.oof_proba_[rows])
        info["check"] = "optimistic"
        if decision.use_pseudo and all(hasattr(supervised, a) for a in _FOLD_API):
            # Per fold: fold k's pseudo-labels come from a teacher that never saw fold k's held-out labels.
            check = _per_fold_check(fit, supervised, X, Y, w, labels, keep, firm, pseudo, X_pool, cand_members,
                                    prior, graph, augmented,
                                    rule=dict(threshold=threshold, min_threshold=min_threshold,
                                              min_agreement=min_agreement, max_share_gap=max_share_gap))
            decision = pseudo_labels_help(labels[rows], supervised.oof_proba_[at], check[at])
            info["check"] = "per-fold"
        info.update(acc_with_pseudo=decision.acc_with, acc_without_pseudo=decision.acc_without,
                    fallback_reason=decision.reason, termination="standing pseudo-labels kept")
        if not decision.use_pseudo:
            committee, used = supervised, keep
            info.update(fallback=True, termination="fallback: supervised-only")
    else:
        committee = fit(X, Y, w, item_ids, augmented)
    result = TurnResult(committee, used, np.zeros(0, np.int64), decision=decision, info=info)
    if rounds and len(X_pool):
        _inner_rounds(fit, predict, result, X, Y, w, firm, pseudo, labels, X_pool, rows_of(augmented, used),
                      graph, rounds=rounds, turn=turn, step=step,
                      rule=dict(threshold=threshold, min_threshold=min_threshold, min_agreement=min_agreement,
                                budget=budget, max_share_gap=max_share_gap))
    return result


def _per_fold_check(fit: FitFn, supervised: Any, X: NDArray, Y: NDArray, w: NDArray, labels: NDArray,
                    keep: NDArray, firm: NDArray, pseudo: NDArray, X_pool: NDArray, cand_members: NDArray,
                    prior: NDArray, graph: LabelGraph | None, augmented: Any,
                    rule: dict[str, Any] | None = None) -> NDArray[np.float64]:
    """Out-of-fold probabilities of the non-pseudo rows (``keep`` order) from a committee whose fold ``k`` trains
    on its rows plus the standing pseudo-labels that a teacher which never saw fold ``k``'s held-out labels
    chooses too, with the same class.

    Teacher ``k`` is the loop's one teacher (:func:`~labelloop.labeling.pseudo.teach`, selection rule ``rule``,
    full pace) on supervised member ``k`` (trained without fold ``k``) and the label graph seeded with the firm
    labels outside fold ``k``. A standing pseudo-label it would not have chosen may owe itself to fold ``k``'s
    labels, so fold ``k`` trains without it; the rest are the standing labels themselves, so the check measures
    them and not a re-selection.
    """
    n_classes = Y.shape[1]
    n_rows = len(X)
    n_items = n_rows + len(X_pool)
    standing = np.flatnonzero(pseudo)
    candidates = np.zeros(n_items, bool)
    candidates[standing] = True
    seeds = np.full(n_items, -1, np.int64)
    seeds[np.flatnonzero(firm)] = labels[firm]
    held_out = np.full((n_items, n_classes), np.nan)
    held_out[keep] = np.asarray(supervised.oof_proba_, np.float64)[: len(keep)]
    w_pseudo = prior_aligned_weights(labels[pseudo], w[pseudo], prior)
    parts_X, parts_Y, parts_w, folds = [X[keep]], [Y[keep]], [w[keep]], []
    start = len(keep)
    for k, (train, val) in enumerate(supervised.folds_):
        members = np.zeros((1, n_items, n_classes), np.float32)
        members[0, standing] = cand_members[k][: len(standing)]
        s = seeds.copy()
        s[keep[val]] = -1
        taught = teach(members, s, held_out, graph, candidates, **(rule or {}))
        agreed = np.zeros(n_items, bool)
        agreed[taught.pseudo.index[labels[taught.pseudo.index] == taught.pseudo.label]] = True
        mine = agreed[standing]  # positions among the standing pseudo-labels
        parts_X.append(X[standing[mine]])
        parts_Y.append(Y[standing[mine]])
        parts_w.append(w_pseudo[mine])
        folds.append((np.r_[train, np.arange(start, start + int(mine.sum()))], np.asarray(val)))
        start += int(mine.sum())
    check = fit(np.concatenate(parts_X), np.concatenate(parts_Y), np.concatenate(parts_w).astype(np.float32),
                None, rows_of(augmented, keep), folds=folds)
    return np.asarray(check.oof_proba_, np.float64)[: len(keep)]


def _inner_rounds(fit: FitFn, predict: PredictFn, result: TurnResult, X: NDArray, Y: NDArray, w: NDArray,
                  firm: NDArray, pseudo: NDArray, labels: NDArray, X_pool: NDArray, augmented: Any,
                  graph: LabelGraph | None, *, rounds: int, turn: int, step: float, rule: dict[str, Any]) -> None:
    """Fit -> select -> refit within the turn; each round re-decides the whole inner pseudo-label set."""
    n_classes = Y.shape[1]
    used, info = result.used, result.info
    n_rows, n_pool = len(X), len(X_pool)
    base_firm, base_pseudo = np.flatnonzero(firm[used]), np.flatnonzero(pseudo[used])
    Xu, Yu, wu, lu = X[used], Y[used], w[used], labels[used]
    # The teacher's arrays span the graph's items: the training rows, then the pool (only the pool is a candidate).
    seeds = np.full(n_rows + n_pool, -1, np.int64)
    seeds[used[base_firm]] = lu[base_firm]
    candidates = np.r_[np.zeros(n_rows, bool), np.ones(n_pool, bool)]
    for r in range(1, rounds + 1):
        committee = result.committee
        pool_members = predict(committee, X_pool)
        members = np.zeros((pool_members.shape[0], n_rows + n_pool, n_classes), pool_members.dtype)
        members[:, n_rows:] = pool_members
        held_out = np.full((n_rows + n_pool, n_classes), np.nan)
        held_out[used] = np.asarray(committee.oof_proba_, np.float64)[: len(used)]
        taught = teach(members, seeds, held_out, graph, candidates, step=pace(step, turn, rounds, r), **rule)
        idx = np.asarray(taught.pseudo.index, np.int64) - n_rows
        if len(idx) == 0 or np.array_equal(np.sort(idx), np.sort(result.extra)):
            info["termination"] = "no_change"
            break
        # All pseudo-labels (standing and this round's) together follow the prior over the non-firm items.
        oof_pseudo = np.nan_to_num(committee.oof_proba_[base_pseudo], nan=1.0 / n_classes)
        prior = estimate_prior(lu[base_firm], np.concatenate([oof_pseudo, pool_members.mean(0)]), n_classes)
        new_labels = np.asarray(taught.pseudo.label, np.int64)
        aligned = prior_aligned_weights(np.r_[lu[base_pseudo], new_labels],
                                        np.r_[wu[base_pseudo], np.asarray(taught.pseudo.confidence, np.float32)],
                                        prior)
        round_w = wu.copy()
        round_w[base_pseudo] = aligned[: len(base_pseudo)]
        new = fit(np.concatenate([Xu, X_pool[idx]]),
                  np.concatenate([Yu, np.eye(n_classes, dtype=np.float32)[new_labels]]),
                  np.concatenate([round_w, aligned[len(base_pseudo):]]),
                  None,
                  augmented)  # the base rows come first: their text copies keep their positions
        decision = pseudo_labels_help(lu[base_firm], committee.oof_proba_[base_firm], new.oof_proba_[base_firm])
        info["rounds"] = r
        if not decision.use_pseudo:
            info["termination"] = f"round {r} dropped: {decision.reason}"
            break
        result.committee, result.extra = new, idx
        result.extra_labels, result.extra_confidence = new_labels, np.asarray(taught.pseudo.confidence)
        info.update(inner_pseudo=int(len(idx)), termination="max_iter")
