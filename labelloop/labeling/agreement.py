"""Inter-annotator agreement and annotator quality, on long-format votes.

Votes are a frame with ``item``, ``source`` and ``label`` columns (one row per
item and annotator, class ids >= 0), the same long format the aggregation
engine reads.

>>> import pandas as pd
>>> v = pd.DataFrame({"item": [0, 0, 1, 1, 2, 2], "source": list("ababab"), "label": [0, 0, 1, 1, 0, 1]})
>>> round(cohen_kappa(v, "a", "b"), 3), round(fleiss_kappa(v, 2), 3), round(krippendorff_alpha(v, 2), 3)
(0.4, 0.333, 0.444)
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["cohen_kappa", "kappa_matrix", "fleiss_kappa", "krippendorff_alpha", "wilson_interval", "gold_accuracy",
           "annotator_confusions", "throughput", "kappa_heatmap"]


def _counts(votes: pd.DataFrame, n_classes: int) -> np.ndarray:
    """Item x class count matrix over items with at least one vote."""
    items = pd.factorize(votes["item"])[0]
    counts = np.zeros((items.max() + 1 if len(items) else 0, n_classes))
    np.add.at(counts, (items, votes["label"].to_numpy(int)), 1)
    return counts


def _pairable(votes: pd.DataFrame, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Item x class counts and votes per item, over the items with >= 2 votes (the only ones agreement sees)."""
    counts = _counts(votes, n_classes)
    n = counts.sum(1)
    return counts[n >= 2], n[n >= 2]


