"""Item features for the baseline model: arrays, image files, text, tabular rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from labelloop.exceptions import TrainingError
from labelloop.sources.arrays import decode_array
from labelloop.store import Store

__all__ = ["load_matrix", "text_features"]

_IMAGE_SIDE = 32


def _image_from_path(item_id: int, path: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            gray = image.convert("L").resize((_IMAGE_SIDE, _IMAGE_SIDE))
            return np.asarray(gray, dtype=np.float32).ravel() / 255.0
    except (OSError, ValueError) as exc:
        raise TrainingError(f"item {item_id}: image {path} cannot be read ({exc})") from exc


def text_features(texts: Sequence[str], n_features: int = 2**18) -> "np.ndarray":
    """Stateless hashed TF (1–2-grams, sublinear): no vocabulary to fit or store."""
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.feature_extraction.text import TfidfTransformer

    hashed = HashingVectorizer(n_features=n_features, ngram_range=(1, 2), alternate_sign=False, norm=None).transform(texts)
    return TfidfTransformer(sublinear_tf=True, use_idf=False).fit_transform(hashed)


def load_matrix(store: Store, dataset: str, item_ids: Sequence[int]) -> "np.ndarray":
    """A feature matrix, one row per item id in the given order.

    Arrays (payloads) are flattened; image files are read as 32×32 grayscale;
    text is hashed TF. Mixed modalities in one dataset are refused.
    """
    frame = store.items(dataset, columns=["id", "modality", "path", "text"], ids=list(item_ids))
    frame = frame.set_index("id").loc[list(item_ids)]
    modalities = set(frame["modality"])
    if len(modalities) > 1:
        raise TrainingError(f"dataset {dataset}: items mix modalities {sorted(modalities)}; train one modality at a time")
    if "text" in modalities:
        return text_features(list(frame["text"]))
    rows: list[np.ndarray] = []
    payloads = store.payloads(list(item_ids))
    for item_id, payload, path in zip(item_ids, payloads, frame["path"]):
        if payload is not None:
            try:
                rows.append(decode_array(payload).astype(np.float32).ravel())
            except ValueError as exc:
                raise TrainingError(f"item {item_id}: stored array cannot be decoded ({exc})") from exc
        elif path:
            rows.append(_image_from_path(int(item_id), path))
        else:
            raise TrainingError(f"item {item_id}: has neither a payload nor a file to read features from")
    widths = {r.size for r in rows}
    if len(widths) > 1:
        raise TrainingError(f"dataset {dataset}: items have different feature sizes {sorted(widths)}")
    return np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
