"""Annotator quality in the crowd aggregator: Wilson flags, exclusion only below chance, named confusions."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from labelloop.exceptions import AggregationError
from labelloop.labeling.aggregate import DawidSkene, MajorityVote, Votes
from labelloop.labeling.agreement import wilson_interval
from labelloop.labeling.crowd import CrowdAggregator, systematic_confusions


def crowd(n_items: int = 800, per_item: int = 3, seed: int = 0, C: int = 4):
    """Honest, spam and a confuser who answers 1 for true 0 nine times in ten; item ids are not 0..n-1."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, C, n_items)
    people = ["expert", "honest_a", "honest_b", "confuser", "spam"]
    rows = []
    for i, t in enumerate(truth):
        for who in rng.choice(people, per_item, replace=False):
            if who == "spam":
                lab = rng.integers(C)
            elif who == "confuser" and t == 0 and rng.random() < 0.9:
                lab = 1
            else:
                acc = {"expert": 0.95, "honest_a": 0.75, "honest_b": 0.75, "confuser": 0.9}[who]
                lab = t if rng.random() < acc else (t + rng.integers(1, C)) % C
            rows.append((1000 + 7 * i, who, int(lab)))
    votes = pd.DataFrame(rows, columns=["item", "source", "label"])
    return votes, {1000 + 7 * i: int(t) for i, t in enumerate(truth)}


def test_wilson_interval_is_wide_on_few_answers():
    low, high = wilson_interval([5, 100, 0], [8, 160, 0])
    assert high[0] > 0.7 > high[1]  # 5/8 could be a 0.7 annotator; 100/160 is not
    assert (low[2], high[2]) == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 1.5"):
        wilson_interval([1], [2], confidence=1.5)


def test_flags_need_statistical_evidence_and_only_worse_than_chance_is_excluded():
    # honest: 5 of 8 gold right (a point estimate 0.62 < 0.7 would flag them); spam: 1 of 12; saboteur: 0 of 12.
    gold = {i: 0 for i in range(12)}
    rows = [(i, "honest", 0 if i < 5 else 1) for i in range(8)]
    rows += [(i, "spam", 0 if i == 0 else 2) for i in range(12)]
    rows += [(i, "saboteur", 1) for i in range(12)]
    rows += [(100 + i, who, i % 3) for i in range(30) for who in ("honest", "spam", "saboteur", "other")]
    votes = pd.DataFrame(rows, columns=["item", "source", "label"])
    agg = CrowdAggregator().fit(votes, 3, gold)
    assert agg.flagged_ == ["saboteur", "spam"]
    assert agg.excluded_ == ["saboteur"]  # 0/12 right on 3 classes: statistically below 1/3
    report = agg.annotator_report().set_index("annotator")
    assert report.loc["honest", "gold_accuracy"] == pytest.approx(5 / 8) and not report.loc["honest", "flagged"]
    assert report.loc["honest", "gold_high"] > 0.7 > report.loc["spam", "gold_high"]
    assert report.loc["spam", "weight"] == 1.0 and report.loc["saboteur", "weight"] == 0.0
    assert "saboteur" not in set(agg.sources_)  # every item it answered has other votes


def test_systematic_confuser_is_named_and_honest_people_are_not():
    votes, truth = crowd()
    gold = dict(list(truth.items())[:60])
    agg = CrowdAggregator().fit(votes, 4, gold, classes=["a", "b", "c", "d"])
    named = agg.confusions_
    assert set(named["annotator"]) == {"confuser"}
    top = named.iloc[0]
    assert (top["true_class"], top["answered_class"]) == ("a", "b")
    assert top["rate"] > 0.8 and top["evidence"] > 50
    report = agg.annotator_report().set_index("annotator")
    assert report.loc["confuser", "confusions"].startswith("a->b 0.")
    assert report.loc[["expert", "honest_a", "honest_b"], "flagged"].sum() == 0
    # the confuser is informative: the stage (Dawid-Skene, confuser kept) beats majority vote
    pred = agg.predict()
    acc = np.mean(pred.to_numpy() == pd.Series(truth).reindex(pred.index).to_numpy())
    mv = CrowdAggregator(method="majority").fit(votes, 4, gold).predict()
    assert acc > np.mean(mv.to_numpy() == pd.Series(truth).reindex(mv.index).to_numpy())


@pytest.mark.parametrize("method", ["dawid_skene", "one_coin", "majority"])
def test_posteriors_are_keyed_by_item_id(method):
    votes, truth = crowd(200)
    agg = CrowdAggregator(method=method).fit(votes, 4, classes=["a", "b", "c", "d"])
    proba = agg.predict_proba()
    assert proba.index.name == "item" and list(proba.columns) == ["a", "b", "c", "d"]
    assert set(proba.index) == set(truth) and np.allclose(proba.sum(axis=1), 1.0)
    assert (agg.predict() == proba.to_numpy().argmax(1)).all()
    acc = np.mean(agg.predict().to_numpy() == pd.Series(truth).reindex(proba.index).to_numpy())
    assert acc > 0.75


