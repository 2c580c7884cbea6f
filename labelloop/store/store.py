"""The dataset store: items, append-only labels, annotation tasks and runs.

One :class:`Store` wraps one SQLAlchemy engine. SQLite (WAL, busy timeout) is
the embedded default; PostgreSQL works by URL with the same code. The schema is
owned by the Alembic migrations; :meth:`Store.create` brings a database to the
newest revision and is safe to call every time. Every database connection of
labelloop comes from :func:`make_engine` (SQLite set-up, :class:`AppendOnlyError`),
and every stage reads opinions through :meth:`Store.standing` (newest row per
item, kind and source, retractions applied).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, create_engine, event, func, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from labelloop.exceptions import AppendOnlyError, StoreError
from labelloop.store import schema
from labelloop.store.kinds import DEFAULT_PRECEDENCE, LABEL_KINDS
from labelloop.store.resolve import Resolution, resolve_labels, standing_frame

__all__ = ["Store", "ItemIn", "LabelIn", "TaskIn", "AddItemsResult", "LABEL_KINDS", "content_hash", "make_engine",
           "migrate", "insert_ignoring"]

TASK_STATES = ("queued", "pushed", "done", "skipped", "cancelled")
_BATCH = 5000


def _now() -> datetime:
    return datetime.now(timezone.utc)


def content_hash(data: bytes | str) -> str:
    """SHA-256 hex digest of bytes, or of UTF-8 text."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass
class ItemIn:
    """An item to add. Its identity is the content hash (computed when not given)."""

    modality: str
    text: str | None = None
    uri: str | None = None
    path: str | None = None
    payload: bytes | None = None
    meta: dict[str, Any] | None = None
    split: str | None = None
    external_id: str | None = None
    content_hash: str | None = None

    def identity(self) -> str:
        if self.content_hash:
            return self.content_hash
        if self.payload is not None:
            return content_hash(self.payload)
        if self.text is not None:
            return content_hash(self.text)
        if self.path is not None and Path(self.path).is_file():
            return content_hash(Path(self.path).read_bytes())
        if self.uri is not None:
            return content_hash(self.uri)
        raise StoreError(f"item {self.external_id or '(no id)'}: has no content (text, payload, path or uri) to hash")


@dataclass
class LabelIn:
    """One opinion about one item. ``label=-1`` retracts the source's earlier opinion."""

    item_id: int
    label: int
    kind: str
    source: str
    confidence: float | None = None
    probs: Sequence[float] | np.ndarray | None = None
    run_id: str | None = None
    dedupe_key: str | None = None


@dataclass
class TaskIn:
    """An item put in a labeling queue."""

    item_id: int
    queue: str
    project: str | None = None
    annotator: str | None = None
    external_id: str | None = None
    state: str = "queued"
    is_gold: bool = False
    priority: float | None = None
    run_id: str | None = None
    details: dict[str, Any] | None = None


@dataclass
class AddItemsResult:
    """Ids of the given items in input order, and how many were new."""

    ids: list[int] = field(default_factory=list)
    added: int = 0
    existing: int = 0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (a flow's progress, the UI) work while a stage writes; NORMAL sync is crash-safe in WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-131072")  # 128 MiB page cache for big scans
    cursor.execute("PRAGMA mmap_size=268435456")
    cursor.close()


# What the append-only triggers of the migrations raise: "<table> are append-only".
_APPEND_ONLY = re.compile(r"(\w+) are append-only")


def _append_only_error(context: Any) -> None:
    """Turn the database's append-only trigger into :class:`AppendOnlyError` naming the table."""
    found = _APPEND_ONLY.search(str(context.original_exception))
    if found is None:
        return
    table = found.group(1)
    verb = (context.statement or "").split(None, 1)[0].upper() if context.statement else "a change"
    raise AppendOnlyError(
        f"{table}: rows are append-only, the database refused {verb}; write a new row instead "
        "(label -1 withdraws a source's opinion)"
    ) from context.sqlalchemy_exception


def make_engine(url: str, echo: bool = False) -> Engine:
    """The SQLAlchemy engine of a store URL; every part of labelloop opens its database through this.

    ``postgresql://`` means psycopg 3; an SQLite file's folder is created; SQLite connections get
    WAL, a busy time-out and foreign keys; the append-only triggers surface as :class:`AppendOnlyError`.
    """
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, echo=echo, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "handle_error", _append_only_error)
    return engine


