"""The fit loop: losses, weights, determinism, augmentation boundaries, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelloop.exceptions import TrainingError
from labelloop.models.ensemble import KFoldCommittee
from labelloop.models.networks import ConvNet
from labelloop.models.trainer import Trainer, sample_losses

CUDA = torch.cuda.is_available()


def test_soft_label_loss_is_the_expected_hard_loss():
    logits = torch.randn(4, 3)
    soft = torch.tensor([[0.7, 0.2, 0.1]] * 4)
    hard = [sample_losses(logits, torch.eye(3)[[c] * 4]) for c in range(3)]
    expected = 0.7 * hard[0] + 0.2 * hard[1] + 0.1 * hard[2]
    torch.testing.assert_close(sample_losses(logits, soft), expected)
    # A one-hot target is plain cross-entropy.
    y = torch.tensor([0, 2, 1, 1])
    torch.testing.assert_close(
        sample_losses(logits, torch.eye(3)[y]), torch.nn.functional.cross_entropy(logits, y, reduction="none")
    )


def test_class_weights_and_focal_loss_scale_items_as_documented():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    y = torch.eye(2)
    ce = sample_losses(logits, y)
    weighted = sample_losses(logits, y, class_weight=torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(weighted, ce * torch.tensor([1.0, 3.0]))
    focal = sample_losses(logits, y, gamma=2.0)
    p_true = torch.softmax(logits, 1).diagonal()
    torch.testing.assert_close(focal, ce * (1 - p_true) ** 2)
    assert (focal < ce).all()  # confident, correct items count less


def _one_step_grad(weights: np.ndarray) -> torch.Tensor:
    """Gradient of the trainer's objective after one full-batch step from fixed weights."""
    torch.manual_seed(0)
    net = ConvNet(1, 3, (4, 4), channels=[2], hidden=0, batch_norm=False, n_members=1)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    rng = np.random.default_rng(0)
    X = rng.random((6, 1, 4, 4), dtype=np.float32)
    Y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    Trainer(epochs=1, batch_size=6, lr=1e-3, schedule="constant", device="cpu").fit(
        net, X, Y, [np.arange(6)], sample_weight=weights
    )
    # Adam's first step moves each weight by ~lr * sign(grad): compare directions and the objective instead.
    net.load_state_dict(start)
    logits = net(torch.as_tensor(X))[0]
    loss = (sample_losses(logits, torch.as_tensor(Y)) * torch.as_tensor(weights)).sum() / 6
    loss.backward()
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def test_sample_weights_scale_each_items_pull():
    ones = np.ones(6, np.float32)
    g1 = _one_step_grad(ones)
    torch.testing.assert_close(_one_step_grad(ones * 2), g1 * 2)
    w = np.array([1, 1, 1, 0, 0, 0], np.float32)
    dup = np.array([2, 2, 2, 0, 0, 0], np.float32)
    torch.testing.assert_close(_one_step_grad(dup), _one_step_grad(w) * 2)


def test_zero_weight_items_do_not_teach(small_digits):
    X, y = small_digits
    rng = np.random.default_rng(1)
    noisy = y.copy()
    flip = rng.random(len(y)) < 0.5
    noisy[flip] = (y[flip] + rng.integers(1, 10, flip.sum())) % 10
    kw = dict(model="mlp", epochs=30, lr=3e-3, n_splits=3, seed=0, calibrate=False, device="cpu")
    X2 = X.reshape(len(X), -1)
    clean_only = KFoldCommittee(**kw).fit(X2, noisy, sample_weight=(~flip).astype(np.float32))
    everything = KFoldCommittee(**kw).fit(X2, noisy)
    # Scored against the true classes on the items each committee trusted.
    acc_weighted = (clean_only.oof_proba_.argmax(1) == y)[~flip].mean()
    acc_all = (everything.oof_proba_.argmax(1) == y)[~flip].mean()
    assert acc_weighted > 0.85
    assert acc_weighted > acc_all + 0.1


