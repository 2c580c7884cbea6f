"""Self-training: a calibrated committee teacher, class-balanced pseudo-labels, iterated.

Pieces, each usable alone:

- :class:`LabelGraph` -- label spreading over a kNN graph of features or
  embeddings, with class mass normalisation; the graph teacher that carries the
  committee at very low label rates.
- :class:`KFoldCommittee` -- k clones of any sklearn classifier on stratified
  folds, temperature-calibrated on their out-of-fold predictions; exposes
  ``predict_proba_members`` like ``labelloop.models.ensemble.KFoldEnsemble``.
- :func:`estimate_prior`, :func:`adaptive_thresholds`,
  :func:`class_balanced_select` -- the selection rule: an item becomes a
  pseudo-label only with high calibrated confidence *and* agreement of the
  committee members, and never beyond its class's quota (quotas follow the
  estimated class prior, so the selection cannot collapse onto one class the
  way sklearn's ``SelfTrainingClassifier(criterion="k_best")`` does at 1-2 %
  labels).
- :class:`SelfTrainingCommittee` -- the estimator that iterates these until
  nothing new passes; ``termination_condition_`` says why it stopped.

Library code: no Prefect here.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import NearestNeighbors
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted

from labelloop.exceptions import TrainingError

__all__ = [
    "LabelGraph",
    "KFoldCommittee",
    "member_probabilities",
    "estimate_prior",
    "adaptive_thresholds",
    "class_balanced_select",
    "SelfTrainingCommittee",
]

_EPS = 1e-12
# ---------------------------------------------------------------- graph teacher
class LabelGraph(BaseEstimator):
    """A symmetric k-nearest-neighbour graph over a pool, built once, spread many times.

    Label spreading (Zhou et al. 2004) with *class mass normalisation* (Zhu et
    al. 2003): after spreading, each class column is divided by its total mass
    so a class seeded with few labels is not swallowed by its neighbours. That
    normalisation is what keeps spreading balanced at one label per class.

    Parameters
    ----------
    n_neighbors : int or tuple of int, default=(5, 10)
        Graph degree; several values build several graphs whose spread
        probabilities are averaged (a small committee that removes the need to
        tune ``k`` per dataset).
    alpha : float, default=0.99
        Weight of the neighbours against the seeds, in (0, 1).
    n_iter : int, default=60
        Power-iteration steps.
    """

    def __init__(self, n_neighbors: int | tuple[int, ...] = (5, 10), alpha: float = 0.99, n_iter: int = 60):
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.n_iter = n_iter

    def fit(self, X: ArrayLike) -> "LabelGraph":
        ks = (self.n_neighbors,) if isinstance(self.n_neighbors, (int, np.integer)) else tuple(self.n_neighbors)
        if not ks or any(int(k) < 1 for k in ks):
            raise ValueError(f"n_neighbors must be >= 1, got {self.n_neighbors!r}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        X = np.asarray(X, dtype=np.float64)
        n = X.shape[0]
        kmax = min(max(ks), n - 1)
        if kmax < 1:
            raise ValueError(f"a graph needs at least 2 items, got {n}")
        self.X_ = X
        self.nn_ = NearestNeighbors(n_neighbors=kmax + 1).fit(X)
        dist, ind = self.nn_.kneighbors(X)
        dist, ind = dist[:, 1:], ind[:, 1:]
        self.operators_ = []
        self.sigmas_ = []
        for k in ks:
            k = min(int(k), kmax)
            d, j = dist[:, :k], ind[:, :k]
            sigma = float(np.median(d[:, -1])) or 1.0
            w = np.exp(-(d**2) / sigma**2)
            W = sp.csr_matrix((w.ravel(), (np.repeat(np.arange(n), k), j.ravel())), shape=(n, n))
            W = W.maximum(W.T)
            deg = np.asarray(W.sum(axis=1)).ravel()
            dinv = 1.0 / np.sqrt(deg + _EPS)
            self.operators_.append((sp.diags(dinv) @ W @ sp.diags(dinv)).tocsr())
            self.sigmas_.append(sigma)
        return self

    def spread(self, seeds: ArrayLike, n_classes: int) -> NDArray[np.float64]:
        """Probabilities ``(n, n_classes)`` over the pool from seed labels.

        ``seeds`` is ``(n,)`` of class ids with -1 for unknown, or ``(n, C)``
        soft seeds (rows of zeros for unknown).
        """
        check_is_fitted(self, "operators_")
        s = np.asarray(seeds)
        n = self.X_.shape[0]
        if s.ndim == 1:
            if s.shape[0] != n:
                raise ValueError(f"seeds has {s.shape[0]} items but the graph has {n}")
            Y0 = np.zeros((n, n_classes))
            known = s >= 0
            Y0[np.flatnonzero(known), s[known].astype(np.int64)] = 1.0
        else:
            Y0 = np.asarray(s, dtype=np.float64)
        out = np.zeros((n, n_classes))
        for S in self.operators_:
            F = Y0.copy()
            for _ in range(self.n_iter):
                F = self.alpha * (S @ F) + (1 - self.alpha) * Y0
            F = np.maximum(F, 0.0)
            mass = F.sum(axis=0, keepdims=True)
            F = np.where(mass > 0, F / np.maximum(mass, _EPS), 0.0)  # class mass normalisation
            row = F.sum(axis=1, keepdims=True)
            out += np.where(row > 0, F / np.maximum(row, _EPS), 1.0 / n_classes)
        return out / len(self.operators_)

    def induce(self, F: ArrayLike, X_new: ArrayLike, n_neighbors: int = 5) -> NDArray[np.float64]:
        """Probabilities for new items: kernel-weighted mean of their pool neighbours' ``F``."""
        check_is_fitted(self, "operators_")
        F = np.asarray(F)
        k = min(n_neighbors, self.X_.shape[0])
        d, j = self.nn_.kneighbors(np.asarray(X_new, dtype=np.float64), n_neighbors=k)
        w = np.exp(-(d**2) / self.sigmas_[0] ** 2) + _EPS
        P = (F[j] * w[:, :, None]).sum(axis=1)
        return P / P.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- committee
