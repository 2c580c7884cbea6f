"""The crawler: frontier -> robots -> polite fetch or render -> extract -> items -> store.

One :class:`Crawler` crawls one configured site. Pages and images are fetched by
a pool of asyncio workers over one pooled httpx client; every request passes the
site's robots.txt and the politeness gates (a rendered page's own sub-requests too:
the browser goes through :mod:`labelloop.scrape.proxy`).

Each page is parsed once (lxml; see :mod:`labelloop.scrape.extract`), inline or in a
process pool once the loop's core is saturated. Outcomes are committed by one writer
in group commits: a page's items, its frontier state and the links it queued share a
transaction, and a worker takes its next URL only after that transaction committed,
so a crawl killed at any instant fetches again at most one page per worker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sqlalchemy.engine import Engine

from labelloop.config import CollectConfig, SiteConfig
from labelloop.exceptions import CrawlError, RobotsDisallowed
from labelloop.scrape.extract import Extractor, LinkRules
from labelloop.scrape.fetch import Fetcher, FetchResult, make_client
from labelloop.scrape.frontier import Frontier, FrontierEntry, FrontierUpdate
from labelloop.scrape.items import CollectedItem, ImageStore
from labelloop.scrape.parsepool import ParsePool
from labelloop.scrape.politeness import Politeness
from labelloop.scrape.robots import RobotsCache
from labelloop.scrape.urls import ALLOWED_SCHEMES, default_scope, in_scope, normalize_url, origin, scheme_of
from labelloop.store import content_hash, make_engine, migrate

__all__ = ["Crawler", "CrawlReport", "ItemSink"]

# Receives the items of a batch of pages and the open connection of the transaction that records
# those pages in the frontier (a sink writing to the same database joins it); returns (added, already stored).
ItemSink = Callable[[list[CollectedItem], Any], tuple[int, int]]

_HTML_TYPES = ("text/html", "application/xhtml+xml", "")
_MAX_ERRORS_KEPT = 200


@dataclass
class CrawlReport:
    """What one crawl run did; every count is per run."""

    crawl: str
    run_id: str
    resumed: bool = False
    pages_fetched: int = 0
    pages_rendered: int = 0
    pages_not_modified: int = 0
    images_fetched: int = 0
    items_found: int = 0
    items_added: int = 0
    items_existing: int = 0
    near_duplicates: int = 0
    retries: int = 0
    pages_parsed: int = 0
    parse_cpu_seconds: float = 0.0  # CPU time of parsing and extraction (inline and in pool workers)
    pages_parsed_in_pool: int = 0
    subrequests: Counter = field(default_factory=Counter)  # rendered pages' own requests: outcome -> count
    skipped: Counter = field(default_factory=Counter)  # reason -> URLs not fetched on purpose
    failed: Counter = field(default_factory=Counter)  # reason -> URLs that failed
    links_skipped: Counter = field(default_factory=Counter)  # reason -> links not followed
    errors: list[str] = field(default_factory=list)
    unmatched: dict[str, list[str]] = field(default_factory=dict)  # page URL -> rules/selectors matching nothing
    hosts: dict[str, dict[str, float]] = field(default_factory=dict)
    pending_left: int = 0
    started_at: float = 0.0
    elapsed: float = 0.0

    @property
    def pages_per_second(self) -> float:
        return self.pages_fetched / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def elapsed_so_far(self) -> float:
        return self.elapsed or (time.time() - self.started_at if self.started_at else 0.0)

    @property
    def parse_cpu_ms_per_page(self) -> float:
        return 1000 * self.parse_cpu_seconds / self.pages_parsed if self.pages_parsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "crawl": self.crawl,
            "run_id": self.run_id,
            "resumed": self.resumed,
            "pages_fetched": self.pages_fetched,
            "pages_rendered": self.pages_rendered,
            "pages_not_modified": self.pages_not_modified,
            "images_fetched": self.images_fetched,
            "items_found": self.items_found,
            "items_added": self.items_added,
            "items_existing": self.items_existing,
            "near_duplicates": self.near_duplicates,
            "retries": self.retries,
            "pages_parsed": self.pages_parsed,
            "parse_cpu_ms_per_page": round(self.parse_cpu_ms_per_page, 3),
            "pages_parsed_in_pool": self.pages_parsed_in_pool,
            "subrequests": dict(self.subrequests),
            "skipped": dict(self.skipped),
            "failed": dict(self.failed),
            "links_skipped": dict(self.links_skipped),
            "errors": list(self.errors),
            "unmatched": dict(self.unmatched),
            "hosts": dict(self.hosts),
            "pending_left": self.pending_left,
            "elapsed": self.elapsed,
            "pages_per_second": self.pages_per_second,
        }


@dataclass
class _Batch:
    """What the workers produced since the last commit; ``committed`` resolves when it is durable."""

    committed: asyncio.Future
    items: list[CollectedItem] = field(default_factory=list)
    updates: list[FrontierUpdate] = field(default_factory=list)
    new: list[FrontierEntry] = field(default_factory=list)
    image_hashes: list[tuple[str, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.updates) + len(self.new) + len(self.items)


class Crawler:
    """Crawl one site into an item sink, politely and resumably.

    Parameters
    ----------
    site : SiteConfig
        Start URLs, scope, item and link rules, JavaScript pages.
    collect : CollectConfig
        User agent, politeness, fetch and render settings.
    db : str or Engine
        The store's database: the frontier lives there.
    data_dir : path
        Images go under ``<data_dir>/images``.
    sink : callable or None
        ``sink(items, connection) -> (added, existing)``; ``None`` keeps nothing but the frontier
        (dry runs, benchmarks).
    run_id : str or None
        Id of this run, kept in provenance; a new UUID by default.
    on_progress : callable or None
        Called with the :class:`CrawlReport` after each commit (at most ``progress_every`` s apart).
    progress_every : float, default=0.2
    """

    def __init__(
        self,
        site: SiteConfig,
        collect: CollectConfig,
        db: str | Engine,
        data_dir: str | Path,
        sink: ItemSink | None = None,
        run_id: str | None = None,
        on_progress: Callable[[CrawlReport], None] | None = None,
        progress_every: float = 0.2,
    ) -> None:
        self.site = site
        self.collect = collect
        self.engine = make_engine(db) if isinstance(db, str) else db
        self.data_dir = Path(data_dir)
        self.sink = sink
        self.run_id = run_id or uuid.uuid4().hex
        self.on_progress = on_progress
        self.progress_every = progress_every
        self.scope = site.scope or default_scope(site.start_urls)
        self.link_rules = LinkRules.from_config(site.follow, self.scope)
        self.extractor = Extractor(site.items, self.link_rules)
        self._js = [re.compile(p) for p in site.javascript]

    # -- public -----------------------------------------------------------------------------------
    def run(self) -> CrawlReport:
        """Crawl until the frontier is empty (or ``max_pages``); blocking."""
        return asyncio.run(self.crawl())

    async def crawl(self) -> CrawlReport:
        report = CrawlReport(self.site.name, self.run_id, started_at=time.time())
        migrate(self.engine)  # the store's migrations make the frontier tables (idempotent)
        frontier = Frontier(self.engine, self.site.name)
        # A crawl killed (or stopped by max_pages) midway left pending URLs: this run resumes it.
        report.resumed = bool(frontier.pending())
        # Start URLs are offered every run (known ones are ignored): a start URL added to the config
        # later is crawled, and a finished crawl does not hide it.
        starts = [normalize_url(u) for u in self.site.start_urls]
        frontier.add(FrontierEntry(u, "page", 0) for u in dict.fromkeys(starts))
        frontier.requeue_failed()
        if not report.resumed and self.collect.recrawl:
            frontier.requeue_finished()
        known = frontier.known_urls()
        pending = frontier.pending()
        images = ImageStore(self.data_dir / "images", self.collect.near_duplicate_distance)
        for sha, phash in frontier.image_hashes():
            images.known(sha, phash)

        p = self.collect.politeness
        politeness = Politeness(
            p.per_host_concurrency, p.max_concurrency, p.min_delay, p.global_rate, p.failure_backoff, p.max_backoff
        )
        f = self.collect.fetch
        client = make_client(self.collect.user_agent, f.timeout, f.http2, pool=max(p.max_concurrency, 8))
        fetcher = Fetcher(
            client, politeness, f.retries, f.backoff_base, f.backoff_max, f.max_bytes, f.max_redirects, p.max_retry_after
        )
        parser = ParsePool(self.extractor, list(self.site.items), self.link_rules, self.collect.parse_workers)
        state = _CrawlState(self, frontier, report, politeness, fetcher, images, known, parser)
        state.robots = RobotsCache(state.fetch_robots)
        start = time.perf_counter()
        try:
            await state.run(pending)
        finally:
            await state.close_renderer()
            await client.aclose()
            parser.close()
            report.elapsed = time.perf_counter() - start
            report.retries = fetcher.retry_count
            report.parse_cpu_seconds = parser.cpu_seconds
            report.pages_parsed = parser.pages_inline + parser.pages_pooled
            report.pages_parsed_in_pool = parser.pages_pooled
            report.pending_left = frontier.counts().get("pending", 0)
            for host, gate in politeness.gates.items():
                report.hosts[host] = {
                    "requests": gate.stats.requests,
                    "failures": gate.stats.failures,
                    "rate_per_s": round(gate.stats.rate, 3),
                    "interval_s": gate.interval,
                    "gaps_under_interval": gate.stats.gaps_under_interval,
                }
        if self.on_progress is not None:
            self.on_progress(report)
        return report

    def needs_javascript(self, url: str) -> bool:
        return any(p.search(url) for p in self._js)


class _CrawlState:
    """Everything one run shares between its workers."""

    def __init__(
        self,
        crawler: Crawler,
        frontier: Frontier,
        report: CrawlReport,
        politeness: Politeness,
        fetcher: Fetcher,
        images: ImageStore,
        known: set[str],
        parser: ParsePool,
    ) -> None:
        self.crawler = crawler
        self.parser = parser
        self.site = crawler.site
        self.collect = crawler.collect
        self.frontier = frontier
        self.report = report
        self.politeness = politeness
        self.fetcher = fetcher
        self.images = images
        self.known = known
        self.robots: RobotsCache
        self.queue: asyncio.Queue[FrontierEntry] = asyncio.Queue()
        self.batch: _Batch
        self.batch_ready: asyncio.Event
        self.fatal: BaseException | None = None
        self.pages_started = 0  # pages requested (or rendered) this run: what max_pages counts
        self.renderer: Any = None
        self.proxy: Any = None
        self.render_slots: asyncio.Semaphore | None = None
        self._last_progress = 0.0
        self._robots_applied: set[str] = set()

    # -- robots -----------------------------------------------------------------------------------
    async def fetch_robots(self, robots_url: str) -> tuple[int, str]:
        async def same_origin(target: str) -> str | None:
            return None if origin(target) == origin(robots_url) else "redirect_out_of_scope"

        result = await self.fetcher.fetch(robots_url, redirect_check=same_origin)
        if result.status is None:
            raise CrawlError(result.error or f"{robots_url}: no answer")
        return result.status, result.text() if result.ok else ""

    async def check_robots(self, url: str) -> None:
        """Raise RobotsDisallowed unless the site's robots.txt lets us fetch ``url``; its delays apply to the host."""
        rules = await self.robots.get(url)
        host = origin(url)
        if host not in self._robots_applied:
            self._robots_applied.add(host)
            ua = self.collect.user_agent
            self.politeness.gate(host).robots_delay = max(rules.crawl_delay(ua), rules.request_rate(ua))
        rules.check(url, self.collect.user_agent)

    def skip_disallowed(self, entry: FrontierEntry, exc: RobotsDisallowed) -> None:
        """A URL robots.txt forbids is skipped; a start URL (the user asked for it by name) is also reported."""
        self.skip(entry, "robots", str(exc))
        if entry.depth == 0 and entry.kind == "page" and len(self.report.errors) < _MAX_ERRORS_KEPT:
            self.report.errors.append(f"start URL {exc.url} not fetched: {exc.reason}")

    async def redirect_check(self, target: str) -> str | None:
        if scheme_of(target) not in ALLOWED_SCHEMES:
            return "bad_scheme"
        if not in_scope(target, self.crawler.scope):
            return "redirect_out_of_scope"
        try:
            await self.check_robots(target)
        except RobotsDisallowed:
            return "robots"
        if target in self.known:
            # Another frontier URL already is (or will be) this page: fetching it twice adds nothing.
            return "redirect_to_known"
        self.known.add(target)
        return None

    async def image_redirect_check(self, target: str) -> str | None:
        # Images may live on another host (a CDN): any http(s) host whose robots.txt allows it.
        if scheme_of(target) not in ALLOWED_SCHEMES:
            return "bad_scheme"
        try:
            await self.check_robots(target)
        except RobotsDisallowed:
            return "robots"
        return None

    # -- main loop ----------------------------------------------------------------------------------
    async def run(self, pending: list[FrontierEntry]) -> None:
        loop = asyncio.get_running_loop()
        self.batch = _Batch(loop.create_future())
        self.batch_ready = asyncio.Event()
        for entry in pending:
            self.queue.put_nowait(entry)
        n_workers = self.collect.politeness.max_concurrency
        workers = [asyncio.create_task(self.worker()) for _ in range(n_workers)]
        writer = asyncio.create_task(self.writer())
        drained = asyncio.create_task(self.queue.join())
        try:
            await asyncio.wait([drained, writer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*workers, drained):
                task.cancel()
            await asyncio.gather(*workers, drained, return_exceptions=True)
            if not writer.done():
                self.batch_ready.set()
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
        if self.fatal is not None:
            raise CrawlError(f"crawl {self.site.name!r}: writing to the store failed ({self.fatal})") from self.fatal

    async def worker(self) -> None:
        while True:
            entry = await self.queue.get()
            try:
                try:
                    if entry.kind == "page":
                        recorded = await self.page(entry)
                    else:
                        recorded = await self.image(entry)
                except Exception as exc:  # noqa: BLE001 - one bad URL never stops a crawl; it is counted
                    self.fail(entry, "internal_error", f"{entry.url}: {type(exc).__name__}: {exc}", None, 0)
                    recorded = True
                if recorded:
                    # The next URL only once this one's outcome is durable: a kill refetches <= one page per worker.
                    await self.commit()
            finally:
                self.queue.task_done()

    async def commit(self) -> None:
        batch = self.batch
        self.batch_ready.set()
        await asyncio.shield(batch.committed)

    async def writer(self) -> None:
        """Group commit: whatever the workers produced while the last write ran is one transaction."""
        loop = asyncio.get_running_loop()
        while True:
            await self.batch_ready.wait()
            self.batch_ready.clear()
            batch, self.batch = self.batch, _Batch(loop.create_future())
            if not len(batch):
                batch.committed.set_result(None)
                continue
            try:
                await asyncio.to_thread(self._write, batch)
            except Exception as exc:  # noqa: BLE001 - the crawl stops and says why (see run)
                self.fatal = exc
                batch.committed.set_exception(exc)
                batch.committed.exception()  # retrieved: no "never retrieved" warning
                self.batch.committed.cancel()
                return
            batch.committed.set_result(None)
            self.progress()

    def progress(self, force: bool = False) -> None:
        callback = self.crawler.on_progress
        now = time.monotonic()
        if callback is not None and (force or now - self._last_progress >= self.crawler.progress_every):
            self._last_progress = now
            callback(self.report)

    def _write(self, batch: _Batch) -> None:
        # One transaction: the pages' items, their frontier state and the links they queued.
        with self.crawler.engine.begin() as conn:
            if batch.items and self.crawler.sink is not None:
                added, existing = self.crawler.sink(batch.items, conn)
                self.report.items_added += added
                self.report.items_existing += existing
            self.frontier.record(batch.updates, batch.new, self.crawler.run_id, batch.image_hashes, connection=conn)

    # -- outcomes -----------------------------------------------------------------------------------
    def fail(self, entry: FrontierEntry, reason: str, message: str, status: int | None, attempts: int) -> None:
        self.report.failed[reason] += 1
        if len(self.report.errors) < _MAX_ERRORS_KEPT:
            self.report.errors.append(message)
        self.batch.updates.append(FrontierUpdate(entry.url, "failed", status, reason, message, attempts))

    def skip(self, entry: FrontierEntry, reason: str, message: str) -> None:
        self.report.skipped[reason] += 1
        self.batch.updates.append(FrontierUpdate(entry.url, "skipped", None, reason, message, 0))

    def provenance(self, url: str, status: int | None, fetched_at: float, **extra: Any) -> dict[str, Any]:
        return {
            "source_url": url,
            "fetched_at": dt.datetime.fromtimestamp(fetched_at, dt.timezone.utc).isoformat(),
            "crawl": self.site.name,
            "crawl_id": self.crawler.run_id,
            "http_status": status,
            **extra,
        }

    # -- pages ----------------------------------------------------------------------------------------
    async def page(self, entry: FrontierEntry) -> bool:
        """Crawl one page; ``False`` when it was left pending (``max_pages`` reached), else its outcome is batched."""
        url = entry.url
        if scheme_of(url) not in ALLOWED_SCHEMES:
            self.skip(entry, "bad_scheme", f"{url}: only http and https are fetched")
            return True
        if not in_scope(url, self.crawler.scope):
            # Queued under an earlier config whose scope or start URLs were wider.
            self.skip(entry, "out_of_scope", f"{url}: outside the crawl's scope {self.crawler.scope}")
            return True
        try:
            await self.check_robots(url)
        except RobotsDisallowed as exc:
            self.skip_disallowed(entry, exc)
            return True
        # max_pages counts pages requested: URLs skipped above (robots, scope) never use it up.
        limit = self.site.max_pages
        if limit is not None and self.pages_started >= limit:
            return False  # stays pending for the next run
        self.pages_started += 1
        rendered = self.crawler.needs_javascript(url)
        if rendered:
            html, status, fetched_at, final_url = await self.render(entry)
            if html is None:
                return True
            etag = last_modified = None
            attempts = 1
        else:
            result = await self.fetcher.fetch(
                url, etag=entry.etag, last_modified=entry.last_modified, redirect_check=self.redirect_check
            )
            if result.not_modified:
                self.report.pages_not_modified += 1
                self.batch.updates.append(FrontierUpdate(url, "done", 304, "not_modified", None, result.attempts))
                return True
            if not result.ok:
                reason = result.reason or "failed"
                if reason in ("robots", "redirect_to_known"):
                    self.skip(entry, reason, result.error or url)
                else:
                    self.fail(entry, reason, result.error or f"{url}: {reason}", result.status, result.attempts)
                return True
            if result.content_type not in _HTML_TYPES:
                self.report.pages_fetched += 1
                self.batch.updates.append(
                    FrontierUpdate(url, "done", result.status, "not_html", None, result.attempts, result.etag, result.last_modified)
                )
                return True
            html, status, fetched_at, final_url = result.text(), result.status, result.fetched_at, result.final_url
            etag, last_modified, attempts = result.etag, result.last_modified, result.attempts
        self.report.pages_fetched += 1
        extract = await self.parser.parse(html, final_url)
        # Everything below is synchronous: the page's outcome lands in one batch, committed together.
        if extract.unmatched:
            self.report.unmatched[url] = extract.unmatched
        self.report.links_skipped.update(extract.skipped_links)
        for raw in extract.items:
            self.report.items_found += 1
            if raw.kind == "text":
                text = raw.text or ""
                meta = self.provenance(url, status, fetched_at, rule=raw.rule, fields=raw.fields, rendered=rendered)
                self.batch.items.append(CollectedItem("text", content_hash(text), text=text, uri=url, metadata=meta))
            elif raw.image_url and raw.image_url not in self.known:
                self.known.add(raw.image_url)
                image = FrontierEntry(
                    raw.image_url, "image", entry.depth + 1, referer=url,
                    meta={"rule": raw.rule, "fields": raw.fields, "page": url, "page_status": status},
                )
                self.batch.new.append(image)
                self.queue.put_nowait(image)
        if entry.depth + 1 <= self.site.follow.max_depth:
            for link in extract.links:
                if link not in self.known:
                    self.known.add(link)
                    child = FrontierEntry(link, "page", entry.depth + 1, referer=url)
                    self.batch.new.append(child)
                    self.queue.put_nowait(child)
        self.batch.updates.append(FrontierUpdate(url, "done", status, None, None, attempts, etag, last_modified))
        return True

    async def render(self, entry: FrontierEntry) -> tuple[str | None, int | None, float, str]:
        from labelloop.scrape.proxy import GateProxy, browser_proxy_args
        from labelloop.scrape.render import DriverPool

        if self.renderer is None:
            # The browsers' own requests (the page itself, its scripts, images, XHR) go through a proxy on
            # this loop that applies robots.txt and the host gates, like the crawler's requests.
            self.proxy = GateProxy(
                self.check_robots, self.politeness, self.fetcher.client, self.collect.fetch.max_bytes,
                on_outcome=self.subrequest,
                in_scope=lambda url: in_scope(url, self.crawler.scope),
                origins={origin(u) for u in self.crawler.scope},
            )
            port = await self.proxy.start()
            r = self.collect.render
            self.renderer = DriverPool(
                r.pool_size, r.chromium, r.chromedriver, self.collect.user_agent,
                r.page_load_timeout, r.wait_timeout, r.poll_frequency, [*r.extra_args, *browser_proxy_args(port)],
            )
            # No more renders in flight than browsers: a waiting render would hold an executor thread.
            self.render_slots = asyncio.Semaphore(r.pool_size)
        assert self.render_slots is not None
        fetched_at = time.time()
        try:
            async with self.render_slots:
                result = await asyncio.to_thread(self.renderer.render, entry.url, self.site.wait_selector)
        except CrawlError as exc:
            self.fail(entry, "render", str(exc), None, 1)
            return None, None, fetched_at, entry.url
        final = normalize_url(result.final_url)
        if final != entry.url and not in_scope(final, self.crawler.scope):
            self.fail(entry, "redirect_out_of_scope", f"{entry.url}: browser ended on {final}, outside the scope", result.status, 1)
            return None, None, fetched_at, entry.url
        self.report.pages_rendered += 1
        return result.html, result.status, fetched_at, final

    def subrequest(self, kind: str, url: str) -> None:
        """Count a rendered page's own request; name the site's refused or failed ones in the errors."""
        self.report.subrequests[kind] += 1
        # blocked_foreign is mostly Chromium's background traffic (update, time services): counted, not listed.
        message = {"blocked_robots": "disallowed by robots.txt", "failed": "failed"}.get(kind)
        if message and len(self.report.errors) < _MAX_ERRORS_KEPT:
            self.report.errors.append(f"{url}: browser sub-request {message}")

    async def close_renderer(self) -> None:
        if self.renderer is not None:
            await asyncio.to_thread(self.renderer.close)
            self.renderer = None
        if self.proxy is not None:
            await self.proxy.close()
            self.proxy = None

    # -- images ---------------------------------------------------------------------------------------
    async def image(self, entry: FrontierEntry) -> bool:
        url = entry.url
        try:
            await self.check_robots(url)
        except RobotsDisallowed as exc:
            self.skip_disallowed(entry, exc)
            return True
        result: FetchResult = await self.fetcher.fetch(url, redirect_check=self.image_redirect_check)
        if not result.ok:
            self.fail(entry, result.reason or "failed", result.error or url, result.status, result.attempts)
            return True
        self.report.images_fetched += 1
        try:
            image, path, near = await asyncio.to_thread(self.images.save, result.content, url)
        except CrawlError as exc:
            self.fail(entry, "bad_image", str(exc), result.status, result.attempts)
            return True
        meta = entry.meta or {}
        metadata = self.provenance(
            meta.get("page", entry.referer), meta.get("page_status"), result.fetched_at,
            image_url=url, image_status=result.status, rule=meta.get("rule"), fields=meta.get("fields", {}),
            width=image.width, height=image.height, format=image.format, phash=f"{image.phash:016x}",
        )
        if near is not None:
            self.report.near_duplicates += 1
            metadata["near_duplicate_of"], metadata["near_duplicate_distance"] = near
        self.batch.items.append(CollectedItem("image", image.sha256, path=str(path), uri=url, metadata=metadata))
        self.batch.image_hashes.append((image.sha256, image.phash))
        self.batch.updates.append(FrontierUpdate(url, "done", result.status, None, None, result.attempts))
        return True
