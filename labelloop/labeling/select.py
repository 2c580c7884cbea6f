"""Active-learning query strategies: scoring apart from selection (modAL style).

A *scorer* is a small pure function of probability arrays that returns one
number per item, larger = more worth labeling:

- single model, ``proba`` of shape ``(n, C)``: :func:`least_confidence`,
  :func:`margin`, :func:`entropy`;
- committee, ``member_proba`` of shape ``(m, n, C)``: :func:`vote_entropy`,
  :func:`kl_disagreement`, :func:`bald`.

A *selector* turns scores into a batch of item indices:

- :func:`top_k` (pure ranking; O(n) with ``argpartition``),
- :func:`diverse_top_k` (batch-mode diversity: the best-scored item of each
  cluster of the top candidates, so one batch does not spend ten labels on ten
  near-copies),
- :func:`representative_k` (cold start: items nearest the centres of the
  largest clusters not yet covered by labels; uncertainty is meaningless before
  the model has seen each region once),
- :func:`random_k`.

:func:`query` combines them: cold start while some cluster is uncovered, then
uncertainty + diversity. Everything works on plain arrays, so the same code
serves sklearn models, ``KFoldCommittee`` committees and the router.

>>> import numpy as np
>>> p = np.array([[0.9, 0.1], [0.55, 0.45], [0.6, 0.4]])
>>> top_k(margin(p), 1).tolist()
[1]
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "least_confidence",
    "margin",
    "entropy",
    "vote_entropy",
    "kl_disagreement",
    "bald",
    "random_scores",
    "top_k",
    "random_k",
    "diverse_top_k",
    "representative_k",
    "uncertain_representative_k",
    "kmeans",
    "query",
    "SCORERS",
    "COMMITTEE_SCORERS",
]

_EPS = 1e-12
# Rows scored per chunk: bounds temporary memory to ~chunk * C floats whatever n is.
_CHUNK = 65536


def _proba(proba: ArrayLike, name: str = "proba") -> NDArray[np.floating]:
    p = np.asarray(proba, dtype=np.float64 if np.asarray(proba).dtype == np.float64 else np.float32)
    if p.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (n_items, n_classes), got shape {p.shape}")
    if p.shape[1] < 2:
        raise ValueError(f"{name} needs at least 2 classes, got shape {p.shape}")
    return p


def _members(member_proba: ArrayLike) -> NDArray[np.floating]:
    p = np.asarray(member_proba, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(
            f"member_proba must be a 3-d array (n_members, n_items, n_classes), got shape {p.shape}"
        )
    if p.shape[0] < 2:
        raise ValueError(f"a committee needs at least 2 members, got {p.shape[0]}")
    return p


def _chunked(fn: Callable[[NDArray], NDArray], p: NDArray) -> NDArray[np.float64]:
    out = np.empty(p.shape[0], dtype=np.float64)
    for start in range(0, p.shape[0], _CHUNK):
        out[start : start + _CHUNK] = fn(p[start : start + _CHUNK])
    return out


# ---------------------------------------------------------------- single-model scorers
def least_confidence(proba: ArrayLike) -> NDArray[np.float64]:
    """``1 - max_c p(c)``: how unsure the model is of its top class.

    >>> least_confidence([[0.7, 0.3], [0.5, 0.5]]).round(2).tolist()
    [0.3, 0.5]
    """
    return _chunked(lambda q: 1.0 - q.max(axis=1), _proba(proba))


def margin(proba: ArrayLike) -> NDArray[np.float64]:
    """``1 - (p_top1 - p_top2)``: a small gap between the two best classes scores high.

    >>> margin([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]]).round(2).tolist()
    [0.5, 0.95]
    """

    def gap(q: NDArray) -> NDArray:
        two = np.partition(q, q.shape[1] - 2, axis=1)[:, -2:]
        return 1.0 - (two[:, 1] - two[:, 0])

    return _chunked(gap, _proba(proba))


def entropy(proba: ArrayLike) -> NDArray[np.float64]:
    """Shannon entropy of the predicted distribution (nats).

    >>> entropy([[1.0, 0.0], [0.5, 0.5]]).round(3).tolist()
    [0.0, 0.693]
    """
    return _chunked(lambda q: np.maximum(-(q * np.log(q + _EPS)).sum(axis=1), 0.0), _proba(proba))


def random_scores(n: int, random_state: int | np.random.Generator | None = None) -> NDArray[np.float64]:
    """Uniform random scores: the random-sampling baseline as a scorer."""
    return np.random.default_rng(random_state).random(n)


# ---------------------------------------------------------------- committee scorers
def vote_entropy(member_proba: ArrayLike) -> NDArray[np.float64]:
    """Entropy of the members' hard votes (query by committee).

    >>> m = np.array([[[0.9, 0.1], [0.9, 0.1]], [[0.8, 0.2], [0.1, 0.9]]])
    >>> vote_entropy(m).round(3).tolist()
    [0.0, 0.693]
    """
    p = _members(member_proba)
    m, n, c = p.shape
    votes = p.argmax(axis=2)  # (m, n)
    counts = np.zeros((n, c))
    for row in votes:
        counts[np.arange(n), row] += 1
    frac = counts / m
    return np.maximum(-(frac * np.log(frac + _EPS)).sum(axis=1), 0.0)


def kl_disagreement(member_proba: ArrayLike) -> NDArray[np.float64]:
    """Mean KL divergence of each member from the committee consensus."""
    p = _members(member_proba)
    consensus = p.mean(axis=0)
    kl = (p * (np.log(p + _EPS) - np.log(consensus + _EPS)[None])).sum(axis=2)
    return kl.mean(axis=0)


def bald(member_proba: ArrayLike) -> NDArray[np.float64]:
    """BALD-like mutual information: entropy of the mean minus mean member entropy.

    High when members are individually confident but disagree, i.e. the
    uncertainty is about the model (reducible by a label), not the item.
    """
    p = _members(member_proba)
    mean_h = -(p * np.log(p + _EPS)).sum(axis=2).mean(axis=0)
    return entropy(p.mean(axis=0)) - mean_h


SCORERS: dict[str, Callable[[ArrayLike], NDArray[np.float64]]] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}
COMMITTEE_SCORERS: dict[str, Callable[[ArrayLike], NDArray[np.float64]]] = {
    "vote_entropy": vote_entropy,
    "kl_disagreement": kl_disagreement,
    "bald": bald,
}


# ---------------------------------------------------------------- selection
def _check_k(k: int, n: int) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
        raise ValueError(f"batch size k must be a non-negative integer, got {k!r}")
    return int(min(k, n))


def _allowed(scores: NDArray, exclude: ArrayLike | None) -> NDArray[np.float64]:
    s = np.asarray(scores, dtype=np.float64).copy()
    if exclude is not None:
        ex = np.asarray(exclude)
        if ex.dtype == bool:
            if ex.shape != s.shape:
                raise ValueError(f"exclude mask has shape {ex.shape}, expected {s.shape}")
            s[ex] = -np.inf
        else:
            s[ex.astype(np.int64)] = -np.inf
    return s


def top_k(scores: ArrayLike, k: int, exclude: ArrayLike | None = None) -> NDArray[np.int64]:
    """Indices of the ``k`` highest scores, best first; excluded items never come back.

    >>> top_k([0.1, 0.9, 0.5], 2).tolist()
    [1, 2]
    """
    s = _allowed(np.asarray(scores), exclude)
    k = _check_k(k, int(np.isfinite(s).sum()))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    idx = np.argpartition(-s, k - 1)[:k]
    return idx[np.argsort(-s[idx], kind="stable")].astype(np.int64)


def random_k(
    n: int, k: int, exclude: ArrayLike | None = None, random_state: int | np.random.Generator | None = None
) -> NDArray[np.int64]:
    """``k`` distinct random indices among ``range(n)`` minus ``exclude``."""
    return top_k(random_scores(n, random_state), k, exclude)


def kmeans(
    X: NDArray, n_clusters: int, n_iter: int = 10, random_state: int | np.random.Generator | None = 0,
    sample_weight: NDArray | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Small k-means (k-means++ seeding, Lloyd steps); returns ``(centers, assignment)``.

    Kept here (not sklearn's) because it is called on every query with few
    points and must be cheap and deterministic for a seed.
    """
    rng = np.random.default_rng(random_state)
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    n_clusters = min(n_clusters, n)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    sq = (X * X).sum(axis=1)
    centers = np.empty((n_clusters, X.shape[1]))
    first = rng.choice(n, p=w / w.sum())
    centers[0] = X[first]
    d2 = np.maximum(sq - 2 * X @ centers[0] + sq[first], 0)
    for i in range(1, n_clusters):
        p = d2 * w
        total = p.sum()
        j = rng.choice(n, p=p / total) if total > 0 else rng.integers(n)
        centers[i] = X[j]
        d2 = np.minimum(d2, np.maximum(sq - 2 * X @ centers[i] + sq[j], 0))
    assign = np.zeros(n, dtype=np.int64)
    for _ in range(n_iter):
        dist = sq[:, None] - 2 * X @ centers.T + (centers * centers).sum(axis=1)[None]
        new = dist.argmin(axis=1)
        if _ > 0 and np.array_equal(new, assign):
            break
        assign = new
        # Weighted means of all clusters at once (one bincount per feature, no Python loop over clusters).
        mass = np.bincount(assign, weights=w, minlength=n_clusters)
        sums = np.stack([np.bincount(assign, weights=X[:, j] * w, minlength=n_clusters) for j in range(X.shape[1])],
                        axis=1)
        filled = mass > 0
        centers[filled] = sums[filled] / mass[filled, None]
    return centers, assign


