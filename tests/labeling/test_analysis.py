"""LF analysis: statistics on a hand-checked matrix, doctests, learned accuracy from the label model."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import labelloop.labeling.aggregate
import labelloop.labeling.analysis
import labelloop.labeling.apply
import labelloop.labeling.lf
from labelloop.exceptions import LabelingFunctionError
from labelloop.labeling.aggregate import DawidSkene, Votes
from labelloop.labeling.analysis import LFAnalysis


@pytest.mark.parametrize("module", [labelloop.labeling.analysis, labelloop.labeling.aggregate,
                                    labelloop.labeling.apply, labelloop.labeling.lf])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_statistics_of_a_hand_checked_matrix():
    L = np.array([
        [0, 0, -1],
        [0, 1, -1],
        [-1, -1, -1],
        [1, -1, 1],
        [-1, 2, 2],
    ])
    a = LFAnalysis(L, ["a", "b", "c"])
    assert a.label_coverage() == pytest.approx(0.8)
    assert a.label_overlap() == pytest.approx(0.8)
    assert a.label_conflict() == pytest.approx(0.2)
    assert a.lf_polarities() == [[0, 1], [0, 1, 2], [1, 2]]
    np.testing.assert_allclose(a.lf_coverages(), [0.6, 0.6, 0.4])
    np.testing.assert_allclose(a.lf_overlaps(), [0.6, 0.6, 0.4])
    np.testing.assert_allclose(a.lf_conflicts(), [0.2, 0.2, 0.0])
    Y = np.array([0, 0, 1, -1, 2])  # item 3 has no gold
    np.testing.assert_allclose(a.lf_empirical_accuracies(Y), [1.0, 2 / 3, 1.0])


def test_summary_carries_learned_accuracy_close_to_the_truth():
    rng = np.random.default_rng(0)
    n, accs = 3000, np.array([0.95, 0.8, 0.65])
    y = rng.integers(0, 3, n)
    L = np.where(rng.random((n, 3)) < accs, y[:, None], (y[:, None] + rng.integers(1, 3, (n, 3))) % 3)
    L[rng.random((n, 3)) < 0.3] = -1
    model = DawidSkene().fit(Votes(np.repeat(np.arange(n), 3), np.tile(np.arange(3), n), L.ravel(), 3, n_items=n))
    summary = LFAnalysis(L, ["good", "fair", "poor"]).lf_summary(Y=y, model=model)
    assert list(summary.index) == ["good", "fair", "poor"]
    assert np.abs(summary["Learned Acc."].to_numpy() - accs).max() < 0.03
    assert np.abs(summary["Emp. Acc."].to_numpy() - accs).max() < 0.03


def test_bad_shapes_are_refused():
    with pytest.raises(LabelingFunctionError, match=r"2 LF names for a label matrix with 3 columns"):
        LFAnalysis(np.zeros((2, 3), int), ["a", "b"])
    with pytest.raises(LabelingFunctionError, match=r"gold labels must have shape \(2,\) \(got \(3,\)\)"):
        LFAnalysis(np.zeros((2, 3), int)).lf_empirical_accuracies(np.zeros(3, int))
