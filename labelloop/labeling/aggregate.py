"""One vote-aggregation engine for labeling functions and annotators.

A vote is an ``(item, source, class)`` triple whether the source is a labeling
function or a person. :class:`Votes` holds them in long format (three int
arrays); :class:`MajorityVote`, :class:`DawidSkene` and
:class:`OneCoinDawidSkene` turn them into per-item class posteriors and
per-source confusion matrices.

Everything is vectorized over the vote arrays: the votes become one sparse
item x (source, class) incidence matrix ``A``; the E-step is ``A @ log_conf``
and the M-step ``A.T @ posteriors``. Items that share the same votes (the
common case: 100,000 crowd items x 3 annotators of 5 have a few thousand
distinct vote patterns) are folded into one weighted row first, so EM runs over
patterns, not items, and the result is identical.

Abstains
--------
Label ``-1`` means "no vote" and the row is dropped. What a missing vote means
depends on where the votes come from:

* crowd votes: an annotator was simply not asked; a missing vote says nothing
  (``abstain_observed=False``, the default of :class:`Votes`);
* a labeling-function matrix: every LF saw every item, so abstaining *is* an
  observation (a keyword LF abstains more on the classes it does not target).
  :meth:`Votes.from_matrix` sets ``abstain_observed=True`` and Dawid-Skene then
  learns ``P(abstain | true class)`` per source; without that, an LF that only
  ever votes one class would carry no information at all.

Examples
--------
>>> import numpy as np
>>> L = np.array([[0, 0, -1], [1, 1, 1], [0, 0, 1], [-1, -1, -1]])
>>> votes = Votes.from_matrix(L, n_classes=2)
>>> MajorityVote(tie_break="abstain").fit(votes).predict().tolist()
[0, 1, 0, -1]
>>> model = DawidSkene().fit(Votes.from_matrix(np.tile(L, (5, 1)), n_classes=2))
>>> model.predict()[:4].tolist(), model.converged_
([0, 1, 0, 0], True)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from labelloop.exceptions import AggregationError

__all__ = ["ABSTAIN", "Votes", "MajorityVote", "DawidSkene", "OneCoinDawidSkene"]

ABSTAIN = -1

# Below this many votes per item on average, folding identical vote patterns is
# cheap and pays off; past it (dense extra sources, very long rows) it does not.
_MAX_PATTERN_WIDTH = 64


# --------------------------------------------------------------------------- votes


class Votes:
    """Votes in long format: parallel ``items``, ``sources``, ``labels`` int arrays.

    Parameters
    ----------
    items : array-like of int
        Item index of each vote, in ``[0, n_items)``.
    sources : array-like of int
        Source (LF or annotator) index of each vote, in ``[0, n_sources)``.
    labels : array-like of int
        Class of each vote in ``[0, n_classes)``; ``-1`` (abstain) rows are dropped.
    n_classes : int
        Number of classes (at least 2).
    n_items, n_sources : int, optional
        Totals; default one more than the largest index seen. Pass them so that
        items nobody voted on still get a row (they get the class prior).
    abstain_observed : bool, default=False
        True when every source saw every item, so a missing vote is an
        observation (labeling-function matrices); False for crowd votes.
    """

    def __init__(
        self,
        items: Any,
        sources: Any,
        labels: Any,
        n_classes: int,
        n_items: int | None = None,
        n_sources: int | None = None,
        abstain_observed: bool = False,
    ) -> None:
        items = _as_int_array(items, "items")
        sources = _as_int_array(sources, "sources")
        labels = _as_int_array(labels, "labels")
        if not (len(items) == len(sources) == len(labels)):
            raise AggregationError(
                f"votes: items, sources and labels must have the same length "
                f"(got {len(items)}, {len(sources)}, {len(labels)})"
            )
        if int(n_classes) < 2:
            raise AggregationError(f"votes: n_classes must be >= 2 (got {n_classes})")
        n_classes = int(n_classes)
        if len(labels) and (labels.min() < -1 or labels.max() >= n_classes):
            bad = int(np.flatnonzero((labels < -1) | (labels >= n_classes))[0])
            raise AggregationError(
                f"votes: label of vote {bad} (item {int(items[bad])}, source {int(sources[bad])}) must be in "
                f"[-1, {n_classes - 1}] (got {int(labels[bad])})"
            )
        for name, arr in (("items", items), ("sources", sources)):
            if len(arr) and arr.min() < 0:
                raise AggregationError(f"votes: {name} indices must be >= 0 (got {int(arr.min())})")
        keep = labels != ABSTAIN
        if not keep.all():
            items, sources, labels = items[keep], sources[keep], labels[keep]
        seen_items = int(items.max()) + 1 if len(items) else 0
        seen_sources = int(sources.max()) + 1 if len(sources) else 0
        if n_items is None:
            n_items = seen_items
        elif n_items < seen_items:
            raise AggregationError(f"votes: n_items={n_items} but an item index is {seen_items - 1}")
        if n_sources is None:
            n_sources = seen_sources
        elif n_sources < seen_sources:
            raise AggregationError(f"votes: n_sources={n_sources} but a source index is {seen_sources - 1}")
        # int32 halves memory for 10M-row inputs; indices beyond 2**31 are not a use case here.
        small = max(n_items, n_sources, n_classes) < 2**31 - 1
        dtype = np.int32 if small else np.int64
        self.items = items.astype(dtype, copy=False)
        self.sources = sources.astype(dtype, copy=False)
        self.labels = labels.astype(dtype, copy=False)
        self.n_classes = n_classes
        self.n_items = int(n_items)
        self.n_sources = int(n_sources)
        self.abstain_observed = bool(abstain_observed)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (
            f"Votes(n_votes={len(self)}, n_items={self.n_items}, n_sources={self.n_sources}, "
            f"n_classes={self.n_classes}, abstain_observed={self.abstain_observed})"
        )

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        item_col: str = "item",
        source_col: str = "source",
        label_col: str = "label",
        n_classes: int | None = None,
    ) -> tuple["Votes", pd.Index, pd.Index]:
        """Votes from a long DataFrame of any item and source keys.

        Returns ``(votes, item_index, source_index)``: ``item_index[i]`` is the
        original key of item ``i`` (likewise sources), so posteriors map back.
        Labels must already be integer class ids (``-1`` = abstain).
        """
        for col in (item_col, source_col, label_col):
            if col not in df.columns:
                raise AggregationError(f"votes frame: column {col!r} is missing (columns: {list(df.columns)})")
        if n_classes is None:
            raise AggregationError("votes frame: n_classes is required")
        labels = df[label_col].to_numpy()
        if not np.issubdtype(labels.dtype, np.integer):
            try:
                labels = labels.astype(np.int64)
            except (TypeError, ValueError):
                raise AggregationError(
                    f"votes frame: column {label_col!r} must hold integer class ids (got dtype {df[label_col].dtype})"
                ) from None
        item_codes, item_index = pd.factorize(df[item_col], sort=True)
        source_codes, source_index = pd.factorize(df[source_col], sort=True)
        votes = cls(
            item_codes,
            source_codes,
            labels,
            n_classes=n_classes,
            n_items=len(item_index),
            n_sources=len(source_index),
        )
        return votes, pd.Index(item_index, name=item_col), pd.Index(source_index, name=source_col)

    @classmethod
    def from_matrix(cls, L: Any, n_classes: int | None = None) -> "Votes":
        """Votes from an ``(n_items, n_sources)`` label matrix with ``-1`` abstains.

        Accepts a dense array or a scipy sparse matrix whose stored entries are
        ``label + 1`` (so zeros are abstains). Abstaining counts as an observation
        (``abstain_observed=True``).
        """
        if sparse.issparse(L):
            coo = sparse.coo_matrix(L)
            items, sources, labels = coo.row, coo.col, coo.data.astype(np.int64) - 1
            n_items, n_sources = coo.shape
        else:
            L = np.asarray(L)
            if L.ndim != 2:
                raise AggregationError(f"label matrix must be 2-D (n_items, n_sources) (got shape {L.shape})")
            n_items, n_sources = L.shape
            items, sources = np.nonzero(L != ABSTAIN)
            labels = L[items, sources]
        if n_classes is None:
            n_classes = max(int(labels.max()) + 1 if len(labels) else 0, 2)
        return cls(items, sources, labels, n_classes, n_items=n_items, n_sources=n_sources, abstain_observed=True)

    def to_matrix(self) -> np.ndarray:
        """The dense ``(n_items, n_sources)`` int8/int16 matrix, ``-1`` where no vote (last vote wins)."""
        dtype = np.int8 if self.n_classes < 127 else np.int32
        L = np.full((self.n_items, self.n_sources), ABSTAIN, dtype=dtype)
        L[self.items, self.sources] = self.labels
        return L

    def incidence(self) -> sparse.csr_matrix:
        """Sparse ``(n_items, n_sources * n_classes)`` vote counts; column ``s * C + l``."""
        cols = self.sources.astype(np.int64) * self.n_classes + self.labels
        data = np.ones(len(cols), dtype=np.float64)
        A = sparse.csr_matrix(
            (data, (self.items, cols)), shape=(self.n_items, self.n_sources * self.n_classes)
        )
        A.sum_duplicates()
        return A


def _as_int_array(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise AggregationError(f"votes: {name} must be 1-D (got shape {arr.shape})")
    if arr.size == 0:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            return arr.astype(np.int64)
        raise AggregationError(f"votes: {name} must be integers (got dtype {arr.dtype})")
    return arr


# --------------------------------------------------------------------------- shared inputs


def _check_votes(votes: Any) -> Votes:
    if not isinstance(votes, Votes):
        raise TypeError(f"votes must be a labelloop Votes object (got {type(votes).__name__}); see Votes.from_frame")
    return votes


def _check_gold(gold: Any, votes: Votes) -> tuple[np.ndarray, np.ndarray]:
    """Gold as ``(item_idx, labels)`` int arrays, validated against the votes."""
    if gold is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if isinstance(gold, dict):
        idx = np.fromiter(gold.keys(), dtype=np.int64, count=len(gold))
        lab = np.fromiter(gold.values(), dtype=np.int64, count=len(gold))
    else:
        try:
            idx, lab = gold
        except (TypeError, ValueError):
            raise AggregationError("gold must be a dict {item_index: class} or a pair (item_idx, labels)") from None
        idx, lab = np.asarray(idx, dtype=np.int64), np.asarray(lab, dtype=np.int64)
    if idx.shape != lab.shape:
        raise AggregationError(f"gold: item_idx and labels differ in length ({len(idx)} vs {len(lab)})")
    keep = lab != ABSTAIN
    idx, lab = idx[keep], lab[keep]
    if len(idx):
        bad = np.flatnonzero((idx < 0) | (idx >= votes.n_items))
        if len(bad):
            raise AggregationError(f"gold: item index {int(idx[bad[0]])} is outside [0, {votes.n_items})")
        bad = np.flatnonzero((lab < 0) | (lab >= votes.n_classes))
        if len(bad):
            raise AggregationError(
                f"gold: class of item {int(idx[bad[0]])} must be in [0, {votes.n_classes - 1}] (got {int(lab[bad[0]])})"
            )
    return idx, lab


def _check_source_weight(source_weight: Any, votes: Votes) -> np.ndarray | None:
    if source_weight is None:
        return None
    w = np.asarray(source_weight, dtype=np.float64)
    if w.shape != (votes.n_sources,):
        raise AggregationError(f"source_weight must have shape (n_sources,) = ({votes.n_sources},) (got {w.shape})")
    if not np.all(np.isfinite(w)) or (w < 0).any() or (w > 1).any():
        bad = int(np.flatnonzero(~np.isfinite(w) | (w < 0) | (w > 1))[0])
        raise AggregationError(f"source_weight of source {bad} must be in [0, 1] (got {w[bad]})")
    return w


def _check_extra(extra_proba: Any, votes: Votes) -> np.ndarray | None:
    if extra_proba is None:
        return None
    P = np.asarray(extra_proba, dtype=np.float64)
    if P.shape != (votes.n_items, votes.n_classes):
        raise AggregationError(
            f"extra_proba must have shape (n_items, n_classes) = ({votes.n_items}, {votes.n_classes}) (got {P.shape})"
        )
    if not np.all(np.isfinite(P)) or (P < 0).any():
        row = int(np.flatnonzero(~np.isfinite(P).all(1) | (P < 0).any(1))[0])
        raise AggregationError(f"extra_proba: row {row} must be finite and >= 0 (got {P[row].tolist()})")
    total = P.sum(1, keepdims=True)
    # A zero row means "the model has no opinion on this item": it is left at zero (no soft vote).
    return np.divide(P, total, out=np.zeros_like(P), where=total > 0)


class _Design:
    """The (possibly pattern-folded) incidence matrix EM iterates over."""

    def __init__(self, votes: Votes, gold_idx: np.ndarray, gold_lab: np.ndarray, extra: np.ndarray | None,
                 compress: bool, source_weight: np.ndarray | None = None) -> None:
        C, S = votes.n_classes, votes.n_sources
        self.n_classes, self.n_sources = C, S
        self.has_extra = extra is not None
        A = votes.incidence()
        self.covered = np.diff(A.indptr) > 0
        if extra is not None:
            self.covered |= extra.sum(1) > 0  # the extra source's opinion counts as coverage
            A = sparse.hstack([A, sparse.csr_matrix(extra)], format="csr")
        gold = np.full(votes.n_items, -1, dtype=np.int64)
        gold[gold_idx] = gold_lab
        self.inverse: np.ndarray | None = None
        if compress and extra is None and votes.n_items > 0:
            folded = _fold_patterns(votes, gold)
            if folded is not None:
                rep, inverse, counts = folded
                A = A[rep]
                gold = gold[rep]
                self.inverse = inverse
                self.weights = counts.astype(np.float64)
        if self.inverse is None:
            self.weights = np.ones(A.shape[0])
        self.A = A
        self.AT_w = (A.T.multiply(self.weights[None, :])).tocsr() if A.shape[0] else A.T.tocsr()
        # Source weights temper the E-step only (a weight-w source's log-likelihood counts w times); its
        # confusion matrix is still estimated from all of its votes.
        self.source_weight = np.ones(S + (1 if extra is not None else 0))
        self.A_e = A
        if source_weight is not None:
            self.source_weight[:S] = source_weight
            col_w = np.concatenate([np.repeat(source_weight, C), np.ones(C if extra is not None else 0)])
            self.A_e = (A @ sparse.diags(col_w)).tocsr()
        self.gold_rows = np.flatnonzero(gold >= 0)
        self.gold_labels = gold[self.gold_rows]
        self.n_rows = A.shape[0]

    def expand(self, rows: np.ndarray) -> np.ndarray:
        return rows if self.inverse is None else rows[self.inverse]


def _fold_patterns(votes: Votes, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Group items with identical vote multisets (and gold); ``None`` when not worth it.

    Returns ``(representative_item_per_pattern, inverse, counts)``.
    """
    n, C, S = votes.n_items, votes.n_classes, votes.n_sources
    codes = votes.sources.astype(np.int64) * C + votes.labels
    per_item = np.bincount(votes.items, minlength=n)
    width = int(per_item.max()) if len(per_item) else 0
    if width > _MAX_PATTERN_WIDTH or n * (width + 1) > 8 * max(len(codes), 1) + 8 * n:
        return None
    order = np.lexsort((codes, votes.items))
    codes_sorted = codes[order]
    items_sorted = votes.items[order]
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_item, out=starts[1:])
    pos = np.arange(len(codes_sorted), dtype=np.int64) - starts[items_sorted]
    # One int64 key per item when the vote codes fit (base S*C+2 digits), else a padded code matrix.
    base = S * C + 2
    digits = width + 1  # +1 for the gold label
    if digits * np.log2(base) < 62:
        key = np.zeros(n, dtype=np.int64)
        voted = np.flatnonzero(per_item > 0)
        if len(voted):
            # Votes are sorted by item, so each item's digits are one contiguous run: exact int64 sums.
            key[voted] = np.add.reduceat((codes_sorted + 1) * (base**pos), starts[voted])
        key = key * base + (gold + 1)
        _, rep, inverse, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    else:
        P = np.zeros((n, digits), dtype=np.int64)
        P[items_sorted, pos] = codes_sorted + 1
        P[:, -1] = gold + 1
        _, rep, inverse, counts = np.unique(P, axis=0, return_index=True, return_inverse=True, return_counts=True)
    return rep, inverse.ravel(), counts


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    out = np.log(np.exp(x - m).sum(axis=1, keepdims=True)) + m
    return out[:, 0]


