"""The crawler's pieces on their own: URLs, robots rules, extraction, images, config, public API."""

from __future__ import annotations

import asyncio
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import labelloop.scrape as scrape
from labelloop.config import FollowConfig, ItemRule, SiteConfig, parse_config
from labelloop.exceptions import ConfigError, CrawlError
from labelloop.scrape.extract import LinkRules, extract_page
from labelloop.scrape.items import ImageStore, verify_image
from labelloop.scrape.robots import RobotsCache
from labelloop.scrape.urls import in_scope, join_url, normalize_url

from scrape_helpers import png_bytes


def test_public_api_is_complete_and_doctests_pass() -> None:
    for name in scrape.__all__:
        assert hasattr(scrape, name), name
    for info in pkgutil.iter_modules(scrape.__path__):
        module = importlib.import_module(f"labelloop.scrape.{info.name}")
        failures, _ = doctest.testmod(module)
        assert failures == 0, info.name


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/a#x", "http://h.test/a"),
        ("b.html", "http://h.test/dir/b.html"),
        ("HTTP://H.TEST:80/c", "http://h.test/c"),
        ("https://h.test:443", "https://h.test/"),
        ("file:///etc/passwd", None),
        ("javascript:alert(1)", None),
        ("mailto:a@b.c", None),
        ("ftp://h.test/x", None),
        ("#top", None),
        ("", None),
    ],
)
def test_join_url_keeps_only_http(href: str, expected: str | None) -> None:
    assert join_url("http://h.test/dir/page.html", href) == expected


def test_scope_is_a_prefix_on_normalised_urls() -> None:
    scope = ["http://h.test/docs/"]
    assert in_scope("HTTP://h.test:80/docs/a", scope)
    assert not in_scope("http://h.test/other", scope)
    assert not in_scope("http://h.test.evil.example/docs/", scope)
    assert not in_scope("file:///docs/", scope)
    assert normalize_url("http://h.test") == "http://h.test/"


def robots_cache(status: int, text: str = "") -> RobotsCache:
    async def fetch(url: str) -> tuple[int, str]:
        return status, text

    return RobotsCache(fetch)


def test_robots_rules_follow_rfc_9309() -> None:
    async def check() -> None:
        rules = await robots_cache(200, "User-agent: *\nDisallow: /no/\nCrawl-delay: 2\n").get("http://h.test/x")
        assert not rules.allowed("http://h.test/no/1", "bot") and rules.allowed("http://h.test/yes", "bot")
        assert rules.crawl_delay("bot") == 2.0
        assert (await robots_cache(404).get("http://h.test/")).allowed("http://h.test/any", "bot")
        down = await robots_cache(503).get("http://h.test/")
        assert not down.allowed("http://h.test/any", "bot") and down.reason == "robots.txt answered HTTP 503"

    asyncio.run(check())


def test_extract_reports_unmatched_selectors_and_link_reasons() -> None:
    html = """<html><head><base href="http://h.test/sub/"></head><body>
      <div class="card"><p class="t">one</p><img src="i1.png"></div>
      <div class="card"><p class="t">two</p></div>
      <a href="in.html">in</a><a href="/sub/in.html">dup</a><a href="http://x.test/">out</a>
      <a href="file:///etc/passwd">f</a><a href="/sub/skip-me.html">deny</a></body></html>"""
    rules = [
        ItemRule(name="cards", container="div.card", text="p.t", fields={"price": ".price"}),
        ItemRule(name="pics", kind="image", container="div.card", image_selector="img"),
        ItemRule(name="gone", container="table.old", text="td"),
        ItemRule(name="elsewhere", container="div", text="p", pages=r"/never/"),
    ]
    links = LinkRules.from_config(FollowConfig(deny=["skip-me"]), ["http://h.test/"])
    out = extract_page(html, "http://h.test/page", rules, links)
    assert [i.text for i in out.items if i.kind == "text"] == ["one", "two"]
    assert [i.image_url for i in out.items if i.kind == "image"] == ["http://h.test/sub/i1.png"]  # <base href> wins
    assert out.links == ["http://h.test/sub/in.html"]
    assert out.skipped_links == {"out_of_scope": 1, "scheme_file": 1, "denied_by_pattern": 1}
    assert out.unmatched == ["cards: field 'price' '.price'", "gone: container 'table.old'"]


def test_image_regex_finds_urls_in_scripts() -> None:
    html = '<div id="g"><script>var imgs = ["/a.jpg", "/b.jpg"];</script></div>'
    rule = ItemRule(name="r", kind="image", container="#g", image_regex=r'"([^"]+\.jpg)"')
    out = extract_page(html, "http://h.test/", [rule])
    assert [i.image_url for i in out.items] == ["http://h.test/a.jpg", "http://h.test/b.jpg"]