def cohen_kappa(votes: pd.DataFrame, a: str, b: str) -> float:
    """Cohen's kappa of annotators ``a`` and ``b`` over the items both labeled (NaN if none)."""
    pa = votes[votes["source"] == a].set_index("item")["label"]
    pb = votes[votes["source"] == b].set_index("item")["label"]
    both = pa.index.intersection(pb.index)
    if len(both) == 0:
        return float("nan")
    x, y = pa.loc[both].to_numpy(), pb.loc[both].to_numpy()
    observed = float(np.mean(x == y))
    classes = np.union1d(x, y)
    expected = float(sum(np.mean(x == c) * np.mean(y == c) for c in classes))
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def kappa_matrix(votes: pd.DataFrame, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """Pairwise Cohen's kappa; the diagonal is 1, pairs with no shared item NaN."""
    sources = list(sources) if sources is not None else sorted(votes["source"].unique())
    m = pd.DataFrame(np.nan, index=sources, columns=sources)
    for i, a in enumerate(sources):
        m.loc[a, a] = 1.0
        for b in sources[i + 1:]:
            m.loc[a, b] = m.loc[b, a] = cohen_kappa(votes, a, b)
    return m


def fleiss_kappa(votes: pd.DataFrame, n_classes: int) -> float:
    """Fleiss' kappa over items with >= 2 raters (a varying number of raters is allowed)."""
    counts, n = _pairable(votes, n_classes)
    if len(n) == 0:
        return float("nan")
    p_item = ((counts ** 2).sum(1) - n) / (n * (n - 1))
    p_bar = p_item.mean()
    share = counts.sum(0) / counts.sum()
    p_e = float((share ** 2).sum())
    if p_e >= 1.0:
        return 1.0 if p_bar == 1.0 else 0.0
    return float((p_bar - p_e) / (1.0 - p_e))


def krippendorff_alpha(votes: pd.DataFrame, n_classes: int) -> float:
    """Krippendorff's alpha, nominal metric, from the coincidence matrix (items with >= 2 values)."""
    counts, m = _pairable(votes, n_classes)
    if len(m) == 0:
        return float("nan")
    # coincidences o_ck = sum_u n_uc (n_uk - [c == k]) / (m_u - 1)
    w = 1.0 / (m - 1)
    o = (counts * w[:, None]).T @ counts - np.diag((counts * w[:, None]).sum(0))
    n_c = o.sum(1)
    n = n_c.sum()
    d_o = (o.sum() - np.trace(o)) / n
    d_e = (n * n - (n_c ** 2).sum()) / (n * (n - 1))
    if d_e == 0:
        return 1.0 if d_o == 0 else 0.0
    return float(1.0 - d_o / d_e)


def wilson_interval(successes, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Wilson score interval of a proportion; ``(0, 1)`` where ``n == 0``.

    Unlike the point estimate, it is wide on few answers: 2 right of 3 is
    ``[0.21, 0.94]``, 20 of 30 ``[0.49, 0.81]``.

    >>> low, high = wilson_interval([2, 20], [3, 30])
    >>> low.round(2).tolist(), high.round(2).tolist()
    ([0.21, 0.49], [0.94, 0.81])
    """
    from scipy.stats import norm

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    z = float(norm.ppf(0.5 + confidence / 2))
    safe = np.maximum(n, 1e-12)
    p = k / safe
    centre = (p + z * z / (2 * safe)) / (1 + z * z / safe)
    half = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe)) / (1 + z * z / safe)
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return low, high


def gold_accuracy(votes: pd.DataFrame, gold: Mapping[int, int], confidence: float = 0.95) -> pd.DataFrame:
    """Per annotator: answers on gold items, correct ones, accuracy (NaN without gold answers) and its
    Wilson interval ``low, high`` at ``confidence`` (``0, 1`` without gold answers)."""
    g = votes[votes["item"].isin(list(gold))].copy()
    g["correct"] = g["label"].to_numpy() == g["item"].map(gold).to_numpy()
    out = g.groupby("source").agg(n_gold=("correct", "size"), correct=("correct", "sum"))
    out = out.reindex(sorted(votes["source"].unique()), fill_value=0)
    out["accuracy"] = np.where(out["n_gold"] > 0, out["correct"] / out["n_gold"].clip(lower=1), np.nan)
    out["low"], out["high"] = wilson_interval(out["correct"].to_numpy(), out["n_gold"].to_numpy(), confidence)
    out.index.name = "annotator"
    return out


def annotator_confusions(votes: pd.DataFrame, reference: Mapping[int, int], n_classes: int) -> dict[str, np.ndarray]:
    """Row-normalised confusion (reference class x answered class) per annotator, against ``reference``."""
    out = {}
    ref = votes["item"].map(reference)
    known = ref.notna()
    for source, part in votes[known].groupby("source"):
        m = np.zeros((n_classes, n_classes))
        np.add.at(m, (ref[part.index].to_numpy(int), part["label"].to_numpy(int)), 1)
        out[source] = m / np.maximum(m.sum(1, keepdims=True), 1)
    return out


def throughput(annotations: pd.DataFrame) -> pd.DataFrame:
    """Per annotator: answers, active span and answers per hour, from ``source``, ``created_at``
    (and optional ``lead_time`` seconds) columns."""
    if len(annotations) == 0:
        return pd.DataFrame(columns=["answers", "span_s", "per_hour", "median_lead_s"])
    a = annotations.copy()
    a["created_at"] = pd.to_datetime(a["created_at"], utc=True, format="ISO8601")
    g = a.groupby("source")
    out = pd.DataFrame({"answers": g.size(),
                        "span_s": (g["created_at"].max() - g["created_at"].min()).dt.total_seconds()})
    out["per_hour"] = out["answers"] / (out["span_s"].clip(lower=1.0) / 3600.0)
    lead = g["lead_time"].median() if "lead_time" in a else np.nan
    out["median_lead_s"] = lead
    out.index.name = "annotator"
    return out


def kappa_heatmap(matrix: pd.DataFrame, path: str | Path, title: str = "Cohen's kappa between annotators") -> Path:
    """Write the kappa matrix as a PNG heatmap (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    labels = [str(s).split("@")[0] for s in matrix.index]
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(labels), 1.0 + 0.6 * len(labels)), dpi=110)
    im = ax.imshow(matrix.to_numpy(float), vmin=-0.2, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            v = matrix.iat[i, j]
            ax.text(j, i, "–" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if not np.isnan(v) and v < 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
