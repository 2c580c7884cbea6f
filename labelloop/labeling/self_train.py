"""The model stage's self-training turn: standing pseudo-labels checked, then optional inner rounds.

Library code (no Prefect): the caller says how to fit a fresh committee and how
to predict a pool, so the model stage spreads fold groups and pool chunks over
its task runner while tests pass plain functions.

One turn (:func:`self_train_turn`):

1. With standing pseudo-labels (turn t's pseudo-labels train turn t+1's
   committee) and ``fallback``: fit the committee without them (supervised)
   and with them -- their weights aligned to the class prior the supervised
   committee sees (:func:`~labelloop.labeling.pseudo.prior_aligned_weights`) --
   and keep them only when the out-of-fold accuracy on the firm labels with
   them is >= without (:func:`~labelloop.labeling.pseudo.pseudo_labels_help`).
2. ``rounds`` inner rounds: predict the pool, select class-balanced
   pseudo-labels (:func:`~labelloop.labeling.pseudo.select_pseudo_labels`),
   refit on the base rows + them, keep the round only if it does not lower the
   out-of-fold accuracy on the firm labels; a round that adds nothing new ends
   the loop (``no_change``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray

from labelloop.labeling.pseudo import estimate_prior, prior_aligned_weights, pseudo_labels_help, select_pseudo_labels
from labelloop.models.text_augment import rows_of
from labelloop.store.kinds import FIRM_KINDS

__all__ = ["firm_rows", "TurnResult", "self_train_turn"]


# fit(X, Y, w, item_ids, augmented) -> a freshly fitted committee;  predict(committee, X) -> members (k, n, C)
FitFn = Callable[..., Any]
PredictFn = Callable[[Any, NDArray], NDArray]


def firm_rows(kinds: NDArray) -> NDArray[np.bool_]:
    """Rows whose label a person gave; every non-pseudo row when there are none.

    >>> firm_rows(np.array(["gold", "pseudo", "weak"])).tolist(), firm_rows(np.array(["weak", "pseudo"])).tolist()
    ([True, False, False], [True, False])
    """
    kinds = np.asarray(kinds)
    firm = np.isin(kinds, FIRM_KINDS)
    return firm if firm.any() else kinds != "pseudo"


@dataclass
class TurnResult:
    """What :func:`self_train_turn` chose.

    ``used``: positions of the training rows the committee trained on (the
    standing pseudo-labels are left out after a fallback); ``extra``: pool
    positions it took as inner-round pseudo-labels; ``info``: what happened,
    for the outputs and the artifacts.
    """

    committee: Any
    used: NDArray[np.int64]
    extra: NDArray[np.int64]
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
    min_rows: int = 2,
    augmented: Any = None,
) -> TurnResult:
    """Train the turn's committee; fall back to supervised-only when the standing pseudo-labels do not help.

    Parameters
    ----------
    fit : callable
        ``fit(X, Y, w, item_ids, augmented)`` -> a fresh, fitted committee with ``oof_proba_``.
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
    threshold, min_threshold, min_agreement, step, budget
        The selection rule (:func:`~labelloop.labeling.pseudo.select_pseudo_labels`); round ``r`` takes
        ``min(1, step * r)`` of each class's estimated mass.
    min_rows : int, default=2
        Non-pseudo rows needed to train the supervised committee (one per fold).
    augmented : AugmentedRows, optional
        Text copies of training rows (each trains only in its original's folds).
    """
    n_classes = Y.shape[1]
    used = np.arange(len(X))
    info: dict[str, Any] = {"fallback": False, "fallback_reason": "", "rounds": 0, "inner_pseudo": 0,
                            "termination": "supervised",
                            "augmented_copies": len(augmented) if augmented is not None else 0}
    pseudo = kinds == "pseudo"
    firm = firm_rows(kinds)
    if pseudo.any() and fallback and (~pseudo).sum() >= min_rows:
        keep = np.flatnonzero(~pseudo)
        supervised = fit(X[keep], Y[keep], w[keep], item_ids[keep], rows_of(augmented, keep))
        # Standing pseudo-labels are the confident part of the pool, not a random sample of it: align their
        # class mass to the prior the supervised committee sees over everything a person did not label.
        seen = [predict(supervised, part).mean(0) for part in (X[pseudo], X_pool) if len(part)]
        prior = estimate_prior(labels[keep], np.concatenate(seen), n_classes)
        w_fit = w.copy()
        w_fit[pseudo] = prior_aligned_weights(labels[pseudo], w[pseudo], prior)
        committee = fit(X, Y, w_fit, item_ids, augmented)
        rows = np.flatnonzero(firm & ~pseudo)
        decision = pseudo_labels_help(labels[rows], supervised.oof_proba_[np.searchsorted(keep, rows)],
                                      committee.oof_proba_[rows])
        info.update(acc_with_pseudo=decision.acc_with, acc_without_pseudo=decision.acc_without,
                    fallback_reason=decision.reason, termination="standing pseudo-labels kept")
        if not decision.use_pseudo:
            committee, used = supervised, keep
            info.update(fallback=True, termination="fallback: supervised-only")
    else:
        committee = fit(X, Y, w, item_ids, augmented)
    extra = np.zeros(0, np.int64)
    if rounds and len(X_pool):
        committee, extra = _inner_rounds(fit, predict, committee, X[used], Y[used], w[used], firm[used],
                                         pseudo[used], labels[used], X_pool, rows_of(augmented, used), info,
                                         rounds=rounds, threshold=threshold, min_threshold=min_threshold,
                                         min_agreement=min_agreement, step=step, budget=budget)
    return TurnResult(committee, used, extra, info)


def _inner_rounds(fit: FitFn, predict: PredictFn, committee: Any, X: NDArray, Y: NDArray, w: NDArray,
                  firm: NDArray, pseudo: NDArray, labels: NDArray, X_pool: NDArray, augmented: Any,
                  info: dict[str, Any], *, rounds: int, threshold: float, min_threshold: float,
                  min_agreement: float, step: float, budget: int | None) -> tuple[Any, NDArray[np.int64]]:
    """Fit -> select -> refit within the turn; each round re-decides the whole inner pseudo-label set."""
    n_classes = Y.shape[1]
    base_firm, base_pseudo = np.flatnonzero(firm), np.flatnonzero(pseudo)
    extra = np.zeros(0, np.int64)
    for r in range(1, rounds + 1):
        members = predict(committee, X_pool)
        pool_proba = members.mean(0)
        counts = np.bincount(labels[base_firm], minlength=n_classes)
        sel = select_pseudo_labels(pool_proba, members, n_labeled_per_class=counts, threshold=threshold,
                                   min_agreement=min_agreement, step=min(1.0, step * r), budget=budget,
                                   min_threshold=min_threshold)
        idx = np.asarray(sel.index, np.int64)
        if len(idx) == 0 or np.array_equal(np.sort(idx), np.sort(extra)):
            info["termination"] = "no_change"
            break
        # All pseudo-labels (standing and this round's) together follow the prior over the non-firm items.
        oof_pseudo = np.nan_to_num(committee.oof_proba_[base_pseudo], nan=1.0 / n_classes)
        prior = estimate_prior(labels[base_firm], np.concatenate([oof_pseudo, pool_proba]), n_classes)
        new_labels = np.asarray(sel.label, np.int64)
        aligned = prior_aligned_weights(np.r_[labels[base_pseudo], new_labels],
                                        np.r_[w[base_pseudo], np.asarray(sel.confidence, np.float32)], prior)
        round_w = w.copy()
        round_w[base_pseudo] = aligned[: len(base_pseudo)]
        new = fit(np.concatenate([X, X_pool[idx]]),
                  np.concatenate([Y, np.eye(n_classes, dtype=np.float32)[new_labels]]),
                  np.concatenate([round_w, aligned[len(base_pseudo):]]),
                  None,
                  augmented)  # the base rows come first: their text copies keep their positions
        decision = pseudo_labels_help(labels[base_firm], committee.oof_proba_[base_firm], new.oof_proba_[base_firm])
        info["rounds"] = r
        if not decision.use_pseudo:
            info["termination"] = f"round {r} dropped: {decision.reason}"
            break
        committee, extra = new, idx
        info.update(inner_pseudo=int(len(idx)), termination="max_iter")
    return committee, extra
