"""The vote-aggregation engine: recovery of known confusions, gold anchoring, abstains, edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from labelloop.exceptions import AggregationError
from labelloop.labeling.aggregate import DawidSkene, MajorityVote, OneCoinDawidSkene, Votes


def simulate(confusions: np.ndarray, n_items: int, per_item: int, prior: np.ndarray, seed: int):
    """Votes drawn from known per-source confusion matrices; each item gets `per_item` distinct sources."""
    rng = np.random.default_rng(seed)
    S, C, _ = confusions.shape
    y = rng.choice(C, size=n_items, p=prior)
    chosen = np.argsort(rng.random((n_items, S)), axis=1)[:, :per_item]
    items = np.repeat(np.arange(n_items), per_item)
    sources = chosen.ravel()
    cum = confusions[sources, y[items]].cumsum(axis=1)
    labels = (rng.random(len(items))[:, None] > cum).sum(axis=1)
    return Votes(items, sources, labels, C, n_items=n_items, n_sources=S), y


def random_confusions(S: int, C: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    conf = rng.dirichlet(np.ones(C), size=(S, C)) * 0.4
    conf[:, np.arange(C), np.arange(C)] += 0.6
    return conf / conf.sum(-1, keepdims=True)


def test_dawid_skene_recovers_known_confusion_matrices():
    truth = random_confusions(S=6, C=4, seed=1)
    prior = np.array([0.4, 0.3, 0.2, 0.1])
    votes, y = simulate(truth, n_items=20_000, per_item=3, prior=prior, seed=2)
    model = DawidSkene().fit(votes)
    assert np.abs(model.confusions_ - truth).max() < 0.04
    assert np.abs(model.class_prior_ - prior).max() < 0.02
    true_acc = np.einsum("k,skk->s", prior, truth)
    assert np.abs(model.accuracies_ - true_acc).max() < 0.02
    assert model.converged_ and model.n_iter_ < 100
    # EM never decreases the likelihood.
    assert np.all(np.diff(model.loss_history_) > -1e-9)
    assert (model.predict() == y).mean() > (MajorityVote(random_state=0).fit(votes).predict() == y).mean()


def test_one_coin_recovers_accuracies():
    C, accs = 5, np.array([0.9, 0.75, 0.6, 0.3])
    conf = np.stack([np.full((C, C), (1 - a) / (C - 1)) + np.eye(C) * (a - (1 - a) / (C - 1)) for a in accs])
    votes, _ = simulate(conf, n_items=10_000, per_item=3, prior=np.full(C, 1 / C), seed=3)
    model = OneCoinDawidSkene().fit(votes)
    assert np.abs(model.accuracies_ - accs).max() < 0.03
    assert np.allclose(model.confusions_.sum(-1), 1.0)


def test_folding_identical_patterns_is_exact():
    votes, _ = simulate(random_confusions(4, 3, 0), n_items=3_000, per_item=2, prior=np.ones(3) / 3, seed=0)
    gold = {0: 1, 5: 2, 17: 0}
    folded = DawidSkene(n_iter=30, tol=0).fit(votes, gold=gold)
    plain = DawidSkene(n_iter=30, tol=0, compress=False).fit(votes, gold=gold)
    assert folded.n_patterns_ < plain.n_patterns_ == 3_000
    np.testing.assert_allclose(folded.posteriors_, plain.posteriors_, atol=1e-10)
    np.testing.assert_allclose(folded.confusions_, plain.confusions_, atol=1e-10)


def test_gold_anchoring_fixes_a_crowd_whose_majority_is_systematically_wrong():
    # Two colluding sources swap classes 0<->1 80% of the time; one honest source is 85% right.
    # Without gold EM trusts the consistent pair; a few gold items reveal the swap.
    C = 2
    honest = np.array([[0.85, 0.15], [0.15, 0.85]])
    swapped = np.array([[0.2, 0.8], [0.8, 0.2]])
    truth = np.stack([honest, swapped, swapped])
    votes, y = simulate(truth, n_items=2_000, per_item=3, prior=np.array([0.5, 0.5]), seed=4)
    plain = DawidSkene().fit(votes)
    gold_idx = np.arange(0, 2_000, 20)  # 5% gold
    anchored = DawidSkene().fit(votes, gold=(gold_idx, y[gold_idx]))
    rest = np.setdiff1d(np.arange(2_000), gold_idx)
    acc_plain = (plain.predict()[rest] == y[rest]).mean()
    acc_anchored = (anchored.predict()[rest] == y[rest]).mean()
    assert acc_plain < 0.5 < 0.9 < acc_anchored
    assert anchored.confusions_[1, 0, 1] > 0.7  # the swap is learned
    np.testing.assert_array_equal(anchored.posteriors_[gold_idx].argmax(1), y[gold_idx])
    assert np.all(anchored.posteriors_[gold_idx].max(1) == 1.0)


@pytest.mark.parametrize("model", [MajorityVote(), DawidSkene(), OneCoinDawidSkene()], ids=type)
@pytest.mark.parametrize("observed", [False, True])
def test_items_with_only_abstains_get_the_class_prior(model, observed):
    L = np.array([[0, 0, -1], [1, 1, 0], [0, -1, 0], [-1, -1, -1], [2, 2, 2], [-1, -1, -1]] * 10)
    votes = Votes.from_matrix(L, n_classes=3)
    votes.abstain_observed = observed
    post = clone(model).fit(votes).predict_proba()
    empty = np.flatnonzero((L == -1).all(1))
    assert len(empty) == 20
    np.testing.assert_allclose(post[empty], np.tile(model.class_prior_ if hasattr(model, "class_prior_") else
                                                      clone(model).fit(votes).class_prior_, (20, 1)))
    np.testing.assert_allclose(post.sum(1), 1.0)


def test_model_probabilities_as_an_extra_source_improve_votes():
    C = 4
    truth = np.stack([np.full((C, C), 0.3 / (C - 1)) + np.eye(C) * (0.7 - 0.3 / (C - 1))] * 3)
    votes, y = simulate(truth, n_items=3_000, per_item=2, prior=np.ones(C) / C, seed=5)
    rng = np.random.default_rng(0)
    # A model right 80% of the time, independent of the annotators.
    guess = np.where(rng.random(3_000) < 0.8, y, rng.integers(0, C, 3_000))
    proba = np.full((3_000, C), 0.1 / (C - 1))
    proba[np.arange(3_000), guess] = 0.9
    alone = (DawidSkene().fit(votes).predict() == y).mean()
    together = DawidSkene().fit(votes, extra_proba=proba)
    assert (together.predict() == y).mean() > alone + 0.05
    assert together.extra_confusion_.shape == (C, C)
    assert 0.6 < np.trace(together.extra_confusion_) / C < 0.9  # soft votes: mean probability on the truth


@pytest.mark.parametrize(
    "tie_break, expected",
    [("abstain", [0, -1, -1, 1]), ("prior", [0, 1, 1, 1])],
)
def test_majority_vote_tie_handling(tie_break, expected):
    # class 1 is the more frequent vote overall, so "prior" breaks ties towards it.
    L = np.array([[0, 0, 1], [0, 1, -1], [-1, -1, -1], [1, 1, 1]])
    model = MajorityVote(tie_break=tie_break).fit(Votes.from_matrix(L, n_classes=2))
    assert model.predict().tolist() == expected
    np.testing.assert_allclose(model.predict_proba()[1], [0.5, 0.5])


def test_majority_vote_random_ties_are_seeded_and_only_among_tied_classes():
    L = np.array([[0, 1, -1]] * 200 + [[2, 2, 2]])
    votes = Votes.from_matrix(L, n_classes=3)
    a = MajorityVote(random_state=1).fit(votes).predict()
    b = MajorityVote(random_state=1).fit(votes).predict()
    np.testing.assert_array_equal(a, b)
    assert set(a[:200]) == {0, 1} and a[200] == 2


def test_votes_from_frame_maps_back_to_keys_and_drops_abstains():
    df = pd.DataFrame({"task": ["b", "a", "b", "c"], "worker": ["w2", "w1", "w1", "w1"], "label": [1, 0, 1, -1]})
    votes, items, sources = Votes.from_frame(df, item_col="task", source_col="worker", n_classes=2)
    assert list(items) == ["a", "b", "c"] and list(sources) == ["w1", "w2"]
    assert len(votes) == 3 and votes.n_items == 3
    post = DawidSkene().fit(votes).predict_proba()
    assert post.shape == (3, 2) and post[items.get_loc("b")].argmax() == 1


def test_empty_votes_give_empty_output():
    votes = Votes([], [], [], n_classes=3)
    for model in (MajorityVote(), DawidSkene(), OneCoinDawidSkene()):
        assert model.fit(votes).predict_proba().shape == (0, 3)


@pytest.mark.parametrize(
    "args, match",
    [
        (([0, 1], [0], [0, 1], 2), r"same length \(got 2, 1, 2\)"),
        (([0, 1], [0, 1], [0, 5], 2), r"label of vote 1 \(item 1, source 1\) must be in \[-1, 1\] \(got 5\)"),
        (([0], [0], [0], 1), r"n_classes must be >= 2 \(got 1\)"),
        (([0.5], [0], [0], 2), r"items must be integers"),
    ],
)
def test_bad_votes_are_refused_with_the_culprit_named(args, match):
    with pytest.raises(AggregationError, match=match):
        Votes(*args)


def test_bad_fit_inputs_are_refused():
    votes = Votes([0, 1], [0, 0], [0, 1], 2)
    with pytest.raises(AggregationError, match=r"gold: class of item 1 must be in \[0, 1\] \(got 3\)"):
        DawidSkene().fit(votes, gold={1: 3})
    with pytest.raises(AggregationError, match=r"extra_proba must have shape .* \(2, 2\) \(got \(3, 2\)\)"):
        DawidSkene().fit(votes, extra_proba=np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"tie_break must be .* \(got 'coin'\)"):
        MajorityVote(tie_break="coin").fit(votes)
    with pytest.raises(ValueError, match=r"n_iter must be an int >= 1 \(got 0\)"):
        DawidSkene(n_iter=0).fit(votes)


def test_majority_ties_decided_by_a_learned_model():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 3, n)
    good = np.where(rng.random(n) < 0.95, y, (y + 1) % 3)  # a 95 % LF
    poor = np.where(rng.random(n) < 0.5, y, (y + 2) % 3)  # a 50 % LF
    fair = np.where(rng.random(n) < 0.8, y, (y + 1) % 3)
    L = np.stack([good, poor, fair], axis=1)
    L[rng.random(n) < 0.5, 2] = -1  # the fair LF abstains on half: many 1-1 ties between good and poor
    votes = Votes.from_matrix(L, n_classes=3)
    model = MajorityVote(tie_break="model").fit(votes)
    tied = (L[:, 2] == -1) & (L[:, 0] != L[:, 1])
    assert tied.sum() > 300
    assert (model.predict()[tied] == L[tied, 0]).mean() > 0.95  # the learned model trusts the good LF
    assert (model.predict_proba().argmax(1) == model.predict()).all()
    assert (model.predict()[tied] == y[tied]).mean() > (MajorityVote(random_state=0).fit(votes).predict()[tied] == y[tied]).mean() + 0.3
    # learned accuracies and convergence are the tie model's, reported honestly
    assert model.accuracies_[0] > model.accuracies_[2] > model.accuracies_[1]
    assert model.converged_ and model.n_iter_ == len(model.loss_history_) > 1
    assert model.tie_model_.n_iter == 500
    untied = ~tied & (L[:, 2] != -1)
    np.testing.assert_allclose(model.predict_proba()[untied].sum(1), 1.0)


def test_majority_winner_probabilities_are_snorkels():
    L = np.array([[0, 0, 1], [0, 1, -1], [2, -1, -1], [1, 1, 2], [-1, -1, -1]])
    model = MajorityVote(tie_break="prior", proba="winner").fit(Votes.from_matrix(L, n_classes=3))
    P = model.predict_proba()
    np.testing.assert_allclose(P[:4], [[1, 0, 0], [0.5, 0.5, 0], [0, 0, 1], [0, 1, 0]])
    np.testing.assert_allclose(P[4], model.class_prior_)  # no votes: the prior
    snorkel = pytest.importorskip("snorkel.labeling.model", reason="snorkel is a `bench` extra")
    np.testing.assert_allclose(P[:4], snorkel.MajorityLabelVoter(cardinality=3).predict_proba(L)[:4])
    with pytest.raises(ValueError, match=r"proba must be 'shares' or 'winner' \(got 'soft'\)"):
        MajorityVote(proba="soft").fit(Votes.from_matrix(L, n_classes=3))