def diverse_top_k(
    scores: ArrayLike,
    X: ArrayLike,
    k: int,
    exclude: ArrayLike | None = None,
    candidate_factor: int = 10,
    random_state: int | np.random.Generator | None = 0,
) -> NDArray[np.int64]:
    """Batch-mode diversity: cluster the ``candidate_factor * k`` best-scored items
    into ``k`` clusters and take the best-scored item of each.

    Only the candidates are clustered, so the cost does not grow with the pool
    beyond the O(n) ``argpartition`` (a 1M-item pool stays well under a second).
    """
    s = np.asarray(scores, dtype=np.float64)
    X = np.asarray(X)
    if X.shape[0] != s.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but scores has {s.shape[0]} items")
    if candidate_factor < 1:
        raise ValueError(f"candidate_factor must be >= 1, got {candidate_factor}")
    cand = top_k(s, k * candidate_factor, exclude)
    k = _check_k(k, len(cand))
    if k == 0 or len(cand) <= k:
        return cand[:k]
    _, assign = kmeans(X[cand], k, random_state=random_state)
    picked = []
    for c in range(k):
        members = np.flatnonzero(assign == c)
        if members.size:
            picked.append(cand[members[np.argmax(s[cand[members]])]])
    picked_arr = np.array(picked, dtype=np.int64)
    if picked_arr.size < k:  # empty clusters: fill with the next best candidates
        rest = np.setdiff1d(cand, picked_arr, assume_unique=True)
        rest = rest[np.argsort(-s[rest], kind="stable")][: k - picked_arr.size]
        picked_arr = np.concatenate([picked_arr, rest])
    return picked_arr[np.argsort(-s[picked_arr], kind="stable")]