def test_images_are_verified_stored_once_and_near_duplicates_flagged(tmp_path: Path) -> None:
    store = ImageStore(tmp_path, max_distance=4)
    first, path, near = store.save(png_bytes(3), "http://h.test/a.png")
    assert path.read_bytes() == png_bytes(3) and near is None
    again, path2, near2 = store.save(png_bytes(3), "http://h.test/copy.png")
    assert path2 == path and near2 is None  # same bytes: same file, not a "near" duplicate
    brighter, _, near3 = store.save(png_bytes(3, brighten=5), "http://h.test/bright.png")
    assert near3 is not None and near3[0] == first.sha256
    _, _, near4 = store.save(png_bytes(4), "http://h.test/other.png")
    assert near4 is None
    with pytest.raises(CrawlError, match=r"http://h.test/bad.png: not a valid image"):
        verify_image(png_bytes(3)[:100], "http://h.test/bad.png")
    with pytest.raises(CrawlError, match=r"http://h.test/empty.png: image is empty"):
        verify_image(b"", "http://h.test/empty.png")


@pytest.mark.parametrize(
    ("site", "message"),
    [
        ({"start_urls": ["file:///etc"]}, r"collect\.sites\[0\]\.start_urls: only http:// and https:// URLs are crawled \(got 'file:///etc'\)"),
        ({"start_urls": ["http://127.0.0.1:/"]}, r"start_urls: needs a host and, after ':', a port number \(got 'http://127.0.0.1:/'\)"),
        ({"start_urls": ["http://h.test:99999/"]}, r"start_urls: has an invalid port"),
        ({"terms": " "}, r"collect\.sites\[0\]\.terms: must say what the source's terms allow"),
        ({"scope": ["ftp://h.test/"]}, r"collect\.sites\[0\]\.scope: scope entries must be http:// or https://"),
        ({"javascript": ["("]}, r"collect\.sites\[0\]\.javascript: not a valid regex"),
        ({"items": [{"name": "r", "kind": "image"}]}, r"item rule 'r': kind 'image' needs 'image_selector' or 'image_regex'"),
        ({"follow": {"max_depth": -1}}, r"collect\.sites\[0\]\.follow\.max_depth: must be >= 0 \(got -1\)"),
        ({"extra": 1}, r"collect\.sites\[0\]\.extra: unknown key"),
    ],
)
def test_site_config_errors_name_the_key(site: dict, message: str) -> None:
    data = {
        "dataset": {"name": "d", "modality": "text", "classes": ["a", "b"]},
        "collect": {"sites": [{"name": "s", "start_urls": ["http://h.test/"], "terms": "ok", **site}]},
    }
    with pytest.raises(ConfigError, match=message):
        parse_config(data, source="labelloop.yaml")


def test_collect_config_rejects_browser_user_agents_and_repeated_sites() -> None:
    base = {"dataset": {"name": "d", "modality": "text", "classes": ["a", "b"]}}
    with pytest.raises(ConfigError, match=r"collect\.user_agent: must be an honest, non-empty crawler name"):
        parse_config({**base, "collect": {"user_agent": "Mozilla/5.0 (X11; Linux)"}})
    site = {"name": "s", "start_urls": ["http://h.test/"], "terms": "ok"}
    with pytest.raises(ConfigError, match=r"each site needs a distinct name \(repeated: s\)"):
        parse_config({**base, "collect": {"sites": [site, site]}})
    assert SiteConfig(**site).follow.max_depth == 3


def test_frontier_on_sqlite_and_postgresql(store_url: str) -> None:
    from labelloop.scrape.frontier import Frontier, FrontierEntry, FrontierUpdate
    from labelloop.store import Store

    store = Store(store_url).create()  # the Alembic revision of the 'collect' branch creates the tables
    try:
        frontier = Frontier(store.engine, "site")
        frontier.add([FrontierEntry("http://h.test/", "page", 0)])
        frontier.record(
            [FrontierUpdate("http://h.test/", "done", 200, etag='"v1"', attempts=1)],
            [FrontierEntry("http://h.test/a", "page", 1), FrontierEntry("http://h.test/", "page", 1)],
            run_id="r1",
            image_hashes=[("ab" * 32, 2**63 + 5)],
        )
        # A URL is queued once, whoever links to it.
        assert [e.url for e in frontier.pending()] == ["http://h.test/a"]
        assert frontier.counts() == {"done": 1, "pending": 1}
        assert frontier.image_hashes() == [("ab" * 32, 2**63 + 5)]
        assert Frontier(store.engine, "other").pending() == []
        frontier.record([FrontierUpdate("http://h.test/a", "failed", 500, "http_500", "http://h.test/a: HTTP 500")], [])
        assert frontier.requeue_failed() == 1 and frontier.requeue_finished() == 1
        again = {e.url: e for e in frontier.pending()}
        assert again["http://h.test/"].etag == '"v1"'  # kept for the conditional request
    finally:
        store.close()
