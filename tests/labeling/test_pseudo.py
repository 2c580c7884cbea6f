"""Self-training: the selection rule, the committee, the graph teacher and the estimator."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from labelloop.exceptions import TrainingError
from labelloop.labeling.pseudo import (
    LabelGraph,
    SelfTrainingCommittee,
    adaptive_thresholds,
    balanced_counts,
    class_balanced_select,
    estimate_prior,
    knn_graph,
    pseudo_labels_help,
    select_pseudo_labels,
)
from labelloop.models.ensemble import KFoldCommittee


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


def test_graph_spreads_one_label_per_class_without_collapse(digits_split):
    Xp, _, yp, _ = digits_split
    y = _subset(yp, 10, 1)
    P = LabelGraph().fit(Xp).spread(y, 10)
    pred = P.argmax(axis=1)
    assert (pred == yp).mean() > 0.75
    # class mass normalisation: every class keeps a real share of the pool
    assert np.bincount(pred, minlength=10).min() > 0.04 * len(yp)


def test_knn_graph_matches_exact_neighbours_and_scales_past_the_exact_limit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8))
    d, j = knn_graph(X, 5)
    full = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(full, np.inf)
    exact = np.argsort(full, axis=1)[:, :5]
    assert (j == exact).mean() > 0.99
    np.testing.assert_allclose(d[:, 0], np.sqrt(full.min(axis=1)), rtol=1e-4)
    # the approximate index (HNSW, the default beyond 20,000 items): no item is its own neighbour, recall stays high
    Xb = rng.normal(size=(6000, 8)).astype(np.float32)
    db, jb = knn_graph(Xb, 10, approximate=True)
    assert jb.shape == (6000, 10) and not (jb == np.arange(6000)[:, None]).any()
    sample = rng.choice(6000, 100, replace=False)
    d2 = ((Xb[sample, None] - Xb[None]) ** 2).sum(-1)
    d2[np.arange(100), sample] = np.inf
    true = np.argsort(d2, axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(jb[sample], true)])
    assert recall > 0.9
    with pytest.raises(ValueError, match=r"n_neighbors must be an integer >= 1, got 0"):
        knn_graph(X, 0)
    with pytest.raises(ValueError, match=r"item 3: features contain NaN or inf"):
        knn_graph(np.r_[X[:3], [[np.nan] * 8]], 2)


@pytest.mark.parametrize("seed", range(20))
def test_balanced_counts_keep_every_share_near_the_prior(seed):
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 12))
    prior = rng.dirichlet(np.ones(c))
    available = rng.integers(0, 300, size=c)
    available[rng.integers(c)] = int(rng.integers(0, 5))  # one starved class
    n = balanced_counts(available, prior, 0.05)
    assert (n >= 0).all() and (n <= available).all()
    if n.sum():
        assert np.abs(n / n.sum() - prior).max() <= 0.05 + 1e-9
    # and it is not empty when every class has plenty
    full = balanced_counts(np.full(c, 1000), prior, 0.05)
    assert full.sum() >= 1000 and np.abs(full / full.sum() - prior).max() <= 0.05 + 1e-9
    assert balanced_counts(np.full(c, 1000), prior, 0.05, max_total=100).sum() <= 100
    # with a floor pace, the starved class may fall behind -- but no share ever exceeds prior + gap,
    # only a class that gave every candidate falls below prior - gap, and nobody goes beyond the floor then
    pace = float(rng.integers(20, 200))
    m = balanced_counts(available, prior, 0.05, min_pace=pace)
    assert (m <= available).all() and m.sum() >= n.sum()
    if m.sum():
        share = m / m.sum()
        assert (share <= prior + 0.05 + 1e-9).all()
        short = share < prior - 0.05 - 1e-9
        assert (m[short] == available[short]).all()
        if short.any():
            assert (m <= np.floor(pace * prior / prior.sum() + 1e-6)).all()
        if c == 2:
            assert np.abs(share - prior).max() <= 0.05 + 1e-9


def test_a_class_without_candidates_slows_the_others_to_the_floor_pace_without_vetoing():
    prior = np.full(10, 0.1)
    assert balanced_counts(np.r_[0, np.full(9, 200)], prior, 0.05).sum() == 0  # strict: it vetoes
    n = balanced_counts(np.r_[0, np.full(9, 200)], prior, 0.05, min_pace=40)
    assert n.tolist() == [0] + [4] * 9  # the others go on at the floor pace, not faster
    # a few candidates: the class gives them all; far from the floor, shares are back within the gap
    n = balanced_counts(np.r_[15, np.full(9, 200)], prior, 0.05, min_pace=40)
    assert n[0] == 15 and np.abs(n / n.sum() - prior).max() <= 0.05 + 1e-9 and n.sum() > 150
    # the cap still holds at the floor: a binary selection whose other class has nothing stays empty
    assert balanced_counts([200, 0], [0.75, 0.25], 0.05, min_pace=1000).sum() == 0
    assert balanced_counts([0, 50, 50], [0.4, 0.3, 0.3], 0.05, min_pace=1000).sum() == 0
    # the same through the selection: the labeled items set the floor pace
    rng = np.random.default_rng(1)
    y = rng.integers(1, 10, size=3000)
    P = np.full((3000, 10), 0.01)
    P[np.arange(3000), y] = 0.91
    assert len(select_pseudo_labels(P, prior=prior).label) == 0
    sel = select_pseudo_labels(P, prior=prior, n_labeled_per_class=np.full(10, 5))
    assert np.bincount(sel.label, minlength=10).tolist() == [0] + [5] * 9
    with pytest.raises(ValueError, match=r"min_pace must be >= 0, got -1"):
        balanced_counts([1, 2], [0.5, 0.5], min_pace=-1)
    with pytest.raises(ValueError, match=r"n_labeled_per_class must be 10 counts >= 0"):
        select_pseudo_labels(P, n_labeled_per_class=[1, 2])


def test_selection_does_not_collapse_onto_the_class_the_teacher_prefers():
    rng = np.random.default_rng(0)
    # the teacher is confident about class 0 almost everywhere (the k_best collapse case)
    P = rng.dirichlet(np.ones(4) * 0.3, size=2000)
    P[:1700, 0] += 5
    P /= P.sum(axis=1, keepdims=True)
    prior = np.array([0.4, 0.2, 0.2, 0.2])
    sel = select_pseudo_labels(P, prior=prior, threshold=0.9, min_threshold=0.5)
    shares = np.bincount(sel.label, minlength=4) / len(sel.label)
    assert len(sel.label) > 100
    assert np.abs(shares - prior).max() <= 0.05 + 1e-9
    assert (P[sel.index].argmax(axis=1) == sel.label).all()
    np.testing.assert_allclose(sel.confidence, P[sel.index, sel.label])
    # members that disagree veto, excluded items never come back, the budget caps the total
    M = np.stack([P, P, P[:, ::-1]])
    vetoed = select_pseudo_labels(P, M, prior=prior, min_agreement=1.0)
    assert len(vetoed.index) == 0
    ex = select_pseudo_labels(P, prior=prior, exclude=sel.index[:50], budget=60)
    assert not set(ex.index.tolist()) & set(sel.index[:50].tolist()) and len(ex.index) <= 60


def test_selection_errors_name_the_argument():
    P = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match=r"step must be in \(0, 1\], got 0"):
        select_pseudo_labels(P, step=0)
    with pytest.raises(ValueError, match=r"member_proba must have shape \(m, 3, 2\), got \(2, 3\)"):
        select_pseudo_labels(P, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"prior must be 2 non-negative values"):
        select_pseudo_labels(P, prior=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"available and prior must both have shape"):
        balanced_counts([1, 2], [1.0])


@pytest.fixture(scope="module")
def imbalanced_runs():
    """Binary 1:3 pool, 2 % labels, the model stage's committee: three seeds."""
    from sklearn.datasets import make_classification

    runs = []
    for seed in range(3):
        X, y = make_classification(2000, 20, n_informative=6, weights=[0.25, 0.75], class_sep=1.0, random_state=seed)
        yl = np.full(len(y), -1)
        yl[_subset(y, 40, seed) >= 0] = y[_subset(y, 40, seed) >= 0]
        st = SelfTrainingCommittee(KFoldCommittee(model="logreg", seed=seed), turns=4).fit(X, yl)
        runs.append((X, y, yl, st))
    return runs


