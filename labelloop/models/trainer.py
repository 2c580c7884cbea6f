"""One fit loop for every fold: :class:`Trainer`.

The trainer fits a member-batched network (see :mod:`labelloop.models.networks`)
where member ``k`` learns from its own training rows ``train_idx[k]`` and is
early-stopped on its own validation rows ``val_idx[k]``. With ``n_members=1``
it is an ordinary single-model loop.

Design choices, and why:

- The whole training set is one tensor on the device (pinned and copied
  non-blocking on CUDA); batches are index gathers. A ``DataLoader`` over a
  ``TensorDataset`` would index, collate and copy every item of every batch in
  Python, which costs more than a small model's forward pass.
- CUDA runs under automatic mixed precision: bf16 where the GPU supports it
  (no loss scaling needed), fp16 with a ``GradScaler`` otherwise. CPU runs fp32.
- Targets are always class-probability rows: a hard label is a one-hot row, a
  weak or pseudo label its probability vector. The loss of one item is
  ``w_i * sum_c cw_c * y_ic * (1 - p_ic)**gamma * -log p_ic`` (``cw``: class
  weights, ``gamma``: focal exponent, 0 for cross-entropy), summed over the
  batch and divided by the number of items in it, so a weight of 0.5 halves an
  item's pull whatever else is in its batch.
- Adam and the cosine schedule act element-wise on the parameters, so stacking
  the members changes nothing about how each one is optimised.
"""

from __future__ import annotations

import hashlib
import io
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from labelloop.exceptions import TrainingError

__all__ = ["Trainer", "FitResult", "sample_losses", "resolve_device", "save_checkpoint", "load_checkpoint"]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("training.device: 'cuda' was asked for but torch sees no CUDA device")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"training.device: must be 'auto', 'cpu' or 'cuda' (got {device!r})")
    return torch.device(device)


def sample_losses(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weight: torch.Tensor | None = None,
    gamma: float = 0.0,
) -> torch.Tensor:
    """Per-item loss against probability targets.

    Parameters
    ----------
    logits : tensor of shape (..., n_classes)
    targets : tensor of shape (..., n_classes)
        Class probabilities (one-hot for hard labels).
    class_weight : tensor of shape (n_classes,), optional
    gamma : float, default=0.0
        Focal-loss exponent; 0 is cross-entropy.

    Returns
    -------
    tensor of shape (...)
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    terms = -targets * logp
    if gamma:
        terms = terms * (1.0 - logp.exp()).clamp_min(0.0).pow(gamma)
    if class_weight is not None:
        terms = terms * class_weight
    return terms.sum(dim=-1)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> str:
    """Write ``payload`` with ``torch.save`` and return the file's sha256."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # never leave a half-written checkpoint under the final name
    return hashlib.sha256(data).hexdigest()


