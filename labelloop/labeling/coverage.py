"""Growing coverage: a model trained on the covered items labels the items no LF voted on.

Keyword LFs cover about half of a text collection; a classifier trained on the
weakly labeled half, over features that generalise beyond the keywords (MiniLM
sentence embeddings), gives the other half soft labels. This is the model
stage's job in the pipeline; :func:`expand_coverage` is the same step as a plain
function for scripts and benchmarks.

Examples
--------
>>> import numpy as np
>>> X = np.array([[0.0], [0.1], [1.0], [0.9], [0.05], [0.95]])
>>> P = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0.5, 0.5], [0.5, 0.5]])
>>> covered = np.array([True, True, True, True, False, False])
>>> probs, filled = expand_coverage(P, covered, X * 10)
>>> probs[4:].argmax(1).tolist(), filled.tolist()[4:]
([0, 1], [True, True])
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from labelloop.exceptions import TrainingError

__all__ = ["expand_coverage"]


def expand_coverage(
    posteriors: np.ndarray,
    covered: np.ndarray,
    X: Any,
    estimator: Any = None,
    min_confidence: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft labels for uncovered items from a classifier trained on the covered ones.

    Parameters
    ----------
    posteriors : ndarray (n_items, n_classes)
        Label-model posteriors; rows of uncovered items are ignored.
    covered : ndarray of bool (n_items,)
        Items with at least one LF vote.
    X : array-like (n_items, n_features)
        Features of every item (embeddings, TF-IDF, ...).
    estimator : classifier with predict_proba, default LogisticRegression(max_iter=2000)
        Trained on the covered items' most probable class, weighted by its probability.
    min_confidence : float, default=0.0
        Uncovered items whose predicted top probability is below this stay unlabeled.

    Returns
    -------
    probs : ndarray (n_items, n_classes)
        Posteriors of covered items unchanged, predictions for the others.
    labeled : ndarray of bool
        Items that now have a label (covered, or predicted confidently enough).
    """
    posteriors = np.asarray(posteriors, dtype=np.float64)
    covered = np.asarray(covered, dtype=bool)
    n, n_classes = posteriors.shape
    if covered.shape != (n,):
        raise ValueError(f"covered must have shape ({n},) (got {covered.shape})")
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1] (got {min_confidence})")
    probs = posteriors.copy()
    labeled = covered.copy()
    if covered.all() or not covered.any():
        return probs, labeled
    y = posteriors[covered].argmax(1)
    if len(np.unique(y)) < 2:
        raise TrainingError(f"coverage: the {int(covered.sum())} covered items all carry one class; cannot train a classifier")
    model = clone(estimator) if estimator is not None else LogisticRegression(max_iter=2000)
    model.fit(X[covered], y, sample_weight=posteriors[covered].max(1))
    predicted = model.predict_proba(X[~covered])
    full = np.zeros((len(predicted), n_classes))
    full[:, model.classes_] = predicted
    rows = np.flatnonzero(~covered)
    keep = full.max(1) >= min_confidence
    probs[rows[keep]] = full[keep]
    labeled[rows[keep]] = True
    return probs, labeled
