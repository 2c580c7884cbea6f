"""Standing opinions and training-label resolution by source precedence.

Rule, for every item of a dataset:

1. per (kind, source) only the newest row counts: a later opinion of the same
   source replaces its earlier one, and a row with label -1 withdraws it. The
   rows left are the item's *standing opinions* (:func:`standing_frame`, what
   :meth:`Store.standing` returns and every stage reads);
2. among the kinds in ``precedence`` the strongest kind with a standing opinion
   wins (default gold > expert > crowd > weak > pseudo > model);
3. within that kind the newest standing opinion wins.

Rule 1 is one SQL fragment (:func:`_newest_sql`) that both queries build on.
The database does steps 1–3 in one grouped query over a covering index and
streams only the winners back in chunks; their probabilities are then read by
row id, so memory stays bounded by the output arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, bindparam, text

from labelloop.exceptions import StoreError
from labelloop.store import schema

__all__ = ["Resolution", "resolve_labels", "standing_frame"]


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


def _newest_sql(dialect: str, kinds: list[str], sources: bool = False, filter_dataset: bool = True) -> str:
    """Rule 1 as SQL: the newest row per (item, kind, source), columns ``item_id, kind, source, label, id``.

    Retractions are still in (label -1): the caller keeps ``label >= 0``. ``sources`` adds a
    ``source IN :sources`` filter (an expanding parameter); ``kinds`` are checked names, inlined.
    """
    names = ", ".join(f"'{k}'" for k in kinds)
    if dialect == "postgresql":
        only = "AND l.source IN :sources" if sources else ""
        return f"""
            SELECT DISTINCT ON (l.item_id, l.kind, l.source)
                   l.item_id AS item_id, l.kind AS kind, l.source AS source, l.label AS label, l.id AS id
            FROM labels AS l JOIN items AS i ON i.id = l.item_id
            WHERE i.dataset = :dataset AND l.kind IN ({names}) {only}
            ORDER BY l.item_id, l.kind, l.source, l.id DESC
        """
    only = "AND source IN :sources" if sources else ""
    dataset = "AND item_id IN (SELECT id FROM items WHERE dataset = :dataset)" if filter_dataset else ""
    # The GROUP BY scans the covering index (item_id, kind, source, id, label) in order;
    # SQLite returns the bare columns of the row that holds MAX() in each group.
    return f"""
        SELECT item_id, kind, source, label, MAX(id) AS id
        FROM labels INDEXED BY ix_labels_item_kind_source_id
        WHERE kind IN ({names}) {only} {dataset}
        GROUP BY item_id, kind, source
    """


def _resolve_sql(dialect: str, precedence: list[str], filter_dataset: bool) -> str:
    """Rules 2 and 3 over the standing rows: one winner per item, ordered by item."""
    newest, rank = _newest_sql(dialect, precedence, filter_dataset=filter_dataset), _rank_case(precedence)
    if dialect == "postgresql":
        return f"""
            SELECT DISTINCT ON (item_id) item_id, {rank} AS rank, label, 0 AS score, id
            FROM ({newest}) AS newest
            WHERE label >= 0
            ORDER BY item_id, rank, id DESC
        """
    # SQLite returns the bare columns of the row that holds MIN(): strongest kind, then newest row.
    return f"""
        SELECT item_id, {rank} AS rank, label, MIN({rank} * 1099511627776 - id) AS score, id
        FROM ({newest})
        WHERE label >= 0
        GROUP BY item_id
        ORDER BY item_id
    """


_ID_TYPES = {"id": "int64", "item_id": "int64", "label": "int64"}


def standing_frame(
    engine: Engine, dataset: str, kinds: list[str], sources: list[str] | None = None, per: str = "source"
) -> pd.DataFrame:
    """The standing opinions of ``dataset`` as label rows (rule 1; see :meth:`Store.standing`)."""
    if per not in ("source", "item"):
        raise ValueError(f"per must be 'source' or 'item', got {per!r}")
    columns = list(schema.labels.c.keys())
    if not kinds or (sources is not None and not sources):
        return pd.DataFrame(columns=columns).astype(_ID_TYPES)
    newest = _newest_sql(engine.dialect.name, kinds, sources=sources is not None)
    query = text(f"""
        SELECT {", ".join(f"l.{c}" for c in columns)}
        FROM labels AS l JOIN ({newest}) AS newest ON newest.id = l.id
        WHERE newest.label >= 0
        ORDER BY l.id
    """).columns(*(schema.labels.c[c] for c in columns))  # typed like the rows of Store.labels
    params: dict[str, Any] = {"dataset": dataset}
    if sources is not None:
        query = query.bindparams(bindparam("sources", expanding=True))
        params["sources"] = [str(s) for s in sources]
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query, params).all(), columns=columns)
    if per == "item" and len(frame):
        # Rows come oldest first, so the last row of an item is its newest standing opinion.
        frame = frame.drop_duplicates("item_id", keep="last").reset_index(drop=True)
    return frame.astype(_ID_TYPES)


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


def _single_dataset(conn: Any, dataset: str) -> bool:
    found = conn.execute(text("SELECT DISTINCT dataset FROM items LIMIT 2")).scalars().all()
    return found == [dataset]


def _winner_details(conn: Any, row_ids: np.ndarray, chunk: int = 20_000) -> tuple[np.ndarray, list]:
    """Confidence and probability blobs of the winning rows, in the order of ``row_ids``."""
    confidence = np.full(len(row_ids), np.nan, dtype=np.float32)
    blobs: list[bytes | None] = [None] * len(row_ids)
    order = np.argsort(row_ids)
    sorted_ids = row_ids[order]
    for start in range(0, len(sorted_ids), chunk):
        ids = sorted_ids[start : start + chunk]
        position = dict(zip(ids.tolist(), order[start : start + chunk].tolist()))
        rows = conn.execute(
            text("SELECT id, confidence, probs FROM labels WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": ids.tolist()},
        )
        for row_id, conf, blob in rows:
            at = position[row_id]
            if conf is not None:
                confidence[at] = conf
            blobs[at] = blob
    return confidence, blobs


def resolve_labels(
    engine: Engine, dataset: str, n_classes: int, precedence: list[str], chunk_rows: int = 200_000
) -> Resolution:
    """Resolve training labels of ``dataset``; see the module docstring for the rule."""
    if not precedence:
        raise StoreError("resolution: precedence must name at least one source kind")
    ids_parts, ranks_parts, labels_parts, rows_parts = [], [], [], []
    with engine.connect() as conn:
        dialect = engine.dialect.name
        filter_dataset = dialect == "postgresql" or not _single_dataset(conn, dataset)
        query = _resolve_sql(dialect, precedence, filter_dataset)
        result = conn.execution_options(stream_results=True).execute(text(query), {"dataset": dataset})
        while True:
            rows = result.fetchmany(chunk_rows)
            if not rows:
                break
            count = len(rows)
            ids_parts.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=count))
            ranks_parts.append(np.fromiter((r[1] for r in rows), dtype=np.int8, count=count))
            labels_parts.append(np.fromiter((r[2] for r in rows), dtype=np.int16, count=count))
            rows_parts.append(np.fromiter((r[4] for r in rows), dtype=np.int64, count=count))
        item_ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, dtype=np.int64)
        labels = np.concatenate(labels_parts) if labels_parts else np.zeros(0, dtype=np.int16)
        ranks = np.concatenate(ranks_parts) if ranks_parts else np.zeros(0, dtype=np.int8)
        row_ids = np.concatenate(rows_parts) if rows_parts else np.zeros(0, dtype=np.int64)
        confidence = np.full(len(item_ids), np.nan, dtype=np.float32)
        probs = np.zeros((len(item_ids), n_classes), dtype=np.float32)
        for start in range(0, len(item_ids), chunk_rows):
            part = slice(start, start + chunk_rows)
            conf, blobs = _winner_details(conn, row_ids[part])
            confidence[part] = conf
            probs[part] = _decode_chunk(blobs, labels[part], n_classes, item_ids[part])

    resolution = Resolution(
        item_ids=item_ids, labels=labels, kind_codes=ranks, kinds=list(precedence), confidence=confidence, probs=probs
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
