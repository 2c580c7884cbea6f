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

__all__ = ["CommitteeOutputs", "ARRAYS", "file_sha256"]

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
        """Mean of the members' pool probabilities ``(n_p, C)``."""
        return np.asarray(self.pool_members).mean(axis=0)

    def save(self, directory: str | Path) -> tuple[Path, str]:
        """Write the arrays and ``outputs.json``; return the manifest's path and sha256."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = {}
        for name in ARRAYS:
            arr = np.asarray(getattr(self, name))
            if arr.dtype == object:
                arr = arr.astype(str)
            path = directory / f"{name}.npy"
            tmp = directory / f"{name}.tmp.npy"
            np.save(tmp, arr)
            tmp.replace(path)
            files[name] = {"path": path.name, "sha256": file_sha256(path), "shape": list(arr.shape),
                           "dtype": str(arr.dtype)}
        manifest = directory / "outputs.json"
        tmp = directory / "outputs.json.tmp"
        tmp.write_text(json.dumps({"files": files, "info": self.info}, indent=2, default=_jsonable) + "\n")
        tmp.replace(manifest)
        return manifest, file_sha256(manifest)

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


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