# --------------------------------------------------------------------------- estimators


class _Aggregator(BaseEstimator):
    """Shared predict / report surface of every aggregator."""

    def predict_proba(self) -> np.ndarray:
        """Class posteriors of the fitted items, ``(n_items, n_classes)``."""
        check_is_fitted(self, "posteriors_")
        return self.posteriors_

    def predict(self) -> np.ndarray:
        """Most probable class of each fitted item."""
        check_is_fitted(self, "posteriors_")
        return self.posteriors_.argmax(axis=1)

    def fit_predict_proba(self, votes: Votes, gold: Any = None, extra_proba: Any = None) -> np.ndarray:
        return self.fit(votes, gold=gold, extra_proba=extra_proba).predict_proba()

    def fit_predict(self, votes: Votes, gold: Any = None, extra_proba: Any = None) -> np.ndarray:
        return self.fit(votes, gold=gold, extra_proba=extra_proba).predict()

    def _set_source_report(self, design: _Design, post_rows: np.ndarray, prior: np.ndarray) -> None:
        """Empirical confusions of each source against the final posteriors (for MajorityVote)."""
        C, S = design.n_classes, design.n_sources
        counts = (design.AT_w @ post_rows).reshape(-1, C, C)  # [source, vote l, true k]
        counts = counts.transpose(0, 2, 1)
        conf = (counts + 1e-12) / (counts.sum(-1, keepdims=True) + C * 1e-12)
        self.confusions_ = conf[:S]
        self.accuracies_ = _accuracy_from_counts(counts[:S])


