"""Scrapy side of bench/scrape.py, run in its own process (Twisted's reactor cannot restart).

Usage: python bench/_scrape_scrapy.py START_URL OUT_DIR PER_HOST DELAY USER_AGENT [MAX_PAGES]
With MAX_PAGES the real-site protocol runs: follow only .html pages (like labelloop's allow rule), one
text item per ``main section`` (its first paragraph and heading), stop after about MAX_PAGES responses.
Prints one JSON line: {"elapsed": seconds from spider open to close, "items": n, "images": n,
"parse_cpu_s": CPU seconds in link extraction + item extraction (the HTML parse included), "pages_parsed": n,
"starts": client-side request start times (perf_counter), when MAX_PAGES is given}.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from pathlib import Path

from PIL import Image
from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule

START, OUT, PER_HOST, DELAY, UA = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
MAX_PAGES = int(sys.argv[6]) if len(sys.argv) > 6 else 0
STATS = {"items": 0, "images": 0, "parse_cpu_s": 0.0, "pages_parsed": 0}
STARTS: list[float] = []


class TimedLinkExtractor(LinkExtractor):
    """Scrapy's LinkExtractor, with its CPU time counted (the page's lxml parse happens in here)."""

    def extract_links(self, response):
        started = time.thread_time()
        try:
            return super().extract_links(response)
        finally:
            STATS["parse_cpu_s"] += time.thread_time() - started
            STATS["pages_parsed"] += 1


from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler  # noqa: E402


class TimedHandler(HTTP11DownloadHandler):
    """Records when each request really leaves (client side), after Scrapy's own delay."""

    async def download_request(self, request):
        STARTS.append(time.perf_counter())
        return await super().download_request(request)


class SiteSpider(CrawlSpider):
    """The same work as labelloop's crawl: follow links, extract text items, download and verify images."""

    name = "bench"
    start_urls = [START]
    rules = (
        (Rule(TimedLinkExtractor(allow=r"(\.html|/)$"), callback="parse_page", follow=True),)
        if MAX_PAGES
        else (Rule(LinkExtractor(), callback="parse_page", follow=True),)
    )

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.opened, signal=signals.spider_opened)
        crawler.signals.connect(spider.closed_, signal=signals.spider_closed)
        return spider

    def opened(self, spider):
        STATS["t0"] = time.perf_counter()

    def closed_(self, spider):
        STATS["t1"] = time.perf_counter()

    def parse_start_url(self, response, **kwargs):
        return self.parse_page(response)

    def parse_page(self, response):
        if MAX_PAGES:
            started = time.thread_time()
            items = []
            for section in response.css("main section"):
                first = section.css("p")[:1]
                text = " ".join(" ".join(first.css("::text").getall()).split())
                title = " ".join(" ".join(section.css("h1, h2, h3")[:1].css("::text").getall()).split())
                if text:
                    items.append({"text": text, "title": title, "url": response.url})
            STATS["parse_cpu_s"] += time.thread_time() - started
            STATS["items"] += len(items)
            yield from items
            return
        for div in response.css("div.item"):
            text = " ".join(" ".join(div.css("p.text ::text").getall()).split())
            if text:
                STATS["items"] += 1
                yield {"text": text, "url": response.url}
            for src in div.css("img::attr(src)").getall():
                yield response.follow(src, callback=self.parse_image)

    def parse_image(self, response):
        data = response.body
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        sha = hashlib.sha256(data).hexdigest()
        path = OUT / sha[:2] / f"{sha}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        STATS["images"] += 1


extra = {}
if MAX_PAGES:
    extra = {
        "CLOSESPIDER_PAGECOUNT": MAX_PAGES,
        "DOWNLOAD_HANDLERS": {"http": "__main__.TimedHandler"},
        "DEPTH_LIMIT": 50,
    }
process = CrawlerProcess(settings={
    "ROBOTSTXT_OBEY": True,
    "USER_AGENT": UA,
    "CONCURRENT_REQUESTS": 32,
    "CONCURRENT_REQUESTS_PER_DOMAIN": PER_HOST,
    "DOWNLOAD_DELAY": DELAY,  # Scrapy never reads robots.txt Crawl-delay: the same delay is set by hand
    "RANDOMIZE_DOWNLOAD_DELAY": False,
    "LOG_LEVEL": "ERROR",
    "TELNETCONSOLE_ENABLED": False,
    "COOKIES_ENABLED": False,
    "DEPTH_LIMIT": 10,
    "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
    **extra,
})
process.crawl(SiteSpider)
process.start()
print(json.dumps({"elapsed": STATS["t1"] - STATS["t0"], "items": STATS["items"], "images": STATS["images"],
                  "parse_cpu_s": STATS["parse_cpu_s"], "pages_parsed": STATS["pages_parsed"], "starts": STARTS}))