def test_imbalanced_binary_pseudo_labels_follow_the_estimated_prior_every_round(imbalanced_runs):
    rounds_with_labels = 0
    for _, y, yl, st in imbalanced_runs:
        for h in st.history_:
            counts = np.array(h["class_counts"])
            prior = np.array(h["prior"])
            # the estimate is a real one: near the true 1:3 ratio
            assert abs(prior[0] - 0.25) < 0.1
            if counts.sum():
                rounds_with_labels += 1
                assert np.abs(counts / counts.sum() - prior).max() <= 0.10
        # given labels are kept; pseudo-labels carry a confidence, the rest none
        pseudo = (st.transduction_ >= 0) & (yl < 0)
        assert (st.transduction_[yl >= 0] == yl[yl >= 0]).all()
        assert np.isfinite(st.pseudo_confidence_[pseudo]).all() and np.isnan(st.pseudo_confidence_[~pseudo]).all()
    assert rounds_with_labels >= 6


def test_termination_is_honest(imbalanced_runs):
    for *_, st in imbalanced_runs:
        assert st.termination_condition_ in ("no_change", "max_iter")
        assert len(st.history_) == st.n_iter_
        changes = [h["n_new"] + h["n_dropped"] + h["n_relabeled"] for h in st.history_]
        if st.termination_condition_ == "no_change":
            assert changes[-1] == 0 and all(changes[:-1])
        else:  # every round changed something (a round that only drops pseudo-labels is a change too)
            assert all(changes) and st.n_iter_ == st.turns


