"""The model stage's self-training turn as plain library code: fallback on standing pseudo-labels, inner rounds."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.labeling.self_train import firm_rows, fit_on_folds, self_train_turn
from labelloop.models.ensemble import KFoldCommittee


def _fit(X, Y, w, ids=None, augmented=None, folds=None):
    return fit_on_folds(KFoldCommittee(model="logreg", n_classes=10), X, Y, w, folds=folds)


def _fit_no_folds(X, Y, w, ids=None, augmented=None):
    """A committee that does not expose its folds: the check can only be the optimistic one."""
    class Plain:
        pass

    inner = KFoldCommittee(model="logreg", n_classes=10).fit(X, Y, sample_weight=w)
    plain = Plain()
    plain.oof_proba_, plain.predict_proba_members = inner.oof_proba_, inner.predict_proba_members
    return plain


def _predict(committee, X):
    return committee.predict_proba_members(X)


@pytest.fixture(scope="module")
def digits_turn():
    """Digits as a turn's inputs: 1 % gold (18 items), the rest the pool."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X, y = (d.data / 16.0).astype(np.float32), d.target
    gold, pool = train_test_split(np.arange(len(y)), train_size=18, stratify=y, random_state=0)
    return X, y, gold, pool


def _turn(digits_turn, pseudo_shift: int | None, fit=_fit, **kw):
    X, y, gold, pool = digits_turn
    rows = gold if pseudo_shift is None else np.r_[gold, pool[:300]]
    labels = y[rows].copy()
    kinds = np.array(["gold"] * len(gold) + ["pseudo"] * (len(rows) - len(gold)))
    if pseudo_shift is not None:
        labels[len(gold):] = (labels[len(gold):] + pseudo_shift) % 10
    w = np.where(kinds == "pseudo", 0.95, 1.0).astype(np.float32)
    rest = pool if pseudo_shift is None else pool[300:]
    out = self_train_turn(fit, _predict, X[rows], np.eye(10, dtype=np.float32)[labels], w, kinds, labels,
                          rows, X[rest], min_rows=5, **kw)
    return out, rows, rest


@pytest.mark.parametrize("shift,falls_back", [(3, True), (0, False)])
@pytest.mark.parametrize("check", ["per-fold", "optimistic"])
def test_standing_pseudo_labels_are_kept_only_when_they_help(digits_turn, shift, falls_back, check):
    out, rows, _ = _turn(digits_turn, shift, fit=_fit if check == "per-fold" else _fit_no_folds)
    # wrong standing labels fail the check on the labels themselves; right ones are checked again per fold
    # (free of the leak) wherever the committee exposes its folds
    assert out.info["check"] == ("optimistic" if falls_back else check)
    assert out.info["fallback"] is falls_back
    assert out.decision.use_pseudo is not falls_back
    assert out.info["fallback_reason"].startswith("supervised-only" if falls_back else "pseudo-labels kept")
    # after a fallback the committee trained on the 18 gold rows only; else on all 318
    assert len(out.used) == (18 if falls_back else 318)
    assert len(out.committee.oof_proba_) == len(out.used)


def test_inner_rounds_grow_the_labeled_set_at_one_or_two_labels_per_class(digits_turn):
    X, y, gold, pool = digits_turn
    out, rows, rest = _turn(digits_turn, None, rounds=2)
    assert out.info["rounds"] >= 1 and len(out.extra) > 100, out.info
    assert out.info["termination"] in ("max_iter", "no_change") or out.info["termination"].startswith("round")
    # the inner pseudo-labels are mostly right (a linear committee on 1-2 labels per class) and it trained on them
    picked = rest[out.extra]
    truth = y[picked]
    pred = out.committee.predict(X[picked])
    assert (pred == truth).mean() > 0.7
    assert len(out.committee.oof_proba_) == len(gold) + len(out.extra)


def test_firm_rows_fall_back_to_every_non_pseudo_row():
    assert firm_rows(np.array(["weak", "gold", "pseudo"])).tolist() == [False, True, False]
    assert firm_rows(np.array(["weak", "pseudo"])).tolist() == [True, False]