def representative_k(
    X: ArrayLike,
    k: int,
    labeled: ArrayLike | None = None,
    n_clusters: int | None = None,
    max_points: int = 20000,
    random_state: int | np.random.Generator | None = 0,
) -> NDArray[np.int64]:
    """Cold start: the items nearest the centres of the largest clusters that
    hold no labeled item yet (representativeness, not uncertainty).

    Parameters
    ----------
    X : array of shape (n, d)
        Features or embeddings of the pool.
    k : int
        Batch size.
    labeled : indices or boolean mask, optional
        Items already labeled; their clusters count as covered.
    n_clusters : int, optional
        Default ``n_labeled + k``: enough clusters that ``k`` of them are new.
    max_points : int, default=20000
        Clustering runs on a random sample this large, so memory stays bounded.
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    lab = np.zeros(n, dtype=bool)
    if labeled is not None:
        lab_in = np.asarray(labeled)
        if lab_in.dtype == bool:
            lab = lab_in.copy()
        else:
            lab[lab_in.astype(np.int64)] = True
    k = _check_k(k, int((~lab).sum()))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    # Enough clusters that k of them are new, but bounded: the clustering costs O(max_points * n_clusters),
    # whatever the pool or the number of labels.
    n_clusters = n_clusters or min(int(lab.sum()) + k, 4 * k + 64)
    sample = np.arange(n) if n <= max_points else np.sort(rng.choice(n, max_points, replace=False))
    lab_idx = np.flatnonzero(lab)
    if len(lab_idx) > max_points:  # coverage is judged on a sample of the labeled items too
        lab_idx = rng.choice(lab_idx, max_points, replace=False)
    sample = np.union1d(sample, lab_idx)
    centers, assign = kmeans(X[sample], n_clusters, random_state=rng)
    covered = np.zeros(len(centers), dtype=bool)
    covered[np.unique(assign[lab[sample]])] = True
    sizes = np.bincount(assign, minlength=len(centers))
    order = [c for c in np.argsort(-sizes, kind="stable") if not covered[c]]
    order += [c for c in np.argsort(-sizes, kind="stable") if covered[c]]
    picked: list[int] = []
    taken = lab.copy()
    for c in order:
        if len(picked) == k:
            break
        members = sample[(assign == c) & ~taken[sample]]
        if members.size == 0:
            continue
        d = ((X[members] - centers[c]) ** 2).sum(axis=1)
        j = int(members[np.argmin(d)])
        picked.append(j)
        taken[j] = True
    if len(picked) < k:
        picked += list(random_k(n, k - len(picked), exclude=taken, random_state=rng))
    return np.array(picked, dtype=np.int64)


def uncertain_representative_k(
    scores: ArrayLike,
    X: ArrayLike,
    k: int,
    labeled: ArrayLike | None = None,
    fraction: float = 0.3,
    max_points: int = 20000,
    random_state: int | np.random.Generator | None = 0,
) -> NDArray[np.int64]:
    """Representatives of the uncertain region: restrict the pool to its most
    uncertain ``fraction``, cluster that region together with the labeled items,
    and take the item nearest the centre of each large cluster no label covers.

    Pure top-k uncertainty spends a batch on outliers and near-duplicates on one
    boundary; this picks items that are uncertain *and* stand for many others
    (in the spirit of Cluster-Margin, Citovsky et al. 2021).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    s = np.asarray(scores, dtype=np.float64)
    X = np.asarray(X)
    n = s.shape[0]
    if X.shape[0] != n:
        raise ValueError(f"X has {X.shape[0]} rows but scores has {n} items")
    lab = np.zeros(n, dtype=bool)
    if labeled is not None:
        li = np.asarray(labeled)
        lab[li if li.dtype == bool else li.astype(np.int64)] = True
    n_cand = max(int(np.ceil(fraction * (n - lab.sum()))), k)
    cand = top_k(s, n_cand, exclude=lab)
    if len(cand) > max_points:  # bound memory: cluster a random sample of the uncertain region
        rng = np.random.default_rng(random_state)
        cand = np.sort(rng.choice(cand, max_points, replace=False))
        random_state = rng
    lab_idx = np.flatnonzero(lab)
    if len(lab_idx) > max_points:  # only coverage needs them: a sample bounds the clustering
        lab_idx = np.sort(np.random.default_rng(random_state).choice(lab_idx, max_points, replace=False))
    sub = np.concatenate([cand, lab_idx])
    picked = representative_k(
        X[sub], k, labeled=np.arange(len(cand), len(sub)), max_points=max_points, random_state=random_state
    )
    return sub[picked]


