"""LF analysis: statistics on a hand-checked matrix, learned accuracy from the label model (doctests: conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.labeling.aggregate import DawidSkene, Votes
from labelloop.labeling.analysis import LFAnalysis


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
    with pytest.raises(ValueError, match=r"2 LF names for a label matrix with 3 columns"):
        LFAnalysis(np.zeros((2, 3), int), ["a", "b"])
    with pytest.raises(ValueError, match=r"gold labels must have shape \(2,\) \(got \(3,\)\)"):
        LFAnalysis(np.zeros((2, 3), int)).lf_empirical_accuracies(np.zeros(3, int))


# The matrix of issue 13: item 1 is the only item with two different votes.
ISSUE_L = [[0, -1, 0], [0, 1, 0], [-1, 1, -1], [0, -1, 0], [-1, -1, -1]]
ISSUE_Y = [0, 1, 1, 0, 0]


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
def test_every_dtype_gives_the_hand_computed_figures(dtype):
    a = LFAnalysis(np.array(ISSUE_L, dtype=dtype))
    # coverage: items 0-3 voted; overlap: items 0, 1, 3 have two votes; conflict: item 1 only.
    assert (a.label_coverage(), a.label_overlap(), a.label_conflict()) == pytest.approx((0.8, 0.6, 0.2))
    assert a.lf_polarities() == [[0], [1], [0]]
    np.testing.assert_allclose(a.lf_coverages(), [0.6, 0.4, 0.6])
    np.testing.assert_allclose(a.lf_overlaps(), [0.6, 0.2, 0.6])
    np.testing.assert_allclose(a.lf_overlaps(normalize_by_coverage=True), [1.0, 0.5, 1.0])
    np.testing.assert_allclose(a.lf_conflicts(), [0.2, 0.2, 0.2])
    np.testing.assert_allclose(a.lf_conflicts(normalize_by_overlaps=True), [1 / 3, 1.0, 1 / 3])
    Y = np.array(ISSUE_Y)
    # lf0 votes 0 on items 0, 1, 3 (gold 0, 1, 0): 2 of 3; lf1 votes 1 on items 1, 2 (gold 1, 1): 2 of 2.
    np.testing.assert_allclose(a.lf_empirical_accuracies(Y), [2 / 3, 1.0, 2 / 3])
    summary = a.lf_summary(Y=Y)
    assert summary["Correct"].tolist() == [2, 2, 2] and summary["Incorrect"].tolist() == [1, 0, 1]
    probs = a.lf_empirical_probs(Y, 2)
    assert probs.shape == (3, 3, 2)
    # lf0 on the three class-0 items votes 0 twice and abstains once (item 4); on class 1 votes 0 once of twice.
    np.testing.assert_allclose(probs[0], [[1 / 3, 1 / 2], [2 / 3, 1 / 2], [0, 0]])


def _random_matrix(seed: int, n: int = 400, m: int = 7, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    L = np.where(rng.random((n, m)) < 0.7, y[:, None], rng.integers(0, k, (n, m)))
    L[rng.random((n, m)) < 0.6] = -1
    L[:m, :] = np.arange(m)[:, None] % k  # every LF votes at least once
    return L, y


@pytest.mark.filterwarnings("ignore::FutureWarning")  # scipy, inside snorkel
@pytest.mark.parametrize("seed", [0, 1])
def test_int8_and_int64_matrices_agree_with_snorkel_on_every_column(seed):
    snorkel_analysis = pytest.importorskip("snorkel.labeling.analysis", reason="snorkel is a `bench` extra")
    L, y = _random_matrix(seed)
    for matrix in (ISSUE_L, L):
        for Y in (np.array(ISSUE_Y), y):
            if len(Y) != len(matrix):
                continue
            ref = snorkel_analysis.LFAnalysis(np.array(matrix, dtype=np.int64))
            expected = ref.lf_summary(Y=Y)
            for dtype in (np.int8, np.int64):
                ours = LFAnalysis(np.array(matrix, dtype=dtype))
                got = ours.lf_summary(Y=Y)
                for col in ("Coverage", "Overlaps", "Conflicts", "Emp. Acc."):
                    np.testing.assert_allclose(got[col].to_numpy(float), expected[col].to_numpy(float), err_msg=col)
                for col in ("Polarity", "Correct", "Incorrect"):
                    assert got[col].tolist() == [list(map(int, v)) if col == "Polarity" else int(v)
                                                 for v in expected[col]], col
                assert (ours.label_coverage(), ours.label_overlap(), ours.label_conflict()) == pytest.approx(
                    (ref.label_coverage(), ref.label_overlap(), ref.label_conflict()))
                np.testing.assert_allclose(ours.lf_overlaps(True), ref.lf_overlaps(normalize_by_coverage=True))
                np.testing.assert_allclose(ours.lf_conflicts(True), ref.lf_conflicts(normalize_by_overlaps=True))
                k = int(max(np.max(matrix), Y.max())) + 1
                np.testing.assert_allclose(ours.lf_empirical_probs(Y, k), ref.lf_empirical_probs(Y, k))


def test_a_silent_lf_has_no_accuracy_rather_than_zero():
    a = LFAnalysis(np.array([[0, -1], [1, -1]], dtype=np.int8))
    assert np.isnan(a.lf_empirical_accuracies(np.array([0, 0]))[1])
    assert a.lf_overlaps(normalize_by_coverage=True).tolist() == [0.0, 0.0]


def test_non_integer_or_below_abstain_matrices_are_refused():
    with pytest.raises(ValueError, match=r"integer class ids, -1 = abstain \(got dtype <U1\)"):
        LFAnalysis(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match=r"entries must be >= -1 .* \(got -2\)"):
        LFAnalysis(np.array([[0, -2]]))
