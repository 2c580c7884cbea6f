"""Baseline committee: stratified k-fold scikit-learn models over resolved labels.

Soft labels are trained as weighted rows, one per class, weighted by the
label's probability (times its sample weight): the usual way to fit a
probabilistic target with a classifier that takes hard labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from labelloop.exceptions import TrainingError

__all__ = ["KFoldBaseline", "expand_soft_labels", "default_estimator"]


def default_estimator(sparse: bool = False, seed: int = 0) -> BaseEstimator:
    model = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
    return model if sparse else make_pipeline(StandardScaler(), model)


def expand_soft_labels(X, probs: np.ndarray, weights: np.ndarray, min_prob: float = 1e-3):
    """Rows repeated per class with weight = probability × sample weight (tiny probabilities dropped)."""
    rows, classes = np.nonzero(probs >= min_prob)
    return X[rows], classes, probs[rows, classes] * weights[rows]


@dataclass
class FoldScore:
    fold: int
    n_train: int
    n_valid: int
    accuracy: float
    macro_f1: float


class KFoldBaseline(ClassifierMixin, BaseEstimator):
    """Stratified k-fold committee of one scikit-learn model.

    Parameters
    ----------
    estimator : estimator, default=None
        A classifier taking ``sample_weight``; default a standardized LogisticRegression.
    n_splits : int, default=5
    random_state : int, default=0
    """

    def __init__(self, estimator: BaseEstimator | None = None, n_splits: int = 5, random_state: int = 0) -> None:
        self.estimator = estimator
        self.n_splits = n_splits
        self.random_state = random_state

    def fit(self, X, probs: np.ndarray, sample_weight: np.ndarray | None = None, n_classes: int | None = None):
        """Fit on (n, C) label probabilities (one-hot for hard labels)."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2:
            raise TrainingError(f"labels must be an (n, n_classes) probability matrix (got shape {probs.shape})")
        n = probs.shape[0]
        self.n_classes_ = n_classes or probs.shape[1]
        weights = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        hard = probs.argmax(axis=1)
        counts = np.bincount(hard, minlength=self.n_classes_)
        present = counts[counts > 0]
        if len(present) < 2:
            raise TrainingError(f"training needs labels of at least 2 classes (got counts {counts.tolist()})")
        n_splits = int(min(self.n_splits, present.min()))
        if n_splits < 2:
            raise TrainingError(
                f"stratified {self.n_splits}-fold training needs >= 2 labeled items per class present "
                f"(smallest class has {int(present.min())})"
            )
        self.n_splits_ = n_splits
        base = self.estimator if self.estimator is not None else default_estimator(hasattr(X, "tocsr"), self.random_state)
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
        self.oof_proba_ = np.zeros((n, self.n_classes_))
        self.models_, self.fold_scores_ = [], []
        for fold, (train, valid) in enumerate(splitter.split(np.zeros(n), hard)):
            Xe, ye, we = expand_soft_labels(X[train], probs[train], weights[train])
            model = clone(base).fit(Xe, ye, **self._weight_kw(model=base, weights=we))
            self.oof_proba_[valid] = self._full_proba(model, X[valid])
            self.models_.append(model)
            predicted = self.oof_proba_[valid].argmax(axis=1)
            self.fold_scores_.append(
                FoldScore(
                    fold,
                    len(train),
                    len(valid),
                    float(accuracy_score(hard[valid], predicted)),
                    float(f1_score(hard[valid], predicted, average="macro", labels=np.unique(hard))),
                )
            )
        return self

    @staticmethod
    def _weight_kw(model: BaseEstimator, weights: np.ndarray) -> dict:
        if hasattr(model, "steps"):
            return {f"{model.steps[-1][0]}__sample_weight": weights}
        return {"sample_weight": weights}

    def _full_proba(self, model: BaseEstimator, X) -> np.ndarray:
        """Probabilities over all classes, zero for classes the fold never saw."""
        proba = np.zeros((X.shape[0], self.n_classes_))
        proba[:, model.classes_] = model.predict_proba(X)
        return proba

    def predict_proba_members(self, X) -> np.ndarray:
        check_is_fitted(self, "models_")
        return np.stack([self._full_proba(m, X) for m in self.models_])

    def predict_proba(self, X) -> np.ndarray:
        return self.predict_proba_members(X).mean(axis=0)

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)