def _accuracy_from_counts(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=(1, 2))
    diag = np.trace(counts, axis1=1, axis2=2)
    return np.divide(diag, total, out=np.full(len(total), np.nan), where=total > 0)


class MajorityVote(_Aggregator):
    """Majority vote with explicit tie handling.

    Parameters
    ----------
    tie_break : {"random", "abstain", "prior", "model"}, default="random"
        What ``predict`` does when classes tie: pick one of them at random,
        return ``-1``, pick the one with the highest class prior (vote share
        over all items), or let a fitted model decide ("model": the tied class
        with the highest posterior under ``tie_model``; the tied items'
        posteriors become that model's, restricted to the tied classes). Items
        without votes predict ``-1`` under "abstain" and the most frequent class
        otherwise.
    proba : {"shares", "winner"}, default="shares"
        Soft labels: vote shares, or Snorkel's ``MajorityLabelVoter`` rule
        (the top class gets 1, tied top classes share it equally). "winner"
        labels train a downstream model better (bench/weak.py: +0.5-1 point on
        each text task).
    tie_model : aggregator, default=None
        The model of ``tie_break="model"``; default
        ``OneCoinDawidSkene(n_iter=500)``. Its learned per-source accuracies,
        confusions and convergence (``n_iter_``, ``converged_``,
        ``loss_history_``) are reported as this model's.
    random_state : int, Generator or None, default=0
        Seed of the random tie-break: the same votes break ties the same way
        on every run (``None`` draws fresh entropy).

    Attributes
    ----------
    posteriors_ : ndarray (n_items, n_classes)
        Vote shares; items without votes get ``class_prior_``.
    labels_ : ndarray (n_items,)
        Predicted class (ties broken once, at fit time).
    class_prior_ : ndarray (n_classes,)
    confusions_, accuracies_ : agreement of each source with the majority.
    """

    def __init__(self, tie_break: Literal["random", "abstain", "prior", "model"] = "random", random_state: Any = 0,
                 tie_model: Any = None, proba: Literal["shares", "winner"] = "shares") -> None:
        self.tie_break = tie_break
        self.random_state = random_state
        self.tie_model = tie_model
        self.proba = proba

    def fit(self, votes: Votes, gold: Any = None, extra_proba: Any = None,
            source_weight: Any = None) -> "MajorityVote":
        """Count votes (weighted by ``source_weight`` when given), gold items fixed."""
        votes = _check_votes(votes)
        if self.tie_break not in ("random", "abstain", "prior", "model"):
            raise ValueError(f"tie_break must be 'random', 'abstain', 'prior' or 'model' (got {self.tie_break!r})")
        gold_idx, gold_lab = _check_gold(gold, votes)
        extra = _check_extra(extra_proba, votes)
        weight = _check_source_weight(source_weight, votes)
        C, n = votes.n_classes, votes.n_items
        vote_w = None if weight is None else weight[votes.sources]
        counts = np.bincount(votes.items.astype(np.int64) * C + votes.labels, weights=vote_w, minlength=n * C)
        counts = counts.reshape(n, C).astype(np.float64)
        if extra is not None:
            counts += extra
        if self.proba not in ("shares", "winner"):
            raise ValueError(f"proba must be 'shares' or 'winner' (got {self.proba!r})")
        total = counts.sum(1)
        prior = (counts.sum(0) + 1.0) / (counts.sum() + C)
        top = counts.max(1, keepdims=True)
        tied = (counts == top) & (total[:, None] > 0)
        shown = counts if self.proba == "shares" else tied.astype(np.float64)
        post = np.divide(shown, shown.sum(1, keepdims=True), out=np.tile(prior, (n, 1)), where=total[:, None] > 0)
        n_tied = tied.sum(1)
        labels = counts.argmax(1)
        ties = np.flatnonzero(n_tied > 1)
        if self.tie_break == "abstain":
            labels[ties] = ABSTAIN
            labels[total == 0] = ABSTAIN
        else:
            labels[total == 0] = int(prior.argmax())
            if len(ties):
                if self.tie_break == "prior":
                    labels[ties] = np.argmax(np.where(tied[ties], prior[None, :], -np.inf), axis=1)
                elif self.tie_break == "model":
                    tie_post = self._fit_tie_model(votes, gold, extra_proba, source_weight).posteriors_[ties]
                    restricted = np.where(tied[ties], tie_post, 0.0) + 1e-300 * tied[ties]
                    restricted /= restricted.sum(1, keepdims=True)
                    labels[ties] = restricted.argmax(1)
                    post[ties] = restricted
                else:
                    rng = np.random.default_rng(self.random_state)
                    noise = rng.random((len(ties), C))
                    labels[ties] = np.argmax(np.where(tied[ties], noise, -np.inf), axis=1)
        if len(gold_idx):
            post[gold_idx] = np.eye(C)[gold_lab]
            labels[gold_idx] = gold_lab
        self.posteriors_ = post
        self.labels_ = labels
        self.class_prior_ = prior
        design = _Design(votes, gold_idx, gold_lab, extra, compress=False)
        self._set_source_report(design, post, prior)
        self.n_iter_, self.converged_, self.loss_history_ = 1, True, []
        if self.tie_break == "model":
            tm = self.tie_model_ if len(ties) else self._fit_tie_model(votes, gold, extra_proba, source_weight)
            self.accuracies_, self.confusions_ = tm.accuracies_, tm.confusions_
            self.n_iter_, self.converged_, self.loss_history_ = tm.n_iter_, tm.converged_, tm.loss_history_
        return self

    def _fit_tie_model(self, votes: Votes, gold: Any, extra_proba: Any, source_weight: Any) -> Any:
        model = clone(self.tie_model) if self.tie_model is not None else OneCoinDawidSkene(n_iter=500)
        self.tie_model_ = model.fit(votes, gold=gold, extra_proba=extra_proba, source_weight=source_weight)
        return self.tie_model_

    def predict(self) -> np.ndarray:
        """Majority class per item, ties broken by ``tie_break`` (``-1`` = abstain)."""
        check_is_fitted(self, "labels_")
        return self.labels_


