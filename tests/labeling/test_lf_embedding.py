"""MiniLM embeddings (offline, cached by content hash) and the embedding-similarity LF."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.labeling.coverage import expand_coverage
from labelloop.labeling.lf import ABSTAIN, EmbeddingSimilarityLF
from labelloop.models.embed import EMBEDDING_DIM, TextEmbedder


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    return TextEmbedder(cache_dir=tmp_path_factory.mktemp("emb"))


def test_embeddings_are_normalized_semantic_and_cached(embedder, tmp_path):
    texts = ["The kernel panicked after the compiler upgrade.", "A bug in the operating system kernel.",
             "The senate passed the tax bill.", "The kernel panicked after the compiler upgrade."]
    E = embedder.encode(texts)
    assert E.shape == (4, EMBEDDING_DIM) and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert E[0] @ E[1] > E[0] @ E[2] + 0.1  # computing texts closer to each other than to politics
    np.testing.assert_array_equal(E[0], E[3])
    files = list(embedder.cache_dir.rglob("*.npy"))
    assert len(files) == 3  # one per distinct text
    again = TextEmbedder(cache_dir=embedder.cache_dir)
    np.testing.assert_array_equal(again.encode(texts[:3]), E[:3])
    assert again.cache_hits_ == 3 and again.cache_misses_ == 0


def test_embedding_similarity_lf_votes_the_nearest_class(embedder):
    lf = EmbeddingSimilarityLF(
        "sim",
        {0: ["software crashed", "the computer program has a bug"], 1: ["the election results", "congress passed a law"]},
        embedder,
        threshold=0.25,
    )
    votes = lf.apply_batch(["my laptop software keeps crashing", "voters elected a new senator", "🙂"])
    assert votes[:2].tolist() == [0, 1]
    assert votes[2] in (ABSTAIN, 0, 1)
    assert lf("my laptop software keeps crashing") == 0


def test_expand_coverage_labels_uncovered_items_from_covered_ones():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    X = np.eye(3)[y] * 3 + rng.normal(0, 0.5, (300, 3))
    covered = rng.random(300) < 0.5
    P = np.eye(3)[y] * 0.9 + 0.1 / 3
    P[~covered] = 1 / 3
    grown, labeled = expand_coverage(P, covered, X)
    assert labeled.all()
    np.testing.assert_array_equal(grown[covered], P[covered])
    assert (grown[~covered].argmax(1) == y[~covered]).mean() > 0.95
    _, some = expand_coverage(P, covered, X, min_confidence=0.999999)
    assert covered.sum() <= some.sum() < 300
