"""Metrics agree with scikit-learn and render readable PNGs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from labelloop.models import metrics


@pytest.fixture
def preds():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    proba = rng.dirichlet(np.ones(4), 300)
    proba[np.arange(150), y[:150]] += 2.0  # half the items confidently right
    return y, proba / proba.sum(1, keepdims=True)


def test_accuracy_f1_confusion_match_sklearn(preds):
    y, proba = preds
    pred = proba.argmax(1)
    assert metrics.accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred))
    assert metrics.macro_f1(y, pred, 4) == pytest.approx(skm.f1_score(y, pred, average="macro"))
    np.testing.assert_array_equal(metrics.confusion_matrix(y, pred, 4), skm.confusion_matrix(y, pred, labels=range(4)))


def test_ece_is_zero_when_confidence_equals_accuracy_and_large_when_overconfident():
    y = np.array([0, 0, 0, 1])
    calibrated = np.array([[0.75, 0.25]] * 4)  # 75% confident, 75% right
    assert metrics.expected_calibration_error(calibrated, y) == pytest.approx(0.0)
    overconfident = np.array([[0.99, 0.01]] * 4)
    assert metrics.expected_calibration_error(overconfident, y) == pytest.approx(0.24)


def test_reliability_curve_bins_and_png(preds, tmp_path):
    y, proba = preds
    curve = metrics.reliability_curve(proba, y, n_bins=10)
    assert curve["count"].sum() == len(y)
    assert len(curve["edges"]) == 11
    png = metrics.plot_reliability(curve, tmp_path / "rel.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cm_png = metrics.plot_confusion(metrics.confusion_matrix(y, proba.argmax(1), 4), list("abcd"), tmp_path / "cm.png")
    assert cm_png.stat().st_size > 1000
