"""Scrapy side of bench/scrape.py, run in its own process (Twisted's reactor cannot restart).

Usage: python bench/_scrape_scrapy.py START_URL OUT_DIR PER_HOST DELAY USER_AGENT
Prints one JSON line: {"elapsed": seconds from spider open to close, "items": n, "images": n}.
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
STATS = {"items": 0, "images": 0}


class SiteSpider(CrawlSpider):
    """The same work as labelloop's crawl: follow links, extract text items, download and verify images."""

    name = "bench"
    start_urls = [START]
    rules = (Rule(LinkExtractor(), callback="parse_page", follow=True),)

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
})
process.crawl(SiteSpider)
process.start()
print(json.dumps({"elapsed": STATS["t1"] - STATS["t0"], "items": STATS["items"], "images": STATS["images"]}))