def test_rounds_that_drop_pseudo_labels_count_as_changes(imbalanced_runs):
    # pseudo-labels are re-decided every round, so some get dropped; such a round must not read as "no_change"
    dropping = [(st, i) for *_, st in imbalanced_runs for i, h in enumerate(st.history_) if h["n_dropped"]]
    assert dropping
    for st, i in dropping:
        assert i < len(st.history_) - 1 or st.termination_condition_ == "max_iter"


def test_fallback_to_supervised_when_pseudo_labels_hurt():
    # two clean clusters; the graph is built on features that mirror the unlabeled items, so it is right on the
    # labeled items (it wins the held-out mixture weight) and wrong on every pseudo-label it proposes
    rng = np.random.default_rng(0)
    side = rng.choice([-1, 1], 440)
    X = np.c_[side * (3 + np.abs(rng.normal(size=440))), rng.normal(size=440)]
    y = (side > 0).astype(int)
    yl = np.full(440, -1)
    yl[:40] = y[:40]
    gf = X.copy()
    gf[40:, 0] *= -1
    kept = SelfTrainingCommittee(KFoldCommittee(model="logreg"), min_agreement=0.0, fallback=False).fit(
        X, yl, graph_features=gf)
    fell = SelfTrainingCommittee(KFoldCommittee(model="logreg"), min_agreement=0.0).fit(X, yl, graph_features=gf)
    # wrong pseudo-labels already fail the check on the labels themselves (the per-fold one runs after it passes)
    assert fell.check_ == "optimistic" and fell.history_[-1]["fallback"]
    assert not fell.fallback_.use_pseudo and fell.fallback_.acc_with < fell.fallback_.acc_without
    assert fell.fallback_.reason.startswith("supervised-only: out-of-fold accuracy on 40 firm labels")
    assert fell.committee_ is fell.supervised_
    assert (fell.transduction_[40:] == -1).all() and np.isnan(fell.pseudo_confidence_).all()
    np.testing.assert_array_equal(fell.predict(X), fell.supervised_.predict(X))
    # without the fallback the wrong pseudo-labels stay, and the model is worse: the rule earns its keep
    assert (kept.transduction_[40:] >= 0).any()
    assert (fell.predict(X) == y).mean() > (kept.predict(X) == y).mean() + 0.2


def test_pseudo_labels_help_ignores_rows_without_oof_and_checks_shapes():
    y = np.array([0, 1, 1, 0])
    nan = [np.nan, np.nan]
    without = np.array([[0.9, 0.1], [0.6, 0.4], nan, [0.2, 0.8]])
    with_ = np.array([[0.9, 0.1], [0.4, 0.6], [0.9, 0.1], [0.2, 0.8]])
    d = pseudo_labels_help(y, without, with_)
    assert d.n_items == 3 and d.use_pseudo and d.acc_with == pytest.approx(2 / 3) and d.acc_without == pytest.approx(1 / 3)
    assert pseudo_labels_help(y, np.full((4, 2), np.nan), with_).use_pseudo
    with pytest.raises(ValueError, match=r"oof_without \(4, 2\) and oof_with \(3, 2\) must both be"):
        pseudo_labels_help(y, without, with_[:3])


