"""Classification metrics for committees: accuracy, macro-F1, confusion matrix, calibration.

All functions take plain arrays (class ids and probability rows), so they work
on out-of-fold predictions, pool predictions or any other model's output.

>>> import numpy as np
>>> y = np.array([0, 0, 1, 1])
>>> proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
>>> accuracy(y, proba.argmax(1))
0.75
>>> confusion_matrix(y, proba.argmax(1), 2).tolist()
[[2, 0], [1, 1]]
>>> round(expected_calibration_error(proba, y, n_bins=4), 3)
0.35
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "macro_f1",
    "confusion_matrix",
    "expected_calibration_error",
    "reliability_curve",
    "plot_reliability",
    "plot_confusion",
]


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of items whose predicted class is the true class (nan when empty)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of items of true class ``i`` predicted as ``j``."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def macro_f1(y_true: Any, y_pred: Any, n_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y_true`` or ``y_pred``."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(1), cm.sum(0)
    present = (support + predicted) > 0
    if not present.any():
        return float("nan")
    f1 = 2 * tp / np.maximum(support + predicted, 1)
    return float(f1[present].mean())


def reliability_curve(proba: Any, y_true: Any, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Confidence vs accuracy in equal-width confidence bins.

    Returns
    -------
    dict with ``edges`` (n_bins + 1), and per bin ``confidence`` (mean top
    probability), ``accuracy`` and ``count`` (empty bins: nan, nan, 0).
    """
    proba, y_true = np.asarray(proba, float), np.asarray(y_true, int)
    conf = proba.max(1) if len(proba) else np.zeros(0)
    correct = (proba.argmax(1) == y_true) if len(proba) else np.zeros(0, bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(which, weights=correct.astype(float), minlength=n_bins) / count
    return {"edges": edges, "confidence": mean_conf, "accuracy": mean_acc, "count": count}


def expected_calibration_error(proba: Any, y_true: Any, n_bins: int = 15) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over the bins."""
    curve = reliability_curve(proba, y_true, n_bins)
    count = curve["count"]
    if count.sum() == 0:
        return float("nan")
    used = count > 0
    gaps = np.abs(curve["confidence"][used] - curve["accuracy"][used])
    return float((gaps * count[used]).sum() / count.sum())


def _save_png(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (folders made) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_reliability(curve: dict[str, np.ndarray], path: str | Path, title: str = "Reliability") -> Path:
    """Render a reliability diagram (bars: accuracy per confidence bin; line: perfect calibration) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = curve["edges"]
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    acc = np.nan_to_num(curve["accuracy"], nan=0.0)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(4.5, 5.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.bar(centers, acc, width=width * 0.95, color="#4c72b0", edgecolor="black", linewidth=0.5, label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfectly calibrated")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    ax2.bar(centers, curve["count"], width=width * 0.95, color="#999999")
    ax2.set_xlabel("confidence (top class probability)")
    ax2.set_ylabel("items")
    ax2.set_xlim(0, 1)
    return _save_png(fig, path)


def plot_confusion(cm: np.ndarray, classes: list[str], path: str | Path, title: str = "Confusion matrix") -> Path:
    """Render a confusion matrix with counts as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * n, 1.0 + 0.45 * n))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    top = cm.max() if cm.size else 0
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if cm[i, j] > top / 2 else "black")
    return _save_png(fig, path)
