"""The stratified k-fold committee: :class:`KFoldCommittee`.

One model per fold, each trained on the other folds and early-stopped on its
own. The committee gives

- ``oof_proba_``: every training item scored by the one model that never saw
  it (what label-error detection and self-training read);
- ``predict_proba(X)``: the mean of the fold models (pool predictions);
- ``predict_proba_members(X)``: each fold model's probabilities,
  shape ``(n_splits, n, n_classes)``, for disagreement measures;

all after temperature scaling fitted on the out-of-fold logits.

The neural folds train together as one member-batched network (see
:mod:`labelloop.models.networks`); ``parallel_folds`` splits them into groups
(e.g. 1 = one fold per group, so a distributed task runner can spread them).

>>> import numpy as np
>>> from labelloop.models.ensemble import KFoldCommittee
>>> rng = np.random.default_rng(0)
>>> X = np.r_[rng.normal(-2, 1, (40, 2)), rng.normal(2, 1, (40, 2))]
>>> y = np.r_[np.zeros(40, int), np.ones(40, int)]
>>> committee = KFoldCommittee(model="logreg", n_splits=4).fit(X, y)
>>> committee.oof_proba_.shape, committee.predict_proba_members(X[:3]).shape
((80, 2), (4, 3, 2))
>>> float(committee.score(X, y)) > 0.9
True
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from labelloop.exceptions import TrainingError
from labelloop.models import metrics
from labelloop.models.calibration import calibration_rows, fit_temperature, softmax
from labelloop.models.augment import FeatureNoise, ImageAugmenter
from labelloop.models.networks import ConvNet, MLPNet, build_network, member_state_dict, stack_state_dicts
from labelloop.models.trainer import Trainer, resolve_device, save_checkpoint

__all__ = ["KFoldCommittee"]

_MODELS = ("cnn", "mlp", "logreg")
# Settings the committee hands to every fold's Trainer unchanged.
_TRAINER_SETTINGS = ("epochs", "min_steps", "batch_size", "lr", "weight_decay", "schedule", "loss", "focal_gamma",
                     "device", "amp")


def _run_on_threads(jobs: list[Callable[[], Any]], workers: int) -> list[Any]:
    """Run the jobs on ``workers`` threads, each with one torch intra-op thread; re-raise the first error.

    With one worker the jobs run in the calling thread. torch's thread count is
    put back afterwards (MKL's is process-wide).
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    before = torch.get_num_threads()
    local = threading.local()

    def one_thread(job: Callable[[], Any]) -> Any:
        if not getattr(local, "single", False):
            torch.set_num_threads(1)
            local.single = True
        return job()

    try:
        if workers <= 1:
            torch.set_num_threads(1)
            return [job() for job in jobs]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="labelloop-folds") as pool:
            return list(pool.map(one_thread, jobs))
    finally:
        torch.set_num_threads(before)