def load_checkpoint(path: str | Path, sha256: str | None = None) -> dict[str, Any]:
    """Read a checkpoint, checking its sha256 when given."""
    data = Path(path).read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise TrainingError(f"{path}: checkpoint sha256 does not match the recorded {sha256[:12]}...")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns."""

    network: nn.Module
    val_logits: list[np.ndarray]
    best_epoch: list[int]
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    samples: int = 0
    device: str = "cpu"
    amp_dtype: str | None = None

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_seconds if self.train_seconds else float("nan")


def _member_chunks(state: dict[str, torch.Tensor], k: int, n_members: int):
    for name, t in state.items():
        if t.dim() == 0:
            continue
        size = t.shape[0] // n_members
        yield name, slice(k * size, (k + 1) * size)


@dataclass
class Trainer:
    """Fit loop shared by every fold (and every committee member).

    Parameters
    ----------
    epochs : int, default=20
    batch_size : int, default=64
        Items per member per step.
    lr : float, default=1e-3
        Peak learning rate (Adam).
    weight_decay : float, default=0.0
        Decoupled weight decay (AdamW) when > 0.
    schedule : {"cosine", "constant"}, default="cosine"
        Learning rate over the steps of the run.
    patience : int or None, default=None
        Early stopping: a member whose validation loss has not improved for
        this many epochs is done; the run stops when every member is done and
        each member's best-epoch weights are restored. ``None`` trains all
        epochs and keeps the last weights.
    min_delta : float, default=0.0
        Improvement smaller than this does not count.
    loss : {"cross_entropy", "focal"}, default="cross_entropy"
    focal_gamma : float, default=2.0
    class_weight : array-like of shape (n_classes,), optional
    augment : ImageAugmenter or FeatureNoise, optional
        Applied to training batches only.
    device : {"auto", "cpu", "cuda"}, default="auto"
    amp : bool, default=True
        Mixed precision on CUDA (ignored on CPU).
    seed : int, default=0
        Seeds batch order and augmentation draws.
    callback : callable, optional
        ``callback(epoch, info)`` after every epoch (progress reporting).
    min_steps : int, default=0
        Train for at least this many optimizer steps, adding epochs when the
        training set is small (89 items in batches of 64 make one step per
        epoch: 20 epochs would be 20 steps, far too few to learn anything).
    """

    # Settings only, like a scikit-learn estimator's __init__: checked in fit (see _check).
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    patience: int | None = None
    min_delta: float = 0.0
    loss: str = "cross_entropy"
    focal_gamma: float = 2.0
    class_weight: Sequence[float] | None = None
    augment: Any = None
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    callback: Callable[[int, dict[str, Any]], None] | None = None
    min_steps: int = 0

    def _check(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1 (got {self.epochs})")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (got {self.batch_size})")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0 (got {self.lr})")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant' (got {self.schedule!r})")
        if self.loss not in ("cross_entropy", "focal"):
            raise ValueError(f"loss must be 'cross_entropy' or 'focal' (got {self.loss!r})")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None (got {self.patience})")

    def fit(
        self,
        network: nn.Module,
        X: np.ndarray | torch.Tensor,
        Y: np.ndarray | torch.Tensor,
        train_idx: Sequence[np.ndarray],
        val_idx: Sequence[np.ndarray] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> FitResult:
        """Train ``network`` (``n_members == len(train_idx)``) in place.

        Parameters
        ----------
        network : nn.Module
            A member-batched network from :mod:`labelloop.models.networks`.
        X : array of shape (n, ...)
            All items (float32); members index into it.
        Y : array of shape (n, n_classes)
            Target probabilities.
        train_idx, val_idx : list of int arrays
            Each member's training and validation rows.
        sample_weight : array of shape (n,), optional
        """
        self._check()
        k = network.n_members
        if len(train_idx) != k:
            raise ValueError(f"network has {k} members but {len(train_idx)} training index sets were given")
        if any(len(t) < 2 for t in train_idx):
            raise TrainingError("every fold needs at least 2 training items")
        dev = resolve_device(self.device)
        cuda = dev.type == "cuda"
        amp_dtype = None
        if cuda and self.amp:
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

        def to_dev(a: Any, dtype: torch.dtype) -> torch.Tensor:
            t = torch.as_tensor(np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a, dtype=dtype)
            if cuda:
                t = t.pin_memory().to(dev, non_blocking=True)
            return t

        x_host = X if isinstance(X, np.ndarray) else X.cpu().numpy()
        Xd = to_dev(X, torch.float32)
        Yd = to_dev(Y, torch.float32)
        n, n_classes = Yd.shape
        Wd = to_dev(np.ones(n, np.float32) if sample_weight is None else sample_weight, torch.float32)
        cw = None if self.class_weight is None else to_dev(np.asarray(self.class_weight), torch.float32)
        gamma = float(self.focal_gamma) if self.loss == "focal" else 0.0

        network.to(dev)
        if hasattr(network, "mean") and hasattr(network, "std"):
            # Standardize with each fold's own training rows only.
            with torch.no_grad():
                for m, idx in enumerate(train_idx):
                    rows = Xd[torch.as_tensor(idx, device=dev)]
                    network.mean[m, 0] = rows.mean(0)
                    network.std[m, 0] = rows.std(0).clamp_min(1e-6)

        gen = torch.Generator(device=dev).manual_seed(self.seed)
        for module in network.modules():
            if hasattr(module, "generator"):
                module.generator = gen  # dropout draws from this run's own stream
        tr = [torch.as_tensor(np.asarray(i), dtype=torch.long, device=dev) for i in train_idx]
        length = max(len(t) for t in tr)
        bs = self.batch_size
        steps_per_epoch = length // bs + (1 if length % bs >= 2 else 0)
        n_epochs = max(self.epochs, math.ceil(self.min_steps / steps_per_epoch))
        total_steps = steps_per_epoch * n_epochs
        if self.weight_decay:
            opt = torch.optim.AdamW(network.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True)
        else:
            # fused: one kernel for all parameters instead of several per tensor
            opt = torch.optim.Adam(network.parameters(), lr=self.lr, fused=True)

        augment = self.augment if self.augment else None
        image_aug = augment is not None and hasattr(augment, "images")
        per_image = image_aug and not augment.batched
        pool = ThreadPoolExecutor(max_workers=1) if per_image else None
        future = None
        if per_image:
            # albumentations runs on a worker thread one epoch ahead of the model.
            future = pool.submit(augment.images, x_host, self.seed)

        va = None
        if val_idx is not None:
            va = [torch.as_tensor(np.asarray(i), dtype=torch.long, device=dev) for i in val_idx]
        best = [math.inf] * k
        best_epoch = [0] * k
        best_state = {name: t.detach().clone() for name, t in network.state_dict().items()}
        history: list[dict[str, Any]] = []
        samples = 0
        step = 0
        t0 = time.perf_counter()
        epoch = 0
        try:
            for epoch in range(1, n_epochs + 1):
                network.train()
                x_epoch = Xd
                if per_image:
                    x_aug = future.result()
                    if epoch < n_epochs:
                        future = pool.submit(augment.images, x_host, self.seed + epoch)
                    x_epoch = to_dev(x_aug, torch.float32)
                idx, mask = self._epoch_order(tr, length, gen, dev)
                loss_sum = torch.zeros(k, device=dev)
                for s in range(steps_per_epoch):
                    if self.schedule == "cosine":
                        lr = 0.5 * self.lr * (1 + math.cos(math.pi * step / total_steps))
                        for group in opt.param_groups:
                            group["lr"] = lr
                    b_idx = idx[:, s * bs : (s + 1) * bs]
                    b_mask = mask[:, s * bs : (s + 1) * bs]
                    xb = x_epoch[b_idx]
                    if augment is not None and not per_image:
                        shape = xb.shape
                        if image_aug:
                            xb = augment.batch(xb.reshape(-1, *shape[2:]), gen).reshape(shape)
                        else:
                            xb = augment.batch(xb, gen, getattr(network, "std", None))
                    yb = Yd[b_idx]
                    wb = Wd[b_idx] * b_mask
                    with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        logits = network(xb)
                    per_item = sample_losses(logits, yb, cw, gamma)
                    member_loss = (per_item * wb).sum(1) / b_mask.sum(1).clamp_min(1.0)
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(member_loss.sum()).backward()
                    scaler.step(opt)
                    scaler.update()
                    loss_sum += member_loss.detach()
                    samples += b_idx.shape[1] * k
                    step += 1
                info: dict[str, Any] = {"epoch": epoch, "train_loss": (loss_sum / steps_per_epoch).tolist()}
                if va is not None:
                    v_loss, v_acc, _ = self._evaluate(network, Xd, Yd, Wd, va, amp_dtype, dev)
                    info["val_loss"], info["val_accuracy"] = v_loss, v_acc
                    for m in range(k):
                        if v_loss[m] < best[m] - self.min_delta:
                            best[m], best_epoch[m] = v_loss[m], epoch
                            if self.patience is not None:
                                state = network.state_dict()
                                for name, sl in _member_chunks(state, m, k):
                                    best_state[name][sl] = state[name][sl]
                history.append(info)
                if self.callback is not None:
                    # Reporting is not training: keep its time out of the throughput.
                    tc = time.perf_counter()
                    self.callback(epoch, info)
                    t0 += time.perf_counter() - tc
                if (
                    va is not None
                    and self.patience is not None
                    and all(epoch - be >= self.patience for be in best_epoch)
                ):
                    break
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        if va is not None and self.patience is not None:
            network.load_state_dict(best_state)
        val_logits: list[np.ndarray] = []
        if va is not None:
            _, _, val_logits = self._evaluate(network, Xd, Yd, Wd, va, amp_dtype, dev)
        if va is None or self.patience is None:
            best_epoch = [epoch] * k
        return FitResult(
            network=network,
            val_logits=val_logits,
            best_epoch=best_epoch,
            epochs_run=epoch,
            history=history,
            train_seconds=seconds,
            samples=samples,
            device=str(dev),
            amp_dtype=None if amp_dtype is None else str(amp_dtype).removeprefix("torch."),
        )

    @staticmethod
    def _epoch_order(
        tr: list[torch.Tensor], length: int, gen: torch.Generator, dev: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's shuffled rows, padded to a common length with zero-weight repeats."""
        rows, masks = [], []
        for t in tr:
            perm = t[torch.randperm(len(t), generator=gen, device=dev)]
            pad = length - len(t)
            mask = torch.ones(length, device=dev)
            if pad:
                extra = t[torch.randint(len(t), (pad,), generator=gen, device=dev)]
                perm = torch.cat([perm, extra])
                mask[len(t) :] = 0.0
            rows.append(perm)
            masks.append(mask)
        return torch.stack(rows), torch.stack(masks)

    @torch.no_grad()
    def _evaluate(self, network, Xd, Yd, Wd, va, amp_dtype, dev, chunk: int = 2048):
        """Per-member validation loss, accuracy and logits (eval mode, never augmented)."""
        network.eval()
        k = len(va)
        length = max(len(v) for v in va)
        padded = torch.stack([torch.cat([v, v[:1].expand(length - len(v))]) for v in va])
        outs = []
        for s in range(0, length, chunk):
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                outs.append(network(Xd[padded[:, s : s + chunk]]).float())
        logits = torch.cat(outs, dim=1)
        losses, accs, per_member = [], [], []
        for m in range(k):
            lm = logits[m, : len(va[m])]
            y, w = Yd[va[m]], Wd[va[m]]
            losses.append(float((sample_losses(lm, y) * w).sum() / w.sum().clamp_min(1e-12)))
            accs.append(float((lm.argmax(1) == y.argmax(1)).float().mean()))
            per_member.append(lm.cpu().numpy())
        network.train()
        return losses, accs, per_member
