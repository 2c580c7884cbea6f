"""Loading items: image files (corrupt ones named) and cached MiniLM embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from labelloop.exceptions import TrainingError
from labelloop.models.features import embed_texts, load_images
from labelloop.store import content_hash


@pytest.fixture
def image_files(tmp_path, digits):
    X, _ = digits
    paths = []
    for i in range(4):
        p = tmp_path / f"d{i}.png"
        Image.fromarray((X[i] * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def test_images_load_as_channels_first_floats(image_files, digits):
    X, _ = digits
    arr = load_images(image_files, grayscale=True)
    assert arr.shape == (4, 1, 8, 8) and arr.dtype == np.float32
    np.testing.assert_allclose(arr[:, 0], (X[:4] * 255).astype(np.uint8) / 255, atol=1e-6)
    rgb = load_images(image_files, size=16)
    assert rgb.shape == (4, 3, 16, 16)


def test_corrupt_image_in_training_set_names_the_item(image_files, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(image_files[0].read_bytes()[:40])  # truncated PNG
    paths = image_files + [bad]
    with pytest.raises(TrainingError, match=r"item 42 \(.*broken.png\): cannot decode image"):
        load_images(paths, item_ids=[1, 2, 3, 4, 42], grayscale=True)
    with pytest.raises(TrainingError, match=r"item 7 \(.*missing.png\): image file not found"):
        load_images([tmp_path / "missing.png"], item_ids=[7])


def test_mixed_sizes_need_image_size(image_files, tmp_path):
    big = tmp_path / "big.png"
    Image.new("L", (12, 12)).save(big)
    with pytest.raises(TrainingError, match=r"item 4 \(.*big.png\): image is 12x12 but the first is 8x8"):
        load_images(image_files + [big], grayscale=True)


def test_text_embeddings_are_cached_by_content_hash(tmp_path):
    texts = ["The compiler found a bug.", "Congress passed the tax bill.", "The compiler found a bug."]
    emb = embed_texts(texts, cache_dir=tmp_path)
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(emb[0], emb[2])
    key = content_hash(texts[1])
    cached = tmp_path / key[:2] / f"{key}.npy"
    assert cached.exists()
    np.save(cached, np.full(384, 0.5, np.float32))  # a cache hit is read, not recomputed
    assert (embed_texts([texts[1]], cache_dir=tmp_path)[0] == 0.5).all()