def test_soft_labels_train(small_digits):
    X, y = small_digits
    soft = np.full((len(y), 10), 0.02, np.float32)
    soft[np.arange(len(y)), y] = 0.82
    ens = KFoldCommittee(model="mlp", epochs=20, lr=3e-3, n_splits=3, device="cpu").fit(X.reshape(len(X), -1), soft)
    assert (ens.oof_proba_.argmax(1) == y).mean() > 0.85


def test_cpu_trainer_learns_digits_in_a_few_epochs(digits):
    X, y = digits
    ens = KFoldCommittee(model="cnn", epochs=5, n_splits=5, seed=0, device="cpu").fit(X, y)
    accs = [s["accuracy"] for s in ens.fold_scores_]
    assert np.mean(accs) >= 0.95, accs
    assert ens.oof_proba_.shape == (len(y), 10)
    np.testing.assert_allclose(ens.oof_proba_.sum(1), 1.0, atol=1e-6)
    members = ens.predict_proba_members(X[:20])
    assert members.shape == (5, 20, 10)
    np.testing.assert_allclose(ens.predict_proba(X[:20]), members.mean(0))


def test_same_seed_same_numbers_other_seed_other_numbers(small_digits):
    X, y = small_digits
    kw = dict(model="cnn", epochs=2, n_splits=3, device="cpu", model_params={"channels": [8, 16], "hidden": 32})
    a = KFoldCommittee(seed=3, **kw).fit(X, y)
    b = KFoldCommittee(seed=3, **kw).fit(X, y)
    c = KFoldCommittee(seed=4, **kw).fit(X, y)
    np.testing.assert_array_equal(a.oof_proba_, b.oof_proba_)
    assert a.fold_scores_ == b.fold_scores_
    np.testing.assert_array_equal(a.predict_proba(X[:10]), b.predict_proba(X[:10]))
    assert not np.array_equal(a.oof_proba_, c.oof_proba_)


def test_dropout_runs_are_reproducible_on_worker_threads(small_digits):
    X, y = small_digits
    kw = dict(model="mlp", epochs=3, n_splits=4, n_jobs=2, device="cpu", model_params={"dropout": 0.5})
    a = KFoldCommittee(**kw).fit(X.reshape(len(X), -1), y)
    b = KFoldCommittee(**kw).fit(X.reshape(len(X), -1), y)
    np.testing.assert_array_equal(a.oof_logits_, b.oof_logits_)


class SpyAugment:
    """Counts what the trainer augments; changes nothing."""

    batched = True

    def __init__(self):
        self.images = 0

    def __bool__(self):
        return True

    def batch(self, x, gen, scale=None):
        self.images += x.shape[0]
        return x


def test_augmentation_is_for_training_batches_only(small_digits):
    X, y = small_digits
    X4 = X[:, None]
    spy = SpyAugment()
    torch.manual_seed(0)
    net = ConvNet(1, 10, (8, 8), channels=[8], hidden=16, n_members=2)
    tr = [np.arange(0, 300), np.arange(200, 500)]
    va = [np.arange(300, 500), np.arange(0, 200)]
    res = Trainer(epochs=3, batch_size=50, augment=spy, device="cpu").fit(net, X4, np.eye(10)[y], tr, va)
    assert spy.images == res.samples == 3 * 2 * 300  # every trained item, never a validation one


def test_validation_and_oof_predictions_see_original_items(small_digits):
    X, y = small_digits
    # Heavy noise on every training image: if validation were augmented, OOF logits would not
    # equal the fold models' predictions on the clean items.
    ens = KFoldCommittee(
        model="cnn", epochs=2, n_splits=3, device="cpu", calibrate=False,
        model_params={"channels": [8], "hidden": 16},
        augment=[{"GaussNoise": {"std_range": [0.3, 0.3], "p": 1.0}}],
    ).fit(X, y)
    from labelloop.models.ensemble import softmax

    members = ens.predict_proba_members(X)
    for f, (_, va) in enumerate(ens.folds_):
        np.testing.assert_allclose(members[f, va], softmax(ens.oof_logits_[va]), atol=1e-5)


