"""The training stage under a real Prefect API: model rows, checkpoints, artifacts, idempotence."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import yaml

from labelloop.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _cnn_config(path, **training):
    data = yaml.safe_load(path.read_text())
    data["training"] = {
        "model": "cnn", "folds": 3, "epochs": 4, "patience": 2, "seed": 0, "device": "cpu",
        "cnn": {"channels": [16, 32], "hidden": 64},
        "augment": [{"Affine": {"rotate": [-10, 10]}}, {"GaussNoise": {"std_range": [0.02, 0.05]}}],
        **training,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def test_training_flow_writes_committee_rows_checkpoints_and_artifacts(digits_example):
    from labelloop.config import load_config
    from labelloop.flows.importing import import_flow
    from labelloop.flows.training import training_flow

    config_path = str(_cnn_config(digits_example))
    import_flow(config_path, "run-import")
    result = training_flow(config_path, "run-1")
    config = load_config(config_path)
    store = Store(config.store_url)
    try:
        gold = int((np.load(digits_example.parent / "digits.npz")["y"] >= 0).sum())
        assert result["trained_on"] == gold and result["pool"] == 1797 - gold
        assert result["rows_written"] == 1797
        assert result["source"].startswith("kfold-cnn@")
        model_rows = store.labels("digits", kinds=["model"])
        assert len(model_rows) == 1797 and set(model_rows["source"]) == {result["source"]}
        probs = np.stack(model_rows["probs"].to_numpy())
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
        # The committee beats chance by far even on the small gold set.
        pool = model_rows[~model_rows["item_id"].isin(store.resolve("digits", 10, ["gold"]).item_ids)]
        assert len(pool) == 1797 - gold

        assert len(result["checkpoints"]) == 3
        for ckpt in result["checkpoints"]:
            assert hashlib.sha256(open(ckpt["path"], "rb").read()).hexdigest() == ckpt["sha256"]
        manifest = json.loads(open(result["manifest"]).read())
        assert manifest["checkpoints"] == result["checkpoints"]

        keys = ["digits-kfold-metrics", "digits-model-summary", "digits-confusion-matrix", "digits-reliability"]
        artifacts = read_artifacts(keys)
        assert set(artifacts) == set(keys)
        folds = json.loads(artifacts["digits-kfold-metrics"].data)
        assert len(folds) == 3 and all(0 <= f["accuracy"] <= 1 for f in folds)
        assert "data:image/png;base64," in artifacts["digits-reliability"].data

        # Same labels and settings: same model version, nothing written twice.
        again = training_flow(config_path, "run-2")
        assert again["version"] == result["version"] and again["rows_written"] == 0
        assert again["resumed"] and not result["resumed"]  # the saved committee was reused, not retrained
        assert again["accuracy"] == result["accuracy"]
        assert store.count_labels("digits") == gold + 1797

        # The outputs round-trip through the store: the run row points to the manifest, hashes checked.
        from labelloop.models.ensemble import KFoldCommittee
        from labelloop.models.outputs import latest_outputs

        out = latest_outputs(store, "digits")
        assert out.info["version"] == result["version"] and str(result["outputs"]).endswith("outputs.json")
        assert out.oof_proba.shape == (gold, 10) and out.pool_members.shape == (3, 1797 - gold, 10)
        assert out.embeddings.shape == (1797, 64)  # the CNN's hidden layer, trained items first
        assert sorted(out.ids.tolist()) == sorted(store.items("digits", columns=["id"])["id"].tolist())
        pool_rows = model_rows.set_index("item_id").loc[out.pool_ids]
        np.testing.assert_allclose(np.stack(pool_rows["probs"].to_numpy()), out.pool_proba, atol=1e-5)
        # The committee loads back from its checkpoints and predicts what was stored.
        again_committee = KFoldCommittee.load(out.info["checkpoints"])
        X_pool = np.load(digits_example.parent / "digits.npz")["X"]
        ids_by_ext = store.items("digits", columns=["id", "external_id"]).set_index("id")["external_id"]
        ext_index = {e: i for i, e in enumerate(np.load(digits_example.parent / "digits.npz")["ids"])}
        first = [ext_index[ids_by_ext[i]] for i in out.pool_ids[:20]]
        members, _ = again_committee.predict_outputs((X_pool[first] / 16.0).astype(np.float32))
        np.testing.assert_allclose(members, out.pool_members[:, :20], atol=1e-4)

        # A changed output file is not trusted: the committee is trained again.
        path = out.info["checkpoints"][0]["path"].replace("fold0.pt", "outputs/pool_members.npy")
        with open(path, "ab") as fh:
            fh.write(b"tampered")
        third = training_flow(config_path, "run-3")
        assert not third["resumed"] and third["rows_written"] == 0
    finally:
        store.close()


def read_artifacts(keys):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(keys))))
    return {a.key: a for a in sorted(found, key=lambda a: a.created)}
