"""labelloop.scrape: a polite crawler for static and JavaScript pages that feeds items into the store.

Small modules, one idea each, re-exported here::

    urls        normalisation, http/https only, scope
    robots      robots.txt through protego, cached per origin (RFC 9309 failure rules)
    politeness  per-host slots and spacing, Crawl-delay, global rate, failure back-off, Retry-After pauses
    fetch       httpx: pooling, timeouts, retries with back-off + jitter, conditional requests, size cap
    render      Selenium 4 + Debian Chromium, a pool of reused drivers, explicit waits
    extract     one lxml parse per page: items by CSS selectors (BeautifulSoup syntax), image URLs, links, unmatched
    parsepool   parsing in worker processes once the crawl's core is saturated
    proxy       the browsers' own requests through robots.txt and the host gates
    items       images verified (Pillow), stored by content hash, near-duplicates (pHash); text normalised
    frontier    the crawl frontier in the store's database (resumable, never a URL twice)
    crawler     all of it together: ``Crawler(site, collect, db, data_dir, sink).run()``
    sink        collected items into a :class:`~labelloop.store.Store`
    localsite   a logging local web server for tests, benchmarks and demos
"""

from labelloop.scrape.crawler import Crawler, CrawlReport, ItemSink
from labelloop.scrape.extract import Extractor, LinkRules, PageExtract, RawItem, Selector, extract_page, normalize_text
from labelloop.scrape.fetch import Fetcher, FetchResult, make_client, parse_retry_after
from labelloop.scrape.frontier import Frontier, FrontierEntry, FrontierUpdate
from labelloop.scrape.items import CollectedItem, ImageStore, verify_image
from labelloop.scrape.parsepool import ParsePool
from labelloop.scrape.politeness import HostGate, Politeness
from labelloop.scrape.proxy import GateProxy
from labelloop.scrape.render import DriverPool, RenderResult
from labelloop.scrape.robots import RobotsCache, RobotsRules
from labelloop.scrape.sink import StoreSink
from labelloop.scrape.urls import in_scope, join_url, normalize_url, origin

__all__ = [
    "Crawler",
    "CrawlReport",
    "ItemSink",
    "StoreSink",
    "Fetcher",
    "FetchResult",
    "make_client",
    "parse_retry_after",
    "Politeness",
    "HostGate",
    "RobotsCache",
    "RobotsRules",
    "DriverPool",
    "RenderResult",
    "extract_page",
    "Extractor",
    "Selector",
    "ParsePool",
    "GateProxy",
    "normalize_text",
    "LinkRules",
    "PageExtract",
    "RawItem",
    "CollectedItem",
    "ImageStore",
    "verify_image",
    "Frontier",
    "FrontierEntry",
    "FrontierUpdate",
    "normalize_url",
    "join_url",
    "in_scope",
    "origin",
]