class DawidSkene(_Aggregator):
    """Dawid-Skene EM: one confusion matrix per source, class priors, abstains.

    Parameters
    ----------
    n_iter : int, default=100
        Maximum EM iterations.
    tol : float, default=1e-6
        Stop when the mean log-likelihood per item changes by less than ``tol``.
    smoothing : float, default=1.0
        Dirichlet pseudo-count per distribution, spread evenly over its outcomes
        (each confusion row, the class prior, each one-coin accuracy), so a source
        with few votes gets no zero-probability cell, and the prior's weight does
        not grow with the number of classes.
    init : {"majority", "random"}, default="majority"
        Starting posteriors: vote shares, or random (seeded by ``random_state``).
    random_state : int, Generator or None
        Seed used by ``init="random"``.
    abstains : {"auto", "ignore", "model"}, default="auto"
        Whether a missing vote is an observation (``P(abstain | class)`` is
        learned per source) or ignored. "auto" follows ``Votes.abstain_observed``.
    compress : bool, default=True
        Fold items with identical votes into one weighted row (exact; faster).

    Attributes
    ----------
    posteriors_ : ndarray (n_items, n_classes)
        Class posteriors; gold items are one-hot; items without any vote get ``class_prior_``.
    confusions_ : ndarray (n_sources, n_classes, n_classes)
        ``confusions_[s, k, l]`` = P(source s votes l | true class k, s voted).
    abstain_rates_ : ndarray (n_sources, n_classes)
        P(source s abstains | true class k); zeros when abstains are ignored.
    accuracies_ : ndarray (n_sources,)
        P(vote is right | source voted), under the fitted class prior.
    extra_confusion_ : ndarray (n_classes, n_classes) or None
        Confusion of the ``extra_proba`` source, when one was given.
    class_prior_ : ndarray (n_classes,)
    n_iter_, converged_, loss_history_ : convergence info (log-likelihood per iteration).
    """

    def __init__(
        self,
        n_iter: int = 100,
        tol: float = 1e-6,
        smoothing: float = 1.0,
        init: Literal["majority", "random"] = "majority",
        random_state: Any = None,
        abstains: Literal["auto", "ignore", "model"] = "auto",
        compress: bool = True,
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.smoothing = smoothing
        self.init = init
        self.random_state = random_state
        self.abstains = abstains
        self.compress = compress

    # -- parameters
    def _validate_params(self) -> None:
        if not isinstance(self.n_iter, (int, np.integer)) or self.n_iter < 1:
            raise ValueError(f"n_iter must be an int >= 1 (got {self.n_iter!r})")
        if not self.tol >= 0:
            raise ValueError(f"tol must be >= 0 (got {self.tol!r})")
        if not self.smoothing >= 0:
            raise ValueError(f"smoothing must be >= 0 (got {self.smoothing!r})")
        if self.init not in ("majority", "random"):
            raise ValueError(f"init must be 'majority' or 'random' (got {self.init!r})")
        if self.abstains not in ("auto", "ignore", "model"):
            raise ValueError(f"abstains must be 'auto', 'ignore' or 'model' (got {self.abstains!r})")

    def fit(self, votes: Votes, gold: Any = None, extra_proba: Any = None,
            source_weight: Any = None) -> "DawidSkene":
        """Run EM on ``votes``.

        Parameters
        ----------
        votes : Votes
        gold : dict {item_index: class} or (item_idx, labels), optional
            Known truths: their posteriors are fixed one-hot and they inform the confusions.
        extra_proba : ndarray (n_items, n_classes), optional
            A model's (out-of-fold) class probabilities, judged as one more
            source with its own confusion matrix (soft votes), as CROWDLAB does.
        source_weight : ndarray (n_sources,) of float in [0, 1], optional
            How much each source's votes count in the posteriors (tempered
            likelihood; 0 = ignored, 1 = default). Confusions are still fitted on
            every vote, so a down-weighted source is still described.
        """
        self._validate_params()
        votes = _check_votes(votes)
        gold_idx, gold_lab = _check_gold(gold, votes)
        extra = _check_extra(extra_proba, votes)
        weight = _check_source_weight(source_weight, votes)
        C, S = votes.n_classes, votes.n_sources
        model_abstains = votes.abstain_observed if self.abstains == "auto" else self.abstains == "model"
        d = _Design(votes, gold_idx, gold_lab, extra, compress=self.compress, source_weight=weight)
        n_src = S + (1 if extra is not None else 0)
        w = d.weights
        n_total = w.sum()
        eye = np.eye(C)

        starts = [self._initial_posteriors(d, C)]
        if len(d.gold_rows) and self.init == "majority":
            # Gold can only pull EM out of a wrong basin (say, a colluding majority) if EM starts near the
            # right one: a second start takes its confusions from the gold items alone. The start with the
            # higher final likelihood (gold included) wins.
            log_conf, log_abst, log_prior = self._m_step(d, starts[0], n_src, model_abstains, rows=d.gold_rows)
            starts.append(self._e_step(d, log_conf, log_abst, log_prior, eye)[0])
        best = None
        for start in starts:
            run = self._run_em(d, start, n_src, model_abstains, eye, n_total)
            if best is None or run[1][-1] > best[1][-1]:
                best = run
        post, history, converged, it = best
        # Final parameters consistent with the returned posteriors.
        log_conf, log_abst, log_prior = self._m_step(d, post, n_src, model_abstains)
        prior = np.exp(log_prior)
        full = d.expand(post)
        full[~d.covered] = prior
        if len(gold_idx):
            full[gold_idx] = eye[gold_lab]
        conf = np.exp(log_conf)  # (n_src, C, C), P(vote l | k), abstain mass excluded
        abst = np.exp(log_abst) if log_abst is not None else np.zeros((n_src, C))
        voted = conf.sum(-1, keepdims=True)
        cond = conf / np.maximum(voted, 1e-300)
        self.posteriors_ = full
        self.class_prior_ = prior
        self.confusions_ = cond[:S]
        self.abstain_rates_ = abst[:S]
        self.extra_confusion_ = cond[S] if extra is not None else None
        num = np.einsum("k,skk->s", prior, conf)
        den = np.einsum("k,sk->s", prior, voted[..., 0])
        self.accuracies_ = (num / np.maximum(den, 1e-300))[:S]
        self.n_iter_ = it
        self.converged_ = converged
        self.loss_history_ = history
        self.n_patterns_ = d.n_rows
        return self

    def _run_em(self, d: _Design, post: np.ndarray, n_src: int, model_abstains: bool, eye: np.ndarray,
                n_total: float) -> tuple[np.ndarray, list[float], bool, int]:
        history: list[float] = []
        converged = False
        it = 0
        for it in range(1, int(self.n_iter) + 1):
            log_conf, log_abst, log_prior = self._m_step(d, post, n_src, model_abstains)
            post, ll = self._e_step(d, log_conf, log_abst, log_prior, eye)
            history.append(ll / max(n_total, 1.0))
            if len(history) > 1 and abs(history[-1] - history[-2]) < self.tol:
                converged = True
                break
        return post, history, converged, it

    def _initial_posteriors(self, d: _Design, C: int) -> np.ndarray:
        if self.init == "random":
            rng = np.random.default_rng(self.random_state)
            post = rng.dirichlet(np.ones(C), size=d.n_rows)
        else:
            # Vote shares per class: sum the (source, class) columns over sources.
            n_cols = d.A.shape[1]
            fold = sparse.csr_matrix(
                (np.ones(n_cols), (np.arange(n_cols), np.arange(n_cols) % C)), shape=(n_cols, C)
            )
            counts = (d.A_e @ fold).toarray()  # weighted vote shares
            total = counts.sum(1, keepdims=True)
            post = np.divide(counts, total, out=np.full_like(counts, 1.0 / C), where=total > 0)
        if len(d.gold_rows):
            post[d.gold_rows] = np.eye(C)[d.gold_labels]
        return post

    def _m_step(self, d: _Design, post: np.ndarray, n_src: int, model_abstains: bool, rows: np.ndarray | None = None):
        C, a = d.n_classes, float(self.smoothing)
        if rows is None:
            counts = np.asarray(d.AT_w @ post)
            mass = d.weights @ post  # expected number of items per class
        else:
            wp = post[rows] * d.weights[rows, None]
            counts = np.asarray(d.A[rows].T @ wp)
            mass = wp.sum(0)
        counts = counts.reshape(n_src, C, C).transpose(0, 2, 1)  # [s, k, l]
        log_prior = np.log((mass + a / C) / (mass.sum() + a) + 1e-300)
        log_conf, log_abst = self._confusions(counts, mass, model_abstains, a, C)
        return log_conf, log_abst, log_prior

    def _confusions(self, counts: np.ndarray, mass: np.ndarray, model_abstains: bool, a: float, C: int):
        if model_abstains:
            abst = np.maximum(mass[None, :] - counts.sum(-1), 0.0)  # [s, k]
            denom = counts.sum(-1) + abst + a
            log_conf = np.log((counts + a / (C + 1)) / denom[..., None] + 1e-300)
            log_abst = np.log((abst + a / (C + 1)) / denom + 1e-300)
            return log_conf, log_abst
        denom = counts.sum(-1, keepdims=True) + a
        return np.log((counts + a / C) / np.maximum(denom, 1e-300) + 1e-300), None

    def _e_step(self, d: _Design, log_conf, log_abst, log_prior, eye):
        C = d.n_classes
        W = log_conf
        base = log_prior.copy()
        if log_abst is not None:
            # Every source is seen on every item: start from "all abstained" and swap in each vote.
            W = log_conf - log_abst[..., None]
            base = base + (d.source_weight[:, None] * log_abst).sum(0)
        M = W.transpose(0, 2, 1).reshape(-1, C)  # row s*C + l -> log P(vote l | k) per k
        ll = d.A_e @ M + base[None, :]
        ll = np.asarray(ll)
        lse = _logsumexp_rows(ll)
        post = np.exp(ll - lse[:, None])
        if len(d.gold_rows):
            post[d.gold_rows] = eye[d.gold_labels]
            lse[d.gold_rows] = ll[d.gold_rows, d.gold_labels]
        return post, float(d.weights @ lse)


class OneCoinDawidSkene(DawidSkene):
    """Dawid-Skene with one accuracy per source; errors spread evenly over the other classes.

    Same parameters and attributes as :class:`DawidSkene`. Fewer parameters per
    source, so it is steadier when sources have few votes, and weaker when
    errors are systematic (one class mistaken for another).
    """

    def _confusions(self, counts: np.ndarray, mass: np.ndarray, model_abstains: bool, a: float, C: int):
        voted = counts.sum(axis=(1, 2))
        right = np.trace(counts, axis1=1, axis2=2)
        acc = (right + a / 2) / (voted + a)
        acc = np.clip(acc, 1e-6, 1 - 1e-6)
        off = (1 - acc) / (C - 1)
        cond = np.where(np.eye(C, dtype=bool)[None], acc[:, None, None], off[:, None, None])  # [s, k, l]
        if model_abstains:
            abst = np.maximum(mass[None, :] - counts.sum(-1), 0.0)
            rate = (abst + a / 2) / (abst + counts.sum(-1) + a)  # P(abstain | k)
            log_conf = np.log(cond * (1 - rate)[..., None] + 1e-300)
            return log_conf, np.log(rate + 1e-300)
        return np.log(cond), None