def test_self_training_helps_on_digits_at_two_percent(digits_split):
    Xp, Xt, yp, yt = digits_split
    y = _subset(yp, 25, 0)
    st = SelfTrainingCommittee(KFoldCommittee(model="logreg"), turns=3).fit(Xp, y)
    acc = (st.predict(Xt) == yt).mean()
    sup = (st.supervised_.predict(Xt) == yt).mean()
    assert st.fallback_.use_pseudo and acc > sup + 0.05 and acc > 0.85
    pseudo = (st.transduction_ >= 0) & (y < 0)
    assert (st.transduction_[pseudo] == yp[pseudo]).mean() > 0.85
    assert (np.bincount(st.transduction_[pseudo], minlength=10) > 0).all()


def test_self_training_stops_when_everything_is_labeled():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    st = SelfTrainingCommittee(KFoldCommittee(model="logreg", n_splits=2)).fit(X, y)
    assert st.termination_condition_ == "all_labeled" and st.n_iter_ == 0 and st.fallback_ is None


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"threshold": 1.5}, r"threshold must be in \(0, 1\), got 1.5"),
        ({"step": 0}, r"step must be in \(0, 1\], got 0"),
        ({"min_agreement": 2}, r"min_agreement must be in \[0, 1\], got 2"),
        ({"graph": "yes"}, r"graph must be 'auto', 'on' or 'off', got 'yes'"),
        ({"turns": 0}, r"turns must be an integer >= 1, got 0"),
        ({"rounds": -1}, r"rounds must be an integer >= 0, got -1"),
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


def test_the_teacher_mixes_the_graph_in_by_its_held_out_accuracy(digits_split):
    """``teach``: a committee that knows nothing (uniform) gets weight 0 and the graph decides; without a graph the
    teacher is the committee alone and equals the selection rule on the members' mean."""
    from labelloop.labeling.pseudo import pace, teach

    Xp, _, yp, _ = digits_split
    seeds = _subset(yp, 50, 0)
    n, c = len(yp), 10
    uniform = np.full((5, n, c), 1.0 / c)
    held_out = np.full((n, c), 1.0 / c)
    graph = LabelGraph().fit(Xp)
    taught = teach(uniform, seeds, held_out, graph, threshold=0.5, min_threshold=0.1, min_agreement=0.0)
    assert taught.graph and taught.committee_weight == 0.0
    picked = taught.pseudo.index
    assert len(picked) > 50 and (seeds[picked] < 0).all()  # never a seeded item
    assert (taught.pseudo.label == yp[picked]).mean() > 0.9  # the graph is right on digits
    rng = np.random.default_rng(0)
    base = rng.dirichlet(np.ones(c) * 0.1, size=n)
    members = 0.8 * base[None] + 0.2 * rng.dirichlet(np.ones(c), size=(5, n))
    alone = teach(members, seeds, held_out, None, step=pace(0.5, 1))
    direct = select_pseudo_labels(members.mean(0), members, n_labeled_per_class=np.bincount(seeds[seeds >= 0], minlength=c),
                                  step=0.5, exclude=seeds >= 0)
    assert not alone.graph and alone.committee_weight == 1.0
    assert len(direct.index) > 20
    np.testing.assert_array_equal(alone.pseudo.index, direct.index)


def test_a_flat_committee_with_one_label_per_class_still_teaches_through_the_graph(digits_split):
    """One label per class: the committee is flat and its members disagree, so its own rule (agreement + floor)
    takes nothing; where the committee's mean and the graph name the same class the item qualifies -- the
    selection starts instead of stalling (digits at 1 %: 57 % -> 96 % on one seed)."""
    from labelloop.labeling.pseudo import teach

    Xp, _, yp, _ = digits_split
    seeds = _subset(yp, 10, 0)
    n, c = len(yp), 10
    rng = np.random.default_rng(0)
    # a weak committee: right 60 % of the time, probabilities nearly flat, members scattered
    guess = np.where(rng.random(n) < 0.6, yp, rng.integers(0, c, n))
    members = np.full((5, n, c), 1.0)
    members[:, np.arange(n), guess] += 0.5
    members += rng.random((5, n, c))
    members /= members.sum(axis=2, keepdims=True)
    held_out = np.full((n, c), np.nan)
    common = dict(threshold=0.9, min_threshold=0.5, min_agreement=0.8)
    alone = teach(members, seeds, held_out, None, **common)
    assert len(alone.pseudo.index) == 0  # the committee's own rule: nothing is confident
    taught = teach(members, seeds, held_out, LabelGraph().fit(Xp), **common)
    picked = taught.pseudo.index
    assert len(picked) > 100 and (seeds[picked] < 0).all()
    assert (taught.pseudo.label == yp[picked]).mean() > 0.9  # two views agreeing are right far more than either