class KFoldCommittee(ClassifierMixin, BaseEstimator):
    """Stratified k-fold committee of small networks (or logistic regressions).

    Parameters
    ----------
    model : {"cnn", "mlp", "logreg"}, default="cnn"
        ``cnn`` for images ``(n, H, W)`` or ``(n, C, H, W)`` with values in
        [0, 1] (uint8 is divided by 255); ``mlp`` for feature vectors
        ``(n, d)`` (standardized per fold); ``logreg`` for a scikit-learn
        logistic regression on flattened inputs.
    model_params : dict, optional
        Network sizes: for ``cnn`` ``channels``, ``hidden``, ``batch_norm``,
        ``global_pool``, ``dropout``; for ``mlp`` ``hidden``, ``dropout``; for
        ``logreg`` ``C``, ``max_iter``.
    n_splits : int, default=5
    epochs, min_steps, batch_size, lr, weight_decay, schedule, patience, loss, focal_gamma
        Passed to :class:`~labelloop.models.trainer.Trainer`.
    class_weight : {"balanced"} or array-like of shape (n_classes,), optional
        ``"balanced"``: ``n / (n_classes * count_c)`` from the (soft) label counts.
    augment : list of pipeline entries, ImageAugmenter or FeatureNoise, optional
        Training-time augmentation (see :mod:`labelloop.models.augment`).
    tta : int, default=0
        Test-time augmentation: average ``predict_proba`` over the original and
        ``tta`` augmented copies (images with an ``augment`` pipeline only).
    calibrate : bool, default=True
        Fit a temperature on the out-of-fold logits.
    n_classes : int, optional
        Number of classes when ``y`` is hard and some class may be absent.
    parallel_folds : int, optional
        Folds trained together as one batched network. Default: all of them on
        CUDA; on CPU the folds split evenly over ``n_jobs`` workers.
    n_jobs : int, optional
        CPU workers (threads, each with one torch intra-op thread) that split
        the folds; default 1 (see :meth:`fold_groups`).
    device : {"auto", "cpu", "cuda"}, default="auto"
    amp : bool, default=True
        Mixed precision on CUDA.
    seed : int, default=0
        Seeds the folds, the initial weights, batch order and augmentation.
    checkpoint_dir : str or Path, optional
        Where to write one checkpoint per fold (``fold{k}.pt``); their sha256
        are in ``checkpoints_``.
    callback : callable, optional
        ``callback(group, epoch, info)`` after every epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    folds_ : list of (train_idx, val_idx)
    oof_logits_ : ndarray of shape (n, n_classes)
    oof_proba_ : ndarray of shape (n, n_classes)
        Out-of-fold probabilities, temperature-scaled.
    temperature_ : float
    fold_scores_ : list of dict
        Per fold: ``fold, n_train, n_val, accuracy, macro_f1, ece, best_epoch, epochs_run``.
    checkpoints_ : list of dict
        ``fold, path, sha256`` (empty without ``checkpoint_dir``).
    train_seconds_ : float
    train_samples_per_s_ : float
        Training throughput, items per second summed over folds.
    """

    def __init__(
        self,
        model: str = "cnn",
        model_params: dict[str, Any] | None = None,
        n_splits: int = 5,
        epochs: int = 20,
        min_steps: int = 0,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: str = "cosine",
        patience: int | None = None,
        loss: str = "cross_entropy",
        focal_gamma: float = 2.0,
        class_weight: str | Sequence[float] | None = None,
        augment: Any = None,
        tta: int = 0,
        calibrate: bool = True,
        n_classes: int | None = None,
        parallel_folds: int | None = None,
        n_jobs: int | None = None,
        device: str = "auto",
        amp: bool = True,
        seed: int = 0,
        checkpoint_dir: str | Path | None = None,
        callback: Callable[[int, int, dict[str, Any]], None] | None = None,
    ) -> None:
        self.model = model
        self.model_params = model_params
        self.n_splits = n_splits
        self.epochs = epochs
        self.min_steps = min_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.patience = patience
        self.loss = loss
        self.focal_gamma = focal_gamma
        self.class_weight = class_weight
        self.augment = augment
        self.tta = tta
        self.calibrate = calibrate
        self.n_classes = n_classes
        self.parallel_folds = parallel_folds
        self.n_jobs = n_jobs
        self.device = device
        self.amp = amp
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.callback = callback

    # ------------------------------------------------------------------ input checks
    def _prepare_X(self, X: Any, item_ids: Sequence[Any] | None = None) -> np.ndarray:
        X = np.asarray(X)
        if X.dtype == np.uint8:
            X = X.astype(np.float32) / 255.0
        elif not np.issubdtype(X.dtype, np.number):
            raise TrainingError(f"X must be numeric (got dtype {X.dtype})")
        X = X.astype(np.float32, copy=False)
        if self.model == "cnn":
            if X.ndim == 3:
                X = X[:, None]
            if X.ndim != 4:
                raise TrainingError(f"model 'cnn' needs images of shape (n, H, W) or (n, C, H, W) (got {X.shape})")
        elif self.model == "mlp" and X.ndim != 2:
            raise TrainingError(f"model 'mlp' needs feature vectors of shape (n, d) (got {X.shape})")
        bad = ~np.isfinite(X.reshape(len(X), -1)).all(axis=1)
        if bad.any():
            ids = np.asarray(item_ids if item_ids is not None else np.arange(len(X)))[bad]
            shown = ", ".join(map(str, ids[:5])) + (" ..." if len(ids) > 5 else "")
            raise TrainingError(f"item {shown}: features contain NaN or inf ({int(bad.sum())} item(s)); expected finite values")
        return X

    def _prepare_y(self, y: Any, n: int, item_ids: Sequence[Any] | None) -> np.ndarray:
        y = np.asarray(y)
        ids = np.asarray(item_ids if item_ids is not None else np.arange(n))
        if len(y) != n:
            raise TrainingError(f"X has {n} items but y has {len(y)}")
        if y.ndim == 1:
            if not np.issubdtype(y.dtype, np.integer):
                if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
                    y = y.astype(int)
                else:
                    raise TrainingError(f"hard labels must be integer class ids (got dtype {y.dtype})")
            n_classes = self.n_classes or int(y.max()) + 1
            bad = (y < 0) | (y >= n_classes)
            if bad.any():
                raise TrainingError(
                    f"item {ids[bad][0]}: label {y[bad][0]} is not a class id in [0, {n_classes})"
                )
            return np.eye(n_classes, dtype=np.float32)[y]
        if y.ndim == 2:
            if self.n_classes is not None and y.shape[1] != self.n_classes:
                raise TrainingError(f"soft labels have {y.shape[1]} columns but n_classes is {self.n_classes}")
            sums = y.sum(axis=1)
            bad = (y < 0).any(axis=1) | ~np.isclose(sums, 1.0, atol=1e-3)
            if bad.any():
                raise TrainingError(
                    f"item {ids[bad][0]}: soft label must be non-negative and sum to 1 (got sum {sums[bad][0]:.4g})"
                )
            return (y / sums[:, None]).astype(np.float32)
        raise TrainingError(f"y must be class ids (n,) or probabilities (n, n_classes) (got shape {y.shape})")

    def _check_params(self) -> None:
        if self.model not in _MODELS:
            raise ValueError(f"model must be one of {_MODELS} (got {self.model!r})")
        if not isinstance(self.n_splits, int) or self.n_splits < 2:
            raise ValueError(f"n_splits must be an int >= 2 (got {self.n_splits!r})")
        if self.tta < 0:
            raise ValueError(f"tta must be >= 0 (got {self.tta})")
        if self.parallel_folds is not None and self.parallel_folds < 1:
            raise ValueError(f"parallel_folds must be >= 1 (got {self.parallel_folds})")

    def _augmenter(self) -> Any:
        aug = self.augment
        if aug is None or isinstance(aug, (ImageAugmenter, FeatureNoise)):
            return aug or None
        if self.model == "cnn":
            return ImageAugmenter(aug) or None  # a bad pipeline entry is a ValueError naming it
        if isinstance(aug, dict):
            return FeatureNoise(**aug) or None
        raise ValueError(f"augment for model {self.model!r} must be a FeatureNoise or a mapping (got {aug!r})")

    def _class_weight(self, Y: np.ndarray, w: np.ndarray) -> np.ndarray | None:
        cw = self.class_weight
        if cw is None:
            return None
        if isinstance(cw, str):
            if cw != "balanced":
                raise ValueError(f"class_weight must be 'balanced' or a list (got {cw!r})")
            counts = (Y * w[:, None]).sum(0)
            out = np.where(counts > 0, counts.sum() / (Y.shape[1] * np.maximum(counts, 1e-12)), 1.0)
            return out.astype(np.float32)
        cw = np.asarray(cw, dtype=np.float32)
        if cw.shape != (Y.shape[1],):
            raise ValueError(f"class_weight needs {Y.shape[1]} values (got {cw.shape[0] if cw.ndim else cw})")
        return cw

    def _network(self, X: np.ndarray, n_classes: int, n_members: int) -> torch.nn.Module:
        params = dict(self.model_params or {})
        try:
            if self.model == "cnn":
                return ConvNet(X.shape[1], n_classes, X.shape[2:], n_members=n_members, **params)
            return MLPNet(X.shape[1], n_classes, n_members=n_members, **params)
        except TypeError as exc:
            raise ValueError(f"model_params for {self.model!r}: {exc}") from None

    # ------------------------------------------------------------------ fit
    def fold_plan(self, y: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        """The stratified folds ``fit`` will use (stratified on the label's argmax).

        Items of a class with fewer than ``n_splits`` labels are in every
        fold's training part and in no validation part (their out-of-fold row
        is NaN): with 1-2 labels per class, holding one out would leave a
        member that never saw the class. When fewer than ``n_splits`` items
        remain to validate on, the folds are plain (unstratified) splits of them.
        """
        y = np.asarray(y)
        strata = y.argmax(1) if y.ndim == 2 else y
        if len(strata) < self.n_splits:
            raise TrainingError(f"{len(strata)} labeled items cannot make {self.n_splits} folds")
        counts = np.bincount(strata, minlength=int(strata.max()) + 1 if len(strata) else 0)
        rare = counts[strata] < self.n_splits
        held = np.flatnonzero(~rare)
        always = np.flatnonzero(rare)
        if len(held) < self.n_splits:
            held, always = np.arange(len(strata)), np.zeros(0, np.int64)
            splits = KFold(n_splits=self.n_splits, shuffle=True, random_state=self.seed).split(held)
        else:
            splits = StratifiedKFold(n_splits=self.n_splits, shuffle=True, random_state=self.seed).split(
                np.zeros(len(held)), strata[held]
            )
        return [(np.sort(np.r_[held[tr], always]), held[va]) for tr, va in splits]

    def fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        item_ids: Sequence[Any] | None = None,
        augmented: Any = None,
    ) -> "KFoldCommittee":
        """Train one model per fold.

        Parameters
        ----------
        X : array-like
            Items (see ``model``).
        y : array-like of shape (n,) or (n, n_classes)
            Class ids, or class probabilities (soft labels).
        sample_weight : array-like of shape (n,), optional
            Per-item weight (e.g. a pseudo-label's confidence).
        item_ids : sequence, optional
            Store ids of the items, used in error messages.
        augmented : AugmentedRows, optional
            Augmented copies of training items (text back-translation, synonyms):
            each trains only in the folds its original trains in, see
            :func:`labelloop.models.text_augment.augmented_folds`.
        """
        X, Y, w = self.prepare(X, y, sample_weight, item_ids)
        n_classes = Y.shape[1]
        groups, workers = self.fold_groups()
        networks = [self.init_network(X, n_classes, g) for g in groups]  # main thread: seeded init
        t0 = time.perf_counter()
        jobs = [lambda g=g, net=net: self.fit_group(X, Y, w, g, net, augmented) for g, net in zip(groups, networks)]
        if resolve_device(self.device).type == "cuda":
            results = [job() for job in jobs]
        else:
            results = _run_on_threads(jobs, workers)
        self._assemble(X, Y, w, results, wall_seconds=time.perf_counter() - t0)
        return self

    def prepare(
        self, X: Any, y: Any, sample_weight: Any = None, item_ids: Sequence[Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validate the inputs and plan the folds: the first half of ``fit``.

        Returns ``(X, Y, w)``: float32 inputs, probability targets and weights,
        ready for :meth:`fit_group`; sets ``classes_``, ``n_classes_`` and ``folds_``.
        A distributed caller runs :meth:`fit_group` per group of
        :meth:`fold_groups` wherever it likes, then :meth:`finish`.
        """
        self._check_params()
        X = self._prepare_X(X, item_ids)
        Y = self._prepare_y(y, len(X), item_ids)
        w = np.ones(len(X), np.float32) if sample_weight is None else np.asarray(sample_weight, np.float32)
        if w.shape != (len(X),) or (w < 0).any() or not np.isfinite(w).all():
            raise TrainingError(f"sample_weight must be {len(X)} finite values >= 0")
        self.classes_ = np.arange(Y.shape[1])
        self.n_classes_ = Y.shape[1]
        self.folds_ = self.fold_plan(Y)
        return X, Y, w

    def finish(
        self, X: np.ndarray, Y: np.ndarray, w: np.ndarray, results: list[dict[str, Any]], wall_seconds: float | None = None
    ) -> "KFoldCommittee":
        """Combine :meth:`fit_group` results: OOF predictions, temperature, scores, checkpoints."""
        self._assemble(X, Y, w, results, wall_seconds)
        return self

    def fold_groups(self) -> tuple[list[list[int]], int]:
        """How the folds are grouped into batched networks, and how many groups run at once.

        On CUDA every fold goes into one network (one big kernel per layer).
        On CPU the folds are split over ``n_jobs`` workers (default 1), each a
        single-threaded torch: the folds of a group already make every op
        several times larger, and small ops gain little from a team of
        intra-op threads while a shared, loaded machine punishes one badly
        (the team waits for its slowest thread at every op). Measured on the
        2-core project machine under load: one worker with one thread trained
        ~9x faster than the same worker with two threads, and ~1.6x faster than
        two one-thread workers (which then queue for the GIL).
        """
        folds = list(range(self.n_splits))
        on_cuda = resolve_device(self.device).type == "cuda"
        if self.parallel_folds is not None:
            size = self.parallel_folds
            groups = [folds[s : s + size] for s in range(0, len(folds), size)]
        elif on_cuda or self.model == "logreg":
            groups = [folds]
        else:
            jobs = min(self.n_jobs or 1, len(folds))
            groups = [list(map(int, g)) for g in np.array_split(folds, jobs)]
        workers = 1 if on_cuda else min(len(groups), self.n_jobs or 1)
        return groups, workers

    def device_type(self) -> str:
        """``cpu`` or ``cuda``: where :meth:`fit_group` will train."""
        return resolve_device(self.device).type

    def init_network(self, X: np.ndarray, n_classes: int, folds: Sequence[int]) -> torch.nn.Module | None:
        """The untrained network for a group of folds, seeded by the group's first fold."""
        if self.model == "logreg":
            return None
        torch.manual_seed(self.seed * 1000 + folds[0])
        return self._network(X, n_classes, len(folds))

    def fit_group(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        w: np.ndarray,
        folds: Sequence[int],
        network: torch.nn.Module | None = None,
        augmented: Any = None,
    ) -> dict[str, Any]:
        """Train the models of ``folds`` (indices into ``folds_``) together; used by ``fit`` and the flow."""
        tr = [self.folds_[f][0] for f in folds]
        va = [self.folds_[f][1] for f in folds]
        if augmented is not None:
            # --- text augmentation (issue 13): copies join their original's training rows, never validation.
            from labelloop.models.text_augment import augmented_folds

            X, Y, w, tr = augmented_folds(X, Y, w, tr, augmented)
        if self.model == "logreg":
            return self._fit_logreg_group(X, Y, w, folds, tr, va)
        if network is None:
            network = self.init_network(X, Y.shape[1], folds)
        cb = None
        if self.callback is not None:
            cb = lambda epoch, info: self.callback(folds[0], epoch, info)  # noqa: E731
        # Early stopping needs a validation split that means something: on a handful of items the
        # loss minimum is an accident (35 digits in 7-item folds stopped at epoch 1: 10% accuracy).
        patience = self.patience if min(len(v) for v in va) >= max(10, 3 * Y.shape[1]) else None
        trainer = Trainer(
            **{name: getattr(self, name) for name in _TRAINER_SETTINGS},
            patience=patience,
            class_weight=self._class_weight(Y, w),
            augment=self._augmenter(),
            seed=self.seed * 1000 + folds[0],
            callback=cb,
        )
        res = trainer.fit(network, X, Y, tr, va, sample_weight=w)
        net = res.network.cpu()
        return {
            "folds": list(folds),
            "spec": net.spec,
            "states": [member_state_dict(net, m) for m in range(len(folds))],
            "val_logits": res.val_logits,
            "best_epoch": res.best_epoch,
            "epochs_run": res.epochs_run,
            "history": res.history,
            "seconds": res.train_seconds,
            "samples": res.samples,
            "device": res.device,
            "amp_dtype": res.amp_dtype,
        }

    def _fit_logreg_group(self, X, Y, w, folds, tr, va) -> dict[str, Any]:
        from sklearn.linear_model import LogisticRegression

        params = {"max_iter": 2000, **(self.model_params or {})}
        Xf = X.reshape(len(X), -1)
        C = Y.shape[1]
        models, logits, t0, samples = [], [], time.perf_counter(), 0
        for t_idx, v_idx in zip(tr, va):
            # Soft labels: one row per (item, class) with weight w * p(class).
            rows = np.repeat(t_idx, C)
            cls = np.tile(np.arange(C), len(t_idx))
            rw = (Y[t_idx] * w[t_idx, None]).reshape(-1)
            keep = rw > 0
            est = LogisticRegression(**params).fit(Xf[rows[keep]], cls[keep], sample_weight=rw[keep])
            models.append(est)
            logits.append(self._logreg_logits(est, Xf[v_idx], C))
            samples += len(t_idx)
        return {
            "folds": list(folds),
            "spec": {"kind": "logreg", **params},
            "estimators": models,
            "val_logits": logits,
            "best_epoch": [0] * len(folds),
            "epochs_run": 0,
            "history": [],
            "seconds": time.perf_counter() - t0,
            "samples": samples,
            "device": "cpu",
            "amp_dtype": None,
        }

    @staticmethod
    def _logreg_logits(est: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
        out = np.full((len(X), n_classes), np.log(1e-12))
        out[:, est.classes_] = np.log(np.clip(est.predict_proba(X), 1e-12, None))
        return out

    def _assemble(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        w: np.ndarray,
        results: list[dict[str, Any]],
        wall_seconds: float | None = None,
    ) -> None:
        """Collect fold results into the fitted attributes (also used by the training flow).

        ``wall_seconds``: the training wall time; default the sum of the groups' times.
        """
        n, C = Y.shape
        oof = np.full((n, C), np.nan, dtype=np.float64)
        states: dict[int, Any] = {}
        self.fold_info_: dict[int, dict[str, Any]] = {}
        seconds = samples = 0.0
        for res in sorted(results, key=lambda r: r["folds"][0]):
            for m, fold in enumerate(res["folds"]):
                oof[self.folds_[fold][1]] = res["val_logits"][m]
                states[fold] = res["estimators"][m] if "estimators" in res else res["states"][m]
                self.fold_info_[fold] = {"best_epoch": res["best_epoch"][m], "epochs_run": res["epochs_run"]}
            seconds += res["seconds"]
            samples += res["samples"]
            self.spec_ = res["spec"]
            self.device_ = res["device"]
            self.amp_dtype_ = res["amp_dtype"]
        if sorted(states) != list(range(self.n_splits)):
            raise TrainingError(f"fold results are incomplete: got folds {sorted(states)} of {self.n_splits}")
        self.history_ = [r["history"] for r in results]
        self.members_ = [states[f] for f in range(self.n_splits)]
        self.oof_logits_ = oof
        seen = ~np.isnan(oof[:, 0])  # rows of rare classes are never held out (see fold_plan)
        fit_rows = seen & calibration_rows(Y, self.folds_)
        self.temperature_ = fit_temperature(oof[fit_rows], Y[fit_rows], w[fit_rows]) if self.calibrate else 1.0
        self.oof_proba_ = np.full((n, C), np.nan)
        self.oof_proba_[seen] = softmax(oof[seen], self.temperature_)
        if self.model != "logreg":
            self.network_ = build_network(self.spec_, n_members=self.n_splits)
            self.network_.load_state_dict(stack_state_dicts(self.members_))
            self.network_.eval()
        hard = Y.argmax(1)
        self.fold_scores_ = []
        for f, (t_idx, v_idx) in enumerate(self.folds_):
            p = self.oof_proba_[v_idx]
            self.fold_scores_.append(
                {
                    "fold": f,
                    "n_train": int(len(t_idx)),
                    "n_val": int(len(v_idx)),
                    "accuracy": metrics.accuracy(hard[v_idx], p.argmax(1)),
                    "macro_f1": metrics.macro_f1(hard[v_idx], p.argmax(1), C),
                    "ece": metrics.expected_calibration_error(p, hard[v_idx]),
                    **self.fold_info_[f],
                }
            )
        self.train_seconds_ = seconds if wall_seconds is None else wall_seconds
        self.train_samples_per_s_ = samples / self.train_seconds_ if self.train_seconds_ else float("nan")
        self.checkpoints_ = self._save_checkpoints() if self.checkpoint_dir is not None else []

    def _save_checkpoints(self) -> list[dict[str, Any]]:
        out = []
        for f, member in enumerate(self.members_):
            payload = {
                "spec": self.spec_,
                "fold": f,
                "n_splits": self.n_splits,
                "n_items": len(self.oof_logits_),
                "seed": self.seed,
                "temperature": self.temperature_,
                "n_classes": self.n_classes_,
                "model": member,
                "val_index": self.folds_[f][1],
                "val_logits": self.oof_logits_[self.folds_[f][1]],
                "score": self.fold_scores_[f],
                "params": {k: v for k, v in self.get_params().items() if k not in ("callback", "augment")},
                "augment": self.augment if isinstance(self.augment, (list, dict, type(None))) else None,
            }
            path = Path(self.checkpoint_dir) / f"fold{f}.pt"
            out.append({"fold": f, "path": str(path), "sha256": save_checkpoint(path, payload)})
        return out

    @classmethod
    def load(cls, checkpoints: Sequence[dict[str, Any]]) -> "KFoldCommittee":
        """Rebuild a fitted committee from its checkpoints (``checkpoints_`` of an earlier fit).

        Every file's sha256 is checked; the out-of-fold logits, temperature and
        fold scores come back with the weights, so the committee is exactly the
        one that was saved.
        """
        from labelloop.models.trainer import load_checkpoint

        entries = sorted(checkpoints, key=lambda c: c["fold"])
        payloads = [load_checkpoint(c["path"], c.get("sha256")) for c in entries]
        if [p["fold"] for p in payloads] != list(range(payloads[0]["n_splits"])):
            raise TrainingError(
                f"checkpoints cover folds {[p['fold'] for p in payloads]} of {payloads[0]['n_splits']}"
            )
        first = payloads[0]
        ens = cls(**{**first["params"], "augment": first.get("augment")})
        n = int(first.get("n_items", sum(len(p["val_index"]) for p in payloads)))
        ens.n_classes_ = int(first["n_classes"])
        ens.classes_ = np.arange(ens.n_classes_)
        ens.spec_ = first["spec"]
        ens.members_ = [p["model"] for p in payloads]
        ens.temperature_ = float(first["temperature"])
        ens.oof_logits_ = np.full((n, ens.n_classes_), np.nan)
        everything = np.arange(n)
        ens.folds_ = []
        for p in payloads:
            ens.oof_logits_[p["val_index"]] = p["val_logits"]
            ens.folds_.append((np.setdiff1d(everything, p["val_index"]), np.asarray(p["val_index"])))
        ens.oof_proba_ = softmax(ens.oof_logits_, ens.temperature_)  # NaN rows stay NaN
        ens.fold_scores_ = [p["score"] for p in payloads]
        ens.fold_info_ = {f: {k: s[k] for k in ("best_epoch", "epochs_run")} for f, s in enumerate(ens.fold_scores_)}
        if ens.spec_.get("kind") != "logreg":
            ens.network_ = build_network(ens.spec_, n_members=len(payloads))
            ens.network_.load_state_dict(stack_state_dicts(ens.members_))
            ens.network_.eval()
        ens.device_, ens.amp_dtype_ = "checkpoint", None
        ens.train_seconds_, ens.train_samples_per_s_ = 0.0, float("nan")
        ens.history_ = []
        ens.checkpoints_ = list(entries)
        return ens

    # ------------------------------------------------------------------ predict
    def _member_logits(self, X: np.ndarray, augment_seed: int | None = None, chunk: int = 4096) -> np.ndarray:
        if self.model == "logreg":
            Xf = X.reshape(len(X), -1)
            return np.stack([self._logreg_logits(est, Xf, self.n_classes_) for est in self.members_])
        dev = resolve_device(self.device)
        net = self.network_.to(dev)
        aug = self._augmenter() if augment_seed is not None else None
        gen = torch.Generator(device=dev).manual_seed(augment_seed or 0)
        if aug is not None and not aug.batched:
            X = aug.images(X, augment_seed)
            aug = None
        cuda = dev.type == "cuda"
        amp_dtype = None
        if cuda and self.amp:
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        outs = []
        with torch.inference_mode():
            for s in range(0, len(X), chunk):
                xb = torch.from_numpy(np.ascontiguousarray(X[s : s + chunk]))
                xb = xb.pin_memory().to(dev, non_blocking=True) if cuda else xb
                if aug is not None:
                    xb = aug.batch(xb, gen)
                with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    outs.append(net(xb).float().cpu().numpy())
        return np.concatenate(outs, axis=1) if outs else np.zeros((self.n_splits, 0, self.n_classes_))

    def _net_outputs(self, X: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Members' logits ``(k, n, C)`` and the members' mean penultimate activations ``(n, d)``."""
        dev = resolve_device(self.device)
        net = self.network_.to(dev)
        cuda = dev.type == "cuda"
        amp_dtype = None
        if cuda and self.amp:
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        logits, embs = [], []
        with torch.inference_mode():
            for s in range(0, len(X), chunk):
                xb = torch.from_numpy(np.ascontiguousarray(X[s : s + chunk]))
                xb = xb.pin_memory().to(dev, non_blocking=True) if cuda else xb
                with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    z = net.embed(xb)
                    logits.append(net.last_layer(z).float().cpu().numpy())
                embs.append(z.float().mean(0).cpu().numpy())
        if not logits:
            return np.zeros((self.n_splits, 0, self.n_classes_)), np.zeros((0, 0), np.float32)
        return np.concatenate(logits, axis=1), np.concatenate(embs).astype(np.float32, copy=False)

    def embed(self, X: Any) -> np.ndarray:
        """Penultimate-layer embedding ``(n, d)`` float32, averaged over the members.

        The linear model has no hidden layer: its embedding is the (flattened) input.
        """
        return self.predict_outputs(X)[1]

    def predict_outputs(
        self, X: Any, chunk: int = 8192, embed: bool = True,
        members: np.ndarray | None = None, embeddings: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Members' probabilities ``(k, n, C)`` float32 and the embedding ``(n, d)`` float32 in one pass.

        Chunked: memory beyond the outputs is one chunk of activations, so a
        pool of a million items is predicted in the same way as a hundred.
        ``members`` / ``embeddings``: arrays to fill instead of new ones (e.g.
        slices of files mapped by :class:`~labelloop.models.outputs.OutputsWriter`);
        ``embed=False`` skips the embedding (returned with 0 columns).
        """
        check_is_fitted(self, "members_")
        n = len(X)
        if members is None:
            members = np.empty((self.n_splits, n, self.n_classes_), np.float32)
        elif members.shape != (self.n_splits, n, self.n_classes_):
            raise ValueError(f"members must have shape {(self.n_splits, n, self.n_classes_)} (got {members.shape})")
        emb = embeddings if embed else np.zeros((n, 0), np.float32)
        for s in range(0, n, chunk):
            raw = X[s : s + chunk]
            xb = self._prepare_X(raw)
            if self.model == "logreg":
                logits, e = self._member_logits(xb), xb.reshape(len(xb), -1)
            else:
                logits, e = self._net_outputs(xb)
            if self.tta and self.model == "cnn":
                members[:, s : s + len(xb)] = self.predict_proba_members(raw)
            else:
                members[:, s : s + len(xb)] = softmax(logits, self.temperature_)
            if embed:
                if emb is None:
                    emb = np.empty((n, e.shape[1]), np.float32)
                elif emb.shape != (n, e.shape[1]):
                    raise ValueError(f"embeddings must have shape {(n, e.shape[1])} (got {emb.shape})")
                emb[s : s + len(xb)] = e
            del logits, e, xb  # one chunk's activations at a time
        if emb is None:
            emb = np.zeros((0, 0), np.float32)
        return members, emb

    def embedding_dim(self) -> int:
        """Columns of :meth:`embed`'s output (the width of the penultimate layer)."""
        check_is_fitted(self, "members_")
        if self.model == "logreg":
            return int(self.members_[0].coef_.shape[1])
        spec = self.spec_
        shape = (spec["in_channels"], *spec["image_size"]) if spec["kind"] == "cnn" else (spec["in_features"],)
        with torch.inference_mode():  # one zero item through the network: its width, whatever the layers
            return int(self.network_.cpu().embed(torch.zeros((1, *shape))).shape[-1])

    def predict_proba_members(self, X: Any, tta: int | None = None) -> np.ndarray:
        """Each fold model's probabilities, shape ``(n_splits, n, n_classes)``."""
        check_is_fitted(self, "members_")
        X = self._prepare_X(X)
        tta = self.tta if tta is None else tta
        proba = softmax(self._member_logits(X), self.temperature_)
        if tta and self.model == "cnn" and self._augmenter() is not None:
            for r in range(tta):
                proba += softmax(self._member_logits(X, augment_seed=self.seed * 7919 + r + 1), self.temperature_)
            proba /= tta + 1
        return proba

    def predict_proba(self, X: Any, tta: int | None = None) -> np.ndarray:
        """Mean of the fold models' (temperature-scaled) probabilities."""
        return self.predict_proba_members(X, tta=tta).mean(axis=0)

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)
