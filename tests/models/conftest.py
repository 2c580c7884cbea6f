"""Fixtures for the model tests: real offline data (scikit-learn's digits)."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    # The machine these run on has 2 cores; never oversubscribe them.
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as (n, 8, 8) float32 images in [0, 1], and their classes."""
    d = load_digits()
    return (d.data / 16.0).astype(np.float32).reshape(-1, 8, 8), d.target.astype(np.int64)


@pytest.fixture(scope="session")
def small_digits(digits) -> tuple[np.ndarray, np.ndarray]:
    """A stratified 500-item subset, for tests about behaviour rather than accuracy."""
    X, y = digits
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), 50, replace=False) for c in range(10)])
    return X[idx], y[idx]
