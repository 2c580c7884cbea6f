"""Collected items: images verified and stored by content hash, near-duplicates flagged, text normalised.

An image is accepted only when Pillow can open *and* fully decode it; it is then
written once under ``<data_dir>/images/<sha[:2]>/<sha>.<ext>`` (the same bytes
from two URLs are one file). A perceptual hash (imagehash pHash, 64 bits) flags
images that look the same but differ in bytes (re-encoded, resized): they are
kept, with ``near_duplicate_of`` in their metadata, because whether they are
duplicates for training is the team's call.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image, UnidentifiedImageError

from labelloop.exceptions import CrawlError
from labelloop.store import content_hash

__all__ = ["CollectedItem", "ImageStore", "VerifiedImage", "verify_image"]

_EXT = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


@dataclass
class CollectedItem:
    """One item ready for the store, with its provenance."""

    modality: str  # "image" | "text"
    content_hash: str
    text: str | None = None
    path: str | None = None
    uri: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class VerifiedImage:
    sha256: str
    format: str
    width: int
    height: int
    phash: int


def verify_image(data: bytes, url: str) -> VerifiedImage:
    """Check that ``data`` is a complete image; :class:`CrawlError` naming ``url`` otherwise."""
    if not data:
        raise CrawlError(f"{url}: image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()  # structure and checksums; the image is unusable afterwards
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # truncated pixel data only shows when decoding
            fmt = image.format or "unknown"
            width, height = image.size
            phash = int(str(imagehash.phash(image.convert("RGB"))), 16)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise CrawlError(f"{url}: not a valid image ({type(exc).__name__}: {exc})") from None
    return VerifiedImage(content_hash(data), fmt, width, height, phash)


class ImageStore:
    """Image files under ``root`` by content hash, and a pHash index for near-duplicates.

    Parameters
    ----------
    root : path
        ``<data_dir>/images``.
    max_distance : int, default=4
        Hamming distance (bits of 64) at or below which two images are near-duplicates.
    """

    def __init__(self, root: str | os.PathLike[str], max_distance: int = 4) -> None:
        self.root = Path(root)
        self.max_distance = max_distance
        self._hashes: list[int] = []
        self._shas: list[str] = []
        self._seen: set[str] = set()
        self._array = np.zeros(0, dtype=np.uint64)

    def known(self, sha256: str, phash: int) -> None:
        """Add an already-stored image to the near-duplicate index (for resumed crawls)."""
        if sha256 not in self._seen:
            self._seen.add(sha256)
            self._hashes.append(phash)
            self._shas.append(sha256)

    def _matrix(self) -> np.ndarray:
        if len(self._array) != len(self._hashes):  # rebuilt lazily: appends stay O(1)
            self._array = np.asarray(self._hashes, dtype=np.uint64)
        return self._array

    def near_duplicate_of(self, sha256: str, phash: int) -> tuple[str, int] | None:
        """The closest other stored image within ``max_distance`` bits, and the distance."""
        if not self._hashes:
            return None
        diff = np.bitwise_xor(self._matrix(), np.uint64(phash))
        distances = np.unpackbits(diff.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
        for index in np.argsort(distances, kind="stable"):
            if distances[index] > self.max_distance:
                return None
            if self._shas[index] != sha256:
                return self._shas[index], int(distances[index])
        return None

    def path_for(self, image: VerifiedImage) -> Path:
        return self.root / image.sha256[:2] / f"{image.sha256}.{_EXT.get(image.format, 'img')}"

    def save(self, data: bytes, url: str) -> tuple[VerifiedImage, Path, tuple[str, int] | None]:
        """Verify, write (once, atomically) and index an image; returns it, its path and any near-duplicate."""
        image = verify_image(data, url)
        path = self.path_for(image)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a crawl killed mid-write never leaves a half image under a valid name.
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        near = self.near_duplicate_of(image.sha256, image.phash)
        self.known(image.sha256, image.phash)
        return image, path, near
