"""Small networks whose weights hold a whole committee at once.

Every network here is built for ``n_members`` independent models (the k fold
models of a :class:`~labelloop.models.ensemble.KFoldCommittee`) that share no
weights but run as one set of tensors:

- convolutions are grouped (``groups=n_members``): member ``k`` owns channel
  block ``k`` of every layer;
- batch norm runs over ``n_members * channels`` channels, so statistics are per
  member;
- linear layers are batched matrix products over a leading member axis.

Why: a 5-fold committee of small models trained one fold after another spends
most of its time in Python and in tiny kernels that leave the cores idle.
Stacking the folds makes every kernel ``n_members`` times larger for the same
Python overhead. ``n_members=1`` is the ordinary single model.

Inputs are either one batch shared by all members, shape ``(n, *item_shape)``
(prediction), or one batch per member, shape ``(n_members, n, *item_shape)``
(training, where each fold draws its own items). Outputs are logits of shape
``(n_members, n, n_classes)``.

Every parameter and buffer (except scalar counters) has a leading dimension
that is a multiple of ``n_members`` and splits into equal member chunks, which
is what :func:`member_state_dict` and :func:`stack_state_dicts` rely on.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

__all__ = [
    "ConvNet",
    "MLPNet",
    "MemberLinear",
    "build_network",
    "member_state_dict",
    "stack_state_dicts",
]


class MemberLinear(nn.Module):
    """``n_members`` independent linear layers applied as one batched matmul.

    Parameters
    ----------
    n_members : int
        Number of independent models.
    in_features, out_features : int
        Sizes of each member's layer.
    """

    def __init__(self, n_members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_members, out_features))
        # Same distribution as nn.Linear's default init, member by member.
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (K, n, in)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


class Dropout(nn.Module):
    """Dropout that draws from ``self.generator`` when the trainer sets one.

    ``nn.Dropout`` draws from torch's global generator, which two folds trained
    on two threads would share, so runs would stop being reproducible.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)


def _member_batch(x: torch.Tensor, n_members: int, item_ndim: int) -> tuple[torch.Tensor, bool]:
    """Return ``(x, shared)``: ``shared`` when one batch feeds every member."""
    if x.dim() == item_ndim + 1:
        return x, True
    if x.dim() == item_ndim + 2 and x.shape[0] == n_members:
        return x, False
    raise ValueError(
        f"expected input of shape (n, ...) with {item_ndim} item dims or ({n_members}, n, ...); "
        f"got {tuple(x.shape)}"
    )


