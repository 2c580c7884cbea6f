"""The applier: int8 matrix, batches, faults naming LF and item, process-parallel runs."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.exceptions import LabelingFunctionError
from labelloop.labeling.aggregate import Votes
from labelloop.labeling.apply import LFApplier, to_sparse
from labelloop.labeling.lf import KeywordLF, LabelingFunction, heuristic_lf

from tests.labeling import lf_helpers


def items(n):
    words = ["ok fine", "boom ok", "nothing here at all, long enough", "ok 42"]
    return [{"id": 100 + i, "text": words[i % 4]} for i in range(n)]


def lfs():
    return [KeywordLF("kw_ok", ["ok"], 1), heuristic_lf("explode", "tests.labeling.lf_helpers:explode_on_boom"),
            lf_helpers.long_text]


def test_matrix_is_int8_and_correct_across_batches():
    data = items(10)
    L = LFApplier(lfs()[::2], batch_size=3, progress=False).apply(data)
    assert L.dtype == np.int8 and L.shape == (10, 2)
    assert L[:4].tolist() == [[1, -1], [1, -1], [-1, 0], [1, -1]]
    np.testing.assert_array_equal(L[4:8], L[:4])


def test_a_failing_lf_is_counted_and_named_and_other_votes_are_kept():
    data = items(8)
    applier = LFApplier(lfs(), batch_size=5, progress=False)
    L = applier.apply(data, ids=[d["id"] for d in data])
    assert applier.fault_counts_ == {"kw_ok": 0, "explode": 2, "long_text": 0}
    messages = [str(e) for e in applier.errors_]
    assert messages[0] == "labeling function 'explode' failed on item 101: RuntimeError: boom found"
    assert "item 105" in messages[1]
    # The failing LF still voted on the items it could handle; the others are untouched.
    assert L[:, 1].tolist() == [0, -1, -1, 0] * 2
    assert L[:, 0].tolist() == [1, 1, -1, 1] * 2


def test_strict_mode_raises_the_first_fault():
    applier = LFApplier(lfs(), fault_tolerant=False, progress=False)
    with pytest.raises(LabelingFunctionError, match=r"'explode' failed on item 7: RuntimeError: boom found"):
        applier.apply(items(2), ids=[6, 7])


def test_out_of_range_votes_are_faults():
    bad = LabelingFunction("bad", lambda x: 9)
    applier = LFApplier([bad], n_classes=3, progress=False)
    L = applier.apply(["a"])
    assert L.tolist() == [[-1]] and applier.fault_counts_ == {"bad": 1}
    assert "must return a class id in [-1, 2] (got 9)" in str(applier.errors_[0])


def test_duplicate_names_and_non_lfs_are_refused():
    with pytest.raises(LabelingFunctionError, match=r"names must be distinct \(repeated: kw_ok\)"):
        LFApplier([lfs()[0], lfs()[0]]).apply(["x"])
    with pytest.raises(LabelingFunctionError, match=r"decorate functions with @labeling_function\(\)"):
        LFApplier([lf_helpers.has_digit]).apply(["x"])


def test_process_parallel_run_matches_serial():
    data = items(400)
    serial = LFApplier(lfs(), batch_size=50, progress=False)
    parallel = LFApplier(lfs(), batch_size=50, n_jobs=2, parallel_min_items=100, progress=False)
    L1, L2 = serial.apply(data), parallel.apply(data)
    np.testing.assert_array_equal(L1, L2)
    assert parallel.fault_counts_ == serial.fault_counts_ == {"kw_ok": 0, "explode": 100, "long_text": 0}


def test_progress_bar_runs_and_sparse_matrix_round_trips():
    L = LFApplier(lfs()[::2], progress=True).apply(items(6))
    S = to_sparse(L)
    assert S.nnz == int((L != -1).sum())
    np.testing.assert_array_equal(Votes.from_matrix(S, n_classes=2).to_matrix(), L)
