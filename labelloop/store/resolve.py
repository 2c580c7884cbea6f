"""Training-label resolution by source precedence.

Rule, for every item of a dataset:

1. per (kind, source) only the newest row counts: a later opinion of the same
   source replaces its earlier one, and a row with label -1 withdraws it;
2. among the kinds in ``precedence`` the strongest kind with a standing opinion
   wins (default gold > expert > crowd > weak > pseudo > model);
3. within that kind the newest standing opinion wins.

The database does steps 1–3 in one grouped query and streams only the winners
back in chunks, so memory stays bounded by the output arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from labelloop.exceptions import StoreError

__all__ = ["Resolution", "resolve_labels"]


@dataclass
class Resolution:
    """Resolved training labels, one entry per item that has a standing opinion.

    Attributes
    ----------
    item_ids : ndarray of int64
    labels : ndarray of int16, class ids
    kind_codes : ndarray of int8, index into ``kinds``
    kinds : list of str, the precedence used
    confidence : ndarray of float32 (NaN where the winning row had none)
    probs : ndarray of float32, shape (n, n_classes); one-hot where no probabilities were stored
    report : dict, counts by winning kind and by class
    """

    item_ids: np.ndarray
    labels: np.ndarray
    kind_codes: np.ndarray
    kinds: list[str]
    confidence: np.ndarray
    probs: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item_ids)

    def kind_of(self) -> np.ndarray:
        """Winning kind name per item."""
        return np.asarray(self.kinds, dtype=object)[self.kind_codes]

    def mask(self, *kinds: str) -> np.ndarray:
        """Boolean mask of items whose label came from one of ``kinds``."""
        codes = [self.kinds.index(k) for k in kinds if k in self.kinds]
        return np.isin(self.kind_codes, codes)


def _rank_case(precedence: list[str]) -> str:
    whens = " ".join(f"WHEN '{kind}' THEN {rank}" for rank, kind in enumerate(precedence))
    return f"CASE kind {whens} END"


def _sqlite_query(precedence: list[str]) -> str:
    kinds = ", ".join(f"'{k}'" for k in precedence)
    # SQLite returns the bare columns of the row that holds MAX()/MIN() in each group.
    return f"""
        SELECT item_id, rank, label, confidence, probs, MIN(rank * 1099511627776 - id) AS score
        FROM (
            SELECT l.item_id AS item_id, {_rank_case(precedence)} AS rank, l.label AS label,
                   l.confidence AS confidence, l.probs AS probs, MAX(l.id) AS id
            FROM labels AS l
            WHERE l.kind IN ({kinds})
              AND l.item_id IN (SELECT id FROM items WHERE dataset = :dataset)
            GROUP BY l.item_id, l.kind, l.source
        )
        WHERE label >= 0
        GROUP BY item_id
        ORDER BY item_id
    """


def _postgres_query(precedence: list[str]) -> str:
    kinds = ", ".join(f"'{k}'" for k in precedence)
    return f"""
        SELECT DISTINCT ON (item_id) item_id, rank, label, confidence, probs, id
        FROM (
            SELECT DISTINCT ON (l.item_id, l.kind, l.source)
                   l.item_id AS item_id, {_rank_case(precedence)} AS rank, l.label AS label,
                   l.confidence AS confidence, l.probs AS probs, l.id AS id
            FROM labels AS l JOIN items AS i ON i.id = l.item_id
            WHERE i.dataset = :dataset AND l.kind IN ({kinds})
            ORDER BY l.item_id, l.kind, l.source, l.id DESC
        ) AS latest
        WHERE label >= 0
        ORDER BY item_id, rank, id DESC
    """


def _decode_chunk(blobs: list[bytes | None], labels: np.ndarray, n_classes: int, item_ids: np.ndarray) -> np.ndarray:
    probs = np.zeros((len(blobs), n_classes), dtype=np.float32)
    has = np.fromiter((b is not None for b in blobs), dtype=bool, count=len(blobs))
    if has.any():
        joined = b"".join(b for b in blobs if b is not None)
        width = len(joined) // (4 * int(has.sum()))
        stored = np.frombuffer(joined, dtype=np.float32)
        if width != n_classes or stored.size != width * int(has.sum()):
            bad = next(int(i) for i, b in zip(item_ids, blobs) if b is not None and len(b) != 4 * n_classes)
            raise StoreError(f"item {bad}: stored class probabilities do not have {n_classes} entries")
        probs[has] = stored.reshape(-1, n_classes)
    hard = ~has
    if (labels >= n_classes).any():
        bad = int(item_ids[np.argmax(labels >= n_classes)])
        raise StoreError(f"item {bad}: label id {int(labels.max())} is outside the {n_classes} classes")
    probs[np.flatnonzero(hard), labels[hard]] = 1.0
    return probs


def resolve_labels(
    engine: Engine, dataset: str, n_classes: int, precedence: list[str], chunk_rows: int = 200_000
) -> Resolution:
    """Resolve training labels of ``dataset``; see the module docstring for the rule."""
    if not precedence:
        raise StoreError("resolution: precedence must name at least one source kind")
    query = _postgres_query(precedence) if engine.dialect.name == "postgresql" else _sqlite_query(precedence)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ids", "ranks", "labels", "conf", "probs")}
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(text(query), {"dataset": dataset})
        while True:
            rows = result.fetchmany(chunk_rows)
            if not rows:
                break
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            labels = np.fromiter((r[2] for r in rows), dtype=np.int16, count=len(rows))
            parts["ids"].append(ids)
            parts["ranks"].append(np.fromiter((r[1] for r in rows), dtype=np.int8, count=len(rows)))
            parts["labels"].append(labels)
            parts["conf"].append(
                np.fromiter((np.nan if r[3] is None else r[3] for r in rows), dtype=np.float32, count=len(rows))
            )
            parts["probs"].append(_decode_chunk([r[4] for r in rows], labels, n_classes, ids))

    def joined(key: str, dtype: Any, shape: tuple[int, ...] = (0,)) -> np.ndarray:
        return np.concatenate(parts[key]) if parts[key] else np.zeros(shape, dtype=dtype)

    resolution = Resolution(
        item_ids=joined("ids", np.int64),
        labels=joined("labels", np.int16),
        kind_codes=joined("ranks", np.int8),
        kinds=list(precedence),
        confidence=joined("conf", np.float32),
        probs=joined("probs", np.float32, (0, n_classes)),
    )
    by_kind = np.bincount(resolution.kind_codes, minlength=len(precedence)) if len(resolution) else np.zeros(len(precedence), int)
    by_class = np.bincount(resolution.labels, minlength=n_classes) if len(resolution) else np.zeros(n_classes, int)
    resolution.report = {
        "precedence": list(precedence),
        "resolved": int(len(resolution)),
        "by_kind": {k: int(n) for k, n in zip(precedence, by_kind)},
        "by_class": [int(n) for n in by_class],
    }
    return resolution