def query(
    proba: ArrayLike | None,
    X: ArrayLike,
    k: int,
    labeled: ArrayLike | None = None,
    strategy: str = "margin",
    member_proba: ArrayLike | None = None,
    batch_mode: str = "representative",
    uncertain_fraction: float = 0.3,
    cold_start_per_class: int = 3,
    candidate_factor: int = 10,
    random_state: int | np.random.Generator | None = 0,
) -> NDArray[np.int64]:
    """One active-learning batch.

    While fewer than ``cold_start_per_class * C`` items are labeled the batch
    is chosen for representativeness alone (uncertainty sampling is worse than
    random before the model has seen each region); afterwards ``strategy``
    scores the pool and ``batch_mode`` turns scores into a diverse batch.

    Parameters
    ----------
    proba : array (n, C) or None
        Current model's probabilities over the pool (single-model strategies).
    X : array (n, d)
        Pool features/embeddings, for diversity and representativeness.
    k : int
        Batch size.
    labeled : indices or mask, optional
        Already labeled items (never returned).
    strategy : str, default="margin"
        ``random``, ``least_confidence``, ``margin``, ``entropy``,
        ``vote_entropy``, ``kl_disagreement`` or ``bald``.
    member_proba : array (m, n, C), optional
        Committee members' probabilities (committee strategies).
    batch_mode : {"representative", "diverse", "greedy"}, default="representative"
        ``representative``: :func:`uncertain_representative_k`; ``diverse``:
        :func:`diverse_top_k`; ``greedy``: plain :func:`top_k`.
    uncertain_fraction : float, default=0.3
        Share of the pool that counts as uncertain in ``representative`` mode.
    cold_start_per_class : int, default=3
        Labels per class (on average) before uncertainty takes over; 0 disables.
    """
    X = np.asarray(X)
    n = X.shape[0]
    lab = np.zeros(n, dtype=bool)
    if labeled is not None:
        li = np.asarray(labeled)
        lab[li if li.dtype == bool else li.astype(np.int64)] = True
    rng = np.random.default_rng(random_state)
    if batch_mode not in ("representative", "diverse", "greedy"):
        raise ValueError(f"batch_mode must be one of representative, diverse, greedy (got {batch_mode!r})")
    if strategy == "random":
        return random_k(n, k, exclude=lab, random_state=rng)
    if strategy in COMMITTEE_SCORERS:
        if member_proba is None:
            raise ValueError(f"strategy {strategy!r} needs member_proba (n_members, n_items, n_classes)")
        scores = COMMITTEE_SCORERS[strategy](member_proba)
        n_classes = np.asarray(member_proba).shape[2]
    elif strategy in SCORERS:
        if proba is None:
            raise ValueError(f"strategy {strategy!r} needs proba (n_items, n_classes)")
        scores = SCORERS[strategy](proba)
        n_classes = np.asarray(proba).shape[1]
    else:
        known = ["random", *SCORERS, *COMMITTEE_SCORERS]
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {known}")
    if scores.shape[0] != n:
        raise ValueError(f"probabilities cover {scores.shape[0]} items but X has {n} rows")
    if lab.sum() < cold_start_per_class * n_classes:
        return representative_k(X, k, labeled=lab, random_state=rng)
    if batch_mode == "representative":
        return uncertain_representative_k(scores, X, k, labeled=lab, fraction=uncertain_fraction, random_state=rng)
    if batch_mode == "diverse":
        return diverse_top_k(scores, X, k, exclude=lab, candidate_factor=candidate_factor, random_state=rng)
    return top_k(scores, k, exclude=lab)
