"""Temperature scaling guards: a handful of held-out labels must not flatten every probability of the loop."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.models.calibration import calibration_rows, fit_temperature, softmax
from labelloop.models.ensemble import KFoldCommittee


def _overconfident(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits three times too sharp: the right temperature is 3."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, (n, 5))
    y = np.array([rng.choice(5, p=p) for p in softmax(z)])
    return 3.0 * z, np.eye(5)[y]


def test_few_held_out_items_keep_temperature_one_many_recover_it():
    z, Y = _overconfident(4000)
    assert fit_temperature(z, Y) == pytest.approx(3.0, rel=0.1)
    # the same miscalibration seen on 3 items is no evidence: T stays 1 instead of running to a bound
    assert fit_temperature(z[:3], Y[:3]) == 1.0
    # without the test the 3 items move T anyway (what flattened digits at 1 % labels)
    assert fit_temperature(z[:3], Y[:3], alpha=None) != 1.0
    with pytest.raises(ValueError, match="alpha must be in"):
        fit_temperature(z, Y, alpha=1.5)


def test_weights_count_as_their_effective_number():
    z, Y = _overconfident(4000)
    heavy = np.r_[np.full(3, 1e6), np.full(3997, 1e-6)]  # three items carry all the weight
    assert fit_temperature(z, Y, heavy) == 1.0
    assert fit_temperature(z, Y, np.full(4000, 7.0)) == pytest.approx(3.0, rel=0.1)


def test_calibration_rows_leave_out_classes_the_fold_never_saw():
    Y = np.eye(3)[[0, 0, 1, 2, 2, 1]]
    folds = [(np.array([0, 1, 4]), np.array([2, 3, 5])),  # trains on classes 0, 2: held-out class-1 rows 2, 5 out
             (np.array([2, 3, 5]), np.array([0, 1, 4]))]  # trains on classes 1, 2: held-out class-0 rows 0, 1 out
    assert calibration_rows(Y, folds).tolist() == [False, False, False, True, True, False]


def test_one_or_two_labels_per_class_keep_the_pool_probabilities_sharp(digits):
    X, y = digits
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), 1 + (c < 3), replace=False) for c in range(10)])
    committee = KFoldCommittee(model="logreg", n_splits=5, n_classes=10).fit(X[idx].reshape(len(idx), -1), y[idx])
    pool = np.setdiff1d(np.arange(len(y)), idx)
    proba = committee.predict_proba(X[pool].reshape(len(pool), -1))
    # most held-out rows are of a class their fold never saw: they say nothing about over-confidence
    assert committee.temperature_ < 2.0
    assert proba.max(axis=1).mean() > 0.3 and (proba.argmax(1) == y[pool]).mean() > 0.5
