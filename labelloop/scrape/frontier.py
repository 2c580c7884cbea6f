"""The crawl frontier, kept in the store's database so a killed crawl resumes where it stopped.

One row per URL per crawl (``UNIQUE(crawl, url)``): a URL is never queued twice,
however many pages link to it. Rows move ``pending`` -> ``done`` | ``failed`` |
``skipped``; a page's row becomes ``done`` in the same transaction that stores its items and
queues its links, and the crawler takes no new URL into a worker before the last
one's transaction committed. A crawl SIGKILLed at any instant therefore finds on
restart every page either done (items stored, links queued) or still pending, and
at most one page per worker (the concurrency) is fetched again.

ETag and Last-Modified are kept per URL for conditional re-crawls.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine

__all__ = ["Frontier", "FrontierEntry", "FrontierUpdate", "metadata", "frontier_table", "image_hash_table"]

metadata = MetaData()

frontier_table = Table(
    "crawl_frontier",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("crawl", String(200), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("kind", String(8), nullable=False),  # page | image
    Column("depth", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False, default="pending"),  # pending | done | failed | skipped
    Column("status", Integer),
    Column("reason", String(64)),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("etag", String(512)),
    Column("last_modified", String(64)),
    Column("referer", String(2048)),
    Column("meta", Text),
    Column("run_id", String(64)),
    Column("updated_at", Float),
    UniqueConstraint("crawl", "url", name="uq_crawl_frontier_crawl_url"),
)

# pHashes of stored images, so near-duplicate flags survive a restart.
image_hash_table = Table(
    "crawl_image_hashes",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("phash", String(16), nullable=False),
)


@dataclass
class FrontierEntry:
    url: str
    kind: str
    depth: int
    etag: str | None = None
    last_modified: str | None = None
    referer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class FrontierUpdate:
    """The outcome of one URL, written with the links it produced."""

    url: str
    state: str
    status: int | None = None
    reason: str | None = None
    error: str | None = None
    attempts: int = 0
    etag: str | None = None
    last_modified: str | None = None


def sqlite_pragmas(engine: Engine) -> None:
    """WAL, NORMAL sync and a busy time-out on every new SQLite connection of ``engine``."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:  # pragma: no cover - trivial
        cursor = dbapi_connection.cursor()
        # WAL lets the flow read progress while a crawl writes; NORMAL sync is still crash-safe in WAL.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


