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

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.engine import Engine

from labelloop.store import insert_ignoring, make_engine
from labelloop.store.schema import crawl_frontier, crawl_image_hashes

__all__ = ["Frontier", "FrontierEntry", "FrontierUpdate"]


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


class Frontier:
    """The frontier of one crawl (a site name) in a database.

    Parameters
    ----------
    engine_or_url : Engine or str
        The store's database, brought to the newest schema (:func:`labelloop.store.migrate`).
    crawl : str
        Crawl name; rows of other crawls are never touched.
    """

    def __init__(self, engine_or_url: Engine | str, crawl: str) -> None:
        self.engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
        self.crawl = crawl

    def _insert_ignore(self, table: Table) -> Any:
        return insert_ignoring(self.engine, table)

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
                conn.execute(self._insert_ignore(crawl_frontier), rows)

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
                conn.execute(self._insert_ignore(crawl_frontier), rows)
            if image_hashes:
                conn.execute(
                    self._insert_ignore(crawl_image_hashes),
                    [{"sha256": s, "phash": f"{p:016x}"} for s, p in image_hashes],
                )
            if updates:
                statement = (
                    update(crawl_frontier)
                    .where(crawl_frontier.c.crawl == self.crawl, crawl_frontier.c.url == bindparam("u_url"))
                    .values(
                        state=bindparam("u_state"),
                        status=bindparam("u_status"),
                        reason=bindparam("u_reason"),
                        error=bindparam("u_error"),
                        attempts=crawl_frontier.c.attempts + bindparam("u_attempts"),
                        etag=func.coalesce(bindparam("u_etag"), crawl_frontier.c.etag),
                        last_modified=func.coalesce(bindparam("u_last_modified"), crawl_frontier.c.last_modified),
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
        t = crawl_frontier
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
            return set(conn.execute(select(crawl_frontier.c.url).where(crawl_frontier.c.crawl == self.crawl)).scalars())

    def requeue_failed(self) -> int:
        """Give every failed or skipped URL another chance (a server may have recovered, robots.txt changed)."""
        t = crawl_frontier
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t).where(t.c.crawl == self.crawl, t.c.state.in_(("failed", "skipped"))).values(state="pending")
            )
            return int(result.rowcount or 0)

    def requeue_finished(self) -> int:
        """Queue every done page again (validators kept, for conditional requests). Stored images are
        not fetched again: their bytes are identified by content."""
        t = crawl_frontier
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t).where(t.c.crawl == self.crawl, t.c.state == "done", t.c.kind == "page").values(state="pending")
            )
            return int(result.rowcount or 0)

    def counts(self) -> dict[str, int]:
        """Rows per state."""
        t = crawl_frontier
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.state, func.count()).where(t.c.crawl == self.crawl).group_by(t.c.state))
            return {state: int(n) for state, n in rows}

    def image_hashes(self) -> list[tuple[str, int]]:
        with self.engine.connect() as conn:
            return [(s, int(p, 16)) for s, p in conn.execute(select(crawl_image_hashes.c.sha256, crawl_image_hashes.c.phash))]

    def entries(self) -> list[dict[str, Any]]:
        """Every row of this crawl (for reports and tests)."""
        t = crawl_frontier
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(t).where(t.c.crawl == self.crawl).order_by(t.c.id))]