def test_a_graph_blind_to_a_class_does_not_veto_the_committee():
    """A noisy graph that never names the minority class (its mass diffuse) must not stop the selection:
    the committee's own rule still qualifies confident, agreed items of that class."""
    from labelloop.labeling.pseudo import teach

    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random(n) < 0.75).astype(int)
    seeds = np.full(n, -1)
    seeds[:20] = y[:20]
    sure = np.where(y[:, None] == np.arange(2)[None], 0.97, 0.03)
    members = np.repeat(sure[None], 5, axis=0)
    graph = LabelGraph().fit(rng.normal(size=(n, 5)))  # neighbours unrelated to the classes
    taught = teach(members, seeds, members.mean(0), graph)
    counts = np.bincount(taught.pseudo.label, minlength=2)
    assert counts.min() > 0 and (taught.pseudo.label == y[taught.pseudo.index]).all()


def test_the_graph_spreads_over_several_spaces_as_the_mean_of_their_graphs(digits_split):
    Xp, _, yp, _ = digits_split
    seeds = _subset(yp, 30, 0)
    emb = np.random.default_rng(0).normal(size=(len(Xp), 16)).astype(np.float32)
    both = LabelGraph().fit([Xp, emb]).spread(seeds, 10)
    mean = (LabelGraph().fit(Xp).spread(seeds, 10) + LabelGraph().fit(emb).spread(seeds, 10)) / 2
    np.testing.assert_allclose(both, mean, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="space 1 has 5 items but space 0 has"):
        LabelGraph().fit([Xp, emb[:5]])


def test_graph_spaces_keep_small_features_and_the_embeddings():
    from labelloop.labeling.pseudo import GRAPH_MAX_FEATURES, graph_spaces

    small, big, emb = np.zeros((4, 1, 8, 8)), np.zeros((4, GRAPH_MAX_FEATURES + 1)), np.ones((4, 3))
    assert [s.shape for s in graph_spaces(small, emb)] == [(4, 64), (4, 3)]
    assert [s.shape for s in graph_spaces(big, emb)] == [(4, 3)]  # raw pixels of real images: embeddings only
    assert [s.shape for s in graph_spaces(small, np.zeros((4, 0)))] == [(4, 64)]


def test_graph_spaces_leave_the_features_out_of_a_large_pool(monkeypatch):
    import labelloop.labeling.pseudo as pseudo

    monkeypatch.setattr(pseudo, "GRAPH_FEATURES_MAX_ITEMS", 3)
    assert [s.shape for s in pseudo.graph_spaces(np.zeros((4, 2)), np.ones((4, 3)))] == [(4, 3)]
    assert [s.shape for s in pseudo.graph_spaces(np.zeros((3, 2)), np.ones((3, 3)))] == [(3, 2), (3, 3)]


def test_spread_many_equals_one_spread_per_seed_set(digits_split):
    Xp, _, yp, _ = digits_split
    graph = LabelGraph().fit(Xp)
    sets = [_subset(yp, 20, 0), _subset(yp, 40, 1)]
    for together, alone in zip(graph.spread_many(sets, 10), [graph.spread(s, 10) for s in sets]):
        np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)


def test_graph_held_out_rows_of_a_class_left_unseeded_are_nan():
    from labelloop.labeling.pseudo import graph_held_out

    X = np.r_[np.zeros((5, 2)), np.ones((5, 2)) * 5] + np.random.default_rng(0).normal(0, 0.1, (10, 2))
    seeds = np.full(10, -1)
    seeds[[0, 1, 5]] = [0, 0, 1]  # class 1 has one seed: held out, nothing is left to name it
    G = graph_held_out(LabelGraph(n_neighbors=3).fit(X), seeds, 2)
    assert np.isnan(G[2]).all()  # the class-1 seed
    ok = ~np.isnan(G).any(axis=1)
    np.testing.assert_allclose(G[ok].sum(axis=1), 1.0)
