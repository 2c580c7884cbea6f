"""Fixtures of the labeling tests: small real data (sklearn digits) and toy probability arrays."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


@pytest.fixture(scope="session")
def digits_split():
    """The ANCHORS.md protocol split: 1,257-item pool, 540 test items."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xp, Xt, yp, yt = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    return Xp, Xt, yp, yt


@pytest.fixture
def toy_proba():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 4)) * 2
    P = np.exp(logits)
    return P / P.sum(axis=1, keepdims=True)
