"""Apply N labeling functions to M items: an ``(M, N)`` int8 label matrix, ``-1`` = abstain.

Items go through in batches (a rich progress bar per batch); each LF first
tries its vectorized ``apply_batch``; when that raises, the batch is redone one
item at a time for that LF only, so one bad item costs one vote, not a batch.
Faults are counted per LF and kept as :class:`LabelingFunctionError` objects
naming the LF and the item id; the other LFs' votes are kept. Large sets run
in worker processes (joblib / loky, which pickles closures and decorated LFs).

Examples
--------
>>> from labelloop.labeling.lf import KeywordLF, labeling_function
>>> @labeling_function()
... def short(x):
...     return 1 if len(x) < 12 else -1
>>> applier = LFApplier([KeywordLF("kw_unix", ["unix"], 0), short], progress=False)
>>> applier.apply(["unix rules", "a long sentence about cats"]).tolist()
[[0, 1], [-1, -1]]
>>> applier.fault_counts_
{'kw_unix': 0, 'short': 0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse

from labelloop.exceptions import LabelingFunctionError
from labelloop.labeling.lf import ABSTAIN, LabelingFunction

__all__ = ["LFApplier", "to_sparse"]

# Errors kept per LF (all are counted): enough to see a pattern without holding a million tracebacks.
_ERRORS_KEPT_PER_LF = 20


class LFApplier:
    """Applies labeling functions to items.

    Parameters
    ----------
    lfs : sequence of LabelingFunction
        Distinct names required.
    batch_size : int, default=2048
    n_jobs : int, default=1
        Worker processes; used only when there are at least ``parallel_min_items`` items.
    parallel_min_items : int, default=20000
        Below this, process start-up costs more than it saves.
    fault_tolerant : bool, default=True
        Count and keep LF errors (vote ``-1``) instead of raising the first one.
    progress : bool, default=True
        Show a rich progress bar.
    n_classes : int, optional
        When given, a vote outside ``[-1, n_classes)`` is an error of that LF.

    Attributes
    ----------
    fault_counts_ : dict {LF name: number of items it raised on}
    errors_ : list of LabelingFunctionError
        Up to 20 per LF, each naming the LF and the item id.
    """

    def __init__(self, lfs: Sequence[LabelingFunction], batch_size: int = 2048, n_jobs: int = 1,
                 parallel_min_items: int = 20_000, fault_tolerant: bool = True, progress: bool = True,
                 n_classes: int | None = None) -> None:
        self.lfs = list(lfs)
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.parallel_min_items = parallel_min_items
        self.fault_tolerant = fault_tolerant
        self.progress = progress
        self.n_classes = n_classes

    def _validate(self) -> None:
        if not self.lfs:
            raise LabelingFunctionError("no labeling functions to apply")
        for lf in self.lfs:
            if not isinstance(lf, LabelingFunction):
                raise LabelingFunctionError(
                    f"expected LabelingFunction objects (got {type(lf).__name__} {lf!r}); decorate functions with @labeling_function()"
                )
        names = [lf.name for lf in self.lfs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise LabelingFunctionError(f"labeling function names must be distinct (repeated: {', '.join(dupes)})")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.n_classes is not None and self.n_classes > 127:
            raise ValueError(f"n_classes must be <= 127 for an int8 label matrix (got {self.n_classes})")

    @property
    def names(self) -> list[str]:
        return [lf.name for lf in self.lfs]

    def apply(self, items: Sequence[Any], ids: Sequence[Any] | None = None) -> np.ndarray:
        """The ``(len(items), len(lfs))`` int8 label matrix.

        Parameters
        ----------
        items : sequence
            What each LF receives (strings, dicts, rows).
        ids : sequence, optional
            Item ids used in error messages; default the positions.
        """
        self._validate()
        items = list(items)
        ids = list(ids) if ids is not None else list(range(len(items)))
        if len(ids) != len(items):
            raise ValueError(f"ids and items differ in length ({len(ids)} vs {len(items)})")
        starts = list(range(0, len(items), self.batch_size))
        chunks = [(items[s : s + self.batch_size], ids[s : s + self.batch_size]) for s in starts]
        parallel = self.n_jobs != 1 and len(items) >= self.parallel_min_items and len(chunks) > 1
        results: list[tuple[np.ndarray, list[tuple[int, str, Any, str]]]] = []
        with _progress(self.progress, len(items), f"applying {len(self.lfs)} LFs") as advance:
            if parallel:
                from joblib import Parallel, delayed

                runner = Parallel(n_jobs=self.n_jobs, backend="loky", return_as="generator")
                for result, (chunk, _) in zip(runner(delayed(_apply_chunk)(self.lfs, c, i, self.n_classes) for c, i in chunks), chunks):
                    results.append(result)
                    advance(len(chunk))
                    self._raise_if_strict(result[1])
            else:
                for chunk, chunk_ids in chunks:
                    result = _apply_chunk(self.lfs, chunk, chunk_ids, self.n_classes)
                    results.append(result)
                    advance(len(chunk))
                    self._raise_if_strict(result[1])
        L = np.concatenate([r[0] for r in results]) if results else np.zeros((0, len(self.lfs)), dtype=np.int8)
        self.fault_counts_ = {lf.name: 0 for lf in self.lfs}
        self.errors_: list[LabelingFunctionError] = []
        for _, faults in results:
            for j, _name, item_id, message in faults:
                name = self.lfs[j].name
                self.fault_counts_[name] += 1
                if self.fault_counts_[name] <= _ERRORS_KEPT_PER_LF:
                    self.errors_.append(LabelingFunctionError(f"labeling function {name!r} failed on item {item_id}: {message}"))
        return L

    def _raise_if_strict(self, faults: list[tuple[int, str, Any, str]]) -> None:
        if faults and not self.fault_tolerant:
            j, name, item_id, message = faults[0]
            raise LabelingFunctionError(f"labeling function {name!r} failed on item {item_id}: {message}")


def _apply_chunk(lfs: Sequence[LabelingFunction], chunk: list[Any], chunk_ids: list[Any],
                 n_classes: int | None) -> tuple[np.ndarray, list[tuple[int, str, Any, str]]]:
    """Votes of every LF on one chunk, plus ``(lf index, lf name, item id, message)`` per fault."""
    out = np.full((len(chunk), len(lfs)), ABSTAIN, dtype=np.int8)
    faults: list[tuple[int, str, Any, str]] = []
    hi = n_classes if n_classes is not None else 127
    for j, lf in enumerate(lfs):
        try:
            votes = np.asarray(lf.apply_batch(chunk))
            if votes.shape != (len(chunk),):
                raise ValueError(f"apply_batch returned shape {votes.shape}, expected ({len(chunk)},)")
            if len(votes) and (votes.min() < ABSTAIN or votes.max() >= hi):
                raise ValueError("a vote is out of range")
            out[:, j] = votes
            continue
        except Exception:  # noqa: BLE001 - redo item by item to find and name the items at fault
            pass
        for i, x in enumerate(chunk):
            try:
                vote = lf(x)
                if vote is None or isinstance(vote, bool) or int(vote) != vote or not ABSTAIN <= int(vote) < hi:
                    raise ValueError(f"must return a class id in [-1, {hi - 1}] (got {vote!r})")
                out[i, j] = int(vote)
            except Exception as exc:  # noqa: BLE001 - an LF is user code: count every failure, keep the rest
                faults.append((j, lf.name, chunk_ids[i], f"{type(exc).__name__}: {exc}"))
    return out, faults


class _progress:
    """A rich progress bar over items, or nothing."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self.enabled = enabled and total > 0
        self.total = total
        self.description = description

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                             TimeRemainingColumn(), transient=True)
        self._bar.__enter__()
        task = self._bar.add_task(self.description, total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self._bar.__exit__(*exc)


def to_sparse(L: np.ndarray) -> sparse.csr_matrix:
    """A label matrix as CSR storing ``label + 1`` (abstains are the implicit zeros).

    Worth it when most entries abstain (coverage per LF of a few percent);
    :meth:`labelloop.labeling.aggregate.Votes.from_matrix` reads it directly.
    """
    L = np.asarray(L)
    return sparse.csr_matrix((L.astype(np.int16) + 1).astype(np.int8))