def test_zero_weight_source_is_the_same_as_leaving_it_out():
    votes, _ = crowd(300)
    v, items, sources = Votes.from_frame(votes, n_classes=4)
    spam = list(sources).index("spam")
    w = np.ones(len(sources))
    w[spam] = 0.0
    weighted = DawidSkene().fit(v, source_weight=w)
    keep = v.sources != spam
    without = DawidSkene().fit(Votes(v.items[keep], v.sources[keep], v.labels[keep], 4, n_items=v.n_items,
                                     n_sources=v.n_sources))
    np.testing.assert_allclose(weighted.posteriors_, without.posteriors_, atol=1e-8)
    half = w.copy()
    half[spam] = 0.5
    tempered = DawidSkene().fit(v, source_weight=half).posteriors_
    assert not np.allclose(tempered, weighted.posteriors_)
    with pytest.raises(AggregationError, match=r"source_weight of source 1 must be in \[0, 1\] \(got 2.0\)"):
        DawidSkene().fit(v, source_weight=np.array([1.0, 2.0, 1, 1, 1]))


def test_majority_vote_ties_are_seeded_by_default():
    L = np.array([[0, 1], [1, 0], [2, 3], [0, 2]] * 50)
    votes = Votes.from_matrix(L, n_classes=4)
    first, second = MajorityVote().fit(votes).predict(), MajorityVote().fit(votes).predict()
    assert MajorityVote().random_state == 0 and (first == second).all()
    assert len(set(first[::4])) > 1  # ties really are broken at random, not always the same way


def test_bad_input_is_named():
    votes, _ = crowd(50)
    with pytest.raises(AggregationError, match=r"class ids must be in \[0, 2\] \(got 3\)"):
        CrowdAggregator().fit(votes.assign(label=votes["label"].clip(upper=3)).replace({"label": {2: 3}}), 3)
    with pytest.raises(AggregationError, match=r"columns \['source'\] are missing"):
        CrowdAggregator().fit(votes.drop(columns="source"), 4)
    with pytest.raises(ValueError, match=r"flagged_weight must be in \[0, 1\], got 2"):
        CrowdAggregator(flagged_weight=2).fit(votes, 4)


def test_no_votes_gives_empty_frames():
    empty = pd.DataFrame({"item": pd.Series(dtype=int), "source": pd.Series(dtype=str), "label": pd.Series(dtype=int)})
    agg = CrowdAggregator().fit(empty, 3)
    assert agg.predict_proba().shape == (0, 3) and agg.confusions_.empty
    assert systematic_confusions(np.zeros((0, 3, 3)), np.zeros((0, 3, 3)), []).empty


def test_a_withdrawn_gold_label_stops_anchoring_aggregation(store):
    """Through the crowd stage's aggregation: gold read from the store's standing opinions, retractions applied."""
    from labelloop.config import parse_config
    from labelloop.tasks.crowd import aggregate_task
    from labelloop.store import ItemIn, LabelIn

    config = parse_config({"dataset": {"name": "ds", "modality": "text", "classes": ["a", "b", "c"]}}, "x.yaml")
    ids = store.add_items("ds", [ItemIn("text", text=f"item {i}") for i in range(30)]).ids
    truth = {item: n % 3 for n, item in enumerate(ids)}
    g = ids[-1]  # every annotator answers a; the gold label (written in error) says c
    store.add_labels([LabelIn(item, 0 if item == g else truth[item], "annotator", who)
                      for item in ids for who in ("ann1", "ann2", "ann3")])
    store.add_labels([LabelIn(item, truth[item], "gold", "import") for item in ids[:6]] + [LabelIn(g, 2, "gold", "import")])

    anchored = aggregate_task.fn(config, store, "turn-1")
    assert anchored["gold"][g] == 2
    assert g not in set(store.standing("ds", kinds=["crowd"])["item_id"])  # a gold item gets no crowd label
    assert anchored["aggregator"].gold_accuracy_["n_gold"].tolist() == [7, 7, 7]

    store.add_labels([LabelIn(g, -1, "gold", "import")])  # the gold label is withdrawn
    freed = aggregate_task.fn(config, store, "turn-2")
    assert g not in freed["gold"] and len(freed["gold"]) == 6
    acc = freed["aggregator"].gold_accuracy_
    assert acc["n_gold"].tolist() == [6, 6, 6] and acc["accuracy"].tolist() == [1.0, 1.0, 1.0]
    crowd = store.standing("ds", kinds=["crowd"], per="item", decode=False).set_index("item_id")
    assert crowd.loc[g, "label"] == 0  # the votes decide the item now
    res = store.resolve("ds", 3)
    assert dict(zip(res.item_ids.tolist(), res.kind_of().tolist()))[g] == "crowd"