def test_albumentations_fallback_pipeline_trains(small_digits):
    X, y = small_digits
    ens = KFoldCommittee(
        model="cnn", epochs=2, n_splits=2, device="cpu", model_params={"channels": [8], "hidden": 16},
        augment=[{"RandomBrightnessContrast": {"p": 1.0}}], tta=1,
    )
    assert not ens._augmenter().batched
    ens.fit(X, y)
    p = ens.predict_proba(X[:5])
    assert p.shape == (5, 10) and np.isfinite(p).all()


def test_early_stopping_restores_each_members_best_epoch(small_digits):
    X, y = small_digits
    ens = KFoldCommittee(
        model="mlp", epochs=60, lr=0.05, patience=3, n_splits=3, device="cpu", model_params={"hidden": [256]}
    ).fit(X.reshape(len(X), -1), y)
    runs = {s["epochs_run"] for s in ens.fold_scores_}
    assert max(runs) < 60  # stopped early
    for s in ens.fold_scores_:
        assert 1 <= s["best_epoch"] <= s["epochs_run"] - 3 or s["epochs_run"] == 60


def test_bad_items_are_training_errors_and_bad_params_value_errors():
    X = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    X[7, 2] = np.nan
    y = np.arange(20) % 2
    with pytest.raises(TrainingError, match=r"item img-7: features contain NaN"):
        KFoldCommittee(model="mlp", n_splits=2).fit(X, y, item_ids=[f"img-{i}" for i in range(20)])
    with pytest.raises(TrainingError, match=r"item 3: label 5 is not a class id in \[0, 2\)"):
        KFoldCommittee(model="mlp", n_splits=2, n_classes=2).fit(np.zeros((20, 4)), np.where(np.arange(20) == 3, 5, y))
    with pytest.raises(ValueError, match=r"model must be one of .* \(got 'resnet'\)"):
        KFoldCommittee(model="resnet").fit(np.zeros((20, 4)), y)
    with pytest.raises(ValueError, match=r"augment\[0\]: unknown albumentations transform 'Blurr'"):
        KFoldCommittee(model="cnn", n_splits=2, augment=["Blurr"]).fit(np.zeros((20, 8, 8)), y)
    with pytest.raises(ValueError, match=r"epochs must be >= 1 \(got 0\)"):
        KFoldCommittee(model="mlp", n_splits=2, epochs=0).fit(np.zeros((20, 4)), y)
    with pytest.raises(ValueError, match=r"class_weight must be 'balanced' or a list \(got 'even'\)"):
        KFoldCommittee(model="mlp", n_splits=2, epochs=1, class_weight="even").fit(np.zeros((20, 4)), y)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_amp_path(digits):
    X, y = digits
    ens = KFoldCommittee(model="cnn", epochs=5, device="cuda", amp=True).fit(X, y)
    assert ens.device_.startswith("cuda")
    assert ens.amp_dtype_ == ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    assert np.mean([s["accuracy"] for s in ens.fold_scores_]) >= 0.95
    assert ens.predict_proba(X[:10]).shape == (10, 10)


def test_small_training_sets_get_at_least_min_steps(small_digits):
    X, y = small_digits
    torch.manual_seed(0)
    net = ConvNet(1, 10, (8, 8), channels=[4], hidden=8, n_members=1)
    res = Trainer(epochs=2, batch_size=64, min_steps=30, device="cpu").fit(net, X[:100, None], np.eye(10)[y[:100]], [np.arange(100)])
    assert res.epochs_run == 15  # 2 steps per epoch: 15 epochs make 30 steps, more than the 2 asked
