"""Query strategies: scorers on plain probability arrays, selectors, the batch query."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.labeling import select as S


def test_scorers_rank_uncertain_items_first():
    P = np.array([[0.98, 0.01, 0.01], [0.4, 0.35, 0.25], [0.6, 0.39, 0.01]])
    assert S.top_k(S.least_confidence(P), 1).tolist() == [1]
    assert S.top_k(S.entropy(P), 1).tolist() == [1]
    # margin prefers the near-tie between two classes
    assert S.top_k(S.margin(P), 1).tolist() == [1]
    assert S.margin(P)[0] < S.margin(P)[2] < S.margin(P)[1]


def test_committee_scorers():
    agree = np.tile(np.array([[[0.9, 0.1]]]), (4, 1, 1))
    split = np.array([[[0.9, 0.1]], [[0.9, 0.1]], [[0.1, 0.9]], [[0.1, 0.9]]])
    M = np.concatenate([agree, split], axis=1)  # (4 members, 2 items, 2 classes)
    for fn in (S.vote_entropy, S.kl_disagreement, S.bald):
        s = fn(M)
        assert s[1] > s[0] + 0.1, fn.__name__
        assert s[0] == pytest.approx(0.0, abs=1e-9)


def test_top_k_excludes_and_orders(toy_proba):
    s = S.margin(toy_proba)
    ex = np.arange(0, 200, 2)
    picked = S.top_k(s, 10, exclude=ex)
    assert len(picked) == 10 and not np.isin(picked, ex).any()
    assert (np.diff(s[picked]) <= 0).all()
    allowed = np.setdiff1d(np.arange(200), ex)
    assert s[picked].min() >= np.sort(s[allowed])[-10]


def test_batches_never_repeat_labeled_items_and_have_k_distinct(toy_proba):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 5))
    labeled = np.arange(30)
    for mode in ("representative", "diverse", "greedy"):
        b = S.query(toy_proba, X, 12, labeled=labeled, batch_mode=mode, cold_start_per_class=0)
        assert len(b) == 12 and len(set(b.tolist())) == 12
        assert not np.isin(b, labeled).any(), mode


def test_diverse_batch_spreads_over_clusters():
    # two tight clusters; the top-scored items all sit in cluster A
    rng = np.random.default_rng(0)
    A = rng.normal(0, 0.01, size=(50, 2))
    B = rng.normal(5, 0.01, size=(50, 2)) 
    X = np.vstack([A, B])
    scores = np.r_[np.full(50, 0.9), np.full(50, 0.8)] + rng.random(100) * 0.01
    greedy = S.top_k(scores, 2)
    diverse = S.diverse_top_k(scores, X, 2, candidate_factor=50)
    assert (greedy < 50).all()
    assert sorted(int(i >= 50) for i in diverse) == [0, 1]


def test_cold_start_covers_uncovered_clusters():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 0], [0, 10], [10, 10]])
    X = np.vstack([c + rng.normal(0, 0.3, size=(40, 2)) for c in centers])
    labeled = [0]  # cluster 0 already covered
    picked = S.representative_k(X, 3, labeled=labeled)
    clusters = {int(i) // 40 for i in picked}
    assert clusters == {1, 2, 3}


def test_query_uses_cold_start_then_uncertainty():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    P = np.full((300, 2), 0.5)
    P[:, 0] = np.linspace(0.5, 1.0, 300)
    P[:, 1] = 1 - P[:, 0]
    early = S.query(P, X, 5, labeled=[], cold_start_per_class=3, batch_mode="greedy")
    late = S.query(P, X, 5, labeled=np.arange(100, 110), cold_start_per_class=3, batch_mode="greedy")
    assert sorted(late.tolist()) == [0, 1, 2, 3, 4]  # most uncertain
    assert sorted(early.tolist()) != [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "nope"}, r"unknown strategy 'nope'; expected one of"),
        ({"strategy": "bald"}, r"strategy 'bald' needs member_proba"),
        ({"batch_mode": "fancy"}, r"batch_mode must be one of .* \(got 'fancy'\)"),
    ],
)
def test_query_errors_name_the_fault(toy_proba, kwargs, match):
    with pytest.raises(ValueError, match=match):
        S.query(toy_proba, np.zeros((200, 2)), 3, **kwargs)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"proba must be a 2-d array .* got shape \(3,\)"):
        S.margin(np.ones(3))
    with pytest.raises(ValueError, match=r"a committee needs at least 2 members, got 1"):
        S.vote_entropy(np.ones((1, 3, 2)))
    with pytest.raises(ValueError, match=r"batch size k must be a non-negative integer, got -1"):
        S.top_k(np.ones(3), -1)


def test_active_learning_beats_random_on_digits(digits_split):
    """A short closed loop (10 -> 60 labels): margin + representativeness beats random at equal labels."""
    from sklearn.linear_model import LogisticRegression

    Xp, Xt, yp, yt = digits_split
    results = {}
    for strategy in ("random", "margin"):
        accs = []
        for seed in range(2):
            rng = np.random.default_rng(seed)
            lab = np.array([rng.choice(np.flatnonzero(yp == c)) for c in range(10)])
            while len(lab) < 60:
                m = LogisticRegression(max_iter=1000).fit(Xp[lab], yp[lab])
                new = S.query(m.predict_proba(Xp), Xp, 10, labeled=lab, strategy=strategy, random_state=seed)
                lab = np.r_[lab, new]
            m = LogisticRegression(max_iter=1000).fit(Xp[lab], yp[lab])
            accs.append((m.predict(Xt) == yt).mean())
        results[strategy] = np.mean(accs)
    assert results["margin"] > results["random"]