def member_probabilities(model: object, X: ArrayLike) -> NDArray[np.float64]:
    """Class probabilities of one fitted model, for its ``classes_`` order.

    Models without ``predict_proba`` (``SVC()``, ``RidgeClassifier``) get a
    softmax of their decision function; the committee's temperature then
    calibrates it, which is why this needs no ``probability=True``.
    """
    if hasattr(model, "predict_proba") and not (isinstance(model, SVC) and not model.probability):
        return np.asarray(model.predict_proba(X), dtype=np.float64)
    if hasattr(model, "decision_function"):
        d = np.asarray(model.decision_function(X), dtype=np.float64)
        if d.ndim == 1:  # binary: one margin per item
            d = np.stack([-d, d], axis=1) / 2
        return softmax(d, axis=1)
    raise TypeError(f"{type(model).__name__} has neither predict_proba nor decision_function")


def _fit_temperature(logp: NDArray, y: NDArray) -> float:
    """The temperature minimising the NLL of ``softmax(logp / T)`` (grid + refine)."""
    def nll(t: float) -> float:
        lp = log_softmax(logp / t, axis=1)
        return float(-lp[np.arange(len(y)), y].mean())

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 41))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = best * np.exp(np.linspace(-0.1, 0.1, 11))
    return float(fine[int(np.argmin([nll(t) for t in fine]))])


