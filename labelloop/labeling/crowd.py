"""Crowd votes -> crowd-aggregate labels, gold-anchored, with bad annotators left out.

Votes come from the store's ``annotator`` rows; the newest row per (item,
annotator) is that person's opinion and a ``-1`` row (a deleted annotation)
withdraws it. Annotators whose accuracy on gold items is below
``min_gold_accuracy`` (over at least ``min_gold_answers`` gold answers) are
**excluded** from the aggregate rather than down-weighted: Dawid-Skene already
weights every annotator by their fitted confusion matrix, so a mild weight cut
changes little, while a spammer's votes on the items only they and one other
person saw can still tip those items; excluding them is the safe choice and
the report says who was excluded. An item whose only votes came from excluded
annotators keeps them (something beats nothing), which the report counts.
"""

from __future__ import annotations

from typing import Literal, Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from labelloop.exceptions import AggregationError
from labelloop.labeling.agreement import gold_accuracy
from labelloop.labeling.aggregate import DawidSkene, MajorityVote, Votes

__all__ = ["latest_votes", "CrowdAggregator"]


def latest_votes(labels: pd.DataFrame, item_col: str = "item_id") -> pd.DataFrame:
    """One ``item, source, label`` row per (item, annotator): the newest opinion, retractions dropped.

    ``labels`` are label rows in the order they were written (or with an ``id``
    or ``created_at`` column to order by).
    """
    if len(labels) == 0:
        return pd.DataFrame({"item": pd.Series(dtype=int), "source": pd.Series(dtype=str),
                             "label": pd.Series(dtype=int)})
    order = [c for c in ("created_at", "id") if c in labels.columns]
    df = labels.sort_values(order, kind="stable") if order else labels
    last = df.groupby([item_col, "source"], sort=False).tail(1)
    last = last[last["label"] >= 0]
    return pd.DataFrame({"item": last[item_col].to_numpy(int), "source": last["source"].astype(str).to_numpy(),
                         "label": last["label"].to_numpy(int)})


class CrowdAggregator(BaseEstimator):
    """Aggregate crowd votes with the weak-labeling engine, anchored on gold.

    Parameters
    ----------
    method : {"dawid_skene", "majority"}, default="dawid_skene"
    min_gold_accuracy : float, default=0.7
        Annotators below this gold accuracy are flagged and excluded.
    min_gold_answers : int, default=3
        Gold answers needed before an annotator can be flagged.
    n_iter : int, default=100
        EM iterations (Dawid-Skene).

    Attributes
    ----------
    items_ : ndarray of int
        Item ids, aligned with ``posteriors_``.
    posteriors_ : ndarray (n_items, n_classes)
    gold_accuracy_ : DataFrame
        Per annotator ``n_gold, correct, accuracy, flagged``.
    flagged_ : list of str
    n_kept_flagged_only_ : int
        Items whose only votes were from flagged annotators (their votes kept).
    model_ : fitted aggregator
    """

    def __init__(self, method: Literal["dawid_skene", "majority"] = "dawid_skene", min_gold_accuracy: float = 0.7,
                 min_gold_answers: int = 3, n_iter: int = 100):
        self.method = method
        self.min_gold_accuracy = min_gold_accuracy
        self.min_gold_answers = min_gold_answers
        self.n_iter = n_iter

    def fit(self, votes: pd.DataFrame, n_classes: int, gold: Mapping[int, int] | None = None) -> "CrowdAggregator":
        """Fit on ``item, source, label`` votes; ``gold`` maps item id -> class."""
        if self.method not in ("dawid_skene", "majority"):
            raise ValueError(f"method must be 'dawid_skene' or 'majority', got {self.method!r}")
        if not 0.0 <= self.min_gold_accuracy <= 1.0:
            raise ValueError(f"min_gold_accuracy must be in [0, 1], got {self.min_gold_accuracy}")
        gold = {int(k): int(v) for k, v in (gold or {}).items()}
        if len(votes) and (votes["label"].max() >= n_classes):
            raise AggregationError(f"crowd votes: class ids must be < n_classes={n_classes} "
                                   f"(got {int(votes['label'].max())})")
        acc = gold_accuracy(votes, gold) if len(votes) else pd.DataFrame(columns=["n_gold", "correct", "accuracy"])
        acc["flagged"] = (acc["n_gold"] >= self.min_gold_answers) & (acc["accuracy"] < self.min_gold_accuracy)
        self.gold_accuracy_ = acc
        self.flagged_ = sorted(acc.index[acc["flagged"]].tolist())
        keep = ~votes["source"].isin(self.flagged_)
        only_flagged = set(votes["item"]) - set(votes.loc[keep, "item"])
        self.n_kept_flagged_only_ = len(only_flagged)
        used = votes[keep | votes["item"].isin(only_flagged)]
        self.items_ = np.array(sorted(set(used["item"])), dtype=int)
        if len(used) == 0:
            self.posteriors_ = np.zeros((0, n_classes))
            self.model_ = None
            return self
        item_pos = {it: i for i, it in enumerate(self.items_)}
        sources, source_idx = np.unique(used["source"].to_numpy(str), return_inverse=True)
        self.sources_ = sources
        v = Votes(used["item"].map(item_pos).to_numpy(int), source_idx, used["label"].to_numpy(int), n_classes,
                  n_items=len(self.items_), n_sources=len(sources))
        anchor = {item_pos[i]: c for i, c in gold.items() if i in item_pos}
        if self.method == "majority":
            self.model_ = MajorityVote(tie_break="prior").fit(v)
        else:
            self.model_ = DawidSkene(n_iter=self.n_iter).fit(v, gold=anchor or None)
        self.posteriors_ = np.asarray(self.model_.predict_proba())
        return self

    def predict(self) -> np.ndarray:
        check_is_fitted(self, "posteriors_")
        return self.posteriors_.argmax(1) if len(self.posteriors_) else np.zeros(0, dtype=int)
