"""Pure parts: planning, agreement metrics, aggregation, pre-annotation, config (no server)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from labelloop.config import parse_config
from labelloop.exceptions import ConfigError
from labelloop.labeling.agreement import (annotator_confusions, fleiss_kappa, gold_accuracy, kappa_heatmap,
                                          kappa_matrix, krippendorff_alpha, throughput)
from labelloop.labeling.crowd import CrowdAggregator
from labelloop.studio.assign import OverlapPolicy, plan_assignments
from labelloop.studio.preannotate import to_prediction

DATASET = {"name": "d", "modality": "text", "classes": ["a", "b", "c"]}


def simulated_votes(n_items=300, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n_items)
    acc = {"w0": 0.9, "w1": 0.85, "w2": 0.8, "spam": 1 / 3}
    rows = []
    for i, t in enumerate(truth):
        for w in rng.choice(list(acc), 3, replace=False):
            lab = t if rng.random() < acc[w] else rng.choice([c for c in range(3) if c != t])
            rows.append((i, w, int(lab)))
    return pd.DataFrame(rows, columns=["item", "source", "label"]), truth


def test_kappa_matches_sklearn_and_matrix_is_symmetric():
    votes, _ = simulated_votes()
    m = kappa_matrix(votes)
    both = votes.pivot(index="item", columns="source", values="label").dropna(subset=["w0", "w1"])
    assert m.loc["w0", "w1"] == pytest.approx(cohen_kappa_score(both["w0"], both["w1"]))
    assert np.allclose(m.to_numpy(), m.to_numpy().T, equal_nan=True)
    assert m.loc["w0", "spam"] < 0.2 < m.loc["w0", "w1"]


def test_fleiss_and_krippendorff_bounds():
    perfect = pd.DataFrame({"item": [0, 0, 0, 1, 1, 1, 2, 2], "source": list("abcabcab"), "label": [0, 0, 0, 1, 1, 1, 2, 2]})
    assert fleiss_kappa(perfect, 3) == pytest.approx(1.0)
    assert krippendorff_alpha(perfect, 3) == pytest.approx(1.0)
    votes, _ = simulated_votes()
    f, a = fleiss_kappa(votes, 3), krippendorff_alpha(votes, 3)
    assert 0.2 < f < 0.9 and 0.2 < a < 0.9
    # alpha corrects fleiss for sample size: with many items they agree closely
    assert a == pytest.approx(f, abs=0.01)
    assert np.isnan(fleiss_kappa(votes.iloc[:0], 3))


def test_gold_accuracy_confusion_throughput_and_heatmap(tmp_path):
    votes, truth = simulated_votes()
    gold = {i: int(truth[i]) for i in range(60)}
    acc = gold_accuracy(votes, gold)
    assert acc.loc["spam", "accuracy"] < 0.6 < acc.loc["w0", "accuracy"]
    conf = annotator_confusions(votes, dict(enumerate(truth)), 3)
    assert conf["w0"].shape == (3, 3) and np.allclose(conf["w0"].sum(1), 1)
    ann = pd.DataFrame({"source": ["x", "x", "x"], "created_at": ["2026-01-01T00:00:00Z", "2026-01-01T00:30:00Z",
                                                                  "2026-01-01T01:00:00Z"], "lead_time": [2.0, 4.0, 6.0]})
    tp = throughput(ann)
    assert tp.loc["x", "answers"] == 3 and tp.loc["x", "per_hour"] == pytest.approx(3.0)
    png = kappa_heatmap(kappa_matrix(votes), tmp_path / "k.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_crowd_aggregator_excludes_flagged_and_beats_majority():
    votes, truth = simulated_votes(600, seed=1)
    gold = {i: int(truth[i]) for i in range(40)}
    agg = CrowdAggregator(min_gold_accuracy=0.6).fit(votes, 3, gold=gold)
    assert agg.flagged_ == ["spam"]
    acc = np.mean(agg.predict() == truth[agg.items_])
    mv = CrowdAggregator(method="majority", min_gold_accuracy=0.0).fit(votes, 3)
    assert acc > np.mean(mv.predict() == truth[mv.items_])
    assert np.allclose(agg.posteriors_.sum(1), 1)
    with pytest.raises(ValueError, match="method must be one of 'dawid_skene', 'one_coin', 'majority', got 'em'"):
        CrowdAggregator(method="em").fit(votes, 3)


def test_plan_initial_overlap_least_loaded_and_gold_rate():
    policy = OverlapPolicy(overlap=3, initial_overlap=2)
    ann = ["p", "q", "r", "s"]
    plan = plan_assignments(range(100), ann, {}, policy, gold={1000 + i: 0 for i in range(100)}, gold_rate=0.2)
    normal = [a for a in plan if not a.gold]
    assert len(normal) == 200
    per_item = pd.Series([a.item for a in normal]).value_counts()
    assert (per_item == 2).all()
    assert all(len({a.annotator for a in normal if a.item == i}) == 2 for i in range(0, 100, 7))
    counts = pd.Series([a.annotator for a in normal]).value_counts()
    assert counts.max() - counts.min() <= 1  # least loaded first
    golds = pd.Series([a.annotator for a in plan if a.gold]).value_counts()
    # rate 0.2 of the stream: ~50 normal tasks each -> ~12.5 gold each
    assert golds.sum() == pytest.approx(50, abs=6)
    # gold lands anywhere in the stream, not in a block at the end
    positions = [k for k, a in enumerate(plan) if a.gold]
    assert min(positions) < len(plan) // 4 and max(positions) > 3 * len(plan) // 4


def test_plan_adaptive_and_model_agreement():
    policy = OverlapPolicy(overlap=3, initial_overlap=2)
    state = {1: {"p": 0, "q": 0}, 2: {"p": 0, "q": 1}, 3: {"p": 0, "q": None}, 4: {"p": 0, "q": 1, "r": 2}}
    plan = plan_assignments([1, 2, 3, 4], ["p", "q", "r"], state, policy)
    assert [(a.item, a.annotator) for a in plan] == [(2, "r")]
    solo = OverlapPolicy(overlap=3, initial_overlap=1, model_agreement=True)
    state = {1: {"p": 0}, 2: {"p": 1}}
    plan = plan_assignments([1, 2], ["p", "q"], state, solo, model_labels={1: 0, 2: 0})
    assert [(a.item, a.annotator) for a in plan] == [(2, "q")]
    with pytest.raises(ValueError, match=r"initial_overlap must be in \[1, overlap=2\], got 3"):
        OverlapPolicy(2, 3)
    with pytest.raises(ValueError, match=r"gold_rate must be in \[0, 1\), got 1.0"):
        plan_assignments([], ["p"], {}, policy, gold_rate=1.0)


def test_prediction_shape_is_checked():
    p = to_prediction([0.1, 0.2, 0.7], ["a", "b", "c"], "tabular", "m-1")
    assert p["result"][0]["to_name"] == "row" and p["score"] == 0.7
    with pytest.raises(ValueError, match=r"probs must have one entry per class \(3\), got shape \(2,\)"):
        to_prediction([0.5, 0.5], ["a", "b", "c"], "text", "m")


@pytest.mark.parametrize("crowd, message", [
    ({"overlap": 3, "initial_overlap": 4}, r"crowd: initial_overlap must be <= overlap=3 \(got 4\)"),
    ({"gold_rate": 1.5}, r"crowd\.gold_rate: must be < 1\.0 \(got 1\.5\)"),
    ({"enabled": True, "overlap": 3, "annotators": ["x@y.org"]}, r"crowd: overlap=3 needs at least 3 annotators and bots \(got 1\)"),
    ({"bots": [{"name": "b", "accuracy": 1.2}]}, r"crowd\.bots\[0\]\.accuracy: must be <= 1\.0 \(got 1\.2\)"),
    ({"overlap": 0}, r"crowd\.overlap: must be >= 1 \(got 0\)"),
])
def test_crowd_config_errors(crowd, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"dataset": DATASET, "crowd": crowd})