class KFoldCommittee(ClassifierMixin, BaseEstimator):
    """k clones of a classifier on stratified folds, temperature-calibrated out of fold.

    Items of classes with fewer than ``n_splits`` examples are kept in every
    fold's training set (there is nothing to hold out), so the committee still
    works at one label per class; they get no out-of-fold prediction.

    Parameters
    ----------
    estimator : sklearn classifier, default=None
        Cloned per fold; default ``SVC(C=10)`` (softmax of its decision function).
    n_splits : int, default=5
    calibrate : bool, default=True
        Fit one temperature on the out-of-fold predictions.
    random_state : int, default=0

    Attributes
    ----------
    estimators_ : list of fitted clones
    classes_ : ndarray of class ids
    oof_proba_ : ndarray (n, C), NaN rows where no out-of-fold prediction exists
    temperature_ : float
    """

    def __init__(self, estimator: object | None = None, n_splits: int = 5, calibrate: bool = True,
                 random_state: int | None = 0):
        self.estimator = estimator
        self.n_splits = n_splits
        self.calibrate = calibrate
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> "KFoldCommittee":
        if not isinstance(self.n_splits, numbers.Integral) or self.n_splits < 2:
            raise ValueError(f"n_splits must be an integer >= 2, got {self.n_splits!r}")
        X = np.asarray(X)
        y = np.asarray(y)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise TrainingError(f"KFoldCommittee needs at least 2 classes in y, got {self.classes_.tolist()}")
        counts = np.bincount(y_enc)
        always = counts[y_enc] < self.n_splits
        base = self.estimator if self.estimator is not None else SVC(C=10.0)
        rest = np.flatnonzero(~always)
        n_c = len(self.classes_)
        self.oof_proba_ = np.full((len(y), n_c), np.nan)
        self.estimators_ = []
        if len(rest) >= self.n_splits and len(np.unique(y_enc[rest])) >= 2:
            skf = StratifiedKFold(self.n_splits, shuffle=True, random_state=self.random_state)
            splits = [(np.concatenate([rest[tr], np.flatnonzero(always)]), rest[te])
                      for tr, te in skf.split(rest, y_enc[rest])]
        else:  # too few items to hold any out: bootstrap-free committee of one fit, repeated
            splits = [(np.arange(len(y)), np.empty(0, dtype=np.int64))] * self.n_splits
        for tr, te in splits:
            if len(np.unique(y_enc[tr])) < n_c:
                tr = np.union1d(tr, np.flatnonzero(always | np.isin(y_enc, np.setdiff1d(np.arange(n_c), y_enc[tr]))))
            model = clone(base)
            try:
                model.fit(X[tr], y_enc[tr], sample_weight=w[tr])
            except TypeError:  # estimators without sample_weight
                model.fit(X[tr], y_enc[tr])
            self.estimators_.append(model)
            if len(te):
                self.oof_proba_[te] = self._align(model, member_probabilities(model, X[te]))
        self.temperature_ = 1.0
        have = ~np.isnan(self.oof_proba_[:, 0])
        if self.calibrate and have.sum() >= 2 * n_c and len(np.unique(y_enc[have])) >= 2:
            self.temperature_ = _fit_temperature(np.log(self.oof_proba_[have] + _EPS), y_enc[have])
            self.oof_proba_[have] = softmax(np.log(self.oof_proba_[have] + _EPS) / self.temperature_, axis=1)
        return self

    def _align(self, model: object, p: NDArray) -> NDArray:
        out = np.zeros((p.shape[0], len(self.classes_)))
        out[:, np.asarray(model.classes_, dtype=np.int64)] = p
        return out

    def predict_proba_members(self, X: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities of every member, shape ``(n_splits, n, C)``."""
        check_is_fitted(self, "estimators_")
        X = np.asarray(X)
        out = []
        for m in self.estimators_:
            p = self._align(m, member_probabilities(m, X))
            out.append(softmax(np.log(p + _EPS) / self.temperature_, axis=1))
        return np.stack(out)

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Mean calibrated probability of the members."""
        return self.predict_proba_members(X).mean(axis=0)

    def predict(self, X: ArrayLike) -> NDArray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


# ---------------------------------------------------------------- selection rule
def estimate_prior(y_labeled: ArrayLike, proba_unlabeled: ArrayLike, n_classes: int) -> NDArray[np.float64]:
    """Class prior: labeled counts plus the teacher's expected counts on the rest.

    >>> estimate_prior([0, 1], np.array([[0.5, 0.5], [0.5, 0.5]]), 2).tolist()
    [0.5, 0.5]
    """
    y = np.asarray(y_labeled, dtype=np.int64)
    counts = np.bincount(y[y >= 0], minlength=n_classes).astype(np.float64)
    P = np.asarray(proba_unlabeled, dtype=np.float64)
    if P.size:
        counts = counts + P.sum(axis=0)
    counts = counts + 1e-3  # no class gets a zero quota because the teacher never predicts it
    return counts / counts.sum()


def adaptive_thresholds(proba: ArrayLike, threshold: float = 0.9, min_threshold: float = 0.5) -> NDArray[np.float64]:
    """Per-class thresholds that adapt to how well each class is learnt (FlexMatch).

    A class the teacher rarely predicts confidently gets a lower threshold
    (``threshold * b / (2 - b)`` with ``b`` its share of confident predictions
    relative to the best class), floored at ``min_threshold`` so a
    pseudo-label always needs real confidence. As the model improves, ``b``
    tends to 1 and every threshold returns to ``threshold``.

    >>> adaptive_thresholds(np.array([[0.95, 0.05], [0.97, 0.03], [0.4, 0.6]]), 0.9, 0.5).round(2).tolist()
    [0.9, 0.5]
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if not 0.0 <= min_threshold <= threshold:
        raise ValueError(f"min_threshold must be in [0, threshold={threshold}], got {min_threshold}")
    P = np.asarray(proba, dtype=np.float64)
    c = P.shape[1]
    if P.shape[0] == 0:
        return np.full(c, threshold)
    conf = P.max(axis=1)
    pred = P.argmax(axis=1)
    sigma = np.bincount(pred[conf >= threshold], minlength=c).astype(np.float64)
    beta = sigma / max(sigma.max(), 1.0)
    return np.maximum(threshold * beta / (2.0 - beta), min_threshold)


def class_balanced_select(
    proba: ArrayLike,
    quotas: ArrayLike,
    thresholds: ArrayLike | float = 0.0,
    agreement: ArrayLike | None = None,
    min_agreement: float = 0.0,
    exclude: ArrayLike | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Pick pseudo-labels: per class, the most confident items predicted as that
    class that pass its threshold and the agreement bar, at most ``quotas[c]``.

    Returns ``(indices, labels)``; no class ever exceeds its quota.

    >>> P = np.array([[0.9, 0.1], [0.8, 0.2], [0.95, 0.05], [0.3, 0.7]])
    >>> idx, lab = class_balanced_select(P, quotas=[1, 1])
    >>> idx.tolist(), lab.tolist()
    ([2, 3], [0, 1])
    """
    P = np.asarray(proba, dtype=np.float64)
    n, c = P.shape
    q = np.asarray(quotas)
    if q.shape != (c,):
        raise ValueError(f"quotas must have one entry per class ({c}), got shape {q.shape}")
    if (q < 0).any():
        raise ValueError(f"quotas must be >= 0, got {q.tolist()}")
    th = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (c,))
    pred = P.argmax(axis=1)
    conf = P[np.arange(n), pred]
    ok = conf >= th[pred]
    if agreement is not None:
        ok &= np.asarray(agreement, dtype=np.float64) >= min_agreement
    if exclude is not None:
        ex = np.asarray(exclude)
        if ex.dtype == bool:
            ok &= ~ex
        else:
            ok[ex.astype(np.int64)] = False
    idx_out, lab_out = [], []
    for k in range(c):
        cand = np.flatnonzero(ok & (pred == k))
        take = cand[np.argsort(-conf[cand], kind="stable")][: int(q[k])]
        idx_out.append(take)
        lab_out.append(np.full(len(take), k, dtype=np.int64))
    return np.concatenate(idx_out).astype(np.int64), np.concatenate(lab_out)


