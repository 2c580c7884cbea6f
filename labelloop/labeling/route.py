"""Routing by confidence: every candidate item lands in exactly one queue.

::

    expert  most valuable: committee disagreement x representativeness, and
            label-error suspects first (never silently dropped)
    crowd   the uncertain band: the model half knows, several cheap opinions settle it
    pseudo  confident and agreed on: a pseudo-label (class-balanced quotas)
    wait    the rest (and suspects beyond the expert budget, with that reason)

Decisions are made in that order, so an item taken by one queue is never seen
by the next: no item is in two queues. Each queue's per-turn budget is a hard
cap. :func:`queue_summary` reports sizes and what each queue is expected to buy.

>>> import numpy as np
>>> P = np.array([[0.99, 0.01], [0.6, 0.4], [0.52, 0.48], [0.03, 0.97]])
>>> r = route(P, budgets=RouteBudgets(expert=1, crowd=1, pseudo=None))
>>> r.queue.tolist()
['pseudo', 'crowd', 'expert', 'pseudo']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from labelloop.labeling.pseudo import class_balanced_select, estimate_prior, knn_graph, select_pseudo_labels
from labelloop.labeling.select import margin, top_k, vote_entropy

__all__ = ["QUEUES", "RouteBudgets", "Routing", "representativeness", "route", "queue_summary"]

QUEUES = ("expert", "crowd", "pseudo", "wait")


@dataclass(frozen=True)
class RouteBudgets:
    """Per-turn caps; ``None`` = no cap."""

    expert: int | None = 50
    crowd: int | None = 200
    pseudo: int | None = None

    def __post_init__(self) -> None:
        for name in ("expert", "crowd", "pseudo"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0):
                raise ValueError(f"budget {name!r} must be an integer >= 0 or None, got {v!r}")


@dataclass(frozen=True)
class Routing:
    """The queue of every candidate item (positions into the arrays given to :func:`route`)."""

    index: NDArray[np.int64]
    queue: NDArray[np.object_]
    label: NDArray[np.int64]
    """Predicted class (the pseudo-label for ``pseudo`` rows)."""
    confidence: NDArray[np.float64]
    value: NDArray[np.float64]
    """Expert value (disagreement x representativeness), for ranking and reports."""
    reason: NDArray[np.object_]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"index": self.index, "queue": self.queue, "label": self.label,
                             "confidence": self.confidence, "value": self.value, "reason": self.reason})

    def members(self, queue: str) -> NDArray[np.int64]:
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}; expected one of {QUEUES}")
        return self.index[self.queue == queue]


def representativeness(
    X: ArrayLike, n_neighbors: int = 10, graph: tuple[NDArray, NDArray] | None = None
) -> NDArray[np.float64]:
    """Local density in (0, 1]: ``1 / (1 + mean distance to the k nearest items)``, scaled by its max.

    An item in a dense region stands for many others; labeling it teaches the
    model about all of them, an outlier teaches about itself. The neighbours
    come from :func:`labelloop.labeling.pseudo.knn_graph` (approximate beyond
    a few thousand items), so this is O(N k), not N². ``graph``: a precomputed
    ``knn_graph(X, k)`` with ``k >= n_neighbors``, to search once per turn.

    >>> representativeness(np.array([[0.0], [0.1], [0.2], [5.0]]), 1).round(2).tolist()
    [1.0, 1.0, 1.0, 0.19]
    """
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    if n < 2:
        return np.ones(n)
    k = min(n_neighbors, n - 1)
    d = graph[0][:, :k] if graph is not None and graph[0].shape[0] == n and graph[0].shape[1] >= k else knn_graph(X, k)[0]
    dens = 1.0 / (1.0 + d.astype(np.float64).mean(axis=1))
    return dens / dens.max()


def route(
    proba: ArrayLike,
    member_proba: ArrayLike | None = None,
    X: ArrayLike | None = None,
    candidates: ArrayLike | None = None,
    suspects: ArrayLike | None = None,
    suspect_scores: ArrayLike | None = None,
    budgets: RouteBudgets = RouteBudgets(),
    pseudo_threshold: float = 0.9,
    pseudo_min_agreement: float = 0.8,
    crowd_band: tuple[float, float] = (0.4, 0.9),
    prior: ArrayLike | None = None,
    n_neighbors: int = 10,
    pseudo_labels: ArrayLike | None = None,
    expert_picks: ArrayLike | None = None,
    graph: tuple[NDArray, NDArray] | None = None,
) -> Routing:
    """Put every candidate (and every suspect) in exactly one queue.

    Parameters
    ----------
    proba : array (n, C)
        Committee mean probabilities for all ``n`` items considered.
    member_proba : array (m, n, C), optional
        Members' probabilities: disagreement for the expert value, agreement for pseudo-labels.
    X : array (n, d), optional
        Features/embeddings for representativeness (uniform without).
    candidates : bool mask (n,), optional
        Items that may be routed (unlabeled or weakly labeled); default all.
    suspects : bool mask (n,), optional
        Label-error suspects: routed to the expert queue first, whatever their label source.
    suspect_scores : array (n,), optional
        Ranks suspects when they exceed the expert budget.
    budgets : RouteBudgets
    pseudo_threshold : float, default=0.9
        Confidence a pseudo-label needs.
    pseudo_min_agreement : float, default=0.8
        Share of members that must agree on a pseudo-label.
    crowd_band : (low, high), default=(0.4, 0.9)
        Confidence band of the crowd queue.
    prior : array (C,), optional
        Class prior for the pseudo quotas; default estimated from ``proba``.
    pseudo_labels : array (n,) of int, optional
        The self-training teacher's own decisions (-1 = none), e.g.
        ``SelfTrainingCommittee.transduction_``: when given, only these items
        (with these labels) may become pseudo-labels, instead of applying
        ``pseudo_threshold`` / ``pseudo_min_agreement`` to ``proba`` here.
        The teacher's rule (calibrated confidence, agreement, adaptive
        per-class thresholds) is then the single definition of "confident".
    expert_picks : array of int, optional
        Items proposed for the expert queue in priority order (e.g. an
        active-learning batch from :func:`labelloop.labeling.select.query`);
        taken after the suspects, before the value ranking fills the rest.
    graph : (dist, ind), optional
        A precomputed ``knn_graph(X, k)`` (``k >= n_neighbors``) for representativeness.
    """
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim != 2:
        raise ValueError(f"proba must be 2-d (n_items, n_classes), got shape {P.shape}")
    n, c = P.shape
    low, high = crowd_band
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"crowd_band must be (low, high) with 0 <= low < high <= 1, got {crowd_band}")
    if not 0.0 < pseudo_threshold <= 1.0:
        raise ValueError(f"pseudo_threshold must be in (0, 1], got {pseudo_threshold}")

    def mask(m: ArrayLike | None, default: bool, name: str) -> NDArray[np.bool_]:
        if m is None:
            return np.full(n, default)
        arr = np.asarray(m, dtype=bool)
        if arr.shape != (n,):
            raise ValueError(f"{name} must be a boolean mask of shape ({n},), got {arr.shape}")
        return arr

    cand = mask(candidates, True, "candidates")
    sus = mask(suspects, False, "suspects")
    eligible = cand | sus
    conf = P.max(axis=1)
    pred = P.argmax(axis=1)
    if member_proba is not None:
        M = np.asarray(member_proba, dtype=np.float64)
        if M.ndim != 3 or M.shape[1:] != P.shape:
            raise ValueError(f"member_proba must have shape (m, {n}, {c}), got {M.shape}")
        # Disagreement: vote entropy over members, plus the mean-model margin so
        # ties among unanimous committees are still broken by uncertainty.
        disagreement = vote_entropy(M) / np.log(min(M.shape[0], c)) + margin(P)
    else:
        disagreement = margin(P)
    dens = representativeness(X, n_neighbors, graph) if X is not None else np.ones(n)
    value = disagreement * dens

    queue = np.full(n, "", dtype=object)
    reason = np.full(n, "", dtype=object)
    cap = lambda b: n if b is None else int(b)  # noqa: E731

    # 1. expert: suspects first, then the most valuable candidates
    exp_left = cap(budgets.expert)
    sus_idx = np.flatnonzero(sus)
    if len(sus_idx):
        s = np.asarray(suspect_scores, dtype=np.float64) if suspect_scores is not None else value
        sus_idx = sus_idx[np.argsort(-s[sus_idx], kind="stable")]
        take = sus_idx[:exp_left]
        queue[take], reason[take] = "expert", "label-error suspect"
        over = sus_idx[exp_left:]
        queue[over], reason[over] = "wait", "label-error suspect over the expert budget"
        exp_left -= len(take)
    if expert_picks is not None and exp_left > 0:
        picks = np.asarray(expert_picks, dtype=np.int64)
        picks = picks[(picks >= 0) & (picks < n)]
        picks = picks[eligible[picks] & (queue[picks] == "")]
        _, first = np.unique(picks, return_index=True)
        take = picks[np.sort(first)][:exp_left]
        queue[take], reason[take] = "expert", "active-learning batch"
        exp_left -= len(take)
    free = eligible & (queue == "")
    if exp_left > 0:
        take = top_k(value, exp_left, exclude=~free)
        queue[take], reason[take] = "expert", "committee disagreement x representativeness"

    # 2. pseudo: confident, agreed on, class-balanced
    free = eligible & (queue == "")
    pri = np.asarray(prior, dtype=np.float64) if prior is not None else estimate_prior([], P[eligible], c)
    budget_p = cap(budgets.pseudo)
    if pseudo_labels is not None:
        pl = np.asarray(pseudo_labels, dtype=np.int64)
        if pl.shape != (n,):
            raise ValueError(f"pseudo_labels must have shape ({n},), got {pl.shape}")
        ok = free & (pl >= 0)
        # the teacher already balanced its decisions (and met the budget): take them as they are; only when
        # fewer fit the budget here, cut them class-balanced, ranked by the probability of the decided class
        Q = np.zeros_like(P)
        Q[np.flatnonzero(ok), pl[ok]] = P[np.flatnonzero(ok), pl[ok]] + 1.0  # +1: any decided item beats undecided
        if int(ok.sum()) <= budget_p:
            sel = np.flatnonzero(ok)
            sel_y = pl[sel]
        else:
            quotas = np.ceil(pri / pri.sum() * budget_p).astype(np.int64)
            sel, sel_y = class_balanced_select(Q, quotas, 0.0, exclude=~ok)
            order = np.argsort(-Q[sel, sel_y], kind="stable")[:budget_p]  # ceil() may overshoot by < C items
            sel, sel_y = sel[order], sel_y[order]
    else:
        # the one selection rule of the loop, with a fixed bar (min_threshold = threshold)
        sel, sel_y, _ = select_pseudo_labels(
            P, member_proba=member_proba, prior=pri, threshold=pseudo_threshold,
            min_threshold=pseudo_threshold, min_agreement=pseudo_min_agreement, budget=budget_p, exclude=~free)
    queue[sel], reason[sel] = "pseudo", "confident and agreed"
    pred = pred.copy()
    pred[sel] = sel_y
    conf = conf.copy()
    conf[sel] = P[sel, sel_y]

    # 3. crowd: the uncertain band, most uncertain first
    free = eligible & (queue == "")
    band = free & (conf >= low) & (conf < high)
    take = top_k(margin(P), cap(budgets.crowd), exclude=~band)
    queue[take], reason[take] = "crowd", "uncertain band"

    # 4. everything else waits
    rest = eligible & (queue == "")
    queue[rest] = "wait"
    reason[rest & (conf < low)] = "below the crowd band"
    reason[rest & (conf >= low) & (conf < high)] = "crowd budget spent"
    reason[rest & (conf >= high)] = "confident, not pseudo-labeled (agreement, quota or budget)"
    idx = np.flatnonzero(eligible)
    return Routing(index=idx, queue=queue[idx], label=pred[idx].astype(np.int64), confidence=conf[idx],
                   value=value[idx], reason=reason[idx])


def queue_summary(routing: Routing, budgets: RouteBudgets | None = None) -> pd.DataFrame:
    """One row per queue: size, budget, mean confidence and what the queue is expected to buy.

    ``expected_gain``: for expert and crowd, the expected number of predictions
    the answers correct (sum of ``1 - confidence``); for pseudo, the expected
    number of correct pseudo-labels (sum of confidence); 0 for wait.
    """
    rows = []
    for q in QUEUES:
        m = routing.queue == q
        conf = routing.confidence[m]
        gain = float((1 - conf).sum()) if q in ("expert", "crowd") else float(conf.sum()) if q == "pseudo" else 0.0
        budget = None if budgets is None or q == "wait" else getattr(budgets, q)
        rows.append({"queue": q, "items": int(m.sum()), "budget": budget,
                     "mean_confidence": float(conf.mean()) if conf.size else float("nan"),
                     "expected_gain": round(gain, 2)})
    return pd.DataFrame(rows)
