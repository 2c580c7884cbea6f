"""Temperature scaling: the one calibration of the loop.

The committee fits one temperature on its out-of-fold logits (Guo et al. 2017);
every stage reads probabilities after it, so margins and thresholds mean the
same thing from turn to turn.

>>> import numpy as np
>>> z = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]])
>>> t = fit_temperature(z, np.eye(2)[[0, 1, 1, 0]])  # half wrong: flatten the probabilities
>>> t > 1.0
True
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = ["softmax", "fit_temperature"]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(logits: np.ndarray, targets: np.ndarray, weight: np.ndarray | None = None) -> float:
    """The temperature ``T`` minimising the (weighted) log loss of ``softmax(logits / T)``.

    Parameters
    ----------
    logits : ndarray of shape (n, n_classes)
        Log-probabilities work too (a model without logits).
    targets : ndarray of shape (n, n_classes)
        Probability rows (one-hot for hard labels).
    weight : ndarray of shape (n,), optional

    Searched over ``T`` in [0.05, 20] on a log scale.
    """
    w = np.ones(len(logits)) if weight is None else np.asarray(weight, float)
    if len(logits) == 0 or w.sum() <= 0:
        return 1.0

    def nll(log_t: float) -> float:
        p = softmax(logits, np.exp(log_t))
        return float(-(w * (targets * np.log(np.clip(p, 1e-12, None))).sum(1)).sum() / w.sum())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))
