"""The committee's stored outputs: written chunk by chunk into mapped files, read back equal to in-memory ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelloop.exceptions import TrainingError
from labelloop.models.ensemble import KFoldCommittee
from labelloop.models.outputs import ARRAYS, CommitteeOutputs, OutputsWriter, file_sha256


@pytest.fixture(scope="module")
def fitted(small_digits):
    X, y = small_digits
    order = np.random.default_rng(0).permutation(len(y))  # every class among the first 150 (the trained items)
    X, y = X[order].reshape(len(X), -1), y[order]
    committee = KFoldCommittee(model="mlp", n_splits=3, epochs=2, min_steps=0, seed=0)
    return committee.fit(X[:150], y[:150]), X


def _in_memory(committee: KFoldCommittee, X: np.ndarray) -> CommitteeOutputs:
    members, pool_emb = committee.predict_outputs(X[150:])
    _, train_emb = committee.predict_outputs(X[:150])
    n_t = 150
    return CommitteeOutputs(
        train_ids=np.arange(n_t, dtype=np.int64), oof_proba=committee.oof_proba_.astype(np.float32),
        train_kinds=np.array(["gold"] * 100 + ["pseudo"] * 50), train_labels=committee.oof_proba_.argmax(1),
        train_weight=np.linspace(0.5, 1.0, n_t, dtype=np.float32), pool_ids=np.arange(n_t, len(X), dtype=np.int64),
        pool_members=members, embeddings=np.concatenate([train_emb, pool_emb]), info={"version": "v"},
    )


@pytest.mark.parametrize("how", ["rows", "array"])
def test_outputs_written_in_chunks_round_trip_equal_to_in_memory_ones(fitted, tmp_path, how):
    committee, X = fitted
    whole = _in_memory(committee, X)
    manifest_a, _ = whole.save(tmp_path / "whole")

    # The model stage's way: preallocated files, each prediction chunk written where it belongs, never gathered
    # ("rows": file writes, nothing stays mapped; "array": a writable mapping).
    writer = OutputsWriter(tmp_path / "chunked")
    n_t, n_p = 150, len(X) - 150
    if how == "rows":
        members = writer.rows("pool_members", (committee.n_splits, n_p, committee.n_classes_), axis=1)
        emb = writer.rows("embeddings", (n_t + n_p, committee.embedding_dim()))
        pool_emb = emb.rows(n_t)
        for s in range(0, n_p, 64):  # chunks that do not divide the pool
            m, e = committee.predict_outputs(X[150 + s : 150 + s + 64], chunk=16)
            members[:, s : s + m.shape[1]] = m
            pool_emb[s : s + len(e)] = e
        emb.rows(0, n_t)[0:n_t] = committee.predict_outputs(X[:150])[1]
    else:
        members = writer.array("pool_members", (committee.n_splits, n_p, committee.n_classes_))
        emb = writer.array("embeddings", (n_t + n_p, committee.embedding_dim()))
        for s in range(0, n_p, 64):
            committee.predict_outputs(X[150 + s : 150 + s + 64], chunk=16, members=members[:, s : s + 64],
                                      embeddings=emb[n_t + s : n_t + s + 64])
        committee.predict_outputs(X[:150], embeddings=emb[:n_t])
    for name in ARRAYS:
        if name not in ("pool_members", "embeddings"):
            writer.put(name, getattr(whole, name))
    manifest_b, digest_b = writer.close({"version": "v"})

    back = CommitteeOutputs.load(manifest_b, digest_b)
    assert isinstance(back.pool_members, np.memmap) and isinstance(back.embeddings, np.memmap)
    for name in ARRAYS:
        np.testing.assert_array_equal(np.asarray(getattr(back, name)), np.asarray(getattr(whole, name)), err_msg=name)
    np.testing.assert_allclose(back.pool_proba, whole.pool_members.mean(0), rtol=1e-6)
    # Same bytes: every file's sha256 in the two manifests agrees.
    files_a = json.loads(manifest_a.read_text())["files"]
    files_b = json.loads(manifest_b.read_text())["files"]
    assert {n: f["sha256"] for n, f in files_a.items()} == {n: f["sha256"] for n, f in files_b.items()}
    assert files_b["pool_members"]["sha256"] == file_sha256(tmp_path / "chunked" / "pool_members.npy")
    assert not list((tmp_path / "chunked").glob("*.tmp*"))


def test_a_changed_file_or_an_unwritten_array_is_refused(fitted, tmp_path):
    committee, X = fitted
    manifest, digest = _in_memory(committee, X).save(tmp_path)
    mapped = np.load(tmp_path / "embeddings.npy", mmap_mode="r+")
    mapped[0, 0] += 1.0
    mapped.flush()
    del mapped
    with pytest.raises(TrainingError, match=r"embeddings.npy: sha256 does not match outputs.json"):
        CommitteeOutputs.load(manifest, digest)

    writer = OutputsWriter(tmp_path / "partial")
    writer.array("pool_members", (3, 4, 10))
    with pytest.raises(ValueError, match=r"arrays \['train_ids', .*'embeddings'\] were never written"):
        writer.close({})
    with pytest.raises(ValueError, match=r"'pool_members' was already written"):
        writer.put("pool_members", np.zeros((3, 4, 10), np.float32))
    assert not (tmp_path / "partial" / "outputs.json").exists()


def test_predict_outputs_fills_given_arrays_and_can_skip_embeddings(fitted):
    committee, X = fitted
    members, emb = committee.predict_outputs(X[:70], chunk=32)
    out = np.zeros_like(members)
    got, none = committee.predict_outputs(X[:70], chunk=32, members=out, embed=False)
    assert got is out and none.shape == (70, 0)
    np.testing.assert_array_equal(out, members)
    assert emb.shape == (70, committee.embedding_dim())
    with pytest.raises(ValueError, match=r"members must have shape \(3, 70, 10\)"):
        committee.predict_outputs(X[:70], members=np.zeros((3, 69, 10), np.float32))
