"""Augmentation pipelines: validated by albumentations, batched forms match it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labelloop.models.augment import FeatureNoise, ImageAugmenter, parse_pipeline


@pytest.fixture(scope="module")
def digit32(digits):
    X, _ = digits
    return F.interpolate(torch.as_tensor(X[:1, None]), size=(32, 32), mode="bilinear")


@pytest.mark.parametrize(
    "params",
    [
        {"rotate": [25, 25]},
        {"scale": [0.7, 0.7]},
        {"shear": [15, 15]},
        {"rotate": [20, 20], "scale": [1.2, 1.2], "translate_percent": [-0.1, -0.1]},
    ],
)
def test_batched_affine_matches_albumentations(digit32, params):
    import albumentations as A

    aug = ImageAugmenter([{"Affine": {**params, "p": 1.0}}])
    assert aug.batched
    mine = aug.batch(digit32.clone(), torch.Generator().manual_seed(0))[0, 0].numpy()
    ref = A.Affine(**{k: tuple(v) for k, v in params.items()}, p=1.0)(image=digit32[0, 0].numpy()[:, :, None])
    ref = ref["image"][:, :, 0]
    assert np.corrcoef(mine.ravel(), ref.ravel())[0, 1] > 0.99


def test_gauss_noise_draws_albumentations_distribution():
    aug = ImageAugmenter([{"GaussNoise": {"std_range": [0.1, 0.1], "p": 1.0}}])
    x = torch.full((64, 1, 16, 16), 0.5)
    out = aug.batch(x, torch.Generator().manual_seed(0))
    assert abs(float((out - 0.5).std()) - 0.1) < 0.01
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    none = ImageAugmenter([{"GaussNoise": {"std_range": [0.1, 0.1], "p": 0.0}}])
    torch.testing.assert_close(none.batch(x.clone(), torch.Generator()), x)


def test_probability_applies_to_a_share_of_images():
    aug = ImageAugmenter([{"HorizontalFlip": {"p": 0.5}}])
    x = torch.arange(8.0).view(1, 1, 1, 8).repeat(1000, 1, 1, 1)
    out = aug.batch(x, torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == 7).float().mean()
    assert 0.4 < float(flipped) < 0.6


def test_same_generator_seed_same_augmentation():
    aug = ImageAugmenter(parse_pipeline([{"Affine": {"rotate": [-30, 30]}}, {"GaussNoise": {}}]))
    x = torch.rand(10, 1, 8, 8)
    a = aug.batch(x.clone(), torch.Generator().manual_seed(5))
    b = aug.batch(x.clone(), torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "entries,message",
    [
        ([{"Rotate90": {}}], r"augment\[0\]: unknown albumentations transform 'Rotate90'"),
        ([{"Affine": {"rotate": [0, 1]}}, {"GaussNoise": {"var_limit": [1, 2]}}],
         r"augment\[1\]: GaussNoise: unknown parameter\(s\) 'var_limit'"),
        ([{"Affine": {"scale": "big"}}], r"augment\[0\]: Affine: bad parameter 'scale': .*\(got 'big'\)"),
        ([{"Affine": {}, "GaussNoise": {}}], r"augment\[0\]: expected a one-key mapping"),
        ([{"Compose": {}}], r"augment\[0\]: unknown albumentations transform 'Compose'"),
    ],
)
def test_bad_pipelines_are_refused_naming_the_entry(entries, message):
    with pytest.raises(ValueError, match=message):
        parse_pipeline(entries)


def test_transforms_without_batched_form_fall_back_to_albumentations():
    aug = ImageAugmenter([{"RandomBrightnessContrast": {"p": 1.0}}, {"HorizontalFlip": {}}])
    assert not aug.batched
    x = np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32)
    out = aug.images(x, seed=0)
    assert out.shape == x.shape and out.dtype == np.float32
    assert not np.allclose(out, x)
    np.testing.assert_array_equal(out, aug.images(x, seed=0))


def test_feature_noise_scales_with_feature_spread():
    fn = FeatureNoise(noise=0.5)
    x = torch.zeros(20000, 2)
    out = fn.batch(x, torch.Generator().manual_seed(0), scale=torch.tensor([1.0, 4.0]))
    std = out.std(0)
    assert abs(float(std[0]) - 0.5) < 0.02 and abs(float(std[1]) - 2.0) < 0.08
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\) \(got 1.5\)"):
        FeatureNoise(dropout=1.5)
