"""Training-time augmentation, declared as albumentations transforms.

A pipeline is a list of one-key mappings, as in the YAML config::

    augment:
      - Affine: {translate_percent: [-0.1, 0.1], scale: [0.9, 1.1], rotate: [-10, 10]}
      - GaussNoise: {std_range: [0.03, 0.08]}

:func:`parse_pipeline` builds every transform with albumentations itself, so an
unknown transform or a bad parameter is refused up front with albumentations'
own rules, and the message names the entry and the transform.

How it runs. albumentations works one image at a time in NumPy (~0.1 ms per
small image), which would make a small model wait. The transforms below that
have an exact batched equivalent on tensors run as whole-batch tensor ops on the
training device, drawing the same parameter distributions albumentations draws
(see :data:`BATCHED`):

- ``Affine`` (scale, translate_percent, rotate, shear; constant zero border,
  bilinear) via ``affine_grid`` + ``grid_sample``;
- ``GaussNoise`` (std_range, mean_range, per_channel), clipped to [0, 1] like
  albumentations does for float images;
- ``HorizontalFlip`` / ``VerticalFlip``.

A pipeline with any other transform (or with a parameter outside that subset,
e.g. a reflected border) runs through albumentations itself, per image, on a
background thread that prepares the next epoch while the current one trains.
Outputs of the batched path are not bit-identical to albumentations (different
interpolation code and random streams), only the same transforms with the same
parameter distributions.

Augmentation is only ever applied to training batches: validation, out-of-fold
and pool predictions see the original items, except when test-time augmentation
(``tta``) is asked for explicitly.

Text: items are MiniLM sentence embeddings, so token-level augmentation would
mean re-embedding every epoch. :class:`FeatureNoise` instead perturbs the
embedding vectors (Gaussian noise scaled to each feature's spread, plus
feature dropout). It needs no download; it is a regulariser, not a paraphraser.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__all__ = [
    "BATCHED",
    "ImageAugmenter",
    "FeatureNoise",
    "parse_pipeline",
    "build_transform",
]

#: Transforms that run batched on tensors (others run through albumentations per image).
BATCHED = ("Affine", "GaussNoise", "HorizontalFlip", "VerticalFlip")


def split_entry(index: int, entry: Any, example: str) -> tuple[str, str, dict[str, Any]]:
    """One ``augment`` list entry (``Name`` or ``{Name: {params}}``) as ``(where, name, params)``.

    >>> split_entry(0, {"Affine": None}, "{Affine: {}}")
    ('augment[0]', 'Affine', {})
    """
    where = f"augment[{index}]"
    if isinstance(entry, str):
        name, params = entry, {}
    elif isinstance(entry, dict) and len(entry) == 1:
        name, params = next(iter(entry.items()))
        params = {} if params is None else params
    else:
        raise ValueError(f"{where}: expected a one-key mapping like {example} (got {entry!r})")
    if not isinstance(params, dict):
        raise ValueError(f"{where}: {name}: parameters must be a mapping (got {params!r})")
    return where, str(name), params


def build_transform(index: int, entry: Any) -> Any:
    """Build one albumentations transform from a ``{Name: {param: value}}`` entry.

    Raises
    ------
    ValueError
        Naming ``augment[index]`` and the transform when the entry is malformed,
        the transform unknown, or a parameter refused.
    """
    import albumentations as A
    from albumentations.core.transforms_interface import BasicTransform

    where, name, params = split_entry(index, entry, "{Affine: {rotate: [-10, 10]}}")
    cls = getattr(A, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, BasicTransform)):
        raise ValueError(f"{where}: unknown albumentations transform {name!r}")
    # YAML has no tuples; albumentations wants (lo, hi) tuples.
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown arguments are reported below, as errors
        try:
            transform = cls(**kwargs)
        except Exception as exc:  # albumentations raises pydantic/Value/TypeErrors
            # albumentations re-raises pydantic's ValidationError as a ValueError; find the original.
            src = next((e for e in (exc, exc.__cause__, exc.__context__) if hasattr(e, "errors")), None)
            errors = src.errors() if src is not None else []
            if errors:
                param = str(errors[0]["loc"][0]) if errors[0].get("loc") else "?"
                got = errors[0].get("input")
                raise ValueError(
                    f"{where}: {name}: bad parameter {param!r}: {errors[0]['msg']} (got {got!r})"
                ) from None
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{where}: {name}: bad parameter ({detail})") from None
    invalid = list(getattr(transform, "invalid_args", []) or [])
    if invalid:
        raise ValueError(f"{where}: {name}: unknown parameter(s) {', '.join(map(repr, invalid))}")
    return transform


def parse_pipeline(entries: Sequence[Any] | None) -> list[Any]:
    """Build and validate a whole pipeline; see :func:`build_transform`."""
    return [build_transform(i, e) for i, e in enumerate(entries or [])]


def _range(value: Any, default: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return (float(value), float(value))
    return (float(value[0]), float(value[1]))


def _no_px_shift(px: Any) -> bool:
    if px is None:
        return True
    if isinstance(px, dict):
        return all(_range(v) == (0.0, 0.0) for v in px.values())
    return _range(px) == (0.0, 0.0)


def _batchable(transform: Any) -> bool:
    name = type(transform).__name__
    if name not in BATCHED:
        return False
    if name == "Affine":
        fill = transform.fill if isinstance(transform.fill, (int, float)) else None
        return (
            transform.border_mode == 0
            and fill == 0
            and _no_px_shift(transform.translate_px)
            and not transform.fit_output
            and not transform.keep_ratio
            and not transform.balanced_scale
            and transform.interpolation in (0, 1)
        )
    if name == "GaussNoise":
        return float(getattr(transform, "noise_scale_factor", 1.0)) == 1.0
    return True


def _uniform(gen: torch.Generator, n: int, lo_hi: tuple[float, float], device: torch.device) -> torch.Tensor:
    lo, hi = lo_hi
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


def _affine(x: torch.Tensor, t: Any, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    dev = x.device
    apply = torch.rand(n, generator=gen, device=dev) < t.p
    sx = _uniform(gen, n, _range(t.scale["x"], (1, 1)), dev)
    sy = _uniform(gen, n, _range(t.scale["y"], (1, 1)), dev)
    tp = t.translate_percent or {"x": (0, 0), "y": (0, 0)}
    # albumentations turns the percentage into whole pixels, truncating (0.8 px -> 0): do the same.
    tx = torch.trunc(_uniform(gen, n, _range(tp["x"]), dev) * w)
    ty = torch.trunc(_uniform(gen, n, _range(tp["y"]), dev) * h)
    angle = _uniform(gen, n, _range(t.rotate), dev) * (math.pi / 180)
    # albumentations' shear angles turn the other way round from this matrix's.
    shx = torch.tan(-_uniform(gen, n, _range(t.shear["x"]), dev) * (math.pi / 180))
    shy = torch.tan(-_uniform(gen, n, _range(t.shear["y"]), dev) * (math.pi / 180))
    one, zero = torch.ones_like(sx), torch.zeros_like(sx)
    # Forward map in pixel units about the centre: rotate . shear . scale, then translate.
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    shear = torch.stack([torch.stack([one, shx], -1), torch.stack([shy, one], -1)], -2)
    scale = torch.stack([torch.stack([sx, zero], -1), torch.stack([zero, sy], -1)], -2)
    lin = rot @ shear @ scale
    eye = torch.eye(2, device=dev).expand(n, 2, 2)
    lin = torch.where(apply[:, None, None], lin, eye)
    shift = torch.where(apply[:, None], torch.stack([tx, ty], -1), torch.zeros(n, 2, device=dev))
    # grid_sample wants the inverse map in normalised coordinates (x / (w/2), y / (h/2)).
    inv = torch.linalg.inv(lin)
    d = torch.tensor([w / 2.0, h / 2.0], device=dev)
    theta_lin = inv * d[None, None, :] / d[None, :, None]
    theta_t = -(inv @ shift.unsqueeze(-1)).squeeze(-1) / d
    theta = torch.cat([theta_lin, theta_t.unsqueeze(-1)], dim=2).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    mode = "nearest" if t.interpolation == 0 else "bilinear"
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def _gauss_noise(x: torch.Tensor, t: Any, gen: torch.Generator) -> torch.Tensor:
    n, c = x.shape[:2]
    dev = x.device
    apply = (torch.rand(n, generator=gen, device=dev) < t.p).to(x.dtype).view(n, 1, 1, 1)
    std = _uniform(gen, n, _range(t.std_range), dev).to(x.dtype).view(n, 1, 1, 1)
    mean = _uniform(gen, n, _range(t.mean_range), dev).to(x.dtype).view(n, 1, 1, 1)
    shape = x.shape if t.per_channel else (n, 1, *x.shape[2:])
    noise = torch.randn(shape, generator=gen, device=dev, dtype=x.dtype) * std + mean
    return (x + apply * noise).clamp_(0.0, 1.0)


def _flip(x: torch.Tensor, t: Any, gen: torch.Generator, dim: int) -> torch.Tensor:
    apply = torch.rand(x.shape[0], generator=gen, device=x.device) < t.p
    return torch.where(apply.view(-1, 1, 1, 1), x.flip(dim), x)


class ImageAugmenter:
    """Apply a validated pipeline to image batches ``(n, C, H, W)`` with values in [0, 1].

    Parameters
    ----------
    entries : list
        Pipeline entries (see module docstring) or already-built albumentations transforms.
    """

    def __init__(self, entries: Sequence[Any]) -> None:
        from albumentations.core.transforms_interface import BasicTransform

        self.transforms = [
            e if isinstance(e, BasicTransform) else build_transform(i, e) for i, e in enumerate(entries)
        ]
        self.batched = all(_batchable(t) for t in self.transforms)

    def __bool__(self) -> bool:
        return bool(self.transforms)

    def __repr__(self) -> str:
        names = ", ".join(type(t).__name__ for t in self.transforms)
        return f"ImageAugmenter([{names}], batched={self.batched})"

    def batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augment a batch on its device (only for ``batched`` pipelines)."""
        if not self.batched:
            raise RuntimeError("this pipeline has transforms without a batched form; use images()")
        for t in self.transforms:
            name = type(t).__name__
            if name == "Affine":
                x = _affine(x, t, gen)
            elif name == "GaussNoise":
                x = _gauss_noise(x, t, gen)
            elif name == "HorizontalFlip":
                x = _flip(x, t, gen, 3)
            elif name == "VerticalFlip":
                x = _flip(x, t, gen, 2)
        return x

    def images(self, x: np.ndarray, seed: int) -> np.ndarray:
        """Augment ``(n, C, H, W)`` float32 images one by one with albumentations itself."""
        import albumentations as A

        compose = A.Compose(self.transforms, seed=seed)
        hwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        out = np.stack([compose(image=img)["image"] for img in hwc])
        if out.ndim == 3:  # some transforms drop a single channel axis
            out = out[..., None]
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2), dtype=np.float32)


class FeatureNoise:
    """Embedding-space augmentation for text (and tabular) feature vectors.

    Parameters
    ----------
    noise : float, default=0.1
        Standard deviation of the Gaussian noise, in units of each feature's
        standard deviation over the training rows.
    dropout : float, default=0.0
        Probability of zeroing a (standardized) feature.
    """

    def __init__(self, noise: float = 0.1, dropout: float = 0.0) -> None:
        if noise < 0:
            raise ValueError(f"noise must be >= 0 (got {noise})")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
        self.noise = float(noise)
        self.dropout = float(dropout)
        self.batched = True

    def __bool__(self) -> bool:
        return self.noise > 0 or self.dropout > 0

    def batch(self, x: torch.Tensor, gen: torch.Generator, scale: torch.Tensor | None = None) -> torch.Tensor:
        """Perturb ``x`` (``(..., d)``); ``scale`` is the per-feature spread (broadcastable)."""
        if self.noise:
            eps = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            x = x + eps * self.noise * (scale if scale is not None else 1.0)
        if self.dropout:
            keep = torch.rand(x.shape, generator=gen, device=x.device) >= self.dropout
            x = x * keep.to(x.dtype)
        return x
