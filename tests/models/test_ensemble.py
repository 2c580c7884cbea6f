"""KFoldCommittee: estimator contract, calibration, checkpoints, soft labels for logreg."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from labelloop.exceptions import TrainingError
from labelloop.models.calibration import fit_temperature, softmax
from labelloop.models.ensemble import KFoldCommittee
from labelloop.models.trainer import load_checkpoint


def test_temperature_recovers_a_known_scale():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (4000, 5))
    y = np.array([rng.choice(5, p=p) for p in softmax(z)])
    t = fit_temperature(3.0 * z, np.eye(5)[y])
    assert t == pytest.approx(3.0, rel=0.1)


def test_estimator_contract(small_digits):
    X, y = small_digits
    ens = KFoldCommittee(model="mlp", epochs=3, n_splits=3)
    with pytest.raises(NotFittedError):
        ens.predict_proba(X.reshape(len(X), -1))
    twin = clone(ens)
    assert twin.get_params() == ens.get_params()
    assert ens.fit(X.reshape(len(X), -1), y) is ens
    assert ens.classes_.tolist() == list(range(10))
    assert len(ens.fold_scores_) == 3 and {"accuracy", "macro_f1", "ece", "best_epoch"} <= set(ens.fold_scores_[0])


def test_checkpoints_and_their_hashes(small_digits, tmp_path):
    X, y = small_digits
    ens = KFoldCommittee(
        model="cnn", epochs=1, n_splits=2, checkpoint_dir=tmp_path, model_params={"channels": [4], "hidden": 8}
    ).fit(X, y)
    assert [c["fold"] for c in ens.checkpoints_] == [0, 1]
    for c in ens.checkpoints_:
        data = open(c["path"], "rb").read()
        assert hashlib.sha256(data).hexdigest() == c["sha256"]
        payload = load_checkpoint(c["path"], c["sha256"])
        assert payload["temperature"] == ens.temperature_ and payload["spec"]["kind"] == "cnn"
    with pytest.raises(TrainingError, match=r"fold0.pt: checkpoint sha256 does not match"):
        load_checkpoint(ens.checkpoints_[0]["path"], "0" * 64)


def test_logreg_committee_with_soft_labels_and_weights(small_digits):
    X, y = small_digits
    soft = np.eye(10)[y] * 0.9 + 0.01
    ens = KFoldCommittee(model="logreg", n_splits=3).fit(X, soft, sample_weight=np.full(len(y), 0.5))
    assert (ens.oof_proba_.argmax(1) == y).mean() > 0.85
    assert ens.predict_proba_members(X[:4]).shape == (3, 4, 10)


def test_balanced_class_weights_help_a_rare_class(small_digits):
    X, y = small_digits
    keep = (y != 3) | (np.cumsum(y == 3) <= 6)  # class 3 down to 6 items
    Xr, yr = X[keep].reshape(keep.sum(), -1), y[keep]
    kw = dict(model="mlp", epochs=15, lr=3e-3, n_splits=3, calibrate=False)
    plain = KFoldCommittee(**kw).fit(Xr, yr)
    balanced = KFoldCommittee(class_weight="balanced", **kw).fit(Xr, yr)
    rare = yr == 3
    assert balanced.oof_proba_[rare, 3].mean() > plain.oof_proba_[rare, 3].mean()


def test_too_few_items_for_the_folds():
    with pytest.raises(TrainingError, match=r"3 labeled items cannot make 5 folds"):
        KFoldCommittee(model="mlp").fit(np.zeros((3, 2)), [0, 1, 0])


def test_load_from_checkpoints_gives_back_the_same_committee(small_digits, tmp_path):
    X, y = small_digits
    ens = KFoldCommittee(
        model="cnn", epochs=2, n_splits=3, checkpoint_dir=tmp_path, model_params={"channels": [8], "hidden": 16},
        augment=[{"HorizontalFlip": {}}],
    ).fit(X, y)
    again = KFoldCommittee.load(ens.checkpoints_)
    np.testing.assert_array_equal(again.oof_proba_, ens.oof_proba_)
    np.testing.assert_allclose(again.predict_proba_members(X[:9]), ens.predict_proba_members(X[:9]), atol=1e-6)
    assert again.fold_scores_ == ens.fold_scores_ and again.temperature_ == ens.temperature_
    assert again.get_params()["augment"] == [{"HorizontalFlip": {}}]


def test_rare_classes_train_in_every_fold_and_outputs_come_in_chunks(small_digits):
    """1-2 labels of a class: never held out (NaN out-of-fold row), so every member sees the class."""
    X, y = small_digits
    X = X.reshape(len(X), -1)
    idx = np.r_[np.flatnonzero(y == 0)[:2], np.flatnonzero(y == 1)[:1], np.flatnonzero(y >= 2)[:60]]
    ens = KFoldCommittee(model="mlp", epochs=2, n_splits=5, device="cpu", n_classes=10).fit(X[idx], y[idx])
    rare = np.isin(y[idx], [0, 1])
    assert np.isnan(ens.oof_proba_[rare]).all() and not np.isnan(ens.oof_proba_[~rare]).any()
    assert all(set(np.flatnonzero(rare)) <= set(tr) and not set(np.flatnonzero(rare)) & set(va) for tr, va in ens.folds_)
    members, emb = ens.predict_outputs(X[:25], chunk=10)
    assert members.shape == (5, 25, 10) and emb.shape == (25, 256) and members.dtype == np.float32
    np.testing.assert_allclose(members, ens.predict_proba_members(X[:25]), atol=1e-5)
    np.testing.assert_allclose(emb, ens.embed(X[:25]), atol=1e-5)
    # Three labels in all: nothing can be stratified, plain folds over every item.
    with pytest.raises(TrainingError, match="3 labeled items cannot make 5 folds"):
        KFoldCommittee(model="logreg", n_splits=5).fit(X[:3], y[:3])
