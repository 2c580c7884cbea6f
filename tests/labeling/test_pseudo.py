"""Self-training: the selection rule, the committee, the graph teacher and the estimator."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from labelloop.exceptions import TrainingError
from labelloop.labeling.pseudo import (
    KFoldCommittee,
    LabelGraph,
    SelfTrainingCommittee,
    adaptive_thresholds,
    class_balanced_select,
    estimate_prior,
)


def _subset(yp, n, seed):
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(yp)), train_size=n, stratify=yp, random_state=seed)
    y = np.full(len(yp), -1)
    y[idx] = yp[idx]
    return y


@pytest.mark.parametrize("seed", range(5))
def test_class_balanced_selection_never_exceeds_a_quota(seed):
    rng = np.random.default_rng(seed)
    # a teacher that is confident about class 0 almost everywhere: the collapse case
    P = rng.dirichlet(np.ones(5) * 0.3, size=500)
    P[:400, 0] += 3
    P /= P.sum(axis=1, keepdims=True)
    quotas = rng.integers(0, 30, size=5)
    idx, lab = class_balanced_select(P, quotas, thresholds=0.3)
    counts = np.bincount(lab, minlength=5)
    assert (counts <= quotas).all()
    assert len(set(idx.tolist())) == len(idx)
    assert (P[idx].argmax(axis=1) == lab).all()
    assert (P[idx, lab] >= 0.3).all()


def test_selection_respects_agreement_and_exclude():
    P = np.array([[0.95, 0.05], [0.96, 0.04], [0.1, 0.9], [0.05, 0.95]])
    idx, _ = class_balanced_select(P, [5, 5], 0.5, agreement=[1.0, 0.4, 1.0, 1.0], min_agreement=0.8, exclude=[3])
    assert sorted(idx.tolist()) == [0, 2]


def test_selection_errors():
    with pytest.raises(ValueError, match=r"quotas must have one entry per class \(2\), got shape \(3,\)"):
        class_balanced_select(np.ones((2, 2)) / 2, [1, 1, 1])
    with pytest.raises(ValueError, match=r"quotas must be >= 0, got \[-1, 1\]"):
        class_balanced_select(np.ones((2, 2)) / 2, [-1, 1])


def test_adaptive_thresholds_lower_for_hard_classes_and_floor():
    P = np.array([[0.95, 0.05, 0.0]] * 10 + [[0.05, 0.95, 0.0]] * 2 + [[0.2, 0.2, 0.6]] * 5)
    th = adaptive_thresholds(P, threshold=0.9, min_threshold=0.5)
    assert th[0] == pytest.approx(0.9)
    assert 0.5 <= th[1] < th[0]
    assert th[2] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\), got 1.5"):
        adaptive_thresholds(P, threshold=1.5)


def test_prior_is_a_distribution_with_no_zero_class():
    pri = estimate_prior([0, 0, 1], np.array([[1.0, 0.0, 0.0]] * 5), 3)
    assert pri.sum() == pytest.approx(1.0)
    assert (pri > 0).all() and pri[0] > pri[1] > pri[2]


def test_committee_works_at_one_label_per_class_and_is_calibrated(digits_split):
    Xp, Xt, yp, yt = digits_split
    y = _subset(yp, 10, 0)
    lab = y >= 0
    c = KFoldCommittee(n_splits=3).fit(Xp[lab], y[lab])
    M = c.predict_proba_members(Xt[:50])
    assert M.shape == (3, 50, 10)
    np.testing.assert_allclose(M.sum(axis=2), 1.0, rtol=1e-6)
    # enough data: out-of-fold predictions exist and a temperature is fitted
    big = KFoldCommittee(LogisticRegression(max_iter=500), n_splits=5).fit(Xp, yp)
    assert not np.isnan(big.oof_proba_).any()
    assert big.temperature_ > 0 and big.temperature_ != 1.0
    assert (big.predict(Xt) == yt).mean() > 0.9


def test_graph_spreads_one_label_per_class_without_collapse(digits_split):
    Xp, _, yp, _ = digits_split
    y = _subset(yp, 10, 1)
    P = LabelGraph().fit(Xp).spread(y, 10)
    pred = P.argmax(axis=1)
    assert (pred == yp).mean() > 0.75
    # class mass normalisation: every class keeps a real share of the pool
    assert np.bincount(pred, minlength=10).min() > 0.04 * len(yp)


def test_self_training_beats_supervised_and_does_not_collapse(digits_split):
    Xp, Xt, yp, yt = digits_split
    y = _subset(yp, 25, 0)  # 2 % labels
    st = SelfTrainingCommittee(max_iter=6).fit(Xp, y)
    acc = (st.predict(Xt) == yt).mean()
    sup = clone(LogisticRegression(max_iter=2000)).fit(Xp[y >= 0], y[y >= 0])
    assert acc > (sup.predict(Xt) == yt).mean() + 0.05
    assert acc > 0.85
    assert st.termination_condition_ in ("max_iter", "no_change")
    assert 1 <= st.n_iter_ <= 6
    # no collapse: every class holds pseudo-labels, none holds more than 3x its true share
    pseudo = (st.transduction_ >= 0) & (y < 0)
    counts = np.bincount(st.transduction_[pseudo], minlength=10)
    true_counts = np.bincount(yp[pseudo], minlength=10)
    assert (counts > 0).all() and (counts <= 3 * true_counts).all()
    # given labels are kept, pseudo-labels carry a confidence, the rest none
    assert (st.transduction_[y >= 0] == y[y >= 0]).all()
    assert np.isfinite(st.pseudo_confidence_[pseudo]).all()
    assert np.isnan(st.pseudo_confidence_[~pseudo]).all()
    # per-round quotas were never exceeded
    for h in st.history_:
        assert h["n_pseudo"] <= sum(h["quotas"])


def test_self_training_stops_when_everything_is_labeled():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    st = SelfTrainingCommittee(n_splits=2).fit(X, y)
    assert st.termination_condition_ == "all_labeled" and st.n_iter_ == 0


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"threshold": 1.5}, r"threshold must be in \(0, 1\), got 1.5"),
        ({"step": 0}, r"step must be in \(0, 1\], got 0"),
        ({"min_agreement": 2}, r"min_agreement must be in \[0, 1\], got 2"),
        ({"graph": "yes"}, r"graph must be 'auto', True or False, got 'yes'"),
        ({"max_iter": 0}, r"max_iter must be an integer >= 1, got 0"),
    ],
)
def test_parameter_errors(params, match):
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match=match):
        SelfTrainingCommittee(**params).fit(X, np.array([0, 1, -1, -1]))


def test_training_errors():
    X = np.zeros((4, 2))
    with pytest.raises(TrainingError, match=r"needs at least one labeled item \(y has only -1\)"):
        SelfTrainingCommittee().fit(X, np.full(4, -1))
    with pytest.raises(TrainingError, match=r"needs at least 2 labeled classes, got \[1\]"):
        SelfTrainingCommittee().fit(X, np.array([1, 1, -1, -1]))
