"""Label-error detection: known flips are found, sources and committee change the verdict."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.labeling.noise import confident_joint, find_label_errors, self_confidence
from labelloop.models.ensemble import KFoldCommittee


def test_known_flips_on_digits_are_found(digits_split):
    Xp, _, yp, _ = digits_split
    rng = np.random.default_rng(0)
    flips = rng.choice(len(yp), 126, replace=False)  # 10 % noise, as in ANCHORS.md
    noisy = yp.copy()
    noisy[flips] = (yp[flips] + rng.integers(1, 10, size=126)) % 10
    # the model stage's committee: its stored out-of-fold probabilities are what the route stage reads
    oof = KFoldCommittee(model="mlp", seed=0).fit(Xp, noisy).oof_proba_
    issues = find_label_errors(noisy, oof)
    truth = noisy != yp
    tp = (issues.is_issue & truth).sum()
    precision, recall = tp / issues.is_issue.sum(), tp / truth.sum()
    assert recall > 0.85 and precision > 0.85
    # the suggestion is mostly the true class
    assert (issues.suggested_label[issues.is_issue & truth] == yp[issues.is_issue & truth]).mean() > 0.9
    # ranked(): most suspect first
    r = issues.ranked()
    assert (np.diff(issues.score[r]) <= 0).all()
    # the confident joint sees roughly that many wrong labels
    assert 0.5 * len(flips) < issues.n_estimated < 2 * len(flips)


def test_source_changes_the_evidence_needed():
    P = np.array([[0.3, 0.7]] * 4)
    labels = np.zeros(4, dtype=int)
    got = find_label_errors(labels, P, sources=np.array(["gold", "expert", "crowd", "weak"]))
    # margin 0.4: enough against crowd/weak labels, not against gold (0.5) or expert (0.4, strict)
    assert got.is_issue.tolist() == [False, False, True, True]


def test_committee_disagreement_vetoes():
    P = np.array([[0.2, 0.8], [0.2, 0.8]])
    M = np.array([[[0.1, 0.9], [0.1, 0.9]], [[0.1, 0.9], [0.6, 0.4]], [[0.1, 0.9], [0.6, 0.4]]])
    got = find_label_errors([0, 0], P, member_proba=M, min_agreement=0.6)
    assert got.is_issue.tolist() == [True, False]
    assert got.agreement.round(2).tolist() == [1.0, 0.33]


def test_confident_joint_counts_and_self_confidence():
    P = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.95, 0.05]])
    y = np.array([0, 0, 1, 1, 1])
    C = confident_joint(y, P)
    # thresholds: class 0 at 0.85, class 1 at 0.58; item 1 (0.8 for its class 0) passes neither
    assert C.tolist() == [[1, 0], [1, 2]]
    assert self_confidence(y, P).tolist() == [0.9, 0.8, 0.9, 0.8, 0.05]


def test_empty_input_gives_empty_output():
    got = find_label_errors(np.zeros(0, dtype=int), np.zeros((0, 3)))
    assert got.is_issue.shape == (0,) and got.n_estimated == 0


@pytest.mark.parametrize(
    ("labels", "proba", "match"),
    [
        ([0, 5], np.ones((2, 3)) / 3, r"item 1: label 5 is not a class id in \[0, 2\]"),
        ([0], np.ones((2, 3)) / 3, r"labels has shape \(1,\) but proba covers 2 items"),
        ([0, 1], np.ones(3), r"proba must be 2-d"),
    ],
)
def test_errors_name_the_item(labels, proba, match):
    with pytest.raises(ValueError, match=match):
        find_label_errors(np.array(labels), proba)
