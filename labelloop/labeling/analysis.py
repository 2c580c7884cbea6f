"""LF analysis as Snorkel users know it: polarity, coverage, overlaps, conflicts, accuracies.

All statistics are vectorized over the ``(n_items, n_lfs)`` label matrix
(``-1`` = abstain).

Examples
--------
>>> import numpy as np
>>> L = np.array([[-1, 0, 0], [1, 0, -1], [-1, -1, -1], [1, 1, 1]])
>>> a = LFAnalysis(L, lf_names=["a", "b", "c"])
>>> a.label_coverage(), a.label_overlap(), a.label_conflict()
(0.75, 0.75, 0.25)
>>> a.lf_polarities()
[[1], [0, 1], [0, 1]]
>>> a.lf_coverages().tolist()
[0.5, 0.75, 0.5]
>>> a.lf_conflicts().tolist()
[0.25, 0.25, 0.0]
>>> a.lf_empirical_accuracies(np.array([0, 1, 0, 1])).tolist()
[1.0, 0.6666666666666666, 1.0]
>>> a.lf_summary(Y=np.array([0, 1, 0, 1]))[["Coverage", "Correct", "Incorrect", "Emp. Acc."]]
   Coverage  Correct  Incorrect  Emp. Acc.
a      0.50        2          0   1.000000
b      0.75        2          1   0.666667
c      0.50        2          0   1.000000

The applier's own ``int8`` matrix gives the same figures as ``int64`` (and as
Snorkel): only item 1 has two different votes.

>>> L8 = np.array([[0, -1, 0], [0, 1, 0], [-1, 1, -1], [0, -1, 0], [-1, -1, -1]], dtype=np.int8)
>>> b = LFAnalysis(L8)
>>> b.label_coverage(), b.label_overlap(), b.label_conflict()
(0.8, 0.6, 0.2)
>>> b.lf_overlaps().tolist(), b.lf_conflicts().tolist()
([0.6, 0.2, 0.6], [0.2, 0.2, 0.2])
>>> b.lf_conflicts(normalize_by_overlaps=True).round(3).tolist()
[0.333, 1.0, 0.333]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

# A malformed label matrix, gold vector or model is a mistake in the call, not in a labeling function:
# those raise ValueError (labelloop.exceptions keeps LabelingFunctionError for LFs that fail or are declared wrongly).

__all__ = ["LFAnalysis"]


class LFAnalysis:
    """Statistics of a label matrix, per LF and overall.

    Parameters
    ----------
    L : array (n_items, n_lfs) of int, -1 = abstain
    lf_names : sequence of str, optional
        Column names; default ``lf0, lf1, ...``. LabelingFunction objects are accepted too.
    """

    def __init__(self, L: Any, lf_names: Sequence[Any] | None = None) -> None:
        L = np.asarray(L)
        if L.ndim != 2:
            raise ValueError(f"label matrix must be 2-D (n_items, n_lfs) (got shape {L.shape})")
        if not np.issubdtype(L.dtype, np.integer):
            if L.size and not (np.issubdtype(L.dtype, np.number) and np.array_equal(L, np.round(L))):
                raise ValueError(f"label matrix must hold integer class ids, -1 = abstain (got dtype {L.dtype})")
        self.L = L
        names = [getattr(n, "name", n) for n in lf_names] if lf_names is not None else [f"lf{j}" for j in range(L.shape[1])]
        if len(names) != L.shape[1]:
            raise ValueError(f"{len(names)} LF names for a label matrix with {L.shape[1]} columns")
        self.lf_names = [str(n) for n in names]
        # Work in int64 whatever the caller's dtype: the applier writes int8, and a sentinel
        # outside int8's range (or unsigned arithmetic) would silently change the statistics.
        L64 = L.astype(np.int64, copy=False)
        if L64.size and L64.min() < -1:
            raise ValueError(f"label matrix entries must be >= -1 (-1 = abstain) (got {int(L64.min())})")
        self._L64 = L64
        self._voted = L64 != -1
        self._n_votes = self._voted.sum(axis=1)
        lo = np.where(self._voted, L64, np.iinfo(np.int64).max).min(axis=1, initial=np.iinfo(np.int64).max)
        hi = np.where(self._voted, L64, -1).max(axis=1, initial=-1)
        self._conflict_item = (self._n_votes >= 2) & (lo != hi)

    def _frac(self, mask: np.ndarray) -> float:
        return float(mask.mean()) if mask.size else 0.0

    def label_coverage(self) -> float:
        """Fraction of items with at least one vote."""
        return self._frac(self._n_votes >= 1)

    def label_overlap(self) -> float:
        """Fraction of items with at least two votes."""
        return self._frac(self._n_votes >= 2)

    def label_conflict(self) -> float:
        """Fraction of items whose votes disagree."""
        return self._frac(self._conflict_item)

    def lf_polarities(self) -> list[list[int]]:
        """The classes each LF ever votes."""
        return [sorted(int(v) for v in np.unique(col[col != -1])) for col in self._L64.T]

    def lf_coverages(self) -> np.ndarray:
        """Fraction of items each LF votes on."""
        return self._voted.mean(axis=0) if len(self.L) else np.zeros(self.L.shape[1])

    def lf_overlaps(self, normalize_by_coverage: bool = False) -> np.ndarray:
        """Fraction of items where the LF votes and another LF votes too.

        With ``normalize_by_coverage`` the share of the LF's own votes that overlap (0 for an LF that never votes).
        """
        n_lfs = self.L.shape[1]
        out = (self._voted & (self._n_votes >= 2)[:, None]).mean(axis=0) if len(self.L) else np.zeros(n_lfs)
        return self._normalized(out, self.lf_coverages()) if normalize_by_coverage else out

    def lf_conflicts(self, normalize_by_overlaps: bool = False) -> np.ndarray:
        """Fraction of items where the LF votes and another LF votes differently.

        With ``normalize_by_overlaps`` the share of the LF's overlaps that conflict (0 for an LF without overlaps).
        """
        # An item with two distinct votes has, for every LF voting on it, some other LF disagreeing.
        n_lfs = self.L.shape[1]
        out = (self._voted & self._conflict_item[:, None]).mean(axis=0) if len(self.L) else np.zeros(n_lfs)
        return self._normalized(out, self.lf_overlaps()) if normalize_by_overlaps else out

    @staticmethod
    def _normalized(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
        return np.divide(part, whole, out=np.zeros_like(part, dtype=float), where=whole > 0)

    def _correct_incorrect(self, Y: Any) -> tuple[np.ndarray, np.ndarray]:
        Y = np.asarray(Y)
        if Y.shape != (len(self.L),):
            raise ValueError(f"gold labels must have shape ({len(self.L)},) (got {Y.shape})")
        known = (Y != -1)[:, None] & self._voted
        correct = (known & (self._L64 == Y[:, None])).sum(axis=0)
        return correct, known.sum(axis=0) - correct

    def lf_empirical_accuracies(self, Y: Any) -> np.ndarray:
        """Accuracy of each LF on the items where it votes and gold is known (``-1`` = unknown).

        Equal to Snorkel's on fully known ``Y``, except that an LF with no
        vote on a known item gets NaN (no evidence) where Snorkel reports 0.
        """
        correct, incorrect = self._correct_incorrect(Y)
        total = correct + incorrect
        return np.divide(correct, total, out=np.full(len(total), np.nan), where=total > 0)

    def lf_empirical_probs(self, Y: Any, k: int) -> np.ndarray:
        """Empirical ``P(LF votes l | Y = y)`` per LF, shape ``(n_lfs, k + 1, k)``; row 0 is abstain (as Snorkel)."""
        Y = np.asarray(Y)
        if Y.shape != (len(self.L),):
            raise ValueError(f"gold labels must have shape ({len(self.L)},) (got {Y.shape})")
        if self._L64.size and self._L64.max() >= k:
            raise ValueError(f"k={k} classes but the label matrix holds class {int(self._L64.max())}")
        n_lfs = self.L.shape[1]
        counts = np.zeros((n_lfs, k + 1, k))
        known = np.flatnonzero((Y >= 0) & (Y < k))
        cols = np.repeat(np.arange(n_lfs)[None, :], len(known), axis=0)
        np.add.at(counts, (cols, self._L64[known] + 1, np.repeat(Y[known, None], n_lfs, axis=1)), 1)
        per_class = counts.sum(axis=1, keepdims=True)
        return np.divide(counts, per_class, out=np.zeros_like(counts), where=per_class > 0)

    def lf_summary(self, Y: Any = None, model: Any = None) -> pd.DataFrame:
        """One row per LF: polarity, coverage, overlaps, conflicts; with ``Y`` the empirical accuracy;
        with a fitted aggregator (``model.accuracies_``) the learned accuracy.
        """
        frame = pd.DataFrame(
            {
                "j": np.arange(self.L.shape[1]),
                "Polarity": self.lf_polarities(),
                "Coverage": self.lf_coverages(),
                "Overlaps": self.lf_overlaps(),
                "Conflicts": self.lf_conflicts(),
            },
            index=pd.Index(self.lf_names),
        )
        if Y is not None:
            correct, incorrect = self._correct_incorrect(Y)
            frame["Correct"] = correct
            frame["Incorrect"] = incorrect
            frame["Emp. Acc."] = self.lf_empirical_accuracies(Y)
        if model is not None:
            learned = np.asarray(getattr(model, "accuracies_"))
            if learned.shape != (self.L.shape[1],):
                raise ValueError(
                    f"model.accuracies_ has shape {learned.shape}; expected one per LF ({self.L.shape[1]},)"
                )
            frame["Learned Acc."] = learned
        return frame
