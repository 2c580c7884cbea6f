"""What the model stage stores for the rest of the turn: :class:`CommitteeOutputs`.

The committee is the loop's one teacher. Its outputs are large (a million items
times the members times the classes), so they live as ``.npy`` files under the
data directory, one file per array, with a JSON manifest that records each
file's sha256; the store points to the manifest (a ``model`` run whose summary
holds its path and hash). Readers memory-map the arrays, so the route stage
reads a million-item pool without copying it.

Arrays (``n_t`` trained items, ``n_p`` pool items, ``k`` members, ``C`` classes):

- ``train_ids`` ``(n_t,)`` and ``oof_proba`` ``(n_t, C)``: out-of-fold probabilities;
- ``train_kinds`` ``(n_t,)``: the resolved label's source kind (gold, expert, ... pseudo);
- ``train_labels`` ``(n_t,)``, ``train_weight`` ``(n_t,)``: the hard label and its training weight;
- ``pool_ids`` ``(n_p,)`` and ``pool_members`` ``(k, n_p, C)``: each member's probabilities;
- ``embeddings`` ``(n_t + n_p, d)``: penultimate-layer embedding, trained items first.

>>> import numpy as np, tempfile
>>> out = CommitteeOutputs(train_ids=np.array([1, 2]), oof_proba=np.eye(2, dtype=np.float32),
...     train_kinds=np.array(["gold", "gold"]), train_labels=np.array([0, 1]), train_weight=np.ones(2, np.float32),
...     pool_ids=np.array([3]), pool_members=np.full((3, 1, 2), 0.5, np.float32),
...     embeddings=np.zeros((3, 4), np.float32), info={"version": "v1"})
>>> with tempfile.TemporaryDirectory() as d:
...     manifest, digest = out.save(d)
...     back = CommitteeOutputs.load(manifest, digest)
...     back.ids.tolist(), back.pool_proba.shape, back.info["version"]
([1, 2, 3], (1, 2), 'v1')
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelloop.exceptions import TrainingError

__all__ = ["CommitteeOutputs", "OutputsWriter", "FileRows", "ARRAYS", "file_sha256", "write_json", "record_outputs", "latest_outputs",
           "model_turn", "MODEL_RUN_KIND"]

# The run row through which the store points to the committee's outputs (manifest path + sha256).
MODEL_RUN_KIND = "model-outputs"

_CHUNK = 65_536  # rows per step when a mapped array is reduced: memory is one chunk, not the pool

ARRAYS = ("train_ids", "oof_proba", "train_kinds", "train_labels", "train_weight", "pool_ids", "pool_members",
          "embeddings")


def file_sha256(path: str | Path, block: int = 1 << 22) -> str:
    """sha256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class CommitteeOutputs:
    """The committee's stored outputs for one turn (see the module docstring for the arrays)."""

    train_ids: np.ndarray
    oof_proba: np.ndarray
    train_kinds: np.ndarray
    train_labels: np.ndarray
    train_weight: np.ndarray
    pool_ids: np.ndarray
    pool_members: np.ndarray
    embeddings: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> np.ndarray:
        """Every item id: trained items, then the pool (the row order of ``embeddings``)."""
        return np.concatenate([np.asarray(self.train_ids), np.asarray(self.pool_ids)])

    @property
    def pool_proba(self) -> np.ndarray:
        """Mean of the members' pool probabilities ``(n_p, C)`` float32 (read in chunks of a mapped file)."""
        members = self.pool_members
        out = np.empty(members.shape[1:], np.float32)
        for s in range(0, len(out), _CHUNK):
            out[s : s + _CHUNK] = members[:, s : s + _CHUNK].mean(axis=0)
        return out

    def save(self, directory: str | Path) -> tuple[Path, str]:
        """Write the arrays and ``outputs.json``; return the manifest's path and sha256."""
        writer = OutputsWriter(directory)
        for name in ARRAYS:
            writer.put(name, getattr(self, name))
        return writer.close(self.info)

    @classmethod
    def load(cls, manifest: str | Path, sha256: str | None = None, mmap: bool = True,
             verify: bool = True) -> "CommitteeOutputs":
        """Read the outputs a manifest names, checking the manifest's and every file's sha256.

        ``mmap`` maps the arrays instead of reading them (the route stage of a
        million items reads what it needs, not everything).
        """
        manifest = Path(manifest)
        if not manifest.exists():
            raise TrainingError(f"{manifest}: committee outputs not found; run the model stage first")
        if sha256 is not None and file_sha256(manifest) != sha256:
            raise TrainingError(f"{manifest}: sha256 does not match the one the store recorded; rerun the model stage")
        saved = json.loads(manifest.read_text())
        arrays = {}
        for name in ARRAYS:
            entry = saved["files"].get(name)
            if entry is None:
                raise TrainingError(f"{manifest}: no entry for {name!r}")
            path = manifest.parent / entry["path"]
            if verify and file_sha256(path) != entry["sha256"]:
                raise TrainingError(f"{path}: sha256 does not match {manifest.name}; rerun the model stage")
            arrays[name] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        return cls(**arrays, info=saved.get("info", {}))


