"""Label-error detection from out-of-fold probabilities.

An item's stored label (gold, expert, crowd aggregate, weak, pseudo) is
suspect when the committee, which never saw that item while training (out of
fold), prefers another class by a clear margin and its members agree on that
other class. Three signals, each a known idea:

- *confident learning* (Northcutt et al. 2021): per-class thresholds and the
  confident joint estimate how many labels are wrong and between which classes
  (:func:`confident_joint`, reported alongside the flags);
- *committee disagreement with the label*: the margin of the best other class
  over the given one in the committee mean, and the share of members voting for
  that other class;
- *label source*: a gold label needs more evidence to be called wrong than a
  weak or pseudo label (``margin_by_source``).

Suspects go to the expert queue (:mod:`labelloop.labeling.route`); nothing is
dropped here. ``cleanlab`` (AGPL-3) is only a benchmark anchor, never imported.

>>> import numpy as np
>>> P = np.array([[0.9, 0.1], [0.2, 0.8], [0.95, 0.05], [0.1, 0.9]])
>>> find_label_errors([0, 1, 1, 1], P).is_issue.tolist()
[False, False, True, False]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DEFAULT_MARGIN_BY_SOURCE",
    "LabelIssues",
    "self_confidence",
    "confident_joint",
    "find_label_errors",
]

# Evidence (committee margin of the best other class over the given label)
# needed to call a label wrong, by the kind of source that gave it. Stronger
# sources need more: a gold label is wrong far less often than a weak one.
DEFAULT_MARGIN_BY_SOURCE: dict[str, float] = {
    "gold": 0.5,
    "expert": 0.4,
    "crowd": 0.2,
    "annotator": 0.2,
    "weak": 0.1,
    "pseudo": 0.1,
    "model": 0.1,
}


@dataclass(frozen=True)
class LabelIssues:
    """What :func:`find_label_errors` found, one entry per item."""

    is_issue: NDArray[np.bool_]
    """True where the label is suspect."""
    score: NDArray[np.float64]
    """Margin of the best other class over the given label (higher = more suspect), in [-1, 1]."""
    suggested_label: NDArray[np.int64]
    """The committee's best class other than the given label."""
    agreement: NDArray[np.float64]
    """Share of committee members voting for ``suggested_label`` (1.0 with a single model)."""
    n_estimated: int
    """Number of wrong labels the confident joint estimates (for reporting)."""

    def ranked(self) -> NDArray[np.int64]:
        """Indices of the suspects, most suspect first."""
        idx = np.flatnonzero(self.is_issue)
        return idx[np.argsort(-self.score[idx], kind="stable")]


def _check(labels: ArrayLike, proba: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    y = np.asarray(labels)
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim != 2:
        raise ValueError(f"proba must be 2-d (n_items, n_classes), got shape {P.shape}")
    if y.shape != (P.shape[0],):
        raise ValueError(f"labels has shape {y.shape} but proba covers {P.shape[0]} items")
    if y.size and (y.min() < 0 or y.max() >= P.shape[1]):
        bad = int(np.flatnonzero((y < 0) | (y >= P.shape[1]))[0])
        raise ValueError(f"item {bad}: label {y[bad]} is not a class id in [0, {P.shape[1] - 1}]")
    return y.astype(np.int64), P


def self_confidence(labels: ArrayLike, proba: ArrayLike) -> NDArray[np.float64]:
    """The probability the model gives each item's own label."""
    y, P = _check(labels, proba)
    return P[np.arange(len(y)), y]


def confident_joint(labels: ArrayLike, proba: ArrayLike) -> NDArray[np.int64]:
    """Confident joint ``C[i, j]``: items labeled ``i`` confidently predicted ``j``.

    Class ``j``'s threshold is the mean probability of ``j`` over the items
    labeled ``j``; an item counts toward the class of highest probability among
    those it passes. Off-diagonal mass estimates the wrong labels.
    """
    y, P = _check(labels, proba)
    c = P.shape[1]
    thr = np.array([P[y == j, j].mean() if (y == j).any() else 1.0 for j in range(c)])
    above = P >= thr[None] - 1e-12
    masked = np.where(above, P, -np.inf)
    best = masked.argmax(axis=1)
    has = above.any(axis=1)
    C = np.zeros((c, c), dtype=np.int64)
    np.add.at(C, (y[has], best[has]), 1)
    return C


def find_label_errors(
    labels: ArrayLike,
    proba: ArrayLike,
    member_proba: ArrayLike | None = None,
    sources: ArrayLike | None = None,
    min_margin: float = 0.2,
    margin_by_source: dict[str, float] | None = None,
    min_agreement: float = 0.5,
) -> LabelIssues:
    """Flag items whose label the out-of-fold committee contradicts.

    Parameters
    ----------
    labels : array (n,)
        The stored labels (class ids).
    proba : array (n, C)
        Out-of-fold probabilities (committee mean, or one model's).
    member_proba : array (m, n, C), optional
        Each member's out-of-fold probabilities; adds the agreement test.
    sources : array (n,) of str, optional
        Source kind of each label (``gold``, ``crowd``, ``weak``...).
    min_margin : float, default=0.2
        Margin needed where the source is unknown or absent from ``margin_by_source``.
    margin_by_source : dict, optional
        Margin needed per source kind; default :data:`DEFAULT_MARGIN_BY_SOURCE`.
    min_agreement : float, default=0.5
        Share of members that must vote for the suggested class.

    Returns
    -------
    LabelIssues
    """
    y, P = _check(labels, proba)
    n, c = P.shape
    if not -1.0 <= min_margin <= 1.0:
        raise ValueError(f"min_margin must be in [-1, 1], got {min_margin}")
    if not 0.0 <= min_agreement <= 1.0:
        raise ValueError(f"min_agreement must be in [0, 1], got {min_agreement}")
    rows = np.arange(n)
    other = P.copy()
    other[rows, y] = -np.inf
    suggested = other.argmax(axis=1) if n else np.empty(0, dtype=np.int64)
    score = P[rows, suggested] - P[rows, y] if n else np.empty(0)
    if member_proba is not None:
        M = np.asarray(member_proba, dtype=np.float64)
        if M.ndim != 3 or M.shape[1:] != P.shape:
            raise ValueError(f"member_proba must have shape (m, {n}, {c}), got {M.shape}")
        agreement = (M.argmax(axis=2) == suggested[None]).mean(axis=0)
    else:
        agreement = np.ones(n)
    need = np.full(n, float(min_margin))
    if sources is not None:
        src = np.asarray(sources, dtype=object)
        if src.shape != (n,):
            raise ValueError(f"sources has shape {src.shape}, expected ({n},)")
        table = DEFAULT_MARGIN_BY_SOURCE if margin_by_source is None else margin_by_source
        for kind, m in table.items():
            need[src == kind] = m
    is_issue = (score > need) & (agreement >= min_agreement)
    cj = confident_joint(y, P) if n else np.zeros((c, c), dtype=np.int64)
    return LabelIssues(
        is_issue=is_issue,
        score=score,
        suggested_label=suggested.astype(np.int64),
        agreement=agreement,
        n_estimated=int(cj.sum() - np.trace(cj)),
    )
