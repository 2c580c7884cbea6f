"""The weak stage's label-model task as plain Python: defaults, tie labels, learned accuracies, convergence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from labelloop.config import load_config
from labelloop.labeling.aggregate import DawidSkene, MajorityVote, OneCoinDawidSkene, Votes
from labelloop.tasks.weak import fit_label_model_task


def config_with(tmp_path, **weak):
    (tmp_path / "items.jsonl").write_text(json.dumps({"id": "a", "text": "x"}) + "\n")
    lfs = [{"name": f"lf{k}", "kind": "keyword", "class": c, "keywords": [c]} for k, c in enumerate("abc")]
    raw = {"dataset": {"name": "toy", "modality": "text", "classes": ["a", "b", "c"]}, "data_dir": "data",
           "sources": [{"kind": "text_file", "name": "toy", "path": "items.jsonl", "id_field": "id"}],
           "weak": {"enabled": True, "lfs": lfs, **weak}}
    (tmp_path / "labelloop.yaml").write_text(yaml.safe_dump(raw))
    return load_config(tmp_path / "labelloop.yaml")


def lf_matrix(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    accs = [0.95, 0.6, 0.8]
    L = np.stack([np.where(rng.random(n) < a, y, (y + 1 + rng.integers(0, 2, n)) % 3) for a in accs], axis=1)
    L[rng.random((n, 3)) < 0.4] = -1
    return L.astype(np.int8), y, np.array(accs)


def test_default_is_majority_with_learned_accuracies_reported(tmp_path):
    config = config_with(tmp_path)
    assert (config.weak.label_model, config.weak.tie_break, config.weak.majority_proba, config.weak.n_iter) == (
        "majority", "prior", "winner", 500)
    L, y, accs = lf_matrix()
    model = fit_label_model_task.fn(L, np.full(len(L), -1), config)
    assert isinstance(model, MajorityVote)
    covered = (L != -1).any(1)
    plain = MajorityVote(tie_break="prior", proba="winner").fit_predict_proba(Votes.from_matrix(L, 3))
    np.testing.assert_allclose(model.predict_proba(), plain)  # Snorkel's MajorityLabelVoter soft labels
    # learned LF accuracies (one-coin) track the true ones and convergence is stated
    assert np.abs(model.accuracies_ - accs).max() < 0.06
    assert model.converged_ and 1 < model.n_iter_ <= 500 and len(model.loss_history_) == model.n_iter_
    # ties take the class voted most overall, and predict() (what the store writes) says so
    counts = np.stack([(L == k).sum(1) for k in range(3)], axis=1)
    tied = (counts == counts.max(1, keepdims=True)).sum(1) > 1
    ties = covered & tied
    assert ties.sum() > 50
    expected = np.argmax(np.where(counts[ties] == counts[ties].max(1, keepdims=True), model.class_prior_, -1), 1)
    assert (model.predict()[ties] == expected).all()


@pytest.mark.parametrize(("name", "cls"), [("one_coin", OneCoinDawidSkene), ("dawid_skene", DawidSkene)])
def test_em_label_models_report_convergence(tmp_path, name, cls):
    L, y, _ = lf_matrix()
    model = fit_label_model_task.fn(L, np.full(len(L), -1), config_with(tmp_path, label_model=name, n_iter=3))
    assert isinstance(model, cls) and model.n_iter_ == 3 and not model.converged_


def test_model_ties_and_gold_anchoring(tmp_path):
    L, y, _ = lf_matrix()
    known = np.full(len(L), -1)
    known[:100] = y[:100]
    model = fit_label_model_task.fn(L, known, config_with(tmp_path, tie_break="model"))
    assert (model.predict()[:100] == y[:100]).all()
    assert model.tie_model_.n_iter == 500