class OutputsWriter:
    """Writes :class:`CommitteeOutputs` into a directory one array (or one chunk of one) at a time.

    A million-item pool's member probabilities and embeddings are larger than
    what a stage may hold, so they are never gathered: :meth:`array` makes a
    preallocated ``.npy`` file mapped into memory, the caller fills it chunk by
    chunk, and :meth:`close` flushes every file, hashes it (streaming, 4 MiB at
    a time), moves it into place and writes the manifest last. Small arrays go
    through :meth:`put`. A reader never sees a half-written set: the files are
    written under temporary names and ``outputs.json`` appears only when all
    are in place.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     w = OutputsWriter(d)
    ...     m = w.array("pool_members", (2, 5, 3))
    ...     for s in range(0, 5, 2):  # chunk by chunk
    ...         m[:, s : s + 2] = 1 / 3
    ...     for name in ARRAYS:
    ...         if name != "pool_members":
    ...             w.put(name, np.zeros((0, 3) if name in ("oof_proba", "embeddings") else 0, np.float32))
    ...     back = CommitteeOutputs.load(*w.close({}))
    ...     back.pool_proba.shape, float(back.pool_proba.sum())
    ((5, 3), 5.0)
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # An older manifest would name files this writer is about to replace: it goes first.
        (self.directory / "outputs.json").unlink(missing_ok=True)
        self._open: dict[str, np.memmap] = {}
        self._done: dict[str, dict[str, Any]] = {}

    def _tmp(self, name: str) -> Path:
        if name not in ARRAYS:
            raise ValueError(f"committee outputs have no array {name!r}; expected one of {ARRAYS}")
        if name in self._open or name in self._done:
            raise ValueError(f"committee outputs: {name!r} was already written")
        return self.directory / f"{name}.tmp.npy"

    def array(self, name: str, shape: tuple[int, ...], dtype: Any = np.float32) -> np.memmap:
        """A preallocated ``.npy`` file of ``shape`` mapped for writing; fill it, then :meth:`close`."""
        out = np.lib.format.open_memmap(self._tmp(name), mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))
        self._open[name] = out
        return out

    def rows(self, name: str, shape: tuple[int, ...], dtype: Any = np.float32, axis: int = 0) -> "FileRows":
        """A preallocated ``.npy`` file of ``shape`` written by ranges of rows along ``axis`` through the file.

        Unlike :meth:`array` nothing stays mapped: what was written sits in the
        page cache, not in the stage's resident memory (a million items' 256-d
        embeddings are 1 GB a mapping would keep resident until the end).
        """
        out = self.array(name, shape, dtype)
        rows = FileRows(Path(out.filename), out.offset, out.shape, out.dtype, axis)
        del out  # unmapped: FileRows writes through the file
        return rows

    def put(self, name: str, values: Any) -> None:
        """Write a whole (small) array; strings are stored as fixed-width unicode (no pickles)."""
        arr = np.asarray(values)
        if arr.dtype == object:
            arr = arr.astype(str)
        tmp = self._tmp(name)
        np.save(tmp, arr)
        self._done[name] = self._entry(name, tmp, arr.shape, arr.dtype)

    def _entry(self, name: str, tmp: Path, shape: tuple[int, ...], dtype: np.dtype) -> dict[str, Any]:
        path = self.directory / f"{name}.npy"
        tmp.replace(path)
        return {"path": path.name, "sha256": file_sha256(path), "shape": list(shape), "dtype": str(dtype)}

    def close(self, info: dict[str, Any]) -> tuple[Path, str]:
        """Flush the mapped arrays, hash every file and write ``outputs.json``; return its path and sha256."""
        for name, arr in list(self._open.items()):
            arr.flush()
            shape, dtype = arr.shape, arr.dtype
            del self._open[name]  # unmapped before it is moved and hashed
            self._done[name] = self._entry(name, self.directory / f"{name}.tmp.npy", shape, dtype)
        missing = [n for n in ARRAYS if n not in self._done]
        if missing:
            raise ValueError(f"committee outputs in {self.directory}: arrays {missing} were never written")
        manifest = write_json(self.directory / "outputs.json",
                              {"files": {name: self._done[name] for name in ARRAYS}, "info": info})
        return manifest, file_sha256(manifest)


class FileRows:
    """Rows ``[start, stop)`` along ``axis`` of a preallocated ``.npy`` array, written with file writes.

    ``axis=1`` serves ``(k, n, C)`` member probabilities: a range of items is
    one contiguous run per member.
    """

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype, axis: int = 0,
                 start: int = 0, stop: int | None = None) -> None:
        self.path, self.offset, self.full_shape, self.dtype, self.axis = path, offset, tuple(shape), dtype, axis
        self.start, self.stop = start, shape[axis] if stop is None else stop

    @property
    def shape(self) -> tuple[int, ...]:
        shape = list(self.full_shape)
        shape[self.axis] = self.stop - self.start
        return tuple(shape)

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, start: int, stop: int | None = None) -> "FileRows":
        """Rows ``[start, stop)`` of these rows (a view on the same file)."""
        stop = self.stop - self.start if stop is None else stop
        if not 0 <= start <= stop <= self.stop - self.start:
            raise ValueError(f"rows [{start}, {stop}) outside the {self.stop - self.start} rows of {self.path.name}")
        return FileRows(self.path, self.offset, self.full_shape, self.dtype, self.axis, self.start + start,
                        self.start + stop)

    def write(self, start: int, values: np.ndarray) -> None:
        """Write ``values`` (these rows' shape but for the row count) at row ``start``."""
        values = np.ascontiguousarray(values, dtype=self.dtype)
        count = values.shape[self.axis] if values.ndim == len(self.full_shape) else -1
        expected = list(self.shape)
        expected[self.axis] = count
        if values.shape != tuple(expected) or not 0 <= start <= self.stop - self.start - count:
            raise ValueError(f"{self.path.name}: cannot write values of shape {values.shape} at row {start} "
                             f"of rows of shape {self.shape}")
        axis, n = self.axis, self.full_shape[self.axis]
        row_bytes = int(np.prod(self.full_shape[axis + 1 :], dtype=np.int64)) * self.dtype.itemsize
        runs = values.reshape(-1, *values.shape[axis:]) if axis else values[None]
        with open(self.path, "r+b") as fh:
            for outer, run in enumerate(runs):
                fh.seek(self.offset + (outer * n + self.start + start) * row_bytes)
                fh.write(memoryview(run))  # the chunk itself, no bytes copy

    def __setitem__(self, key: Any, values: np.ndarray) -> None:
        """``rows[:, s:e] = values`` (``axis=1``) or ``rows[s:e] = values`` (``axis=0``)."""
        key = key if isinstance(key, tuple) else (key,)
        if len(key) != self.axis + 1 or any(k != slice(None) for k in key[:-1]) or key[-1].step not in (None, 1):
            raise ValueError(f"{self.path.name}: only whole rows along axis {self.axis} can be written (got {key})")
        self.write(key[-1].start or 0, values)


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write a JSON manifest atomically (a reader never sees half of it); numpy values become plain ones."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    tmp.replace(path)
    return path


def record_outputs(store: Any, dataset: str, run_id: str, manifest: Path, sha256: str, version: str) -> str:
    """Point the store at the committee's outputs: a run row whose summary holds the manifest's path and sha256."""
    row_id = f"{run_id}:model-outputs"
    store.start_run(MODEL_RUN_KIND, dataset, {"version": version}, run_id=row_id)
    store.finish_run(row_id, "completed", {"manifest": str(manifest), "sha256": sha256, "version": version})
    return row_id


def model_turn(store: Any, dataset: str, run_id: str | None = None) -> int:
    """The loop's turn: how many model stages the store records for ``dataset``, counting run ``run_id``'s own
    (recorded already, or about to be). The pace of the pseudo-labels grows with it."""
    runs = store.runs(limit=1_000_000, kind=MODEL_RUN_KIND)
    ids = set(runs[(runs["dataset"] == dataset) & (runs["status"] == "completed")]["id"])
    if run_id is not None:
        ids.add(f"{run_id}:model-outputs")
    return max(1, len(ids))


def latest_outputs(store: Any, dataset: str, mmap: bool = True) -> CommitteeOutputs:
    """The newest committee outputs the store points to (hashes checked), memory-mapped by default."""
    runs = store.runs(limit=1000, kind=MODEL_RUN_KIND)
    runs = runs[(runs["dataset"] == dataset) & (runs["status"] == "completed")]
    if runs.empty:
        raise TrainingError(f"dataset {dataset}: no committee outputs in the store; run the model stage first")
    newest = runs.sort_values("finished_at").iloc[-1]["summary"]
    return CommitteeOutputs.load(newest["manifest"], newest["sha256"], mmap=mmap)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
