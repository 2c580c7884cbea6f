"""The crawler's pieces on their own: URLs, robots rules, extraction, images, config, public API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

import labelloop.scrape as scrape
from labelloop.config import FollowConfig, ItemRule, SiteConfig, parse_config
from labelloop.exceptions import ConfigError, CrawlError, RobotsDisallowed
from labelloop.scrape.extract import Extractor, LinkRules, extract_page
from labelloop.scrape.items import ImageStore, verify_image
from labelloop.scrape.robots import RobotsCache
from labelloop.scrape.urls import in_scope, join_url, normalize_url

from scrape_helpers import png_bytes


def test_public_api_is_complete() -> None:
    for name in scrape.__all__:
        assert hasattr(scrape, name), name


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


def test_robots_check_raises_robots_disallowed_naming_url_and_reason() -> None:
    import pickle

    async def check() -> None:
        cache = robots_cache(200, "User-agent: *\nDisallow: /no/\n")
        assert (await cache.check("http://h.test/yes", "bot")).allowed("http://h.test/yes", "bot")
        with pytest.raises(RobotsDisallowed, match=r"^http://h\.test/no/1: disallowed by robots\.txt$") as info:
            await cache.check("http://h.test/no/1", "bot")
        assert isinstance(info.value, CrawlError) and info.value.url == "http://h.test/no/1"
        # An unreadable robots.txt disallows everything (RFC 9309), and the reason says why.
        with pytest.raises(RobotsDisallowed, match=r"http://h\.test/any: robots\.txt answered HTTP 503") as down:
            await robots_cache(503).check("http://h.test/any", "bot")
        # Raised in a parse or render worker, it crosses processes whole.
        again = pickle.loads(pickle.dumps(down.value))
        assert (again.url, again.reason, str(again)) == (down.value.url, down.value.reason, str(down.value))

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
    with pytest.raises(ConfigError, match=r"collect\.sites: site names must be distinct \(repeated: s\)"):
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


def test_parse_pool_moves_parsing_to_processes_once_saturated_with_the_same_results() -> None:
    from labelloop.scrape.extract import Extractor
    from labelloop.scrape.parsepool import ParsePool

    rules = [ItemRule(name="cards", container="div.card", text="p.t", fields={"price": ".price"})]
    links = LinkRules.from_config(FollowConfig(), ["http://h.test/"])
    pages = [
        (f'<div class="card"><p class="t">card {i}</p><span class="price">{i}</span></div>'
         f'<a href="/p{i + 1}.html">next</a><a href="http://x.test/">out</a>', f"http://h.test/p{i}.html")
        for i in range(6)
    ]
    inline = [Extractor(rules, links)(html, url) for html, url in pages]

    async def crawl(pool: ParsePool) -> list:
        return [await pool.parse(html, url) for html, url in pages]

    # saturation 0 with no window: "saturated" from the first page on, so every page goes to the worker.
    pool = ParsePool(Extractor(rules, links), rules, links, workers=1, saturation=0.0, window=0.0)
    try:
        pooled = asyncio.run(crawl(pool))
    finally:
        pool.close()
    assert pool.pages_pooled == 6 and pool.pages_inline == 0 and pool.cpu_seconds > 0
    strip = lambda out: (out.items, out.links, out.unmatched, out.skipped_links)  # noqa: E731
    assert [strip(o) for o in pooled] == [strip(o) for o in inline]
    assert pooled[0].links == ["http://h.test/p1.html"] and pooled[0].items[0].fields == {"price": "0"}

    never = ParsePool(Extractor(rules, links), rules, links, workers=0, saturation=0.0, window=0.0)
    asyncio.run(crawl(never))
    assert never.pages_inline == 6 and never.executor is None


def test_rules_keep_beautifulsoup_selectors_and_text() -> None:
    html = """<html><body><div class="q"><p>Hello <b>bold</b><script>var x = 1;</script><!-- hidden -->
      world&nbsp;!</p><span class="who">Ann</span></div>
      <div class="q"><p>Second</p></div></body></html>"""
    rules = [
        ItemRule(name="q", container="div.q", text="p", fields={"who": "span.who"}),
        # A selector only soupsieve understands: the rule runs on a BeautifulSoup tree of the page.
        ItemRule(name="soup", container="div.q:-soup-contains('Second')", text="p"),
    ]
    out = extract_page(html, "http://h.test/", rules)
    assert [(i.rule, i.text, i.fields) for i in out.items] == [
        ("q", "Hello bold world !", {"who": "Ann"}), ("q", "Second", {}), ("soup", "Second", {}),
    ]
    # A bad selector is refused where it is declared (the config), naming the key ...
    with pytest.raises(ConfigError, match=r"collect\.sites\[0\]\.items\[0\]\.container: not a valid CSS selector .* \(got 'div\['\)"):
        parse_config({"dataset": {"name": "d", "modality": "text", "classes": ["a", "b"]}, "collect": {"sites": [
            {"name": "s", "start_urls": ["http://h.test/"], "terms": "ok", "items": [{"name": "bad", "container": "div[", "text": "p"}]}]}})
    with pytest.raises(ConfigError, match=r"collect\.sites\[0\]\.follow\.selector: not a valid CSS selector"):
        parse_config({"dataset": {"name": "d", "modality": "text", "classes": ["a", "b"]}, "collect": {"sites": [
            {"name": "s", "start_urls": ["http://h.test/"], "terms": "ok", "follow": {"selector": "a[href"}}]}})
    with pytest.raises(ValidationError, match=r"who: not a valid CSS selector"):
        ItemRule(name="bad", container="div", text="p", fields={"who": "span["})
    # ... and the extractor, called directly with one, says it is a parameter mistake.
    with pytest.raises(ValueError, match=r"not a valid CSS selector .* \(got 'div\['\)"):
        Extractor([ItemRule.model_construct(name="bad", kind="text", container="div[", text="p", fields={})])
