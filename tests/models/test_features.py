"""Loading items: image files (corrupt ones named) and text through the one cached MiniLM embedder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from labelloop.exceptions import TrainingError
from labelloop.models.features import load_images


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


def test_text_features_go_through_the_one_embedder_and_its_cache(tmp_path):
    from labelloop.config import load_config
    from labelloop.models.embed import EMBEDDING_DIM, TextEmbedder, project_embedder
    from labelloop.models.features import load_features
    from labelloop.store import ItemIn, Store

    config_path = tmp_path / "labelloop.yaml"
    config_path.write_text("dataset: {name: t, modality: text, classes: [a, b]}\ndata_dir: data\n")
    config = load_config(config_path)
    texts = ["The compiler found a bug.", "Congress passed the tax bill.", "The compiler found a bug!"]
    store = Store(f"sqlite:///{tmp_path / 'store.db'}").create()
    try:
        ids = store.add_items("t", [ItemIn(modality="text", text=t) for t in texts]).ids
        X = load_features(config, store, ids)
        assert X.shape == (3, EMBEDDING_DIM) and X.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
        embedder = project_embedder(config)
        assert embedder.cache_dir == config.data_path / "cache" / "minilm"
        cached = embedder.path(texts[1])
        assert cached.is_file() and len(list(embedder.cache_dir.rglob("*.npy"))) == 3
        # the loader reads the cache the embedder writes: a planted vector comes back, nothing is recomputed
        np.save(cached, np.full(EMBEDDING_DIM, 0.5, np.float32))
        assert (load_features(config, store, [ids[1]])[0] == 0.5).all()
        again = TextEmbedder(cache_dir=embedder.cache_dir)
        np.testing.assert_array_equal(again.encode([texts[0], texts[2]]), X[[0, 2]])
        assert again.cache_hits_ == 2 and again.cache_misses_ == 0
    finally:
        store.close()