class Frontier:
    """The frontier of one crawl (a site name) in a database.

    Parameters
    ----------
    engine_or_url : Engine or str
        The store's database.
    crawl : str
        Crawl name; rows of other crawls are never touched.
    """

    def __init__(self, engine_or_url: Engine | str, crawl: str) -> None:
        if isinstance(engine_or_url, str):
            engine_or_url = create_engine(engine_or_url)
            sqlite_pragmas(engine_or_url)
        self.engine = engine_or_url
        self.crawl = crawl

    @staticmethod
    def create_tables(engine_or_url: Engine | str) -> None:
        """Create the frontier tables when missing (the Alembic revision does the same on the store)."""
        engine = create_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
        metadata.create_all(engine)

    def _insert_ignore(self, table: Table) -> Any:
        if self.engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:  # pragma: no cover - only the two supported backends
            raise NotImplementedError(self.engine.dialect.name)
        return insert(table).on_conflict_do_nothing()

    def _rows(self, entries: Iterable[FrontierEntry]) -> list[dict[str, Any]]:
        now = time.time()
        return [
            {
                "crawl": self.crawl,
                "url": e.url,
                "kind": e.kind,
                "depth": e.depth,
                "state": "pending",
                "attempts": 0,
                "referer": e.referer,
                "meta": json.dumps(e.meta, sort_keys=True) if e.meta else None,
                "updated_at": now,
            }
            for e in entries
        ]

    def add(self, entries: Iterable[FrontierEntry]) -> None:
        rows = self._rows(entries)
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self._insert_ignore(frontier_table), rows)

    def record(
        self,
        updates: list[FrontierUpdate],
        new: list[FrontierEntry],
        run_id: str | None = None,
        image_hashes: list[tuple[str, int]] | None = None,
        connection: Any = None,
    ) -> None:
        """In one transaction: queue ``new`` URLs (known ones are ignored) and finish ``updates``.

        ``connection``: an open transaction to join (the crawler's, which also stores the items).
        """
        rows = self._rows(new)
        now = time.time()
        with (contextlib.nullcontext(connection) if connection is not None else self.engine.begin()) as conn:
            if rows:
                conn.execute(self._insert_ignore(frontier_table), rows)
            if image_hashes:
                conn.execute(
                    self._insert_ignore(image_hash_table),
                    [{"sha256": s, "phash": f"{p:016x}"} for s, p in image_hashes],
                )
            if updates:
                statement = (
                    update(frontier_table)
                    .where(frontier_table.c.crawl == self.crawl, frontier_table.c.url == bindparam("u_url"))
                    .values(
                        state=bindparam("u_state"),
                        status=bindparam("u_status"),
                        reason=bindparam("u_reason"),
                        error=bindparam("u_error"),
                        attempts=frontier_table.c.attempts + bindparam("u_attempts"),
                        etag=func.coalesce(bindparam("u_etag"), frontier_table.c.etag),
                        last_modified=func.coalesce(bindparam("u_last_modified"), frontier_table.c.last_modified),
                        run_id=run_id,
                        updated_at=now,
                    )
                )
                conn.execute(
                    statement,
                    [
                        {
                            "u_url": u.url,
                            "u_state": u.state,
                            "u_status": u.status,
                            "u_reason": u.reason,
                            "u_error": u.error,
                            "u_attempts": u.attempts,
                            "u_etag": u.etag,
                            "u_last_modified": u.last_modified,
                        }
                        for u in updates
                    ],
                )

    def pending(self) -> list[FrontierEntry]:
        """Pending URLs in discovery order (breadth first)."""
        t = frontier_table
        query = (
            select(t.c.url, t.c.kind, t.c.depth, t.c.etag, t.c.last_modified, t.c.referer, t.c.meta)
            .where(t.c.crawl == self.crawl, t.c.state == "pending")
            .order_by(t.c.id)
        )
        with self.engine.connect() as conn:
            return [
                FrontierEntry(r.url, r.kind, r.depth, r.etag, r.last_modified, r.referer, json.loads(r.meta) if r.meta else {})
                for r in conn.execute(query)
            ]

    def known_urls(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(frontier_table.c.url).where(frontier_table.c.crawl == self.crawl)).scalars())

    def requeue_failed(self) -> int:
        """Give every failed or skipped URL another chance (a server may have recovered, robots.txt changed)."""
        t = frontier_table
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t).where(t.c.crawl == self.crawl, t.c.state.in_(("failed", "skipped"))).values(state="pending")
            )
            return int(result.rowcount or 0)

    def requeue_finished(self) -> int:
        """Queue every done page again (validators kept, for conditional requests). Stored images are
        not fetched again: their bytes are identified by content."""
        t = frontier_table
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t).where(t.c.crawl == self.crawl, t.c.state == "done", t.c.kind == "page").values(state="pending")
            )
            return int(result.rowcount or 0)

    def counts(self) -> dict[str, int]:
        """Rows per state."""
        t = frontier_table
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.state, func.count()).where(t.c.crawl == self.crawl).group_by(t.c.state))
            return {state: int(n) for state, n in rows}

    def image_hashes(self) -> list[tuple[str, int]]:
        with self.engine.connect() as conn:
            return [(s, int(p, 16)) for s, p in conn.execute(select(image_hash_table.c.sha256, image_hash_table.c.phash))]

    def entries(self) -> list[dict[str, Any]]:
        """Every row of this crawl (for reports and tests)."""
        t = frontier_table
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(t).where(t.c.crawl == self.crawl).order_by(t.c.id))]
