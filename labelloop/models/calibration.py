"""Temperature scaling: the one calibration of the loop.

The committee fits one temperature on its out-of-fold logits (Guo et al. 2017);
every stage reads probabilities after it, so margins and thresholds mean the
same thing from turn to turn.

Two guards keep a handful of held-out labels from flattening every probability
of the loop (digits with 1-2 labels per class drove ``T`` to its cap of 20, so
no pool item passed any confidence bar and self-training stopped):

- :func:`calibration_rows`: a held-out item whose class is absent from its
  fold's training part measures the missing class, not over-confidence (the
  full committee saw that class); it is left out of the fit.
- :func:`fit_temperature` keeps ``T = 1`` unless a likelihood-ratio test
  rejects it at level ``alpha`` (5 %, the usual level; no per-data-set
  number): with few held-out items the evidence must be strong to move ``T``,
  with many every real miscalibration is corrected.

>>> import numpy as np
>>> z = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]] * 5)
>>> t = fit_temperature(z, np.eye(2)[[0, 1, 1, 0] * 5])  # half wrong: flatten the probabilities
>>> t > 1.0
True
>>> fit_temperature(z[:4] / 4, np.eye(2)[[0, 1, 1, 0]])  # 4 items are not evidence enough
1.0
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import chi2

__all__ = ["softmax", "fit_temperature", "calibration_rows"]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(logits: np.ndarray, targets: np.ndarray, weight: np.ndarray | None = None,
                    alpha: float | None = 0.05) -> float:
    """The temperature ``T`` minimising the (weighted) log loss of ``softmax(logits / T)``.

    Parameters
    ----------
    logits : ndarray of shape (n, n_classes)
        Log-probabilities work too (a model without logits).
    targets : ndarray of shape (n, n_classes)
        Probability rows (one-hot for hard labels).
    weight : ndarray of shape (n,), optional
    alpha : float or None, default=0.05
        Keep ``T = 1`` unless the likelihood-ratio test of ``T = 1`` against the
        fitted ``T`` rejects it at this level (weighted items count as their
        effective number, ``(sum w)^2 / sum w^2``). ``None``: always the fit.

    Searched over ``T`` in [0.05, 20] on a log scale.
    """
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1) or None, got {alpha}")
    w = np.ones(len(logits)) if weight is None else np.asarray(weight, float)
    if len(logits) == 0 or w.sum() <= 0:
        return 1.0

    def nll(log_t: float) -> float:
        p = softmax(logits, np.exp(log_t))
        return float(-(w * (targets * np.log(np.clip(p, 1e-12, None))).sum(1)).sum() / w.sum())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    if alpha is not None:
        n_eff = w.sum() ** 2 / (w**2).sum()
        # Wilks: 2 n (mean NLL at T=1 - mean NLL at the fit) ~ chi2(1) when T = 1 is right.
        if 2.0 * n_eff * (nll(0.0) - float(res.fun)) < chi2.ppf(1.0 - alpha, df=1):
            return 1.0
    return float(np.exp(res.x))


def calibration_rows(targets: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Mask of held-out rows fit to calibrate on: their class is in their fold's training part.

    ``folds``: ``(train_index, validation_index)`` pairs; ``targets``: probability
    rows (the class of a row is its argmax). A member that never saw a class
    cannot predict it, and its loss on that class's items says nothing about the
    committee's confidence (which saw every class).

    >>> Y = np.eye(2)[[0, 0, 1, 1, 0]]
    >>> calibration_rows(Y, [(np.array([0, 2, 3]), np.array([1, 4])), (np.array([0, 1, 4]), np.array([2, 3]))]).tolist()
    [False, True, False, False, True]
    """
    hard = np.asarray(targets).argmax(axis=1)
    ok = np.zeros(len(hard), dtype=bool)
    for train, val in folds:
        present = np.zeros(targets.shape[1], dtype=bool)
        present[hard[np.asarray(train, np.int64)]] = True
        val = np.asarray(val, np.int64)
        ok[val] = present[hard[val]]
    return ok
