"""Import NumPy arrays: an ``.npz`` with ``X`` (one row per item), optional ``y`` and ``ids``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from labelloop.exceptions import ImportDataError
from labelloop.sources.base import ImportReport, store_imported
from labelloop.store import ItemIn, Store

__all__ = ["encode_array", "decode_array", "import_arrays"]


def encode_array(array: np.ndarray) -> bytes:
    """An array as ``.npy`` bytes (keeps dtype and shape)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def decode_array(payload: bytes) -> np.ndarray:
    return np.load(io.BytesIO(payload), allow_pickle=False)


def import_arrays(
    store: Store,
    dataset: str,
    modality: str,
    classes: list[str],
    path: Path,
    name: str,
    run_id: str | None = None,
) -> ImportReport:
    """Import the rows of ``X`` as items; ``y >= 0`` become gold labels, ``-1`` unlabeled."""
    report = ImportReport(source=name)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "X" not in data:
                raise ImportDataError(f"{path}: needs an array named 'X' (found {sorted(data.files)})")
            X = data["X"]
            y = data["y"] if "y" in data else None
            ids = data["ids"] if "ids" in data else None
    except (OSError, ValueError) as exc:
        raise ImportDataError(f"{path}: not a readable .npz file ({exc})") from exc
    if y is not None and len(y) != len(X):
        raise ImportDataError(f"{path}: 'y' has {len(y)} rows but 'X' has {len(X)}")
    if ids is not None and len(ids) != len(X):
        raise ImportDataError(f"{path}: 'ids' has {len(ids)} rows but 'X' has {len(X)}")
    provenance = store.add_provenance("import", name, uri=str(path), run_id=run_id)
    items = []
    for row in range(len(X)):
        external = str(ids[row]) if ids is not None else f"{name}:{row}"
        items.append(ItemIn(modality=modality, payload=encode_array(X[row]), external_id=external, meta={"row": row}))
    labels: list[int | None] = [None] * len(X)
    if y is not None:
        for row, label in enumerate(y.tolist()):
            if label < -1 or label >= len(classes):
                report.warn(f"{path}: y[{row}] = {label} is not a class id in 0..{len(classes) - 1}; imported unlabeled")
            elif label >= 0:
                labels[row] = int(label)
    return store_imported(store, dataset, items, labels, report, provenance, run_id)