def migrate(engine: Engine) -> None:
    """Bring ``engine``'s database to the newest schema revision (idempotent; the one way tables are made)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def insert_ignoring(engine: Engine, table: Any, index: list[str] | None = None) -> Any:
    """An INSERT that skips rows conflicting on ``index`` (any unique key when None): a race with another writer."""
    if engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:  # pragma: no cover - only sqlite and postgresql are supported
        return insert(table)
    return dialect_insert(table).on_conflict_do_nothing(index_elements=index)


def encode_probs(probs: Sequence[float] | np.ndarray | None) -> bytes | None:
    if probs is None:
        return None
    return np.asarray(probs, dtype=np.float32).tobytes()


def decode_probs(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32)


class Store:
    """The dataset store behind one database URL.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, ``sqlite:///path.db`` or ``postgresql+psycopg://...``.
    """

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        try:
            self.engine = make_engine(url, echo=echo)
        except Exception as exc:  # bad URL, missing driver
            raise StoreError(f"store {self._safe_url()}: cannot open ({exc})") from exc

    def _safe_url(self) -> str:
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<url>"

    def __repr__(self) -> str:
        return f"Store({self._safe_url()!r})"

    def __reduce__(self) -> tuple:
        # A store travels to another process (a Dask worker) as its URL; the engine is rebuilt there.
        return (Store, (self.url, bool(self.engine.echo)))

    def close(self) -> None:
        self.engine.dispose()

    # -- schema -------------------------------------------------------------------
    def create(self) -> "Store":
        """Bring the database to the newest schema revision (idempotent)."""
        try:
            migrate(self.engine)
        except (OperationalError, DBAPIError) as exc:
            raise StoreError(f"store {self._safe_url()}: cannot migrate the schema ({exc.orig})") from exc
        return self

    def revision(self) -> list[str]:
        """The schema revisions the database is at."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        return sorted(r[0] for r in rows)

    # -- runs and provenance ---------------------------------------------------------
    def start_run(self, kind: str, dataset: str | None = None, params: dict | None = None, run_id: str | None = None) -> str:
        """Record the start of a run and return its id."""
        run_id = run_id or uuid.uuid4().hex
        with self.engine.begin() as conn:
            exists = conn.execute(select(schema.runs.c.id).where(schema.runs.c.id == run_id)).first()
            if exists is None:
                conn.execute(
                    insert(schema.runs).values(
                        id=run_id, kind=kind, dataset=dataset, status="running", params=params, started_at=_now()
                    )
                )
        return run_id

    def finish_run(self, run_id: str, status: str = "completed", summary: dict | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(schema.runs)
                .where(schema.runs.c.id == run_id)
                .values(status=status, summary=summary, finished_at=_now())
            )

    def runs(self, limit: int = 20, kind: str | None = None) -> pd.DataFrame:
        query = select(schema.runs).order_by(schema.runs.c.started_at.desc()).limit(limit)
        if kind:
            query = query.where(schema.runs.c.kind == kind)
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all(), columns=list(schema.runs.c.keys()))

    def add_provenance(
        self, kind: str, name: str, uri: str | None = None, run_id: str | None = None, details: dict | None = None
    ) -> int:
        """Get or create the provenance row of one source (kind, name, uri)."""
        table = schema.provenance
        with self.engine.begin() as conn:
            query = select(table.c.id).where(table.c.kind == kind, table.c.name == name)
            query = query.where(table.c.uri.is_(None) if uri is None else table.c.uri == uri)
            found = conn.execute(query).scalar()
            if found is not None:
                return int(found)
            result = conn.execute(
                insert(table).values(kind=kind, name=name, uri=uri, run_id=run_id, details=details, created_at=_now())
            )
            return int(result.inserted_primary_key[0])

    # -- items ------------------------------------------------------------------------
    def add_items(
        self,
        dataset: str,
        items: Iterable[ItemIn],
        provenance_id: int | None = None,
        batch_size: int = _BATCH,
        connection: Any = None,
    ) -> AddItemsResult:
        """Add items; an item whose content hash is already stored is not added again.

        ``connection``: an open connection of this store's engine whose transaction the rows join
        (the crawler commits a page's items and its frontier state together); by default each
        batch is its own transaction.
        """
        result = AddItemsResult()
        table = schema.items
        for batch in _batches(items, batch_size):
            hashes = [item.identity() for item in batch]
            with (contextlib.nullcontext(connection) if connection is not None else self.engine.begin()) as conn:
                known = self._ids_by_hash(conn, dataset, hashes)
                now = _now()
                fresh: dict[str, dict[str, Any]] = {}
                for item, digest in zip(batch, hashes):
                    if digest in known or digest in fresh:
                        continue
                    fresh[digest] = dict(
                        dataset=dataset,
                        external_id=item.external_id,
                        modality=item.modality,
                        content_hash=digest,
                        uri=item.uri,
                        path=item.path,
                        text=item.text,
                        payload=item.payload,
                        meta=item.meta,
                        split=item.split,
                        provenance_id=provenance_id,
                        created_at=now,
                    )
                if fresh:
                    conn.execute(insert_ignoring(self.engine, table, ["dataset", "content_hash"]), list(fresh.values()))
                    known.update(self._ids_by_hash(conn, dataset, list(fresh)))
            result.added += len(fresh)
            result.existing += len(batch) - len(fresh)
            result.ids.extend(known[h] for h in hashes)
        return result

    @staticmethod
    def _ids_by_hash(conn: Any, dataset: str, hashes: list[str]) -> dict[str, int]:
        table = schema.items
        rows = conn.execute(
            select(table.c.content_hash, table.c.id).where(
                table.c.dataset == dataset, table.c.content_hash.in_(set(hashes))
            )
        )
        return {digest: int(item_id) for digest, item_id in rows}

    def items(self, dataset: str, columns: Sequence[str] | None = None, ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Items of a dataset as a DataFrame ordered by id (payloads left out unless asked for)."""
        table = schema.items
        names = list(columns) if columns else [c for c in table.c.keys() if c != "payload"]
        unknown = [c for c in names if c not in table.c]
        if unknown:
            raise StoreError(f"items: unknown column(s) {unknown}; expected some of {list(table.c.keys())}")
        query = select(*[table.c[c] for c in names]).where(table.c.dataset == dataset).order_by(table.c.id)
        frames = []
        with self.engine.connect() as conn:
            if ids is None:
                frames.append(pd.DataFrame(conn.execute(query).all(), columns=names))
            else:
                ids = [int(i) for i in ids]
                for start in range(0, len(ids), _BATCH):
                    chunk = query.where(table.c.id.in_(ids[start : start + _BATCH]))
                    frames.append(pd.DataFrame(conn.execute(chunk).all(), columns=names))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=names)

    def count_items(self, dataset: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(schema.items.c.dataset == dataset)).scalar())

    def payloads(self, ids: Sequence[int]) -> list[bytes | None]:
        """Payload bytes of the given items, in the given order."""
        table = schema.items
        found: dict[int, bytes | None] = {}
        ids = [int(i) for i in ids]
        with self.engine.connect() as conn:
            for start in range(0, len(ids), _BATCH):
                chunk = ids[start : start + _BATCH]
                for item_id, payload in conn.execute(select(table.c.id, table.c.payload).where(table.c.id.in_(chunk))):
                    found[int(item_id)] = payload
        missing = [i for i in ids if i not in found]
        if missing:
            raise StoreError(f"items {missing[:5]}: not in the store")
        return [found[i] for i in ids]

    # -- labels -----------------------------------------------------------------------
    def add_labels(self, rows: Iterable[LabelIn], batch_size: int = 10_000) -> int:
        """Append label rows; rows whose ``dedupe_key`` is already stored are skipped.

        Returns the number of rows written. Labels are never updated or deleted.
        """
        written = 0
        table = schema.labels
        for batch in _batches(rows, batch_size):
            now = _now()
            values = []
            for row in batch:
                if row.kind not in LABEL_KINDS:
                    raise StoreError(f"label for item {row.item_id}: unknown kind {row.kind!r}; expected one of {LABEL_KINDS}")
                if row.label < -1:
                    raise StoreError(f"label for item {row.item_id}: class id must be >= -1 (got {row.label})")
                values.append(
                    dict(
                        item_id=int(row.item_id),
                        label=int(row.label),
                        kind=row.kind,
                        source=row.source,
                        confidence=None if row.confidence is None else float(row.confidence),
                        probs=encode_probs(row.probs),
                        run_id=row.run_id,
                        dedupe_key=row.dedupe_key,
                        created_at=now,
                    )
                )
            with self.engine.begin() as conn:
                keys = {v["dedupe_key"] for v in values if v["dedupe_key"] is not None}
                if keys:
                    stored = set(conn.execute(select(table.c.dedupe_key).where(table.c.dedupe_key.in_(keys))).scalars())
                    seen: set[str] = set()
                    kept = []
                    for v in values:
                        key = v["dedupe_key"]
                        if key is None or (key not in stored and key not in seen):
                            kept.append(v)
                            if key is not None:
                                seen.add(key)
                    values = kept
                if values:
                    try:
                        conn.execute(insert_ignoring(self.engine, table, ["dedupe_key"]), values)
                    except DBAPIError as exc:
                        raise StoreError(f"labels: cannot append {len(values)} rows ({exc.orig})") from exc
            written += len(values)
        return written

    def labels(self, dataset: str, kinds: Sequence[str] | None = None, decode: bool = True) -> pd.DataFrame:
        """All label rows of a dataset (oldest first), probabilities decoded to arrays."""
        labels, items = schema.labels, schema.items
        query = (
            select(labels)
            .join(items, items.c.id == labels.c.item_id)
            .where(items.c.dataset == dataset)
            .order_by(labels.c.id)
        )
        if kinds:
            query = query.where(labels.c.kind.in_(list(kinds)))
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=list(labels.c.keys()))
        if decode and len(frame):
            frame["probs"] = [decode_probs(b) for b in frame["probs"]]
        return frame

    def standing(
        self,
        dataset: str,
        kinds: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        *,
        per: str = "source",
        decode: bool = True,
    ) -> pd.DataFrame:
        """The standing opinions of a dataset: per (item, kind, source) its newest row, retractions applied.

        The one query every stage reads opinions through (crowd votes, gold anchors, standing
        pseudo-labels, the newest model predictions): a later row of the same source replaces
        its earlier one, and a row with label -1 withdraws it, so a withdrawn opinion never comes back.

        Parameters
        ----------
        dataset : str
        kinds : sequence of str, default=None
            Source kinds to read (``LABEL_KINDS`` when None).
        sources : sequence of str, default=None
            Only these source names (all when None).
        per : {"source", "item"}, default="source"
            ``"item"`` keeps, of each item's standing opinions, only the newest one (whatever its source).
        decode : bool, default=True
            Decode stored class probabilities to arrays.

        Returns
        -------
        DataFrame with the columns of :meth:`labels`, one row per standing opinion, oldest first.
        """
        kinds = list(LABEL_KINDS if kinds is None else kinds)
        unknown = [k for k in kinds if k not in LABEL_KINDS]
        if unknown:
            raise ValueError(f"standing: unknown kind {unknown[0]!r}; expected some of {LABEL_KINDS}")
        frame = standing_frame(self.engine, dataset, kinds, None if sources is None else list(sources), per)
        if decode and len(frame):
            frame["probs"] = [decode_probs(b) for b in frame["probs"]]
        return frame

    def count_labels(self, dataset: str | None = None) -> int:
        labels, items = schema.labels, schema.items
        query = select(func.count()).select_from(labels)
        if dataset is not None:
            query = query.join(items, items.c.id == labels.c.item_id).where(items.c.dataset == dataset)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar())

    def label_counts(self, dataset: str) -> pd.DataFrame:
        """Rows per (kind, label), retractions included as label -1."""
        labels, items = schema.labels, schema.items
        query = (
            select(labels.c.kind, labels.c.label, func.count().label("rows"))
            .join(items, items.c.id == labels.c.item_id)
            .where(items.c.dataset == dataset)
            .group_by(labels.c.kind, labels.c.label)
            .order_by(labels.c.kind, labels.c.label)
        )
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).all(), columns=["kind", "label", "rows"])

    def resolve(
        self, dataset: str, n_classes: int, precedence: Sequence[str] | None = None, chunk_rows: int = 200_000
    ) -> Resolution:
        """Each item's training label by source precedence; see :mod:`labelloop.store.resolve`."""
        return resolve_labels(self.engine, dataset, n_classes, list(precedence or DEFAULT_PRECEDENCE), chunk_rows)

    # -- annotation tasks --------------------------------------------------------------
    def add_tasks(self, tasks: Iterable[TaskIn]) -> list[int]:
        """Queue items for labeling; an open task for the same (item, queue, annotator) is reused."""
        table = schema.annotation_tasks
        ids: list[int] = []
        with self.engine.begin() as conn:
            for task in tasks:
                if task.state not in TASK_STATES:
                    raise StoreError(f"task for item {task.item_id}: unknown state {task.state!r}; expected one of {TASK_STATES}")
                query = select(table.c.id).where(
                    table.c.item_id == task.item_id,
                    table.c.queue == task.queue,
                    table.c.state.in_(("queued", "pushed")),
                )
                query = query.where(
                    table.c.annotator.is_(None) if task.annotator is None else table.c.annotator == task.annotator
                )
                found = conn.execute(query).scalar()
                if found is not None:
                    ids.append(int(found))
                    continue
                now = _now()
                result = conn.execute(
                    insert(table).values(
                        item_id=task.item_id,
                        queue=task.queue,
                        project=task.project,
                        annotator=task.annotator,
                        external_id=task.external_id,
                        state=task.state,
                        is_gold=int(task.is_gold),
                        priority=task.priority,
                        run_id=task.run_id,
                        details=task.details,
                        created_at=now,
                        updated_at=now,
                    )
                )
                ids.append(int(result.inserted_primary_key[0]))
        return ids

    def update_tasks(self, ids: Sequence[int], **values: Any) -> None:
        """Change state / project / external id of tasks (tasks, unlike labels, have a lifecycle)."""
        if "state" in values and values["state"] not in TASK_STATES:
            raise StoreError(f"tasks: unknown state {values['state']!r}; expected one of {TASK_STATES}")
        table = schema.annotation_tasks
        with self.engine.begin() as conn:
            for start in range(0, len(ids), _BATCH):
                chunk = [int(i) for i in ids[start : start + _BATCH]]
                conn.execute(update(table).where(table.c.id.in_(chunk)).values(updated_at=_now(), **values))

    def tasks(self, dataset: str | None = None, queue: str | None = None, state: str | Sequence[str] | None = None) -> pd.DataFrame:
        table, items = schema.annotation_tasks, schema.items
        query = select(table).order_by(table.c.id)
        if dataset is not None:
            query = query.join(items, items.c.id == table.c.item_id).where(items.c.dataset == dataset)
        if queue is not None:
            query = query.where(table.c.queue == queue)
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            query = query.where(table.c.state.in_(states))
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).all(), columns=list(table.c.keys()))