class ConvNet(nn.Module):
    """Small CNN: conv3x3-[BN]-ReLU blocks, each followed by 2x2 max pooling, then a head.

    Parameters
    ----------
    in_channels : int
        Image channels (1 for grayscale).
    n_classes : int
        Number of classes.
    image_size : tuple of int
        ``(height, width)`` of the input; used to size the flattened head.
    channels : sequence of int, default=(32, 64)
        Output channels of each block.
    hidden : int, default=128
        Width of the hidden fully connected layer; 0 for none.
    batch_norm : bool, default=True
        Batch norm after each convolution.
    global_pool : bool, default=True
        Global average pooling before the head; ``False`` flattens the last
        feature map instead (the classic LeNet-style head).
    dropout : float, default=0.0
        Dropout before the last layer.
    n_members : int, default=1
        Number of independent models held at once.
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        image_size: Sequence[int],
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        batch_norm: bool = True,
        global_pool: bool = True,
        dropout: float = 0.0,
        n_members: int = 1,
    ) -> None:
        super().__init__()
        self.spec: dict[str, Any] = {
            "kind": "cnn",
            "in_channels": int(in_channels),
            "n_classes": int(n_classes),
            "image_size": [int(s) for s in image_size],
            "channels": [int(c) for c in channels],
            "hidden": int(hidden),
            "batch_norm": bool(batch_norm),
            "global_pool": bool(global_pool),
            "dropout": float(dropout),
        }
        self.n_members = int(n_members)
        self.in_channels = int(in_channels)
        k = self.n_members
        layers: list[nn.Module] = []
        c_in = in_channels
        h, w = (int(s) for s in image_size)
        for c_out in channels:
            layers.append(nn.Conv2d(k * c_in, k * c_out, 3, padding=1, groups=k, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(k * c_out))
            layers.append(nn.ReLU(inplace=True))
            if min(h, w) >= 2:  # never pool a 1-pixel map away
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.global_pool = bool(global_pool)
        flat = c_in if global_pool else c_in * h * w
        self.c_last = c_in
        head: list[nn.Module] = []
        if hidden:
            head += [MemberLinear(k, flat, hidden), nn.ReLU(inplace=True)]
            flat = hidden
        if dropout:
            head.append(Dropout(dropout))
        head.append(MemberLinear(k, flat, n_classes))
        self.head = nn.Sequential(*head)
        # Channels-last: oneDNN's grouped convolutions and pooling are much faster
        # in NHWC than in NCHW for these many-channel, tiny-image maps.
        self.features.to(memory_format=torch.channels_last)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations, shape ``(k, n, d)`` (what the last linear layer reads)."""
        k = self.n_members
        x, shared = _member_batch(x, k, 3)
        if shared:
            n, c, h, w = x.shape
            x = x.repeat(1, k, 1, 1)  # (n, k*c, h, w): every member sees the same images
        else:
            _, n, c, h, w = x.shape
            x = x.transpose(0, 1).reshape(n, k * c, h, w)
        z = self.features(x.contiguous(memory_format=torch.channels_last))  # (n, k*C, h', w')
        if self.global_pool:
            z = z.mean(dim=(2, 3)).view(n, k, self.c_last)
        else:
            z = z.reshape(n, k, -1)
        z = z.transpose(0, 1)  # (k, n, features)
        return self.head[:-1](z)

    def last_layer(self, z: torch.Tensor) -> torch.Tensor:
        """Logits from :meth:`embed`'s output."""
        return self.head[-1](z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(self.embed(x))


class MLPNet(nn.Module):
    """MLP head for feature vectors (text embeddings, tabular features).

    Parameters
    ----------
    in_features : int
        Width of the input vectors.
    n_classes : int
        Number of classes.
    hidden : sequence of int, default=(256,)
        Hidden layer widths; empty for a linear (softmax regression) model.
    dropout : float, default=0.1
        Dropout after each hidden layer.
    n_members : int, default=1
        Number of independent models held at once.

    Notes
    -----
    Inputs are standardized with per-member ``mean``/``std`` buffers that the
    trainer sets from each fold's own training rows (so a fold never sees its
    validation rows' statistics); they start as 0 and 1.
    """

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        hidden: Sequence[int] = (256,),
        dropout: float = 0.1,
        n_members: int = 1,
    ) -> None:
        super().__init__()
        self.spec: dict[str, Any] = {
            "kind": "mlp",
            "in_features": int(in_features),
            "n_classes": int(n_classes),
            "hidden": [int(h) for h in hidden],
            "dropout": float(dropout),
        }
        self.n_members = k = int(n_members)
        self.register_buffer("mean", torch.zeros(k, 1, in_features))
        self.register_buffer("std", torch.ones(k, 1, in_features))
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [MemberLinear(k, width, h), nn.ReLU(inplace=True)]
            if dropout:
                layers.append(Dropout(dropout))
            width = h
        layers.append(MemberLinear(k, width, n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, shared = _member_batch(x, self.n_members, 1)
        if shared:
            x = x.unsqueeze(0).expand(self.n_members, -1, -1)
        return self.layers((x - self.mean) / self.std)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations, shape ``(k, n, d)`` (the standardized input without hidden layers)."""
        x, shared = _member_batch(x, self.n_members, 1)
        if shared:
            x = x.unsqueeze(0).expand(self.n_members, -1, -1)
        return self.layers[:-1]((x - self.mean) / self.std)

    def last_layer(self, z: torch.Tensor) -> torch.Tensor:
        """Logits from :meth:`embed`'s output."""
        return self.layers[-1](z)


def build_network(spec: dict[str, Any], n_members: int = 1) -> nn.Module:
    """Build a network from its ``spec`` dict (as stored in checkpoints)."""
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind == "cnn":
        return ConvNet(**spec, n_members=n_members)
    if kind == "mlp":
        return MLPNet(**spec, n_members=n_members)
    raise ValueError(f"unknown network kind {kind!r}; expected 'cnn' or 'mlp'")


def member_state_dict(network: nn.Module, member: int) -> dict[str, torch.Tensor]:
    """The weights of one member, as the state dict of an ``n_members=1`` network."""
    k = network.n_members
    if not 0 <= member < k:
        raise ValueError(f"member must be in [0, {k}) (got {member})")
    out: dict[str, torch.Tensor] = {}
    for name, tensor in network.state_dict().items():
        if tensor.dim() == 0:
            out[name] = tensor.detach().clone()
        else:
            size = tensor.shape[0] // k
            out[name] = tensor[member * size : (member + 1) * size].detach().clone()
    return out


def stack_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`member_state_dict`: one state dict for ``len(states)`` members."""
    first = states[0]
    return {
        name: (t.clone() if t.dim() == 0 else torch.cat([s[name] for s in states], dim=0))
        for name, t in first.items()
    }