# ---------------------------------------------------------------- the estimator
class SelfTrainingCommittee(ClassifierMixin, BaseEstimator):
    """Self-training with a calibrated k-fold committee teacher and class-balanced pseudo-labels.

    Each round: the teacher (a :class:`KFoldCommittee` trained on the labels and
    the current pseudo-labels, joined by a :class:`LabelGraph` at low label
    rates) scores the unlabeled items; an item becomes a pseudo-label when its
    calibrated confidence passes its class's adaptive threshold, enough
    committee members agree, and its class's quota is not full. Quotas are a
    growing share (``step`` per round) of the class mass the estimated prior
    gives the unlabeled items. Pseudo-labels are re-decided every round: one the
    new teacher no longer supports is dropped. Stops when the selection no
    longer changes, everything is labeled, or after ``max_iter`` rounds.

    Parameters
    ----------
    estimator : sklearn classifier, default=None
        Committee member; default ``SVC(C=10)``.
    n_splits : int, default=5
        Committee size (stratified folds).
    threshold : float, default=0.9
        Confidence a pseudo-label needs once its class is well learnt, in (0, 1).
    min_threshold : float, default=0.5
        Floor of the adaptive per-class thresholds.
    min_agreement : float, default=0.8
        Share of the voters (committee members, and the graph when used) whose
        top class must equal the teacher's, in [0, 1].
    step : float, default=0.25
        Share of each class's estimated unlabeled mass added to its quota per round, in (0, 1].
    max_iter : int, default=10
    graph : {"auto", True, False}, default="auto"
        Use the graph teacher; ``"auto"``: when at most ``graph_max_label_rate``
        of the items are labeled.
    graph_max_label_rate : float, default=0.5
    n_neighbors : int or tuple of int, default=(5, 10)
        Graph degrees (one graph per value, averaged).
    alpha : float, default=0.99
        Label-spreading weight of the neighbours.
    random_state : int, default=0

    Attributes
    ----------
    classes_ : ndarray
    committee_ : KFoldCommittee, the final student
    graph_ : LabelGraph or None
    transduction_ : ndarray (n,), the label (given or pseudo) of every training item, -1 where none
    pseudo_confidence_ : ndarray (n,), teacher confidence of pseudo-labels (NaN elsewhere)
    labeled_iter_ : ndarray (n,), round in which the current pseudo-label was first chosen
        (0 for given labels, -1 when unlabeled)
    n_iter_ : int
    termination_condition_ : {"max_iter", "no_change", "all_labeled"}
    history_ : list of dict per round (n_pseudo, n_new, n_dropped, thresholds)
    """

    def __init__(
        self,
        estimator: object | None = None,
        n_splits: int = 5,
        threshold: float = 0.9,
        min_threshold: float = 0.5,
        min_agreement: float = 0.8,
        step: float = 0.25,
        max_iter: int = 10,
        graph: str | bool = "auto",
        graph_max_label_rate: float = 0.5,
        n_neighbors: int | tuple[int, ...] = (5, 10),
        alpha: float = 0.99,
        random_state: int | None = 0,
    ):
        self.estimator = estimator
        self.n_splits = n_splits
        self.threshold = threshold
        self.min_threshold = min_threshold
        self.min_agreement = min_agreement
        self.step = step
        self.max_iter = max_iter
        self.graph = graph
        self.graph_max_label_rate = graph_max_label_rate
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.random_state = random_state

    def _validate_params(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if not 0.0 <= self.min_threshold <= self.threshold:
            raise ValueError(f"min_threshold must be in [0, threshold={self.threshold}], got {self.min_threshold}")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"min_agreement must be in [0, 1], got {self.min_agreement}")
        if not 0.0 < self.step <= 1.0:
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        if not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if self.graph not in ("auto", True, False):
            raise ValueError(f"graph must be 'auto', True or False, got {self.graph!r}")

    def _teacher(self, X: NDArray, train: NDArray, y_train: NDArray, w_train: NDArray,
                 rows: NDArray, G: NDArray | None) -> tuple[KFoldCommittee, NDArray, NDArray]:
        committee = KFoldCommittee(self.estimator, self.n_splits, True, self.random_state)
        committee.fit(X[train], y_train, sample_weight=w_train)
        M = np.zeros((self.n_splits, len(rows), len(self.classes_)))
        M[:, :, committee.classes_] = committee.predict_proba_members(X[rows])
        if G is not None:
            # Trust the committee in proportion to the labels it was trained on: at
            # one label per class the graph is the far better teacher; once the
            # pseudo-labels cover the pool both weigh about the same.
            w = len(train) / (len(train) + len(rows))
            T = w * M.mean(axis=0) + (1 - w) * G[rows]
            votes = np.concatenate([M.argmax(axis=2), G[rows].argmax(axis=1)[None]])
        else:
            T = M.mean(axis=0)
            votes = M.argmax(axis=2)
        agreement = (votes == T.argmax(axis=1)[None]).mean(axis=0)
        return committee, T, agreement

    def fit(self, X: ArrayLike, y: ArrayLike) -> "SelfTrainingCommittee":
        """Fit on ``X`` with ``y`` holding class ids and -1 for unlabeled items."""
        self._validate_params()
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]} labels")
        labeled = y != -1
        if labeled.sum() == 0:
            raise TrainingError("self-training needs at least one labeled item (y has only -1)")
        self.classes_, y_enc_l = np.unique(y[labeled], return_inverse=True)
        if len(self.classes_) < 2:
            raise TrainingError(f"self-training needs at least 2 labeled classes, got {self.classes_.tolist()}")
        n, c = X.shape[0], len(self.classes_)
        y_enc = np.full(n, -1, dtype=np.int64)
        y_enc[labeled] = y_enc_l
        lab_idx = np.flatnonzero(labeled)
        unl = np.flatnonzero(~labeled)
        use_graph = self.graph is True or (self.graph == "auto" and labeled.mean() <= self.graph_max_label_rate)
        G = None
        self.graph_ = None
        if use_graph and len(unl):
            self.graph_ = LabelGraph(self.n_neighbors, self.alpha).fit(X)
            G = self.graph_.spread(y_enc, c)
            self.graph_proba_ = G
        pseudo_lab = np.full(n, -1, dtype=np.int64)
        pseudo_conf = np.full(n, np.nan)
        first_iter = np.where(labeled, 0, -1)
        self.history_ = []
        self.termination_condition_ = "all_labeled" if len(unl) == 0 else "max_iter"
        self.n_iter_ = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # SVC(probability=...) deprecation noise in user estimators
            for it in range(1, self.max_iter + 1):
                if len(unl) == 0:
                    break
                self.n_iter_ = it
                chosen = np.flatnonzero(pseudo_lab >= 0)
                train = np.concatenate([lab_idx, chosen])
                y_train = np.concatenate([y_enc[lab_idx], pseudo_lab[chosen]])
                w_train = np.concatenate([np.ones(len(lab_idx)), pseudo_conf[chosen]])
                _, T, agreement = self._teacher(X, train, y_train, w_train, unl, G)
                prior = estimate_prior(y_enc[lab_idx], T, c)
                share = min(1.0, self.step * it)
                quotas = np.floor(share * prior * len(unl)).astype(np.int64)
                thresholds = adaptive_thresholds(T, self.threshold, self.min_threshold)
                sel, sel_y = class_balanced_select(T, quotas, thresholds, agreement, self.min_agreement)
                new_lab = np.full(n, -1, dtype=np.int64)
                new_lab[unl[sel]] = sel_y
                new_conf = np.full(n, np.nan)
                new_conf[unl[sel]] = T[sel, sel_y]
                changed = new_lab != pseudo_lab
                n_new = int(((new_lab >= 0) & (pseudo_lab < 0)).sum())
                n_dropped = int(((new_lab < 0) & (pseudo_lab >= 0)).sum())
                first_iter = np.where((new_lab >= 0) & changed, it, first_iter)
                first_iter = np.where(~labeled & (new_lab < 0), -1, first_iter)
                self.history_.append({"iter": it, "n_pseudo": int((new_lab >= 0).sum()), "n_new": n_new,
                                      "n_dropped": n_dropped, "thresholds": thresholds.round(3).tolist(),
                                      "quotas": quotas.tolist()})
                pseudo_lab, pseudo_conf = new_lab, new_conf
                if n_new == 0 and share >= 1.0:
                    self.termination_condition_ = "no_change"
                    break
            chosen = np.flatnonzero(pseudo_lab >= 0)
            train = np.concatenate([lab_idx, chosen])
            self.committee_ = KFoldCommittee(self.estimator, self.n_splits, True, self.random_state).fit(
                X[train],
                np.concatenate([y_enc[lab_idx], pseudo_lab[chosen]]),
                sample_weight=np.concatenate([np.ones(len(lab_idx)), pseudo_conf[chosen]]),
            )
        self.transduction_ = np.where(labeled, y, np.where(pseudo_lab >= 0, self.classes_[np.maximum(pseudo_lab, 0)], -1))
        self.pseudo_confidence_ = pseudo_conf
        self.labeled_iter_ = first_iter
        return self

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Mean of the student committee and, when used, the graph's induced probabilities."""
        check_is_fitted(self, "committee_")
        X = np.asarray(X, dtype=np.float64)
        P = np.zeros((X.shape[0], len(self.classes_)))
        P[:, self.committee_.classes_] = self.committee_.predict_proba(X)
        if self.graph_ is not None:
            P = (P + self.graph_.induce(self.graph_proba_, X)) / 2
        return P

    def predict(self, X: ArrayLike) -> NDArray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
