"""Benchmark: labelloop's k-fold trainer vs a plain PyTorch DataLoader loop (ANCHORS.md, CNN protocol).

Protocol: conv3x3(1->32)-ReLU-maxpool-conv3x3(32->64)-ReLU-maxpool-fc128-fc10 on the 1,797 sklearn
digits (8x8, /16), 5-fold StratifiedKFold, 20 epochs, batch 64, Adam 1e-3 (constant), fp32, 2 torch
threads; with and without the same albumentations pipeline (Affine +-10% shift, 0.9-1.1 scale, +-10 deg;
GaussNoise std 0.03-0.08).

- anchor ("torch DataLoader"): one fold after another, ``DataLoader(TensorDataset)``,
  ``num_workers=0``; augmentation = ``albumentations.Compose`` per image in the dataset.
- labelloop: ``KFoldCommittee(model="cnn")`` with the same network, optimiser and pipeline
  (declared as albumentations entries; run batched on tensors, see labelloop/models/augment.py).

The machine is shared, so everything is interleaved in one process: the anchor's five folds are
spread between ``--repeats`` labelloop fits (same seed, same models each time), with and without
augmentation in turn, so the augmentation slowdowns are measured under the same load too. Each side's clock
only counts its own work, so load hits both alike; the ratio is the figure to read. A third
system, the same DataLoader loop on one thread, is printed for reference: on a loaded machine a
two-thread team stalls at every op, and that row shows how much of the gap is that.

Threads: the process runs with ``torch.set_num_threads(2)`` (the protocol). The anchor uses them as
one two-thread team per op. labelloop's CPU trainer trains all five folds as one batched network on
one torch thread (see ``KFoldCommittee.fold_groups`` for why), so it uses at most the same budget.

Run: ``python bench/train.py [--seeds 0 1] [--epochs 20]`` from the repository root.
Writes bench/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset, TensorDataset  # noqa: E402

from labelloop.models.ensemble import KFoldCommittee  # noqa: E402

PIPELINE = [
    {"Affine": {"translate_percent": [-0.1, 0.1], "scale": [0.9, 1.1], "rotate": [-10, 10]}},
    {"GaussNoise": {"std_range": [0.03, 0.08]}},
]
NET = {"channels": [32, 64], "hidden": 128, "batch_norm": False, "global_pool": False}


def write_results(name: str, rows: list[dict]) -> Path:
    out = Path(__file__).resolve().parent / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return out


def anchor_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10),
    )


class AlbumentationsDataset(Dataset):
    """The usual way: albumentations per image in ``__getitem__``."""

    def __init__(self, X: np.ndarray, y: np.ndarray, seed: int) -> None:
        import albumentations as A
        from labelloop.models.augment import parse_pipeline

        self.X = np.ascontiguousarray(X[:, 0, :, :, None])  # HWC for albumentations
        self.y = torch.as_tensor(y)
        self.tf = A.Compose(parse_pipeline(PIPELINE), seed=seed)

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int):
        img = self.tf(image=self.X[i])["image"]
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), self.y[i]


class PlainLoop:
    """The anchor: one model per fold, trained with a DataLoader, one fold at a time."""

    def __init__(self, X, y, folds, seed: int, augment: bool, epochs: int) -> None:
        self.X, self.y, self.folds = X, y, folds
        self.seed, self.augment, self.epochs = seed, augment, epochs
        self.seconds = 0.0
        self.samples = 0
        self.accuracy: list[float] = []

    def fold(self, f: int) -> None:
        tr, va = self.folds[f]
        torch.manual_seed(self.seed * 100 + f)
        model = anchor_net()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        if self.augment:
            ds = AlbumentationsDataset(self.X[tr], self.y[tr], self.seed * 100 + f)
        else:
            ds = TensorDataset(torch.as_tensor(self.X[tr]), torch.as_tensor(self.y[tr]))
        g = torch.Generator().manual_seed(self.seed * 100 + f)
        loader = DataLoader(ds, batch_size=64, shuffle=True, num_workers=0, generator=g)
        t0 = time.perf_counter()
        model.train()
        for _ in range(self.epochs):
            for xb, yb in loader:
                loss = nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                self.samples += len(xb)
        self.seconds += time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            pred = model(torch.as_tensor(self.X[va])).argmax(1).numpy()
        self.accuracy.append(float((pred == self.y[va]).mean()))


def run(seed: int, epochs: int, repeats: int) -> dict[str, dict]:
    """Both tasks (with and without augmentation) and all systems, interleaved under the same load."""
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    tasks = {"8x8": False, "8x8+aug": True}
    ens, plain, single, ll = {}, {}, {}, {}
    for task, aug in tasks.items():
        ens[task] = KFoldCommittee(
            model="cnn", model_params=NET, n_splits=5, epochs=epochs, batch_size=64, lr=1e-3,
            schedule="constant", patience=None, calibrate=False, augment=PIPELINE if aug else None,
            device="cpu", seed=seed,
        )
        folds = ens[task].fold_plan(y)  # the same folds for every system
        plain[task] = PlainLoop(X, y, folds, seed, aug, epochs)
        single[task] = PlainLoop(X, y, folds, seed, aug, epochs)  # reference: the same loop on one thread
        ll[task] = [0.0, 0.0]
    # Untimed warm-up of every side: oneDNN builds its kernels for each new shape on first use.
    for task, aug in tasks.items():
        KFoldCommittee(**{**ens[task].get_params(), "epochs": 1}).fit(X, y)
        PlainLoop(X, y, ens[task].fold_plan(y), seed, aug, 1).fold(0)
    # Interleave so that the load of a shared machine hits every system: the anchors' five folds are
    # spread between `repeats` labelloop fits (same seed, so the same models each time).
    for chunk in np.array_split(np.arange(5), repeats):
        for task in tasks:
            ens[task].fit(X, y)
            ll[task][0] += ens[task].train_seconds_
            ll[task][1] += ens[task].train_samples_per_s_ * ens[task].train_seconds_
            for f in chunk:
                plain[task].fold(int(f))
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for f in chunk:
                    single[task].fold(int(f))
            finally:
                torch.set_num_threads(threads)
    return {
        task: {
            "labelloop_sps": ll[task][1] / ll[task][0],
            "plain_sps": plain[task].samples / plain[task].seconds,
            "plain1_sps": single[task].samples / single[task].seconds,
            "labelloop_acc": float(np.mean([s["accuracy"] for s in ens[task].fold_scores_])) * 100,
            "plain_acc": float(np.mean(plain[task].accuracy)) * 100,
            "plain1_acc": float(np.mean(single[task].accuracy)) * 100,
        }
        for task in tasks
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="labelloop fits interleaved with the anchor's folds")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res: dict[str, list[dict]] = {"8x8": [], "8x8+aug": []}
    for seed in args.seeds:
        for task, r in run(seed, args.epochs, args.repeats).items():
            res[task].append(r)
            print(f"seed {seed} {task}: " + ", ".join(f"{k}={v:.4g}" for k, v in r.items()), flush=True)

    def mean(task: str, key: str) -> float:
        return float(np.mean([r[key] for r in res[task]]))

    systems = (("labelloop", "labelloop"), ("torch DataLoader", "plain"), ("torch DataLoader 1 thread", "plain1"))
    rows = []
    for task in res:
        for system, prefix in systems:
            rows.append({"task": task, "system": system, "metric": "samples_per_s", "value": mean(task, f"{prefix}_sps")})
            rows.append({"task": task, "system": system, "metric": "fold_accuracy_pct", "value": mean(task, f"{prefix}_acc")})
    for system, prefix in systems:
        overhead = mean("8x8", f"{prefix}_sps") / mean("8x8+aug", f"{prefix}_sps")
        rows.append({"task": "augmentation", "system": system, "metric": "slowdown_x", "value": overhead})
    out = write_results("train", rows)

    print(f"\nCNN k-fold training, {args.epochs} epochs x 5 folds, seeds {args.seeds}, {args.threads} threads")
    print(f"{'task':10} {'system':27} {'samples/s':>10} {'fold acc %':>10}")
    for task in res:
        for system, prefix in systems:
            print(f"{task:10} {system:27} {mean(task, prefix + '_sps'):10.0f} {mean(task, prefix + '_acc'):10.2f}")
        for ref in ("plain", "plain1"):
            ratio = mean(task, "labelloop_sps") / mean(task, f"{ref}_sps")
            dacc = mean(task, "labelloop_acc") - mean(task, f"{ref}_acc")
            label = "ratio vs DataLoader" + (" 1 thr" if ref == "plain1" else "")
            print(f"{task:10} {label:27} {ratio:9.2f}x {dacc:+10.2f} pts")
    for system, prefix in systems:
        overhead = mean("8x8", f"{prefix}_sps") / mean("8x8+aug", f"{prefix}_sps")
        print(f"augmentation slowdown, {system}: {overhead:.2f}x")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
