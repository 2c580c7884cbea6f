"""Routing: one queue per item, budgets hold, suspects reach the expert first."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.labeling.route import QUEUES, RouteBudgets, queue_summary, representativeness, route


@pytest.fixture
def committee():
    rng = np.random.default_rng(0)
    n, c, m = 600, 4, 5
    base = rng.dirichlet(np.ones(c) * 0.2, size=n)
    noise = rng.dirichlet(np.ones(c), size=(m, n))
    M = 0.95 * base[None] + 0.05 * noise
    X = rng.normal(size=(n, 3))
    return M.mean(axis=0), M, X


@pytest.mark.parametrize("budgets", [RouteBudgets(10, 20, 30), RouteBudgets(0, 0, 0), RouteBudgets(50, 500, None),
                                     RouteBudgets(None, None, None)])
def test_every_candidate_in_exactly_one_queue_and_budgets_hold(committee, budgets):
    P, M, X = committee
    cand = np.ones(len(P), dtype=bool)
    cand[::7] = False  # labeled items are not candidates
    suspects = np.zeros(len(P), dtype=bool)
    suspects[::7][:5] = True  # ...unless their label is suspect
    r = route(P, M, X, candidates=cand, suspects=suspects, budgets=budgets)
    assert len(r.index) == len(set(r.index.tolist())) == int((cand | suspects).sum())
    assert set(r.queue.tolist()) <= set(QUEUES)
    for q in ("expert", "crowd", "pseudo"):
        b = getattr(budgets, q)
        if b is not None:
            assert (r.queue == q).sum() <= b
    # the queues partition the routed items
    parts = [set(r.members(q).tolist()) for q in QUEUES]
    assert sum(len(p) for p in parts) == len(r.index)
    assert set().union(*parts) == set(r.index.tolist())


def test_suspects_first_and_overflow_waits_with_reason(committee):
    P, M, X = committee
    suspects = np.zeros(len(P), dtype=bool)
    suspects[:8] = True
    scores = np.arange(len(P))[::-1].astype(float)
    r = route(P, M, X, suspects=suspects, suspect_scores=scores, budgets=RouteBudgets(expert=5, crowd=10, pseudo=10))
    f = r.frame().set_index("index")
    assert f.loc[[0, 1, 2, 3, 4], "queue"].eq("expert").all()
    assert f.loc[[5, 6, 7], "queue"].eq("wait").all()
    assert f.loc[5, "reason"] == "label-error suspect over the expert budget"


def test_queue_semantics(committee):
    P, M, X = committee
    r = route(P, M, X, budgets=RouteBudgets(expert=20, crowd=50, pseudo=None), pseudo_threshold=0.9,
              crowd_band=(0.4, 0.9))
    f = r.frame()
    pseudo = f[f.queue == "pseudo"]
    assert len(pseudo) > 0 and (pseudo.confidence >= 0.9).all()
    crowd = f[f.queue == "crowd"]
    assert len(crowd) > 0 and ((crowd.confidence >= 0.4) & (crowd.confidence < 0.9)).all()
    # the expert queue holds the most valuable items of those not taken earlier
    expert = f[f.queue == "expert"]
    assert expert.value.min() >= f[f.queue != "expert"].value.max() - 1e-12


def test_pseudo_queue_is_class_balanced():
    P = np.zeros((100, 2))
    P[:90] = [0.99, 0.01]
    P[90:] = [0.01, 0.99]
    r = route(P, budgets=RouteBudgets(expert=0, crowd=0, pseudo=20), prior=np.array([0.5, 0.5]))
    labels = r.label[r.queue == "pseudo"]
    assert (labels == 0).sum() <= 10 and (labels == 1).sum() == 10


def test_summary_and_representativeness(committee):
    P, M, X = committee
    b = RouteBudgets(expert=10, crowd=20, pseudo=30)
    s = queue_summary(route(P, M, X, budgets=b), b)
    assert s["queue"].tolist() == list(QUEUES)
    assert s["items"].sum() == len(P)
    assert s.set_index("queue").loc["expert", "budget"] == 10
    d = representativeness(np.r_[np.zeros((10, 2)), [[100.0, 100.0]]])
    assert d[-1] < d[0] and d.max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"crowd_band": (0.9, 0.4)}, r"crowd_band must be \(low, high\) with 0 <= low < high <= 1, got \(0.9, 0.4\)"),
        ({"candidates": np.ones(3, dtype=bool)}, r"candidates must be a boolean mask of shape \(4,\), got \(3,\)"),
    ],
)
def test_route_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        route(np.full((4, 2), 0.5), **kwargs)


def test_budget_errors():
    with pytest.raises(ValueError, match=r"budget 'crowd' must be an integer >= 0 or None, got -3"):
        RouteBudgets(crowd=-3)


def test_pseudo_queue_takes_only_the_teachers_decisions(committee):
    P, M, X = committee
    decided = np.full(len(P), -1)
    decided[:100] = (P[:100].argmax(axis=1) + 1) % P.shape[1]  # the teacher may disagree with the argmax
    r = route(P, M, X, budgets=RouteBudgets(expert=10, crowd=10, pseudo=60), pseudo_labels=decided)
    f = r.frame().set_index("index")
    pseudo = f[f.queue == "pseudo"]
    assert 0 < len(pseudo) <= 60
    assert (pseudo.index < 100).all()
    assert (pseudo.label.to_numpy() == decided[pseudo.index]).all()
    with pytest.raises(ValueError, match=r"pseudo_labels must have shape \(600,\), got \(3,\)"):
        route(P, pseudo_labels=np.zeros(3, dtype=int))


def test_expert_picks_come_after_suspects_and_before_value(committee):
    P, M, X = committee
    suspects = np.zeros(len(P), dtype=bool)
    suspects[[3, 4]] = True
    r = route(P, M, X, suspects=suspects, budgets=RouteBudgets(expert=5, crowd=0, pseudo=0),
              expert_picks=[10, 11, 10, 3, 999])
    f = r.frame().set_index("index")
    expert = f[f.queue == "expert"]
    assert len(expert) == 5
    assert expert.loc[[3, 4], "reason"].eq("label-error suspect").all()
    assert expert.loc[[10, 11], "reason"].eq("active-learning batch").all()
    assert (expert.reason == "committee disagreement x representativeness").sum() == 1


def test_a_precomputed_neighbour_graph_gives_the_same_routing_and_label_spreading():
    """The route stage searches neighbours once and shares them: same answers as searching again."""
    from labelloop.labeling.pseudo import LabelGraph, knn_graph
    from labelloop.labeling.route import representativeness

    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (60, 3)), rng.normal(6, 1, (60, 3))].astype(np.float32)
    proba = np.c_[np.linspace(0.05, 0.95, 120), 1 - np.linspace(0.05, 0.95, 120)]
    graph = knn_graph(X, 10)
    np.testing.assert_allclose(representativeness(X, 7, graph), representativeness(X, 7))
    a = route(proba, X=X, budgets=RouteBudgets(expert=10, crowd=10, pseudo=20), n_neighbors=7)
    b = route(proba, X=X, budgets=RouteBudgets(expert=10, crowd=10, pseudo=20), n_neighbors=7, graph=graph)
    assert a.frame().equals(b.frame())
    seeds = np.full(120, -1)
    seeds[[0, 1, 60, 61]] = [0, 0, 1, 1]
    spread = LabelGraph(n_neighbors=(5, 10)).fit(X, graph).spread(seeds, 2)
    np.testing.assert_allclose(spread, LabelGraph(n_neighbors=(5, 10)).fit(X).spread(seeds, 2))
    assert (spread[:60].argmax(1) == 0).all() and (spread[60:].argmax(1) == 1).all()
