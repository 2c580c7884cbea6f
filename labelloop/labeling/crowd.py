"""Crowd votes -> crowd-aggregate labels, gold-anchored, with annotator quality judged on evidence.

Votes come from the store's ``annotator`` rows through :meth:`Store.standing`:
the newest row per (item, annotator) is that person's opinion and a ``-1`` row
(a deleted annotation) withdraws it; a withdrawn gold label anchors nothing.

Annotator quality, and why it is decided this way
--------------------------------------------------
* **Flags use a confidence bound, not the point estimate.** An annotator is
  flagged when the upper end of the Wilson interval of their gold accuracy is
  below ``min_gold_accuracy``: *statistically* below the bar. On 8 gold answers
  an honest 75 % annotator scores 5/8 = 0.62 one draw in five, and a point
  estimate against 0.7 would flag them; the bound does not.
* **Flagged means down-weighted, not excluded.** Dawid-Skene already weights
  every vote by the annotator's fitted confusion matrix, which is the right
  weight for a careless or biased annotator and an informative one for a
  systematic confuser (a person who answers B for A tells us A). A flagged
  annotator's votes count ``flagged_weight`` times in the posteriors (tempered
  likelihood; 1.0 by default, so the flag is for the report); only an annotator
  whose gold accuracy is statistically worse than chance (upper bound below
  ``1 / n_classes``) is excluded. An item whose only votes came from excluded
  annotators keeps them (something beats nothing), which the report counts.
* **Systematic confusions are named** from the fitted confusion matrices:
  a cell (true class k -> answered class l) is named when its rate is at least
  ``min_confusion_rate`` and, on the evidence of the other votes (leave-one-out
  posteriors: the annotator's own answer removed), a one-sided
  binomial test rejects "this annotator's errors are spread evenly" (one-coin
  null: ``(1 - accuracy) / (C - 1)`` per wrong class) at ``confusion_alpha``,
  Bonferroni-corrected over the ``C (C - 1)`` cells.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from labelloop.exceptions import AggregationError
from labelloop.labeling.agreement import gold_accuracy
from labelloop.labeling.aggregate import DawidSkene, MajorityVote, OneCoinDawidSkene, Votes
from labelloop.store import LabelIn, Store

__all__ = ["standing_votes", "standing_gold", "crowd_label_rows", "systematic_confusions", "CrowdAggregator"]

METHODS = ("dawid_skene", "one_coin", "majority")


def standing_votes(store: Store, dataset: str, kind: str = "annotator") -> pd.DataFrame:
    """Each annotator's standing vote per item in the aggregators' long format ``item, source, label``.

    A later answer of the same annotator replaces the earlier one and a deleted
    annotation (a ``-1`` row) withdraws it: :meth:`Store.standing` applies the rule.
    """
    rows = store.standing(dataset, kinds=[kind], decode=False)
    return pd.DataFrame({"item": rows["item_id"].to_numpy(int), "source": rows["source"].astype(str).to_numpy(),
                         "label": rows["label"].to_numpy(int)})


def standing_gold(store: Store, dataset: str) -> dict[int, int]:
    """Item id -> class of each item's standing gold label: the anchors of aggregation and the crowd's gold tasks.

    A withdrawn gold label (a ``-1`` row) anchors nothing.
    """
    rows = store.standing(dataset, kinds=["gold"], per="item", decode=False)
    return dict(zip(rows["item_id"].astype(int).tolist(), rows["label"].astype(int).tolist()))


def crowd_label_rows(aggregator: "CrowdAggregator", votes: pd.DataFrame, gold: Mapping[int, int],
                     run_id: str | None = None) -> list[LabelIn]:
    """One ``crowd`` label row per aggregated item that is not gold (class, confidence, posteriors).

    Dedupe keys come from a digest of the votes and the method: the same votes
    give the same keys, so re-aggregating unchanged votes adds nothing.
    """
    check_is_fitted(aggregator, "posteriors_")
    method = aggregator.method
    digest = hashlib.sha256(pd.util.hash_pandas_object(votes.sort_values(["item", "source"]), index=False)
                            .values.tobytes() + method.encode()).hexdigest()[:16]
    return [LabelIn(item_id=int(i), label=int(p.argmax()), kind="crowd", source=f"crowd:{method}",
                    confidence=float(p.max()), probs=p, run_id=run_id, dedupe_key=f"crowd:{digest}:{int(i)}")
            for i, p in zip(aggregator.items_, aggregator.posteriors_) if int(i) not in gold]


def systematic_confusions(confusions: np.ndarray, evidence: np.ndarray, sources: Any,
                          min_rate: float = 0.2, alpha: float = 0.05, classes: Any = None,
                          accuracies: Any = None) -> pd.DataFrame:
    """Cells of fitted confusion matrices that are systematic, one row each.

    Parameters
    ----------
    confusions : ndarray (n_sources, C, C)
        ``confusions[s, k, l]`` = P(source s answers l | true class k), as fitted.
    evidence : ndarray (n_sources, C, C)
        Expected number of s's answers l on items of true class k (posterior-weighted counts).
    sources : sequence of names, one per source
    min_rate : float, default=0.2
        Smallest rate worth naming.
    alpha : float, default=0.05
        Family-wise level per annotator (Bonferroni over the ``C (C - 1)`` cells) of the one-sided binomial
        test against evenly spread errors.
    accuracies : ndarray (n_sources,), optional
        Fitted accuracy of each source, for the null rate ``(1 - accuracy) / (C - 1)``; default the
        accuracy seen in ``evidence``.
    classes : sequence of class names, optional

    Returns
    -------
    DataFrame with columns ``annotator, true_class, answered_class, rate, evidence, n_true, p_value``,
    strongest first.

    Examples
    --------
    >>> conf = np.array([[[0.9, 0.1, 0.0], [0.05, 0.05, 0.9], [0.0, 0.1, 0.9]]])
    >>> counts = conf * 20
    >>> systematic_confusions(conf, counts, ["ann"], classes=["a", "b", "c"])[
    ...     ["annotator", "true_class", "answered_class", "rate", "evidence"]]
      annotator true_class answered_class  rate  evidence
    0       ann          b              c   0.9      18.0
    """
    from scipy.special import betainc

    conf = np.asarray(confusions, dtype=float)
    ev = np.asarray(evidence, dtype=float)
    S, C, _ = conf.shape
    names = list(sources)
    labels = list(classes) if classes is not None else list(range(C))
    n_true = ev.sum(-1)  # [s, k]
    right = np.trace(ev, axis1=1, axis2=2)
    total = ev.sum(axis=(1, 2))
    acc = np.divide(right, total, out=np.ones(S), where=total > 0)
    if accuracies is not None:
        acc = np.nan_to_num(np.asarray(accuracies, dtype=float), nan=1.0)
    # One-coin null: the same overall accuracy, errors spread evenly over the C - 1 wrong classes.
    p0 = np.clip((1.0 - acc) / (C - 1), 1e-6, 1 - 1e-6)
    rows = []
    off = ~np.eye(C, dtype=bool)
    for s, k, l in zip(*np.nonzero(off[None] & (conf >= min_rate))):
        x, n = ev[s, k, l], n_true[s, k]
        if x <= 0 or n <= 0:
            continue
        # P(X >= x) for X ~ Binomial(n, p0), continuous in x and n through the regularized beta function.
        p_value = float(betainc(x, max(n - x + 1.0, 1e-9), p0[s])) if x <= n else 0.0
        if p_value * C * (C - 1) <= alpha:
            rows.append({"annotator": names[s], "true_class": labels[k], "answered_class": labels[l],
                         "rate": round(float(conf[s, k, l]), 4), "evidence": round(float(x), 2),
                         "n_true": round(float(n), 2), "p_value": p_value})
    frame = pd.DataFrame(rows, columns=["annotator", "true_class", "answered_class", "rate", "evidence", "n_true",
                                        "p_value"])
    return frame.sort_values(["rate", "evidence"], ascending=False, ignore_index=True)


class CrowdAggregator(BaseEstimator):
    """Aggregate crowd votes with the weak-labeling engine, anchored on gold.

    Parameters
    ----------
    method : {"dawid_skene", "one_coin", "majority"}, default="dawid_skene"
        Full confusion matrix per annotator, one accuracy per annotator, or vote counting.
    min_gold_accuracy : float, default=0.7
        The bar: an annotator whose gold accuracy is statistically below it is flagged.
    min_gold_answers : int, default=3
        Gold answers needed before an annotator can be flagged at all.
    confidence : float, default=0.95
        Level of the two-sided Wilson interval on gold accuracy.
    flagged_weight : float in [0, 1], default=1.0
        How much a flagged annotator's votes count in the posteriors (their
        confusion matrix already weights them; see the module docstring).
    exclude_below_chance : bool, default=True
        Leave out annotators whose gold accuracy is statistically below ``1 / n_classes``.
    min_confusion_rate, confusion_alpha : float, default=0.2, 0.05
        When a fitted confusion cell is named as systematic (:func:`systematic_confusions`).
    n_iter : int, default=100
        EM iterations (Dawid-Skene, one-coin).
    random_state : int or None, default=0
        Seed of majority-vote tie-breaks.

    Attributes
    ----------
    items_ : ndarray of int
        Item ids, aligned with ``posteriors_``.
    posteriors_ : ndarray (n_items, n_classes)
    gold_accuracy_ : DataFrame
        Per annotator ``n_gold, correct, accuracy, low, high, flagged, excluded, weight``.
    flagged_ : list of str
        Annotators statistically below ``min_gold_accuracy`` (down-weighted by ``flagged_weight``).
    excluded_ : list of str
        Annotators statistically worse than chance (left out).
    confusions_ : DataFrame
        Systematic confusions per annotator: ``annotator, true_class, answered_class, rate, evidence, ...``.
    n_kept_flagged_only_ : int
        Items whose only votes were from excluded annotators (their votes kept).
    sources_ : ndarray of str
        Annotators in the order of the model's sources.
    model_ : fitted aggregator (``accuracies_``, ``confusions_`` per source)
    """

    def __init__(self, method: Literal["dawid_skene", "one_coin", "majority"] = "dawid_skene",
                 min_gold_accuracy: float = 0.7, min_gold_answers: int = 3, confidence: float = 0.95,
                 flagged_weight: float = 1.0, exclude_below_chance: bool = True, min_confusion_rate: float = 0.2,
                 confusion_alpha: float = 0.05, n_iter: int = 100, random_state: Any = 0):
        self.method = method
        self.min_gold_accuracy = min_gold_accuracy
        self.min_gold_answers = min_gold_answers
        self.confidence = confidence
        self.flagged_weight = flagged_weight
        self.exclude_below_chance = exclude_below_chance
        self.min_confusion_rate = min_confusion_rate
        self.confusion_alpha = confusion_alpha
        self.n_iter = n_iter
        self.random_state = random_state

    def _validate_params(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(repr(m) for m in METHODS)}, got {self.method!r}")
        for name in ("min_gold_accuracy", "flagged_weight", "min_confusion_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("confidence", "confusion_alpha"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")

    def fit(self, votes: pd.DataFrame, n_classes: int, gold: Mapping[int, int] | None = None,
            classes: Any = None) -> "CrowdAggregator":
        """Fit on ``item, source, label`` votes; ``gold`` maps item id -> class; ``classes`` names classes in the report."""
        self._validate_params()
        gold = {int(k): int(v) for k, v in (gold or {}).items()}
        missing = {"item", "source", "label"} - set(votes.columns)
        if missing:
            raise AggregationError(f"crowd votes: columns {sorted(missing)} are missing (got {list(votes.columns)})")
        if len(votes) and (votes["label"].max() >= n_classes or votes["label"].min() < 0):
            bad = votes["label"][(votes["label"] >= n_classes) | (votes["label"] < 0)].iloc[0]
            raise AggregationError(f"crowd votes: class ids must be in [0, {n_classes - 1}] (got {int(bad)})")
        self.n_classes_ = int(n_classes)
        self.classes_ = list(classes) if classes is not None else list(range(n_classes))
        acc = gold_accuracy(votes, gold, self.confidence) if len(votes) else pd.DataFrame(
            columns=["n_gold", "correct", "accuracy", "low", "high"])
        enough = acc["n_gold"] >= self.min_gold_answers
        acc["flagged"] = enough & (acc["high"] < self.min_gold_accuracy)
        acc["excluded"] = enough & (acc["high"] < 1.0 / n_classes) & bool(self.exclude_below_chance)
        acc["weight"] = np.where(acc["excluded"], 0.0, np.where(acc["flagged"], self.flagged_weight, 1.0))
        self.gold_accuracy_ = acc
        self.flagged_ = sorted(acc.index[acc["flagged"]].tolist())
        self.excluded_ = sorted(acc.index[acc["excluded"]].tolist())
        keep = ~votes["source"].isin(self.excluded_)
        only_excluded = set(votes["item"]) - set(votes.loc[keep, "item"])
        self.n_kept_flagged_only_ = len(only_excluded)
        used = votes[keep | votes["item"].isin(only_excluded)]
        self.items_ = np.array(sorted(set(used["item"])), dtype=int)
        self.confusions_ = systematic_confusions(np.zeros((0, n_classes, n_classes)), np.zeros((0, n_classes, n_classes)), [])
        if len(used) == 0:
            self.posteriors_ = np.zeros((0, n_classes))
            self.sources_ = np.array([], dtype=str)
            self.model_ = None
            return self
        item_pos = {it: i for i, it in enumerate(self.items_)}
        sources, source_idx = np.unique(used["source"].to_numpy(str), return_inverse=True)
        self.sources_ = sources
        item_idx = used["item"].map(item_pos).to_numpy(int)
        v = Votes(item_idx, source_idx, used["label"].to_numpy(int), n_classes,
                  n_items=len(self.items_), n_sources=len(sources))
        anchor = {item_pos[i]: c for i, c in gold.items() if i in item_pos}
        weight = acc["weight"].reindex(sources).fillna(1.0).to_numpy(float, copy=True)
        # Excluded annotators whose votes were kept on items only they answered count fully there.
        weight[acc["excluded"].reindex(sources).fillna(False).to_numpy(bool, copy=True)] = 1.0
        weight = weight if (weight < 1.0).any() else None
        if self.method == "majority":
            self.model_ = MajorityVote(tie_break="prior", random_state=self.random_state)
        elif self.method == "one_coin":
            self.model_ = OneCoinDawidSkene(n_iter=self.n_iter)
        else:
            self.model_ = DawidSkene(n_iter=self.n_iter)
        self.model_.fit(v, gold=anchor or None, source_weight=weight)
        self.posteriors_ = np.asarray(self.model_.predict_proba())
        # Evidence for each confusion cell: what the *other* votes (and gold) say the true class was when this
        # annotator answered l. Leaving the annotator's own vote out keeps EM from confirming its own fit: in a
        # sparse crowd a spammer's answer otherwise drags the posterior and then counts as evidence for itself.
        labels = used["label"].to_numpy(int)
        own = np.maximum(self.model_.confusions_[source_idx, :, labels], 1e-12)  # P(answer | k) per vote
        loo = self.posteriors_[item_idx] / own
        loo /= np.maximum(loo.sum(1, keepdims=True), 1e-300)
        evidence = np.zeros((len(sources), n_classes, n_classes))
        np.add.at(evidence, (source_idx, slice(None), labels), loo)
        self.confusions_ = systematic_confusions(self.model_.confusions_, evidence, sources,
                                                 self.min_confusion_rate, self.confusion_alpha, self.classes_,
                                                 accuracies=self.model_.accuracies_)
        return self

    def predict_proba(self) -> pd.DataFrame:
        """Posteriors keyed by item id (index ``item``), one column per class."""
        check_is_fitted(self, "posteriors_")
        return pd.DataFrame(self.posteriors_, index=pd.Index(self.items_, name="item"), columns=self.classes_)

    def predict(self) -> pd.Series:
        """Most probable class id per item id."""
        check_is_fitted(self, "posteriors_")
        labels = self.posteriors_.argmax(1) if len(self.posteriors_) else np.zeros(0, dtype=int)
        return pd.Series(labels, index=pd.Index(self.items_, name="item"), name="label")

    def annotator_report(self) -> pd.DataFrame:
        """Per annotator: answers, gold accuracy and its Wilson bounds, model-estimated accuracy, weight,
        flag, exclusion and the systematic confusions named (``"b->c 0.90 (18)"``)."""
        check_is_fitted(self, "posteriors_")
        acc = self.gold_accuracy_
        est = dict(zip(self.sources_, np.asarray(self.model_.accuracies_))) if self.model_ is not None else {}
        named: dict[str, list[str]] = {}
        for r in self.confusions_.itertuples():
            named.setdefault(r.annotator, []).append(
                f"{r.true_class}->{r.answered_class} {r.rate:.2f} ({r.evidence:g})")
        rows = []
        for who in acc.index:
            rows.append({"annotator": who, "gold_answers": int(acc.loc[who, "n_gold"]),
                         "gold_accuracy": float(acc.loc[who, "accuracy"]),
                         "gold_low": float(acc.loc[who, "low"]), "gold_high": float(acc.loc[who, "high"]),
                         "estimated_accuracy": float(est.get(who, np.nan)), "weight": float(acc.loc[who, "weight"]),
                         "flagged": bool(acc.loc[who, "flagged"]), "excluded": bool(acc.loc[who, "excluded"]),
                         "confusions": "; ".join(named.get(who, []))})
        return pd.DataFrame(rows)
