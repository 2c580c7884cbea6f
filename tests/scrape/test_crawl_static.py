"""A static site crawled end to end against a real local server: robots, scope, schemes, items, images."""

from __future__ import annotations

from pathlib import Path

from labelloop.scrape.crawler import Crawler
from labelloop.scrape.frontier import Frontier

from scrape_helpers import TEST_UA, assert_spaced, ListSink, make_collect, make_site, png_bytes, route

ROBOTS = "User-agent: *\nDisallow: /private/\nCrawl-delay: 0.25\n"


def page(body: str, title: str = "t") -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>"


def item(text: str, img: str | None = None) -> str:
    image = f'<img class="pic" src="{img}">' if img else ""
    return f'<div class="item"><h2 class="title">{text.upper()}</h2><p class="text">{text}</p>{image}</div>'


def static_routes() -> dict:
    base = png_bytes(1)
    near = png_bytes(1, brighten=6)  # the same picture a little brighter: other bytes, same perceptual hash
    other = png_bytes(2)
    return {
        "/robots.txt": route(ROBOTS, headers={"Content-Type": "text/plain"}),
        "/": route(page(
            '<a href="/a.html">a</a> <a href="b.html#frag">b</a> <a href="/private/secret.html">secret</a>'
            '<a href="file:///etc/passwd">file</a> <a href="mailto:x@example.com">mail</a>'
            '<a href="javascript:void(0)">js</a> <a href="http://example.com/out.html">out</a>'
            '<a href="/redirect-out">r</a> <a href="/redirect-in">ri</a> <a href="/broken.html">broken</a>'
            '<a href="/missing.html">missing</a>'
        )),
        "/a.html": route(page(item("first  caf\u00e9\u00a0item", "/img/red.png") + item("second item", "/img/corrupt.png") + '<a href="/c.html">c</a>')),
        "/b.html": route(page(item("third item", "/img/red-copy.png") + item("fourth item", "/img/red-near.png") + '<a href="/a.html">a</a>')),
        "/c.html": route(page(item("fifth item", "/img/other.png") + '<a href="/d.html">d</a>')),
        "/d.html": route(page(item("too deep"))),
        "/private/secret.html": route(page(item("secret item"))),
        "/redirect-out": route("", status=302, headers={"Location": "http://example.org/elsewhere"}),
        "/redirect-in": route("", status=301, headers={"Location": "/b.html"}),
        "/broken.html": route('<html><body><div class="item"><p class="text">broken <b>but readable<div class="item"><p class="text">second broken'),
        "/img/red.png": route(base, headers={"Content-Type": "image/png"}),
        "/img/red-copy.png": route(base, headers={"Content-Type": "image/png"}),
        "/img/red-near.png": route(near, headers={"Content-Type": "image/png"}),
        "/img/other.png": route(other, headers={"Content-Type": "image/png"}),
        "/img/corrupt.png": route(base[:60], headers={"Content-Type": "image/png"}),
    }


def text_rule() -> dict:
    return {"name": "quotes", "kind": "text", "container": "div.item", "text": "p.text", "fields": {"title": "h2.title"}}


def image_rule() -> dict:
    return {"name": "pictures", "kind": "image", "container": "div.item", "image_selector": "img.pic", "fields": {"caption": "p.text"}}


def test_static_site_is_crawled_politely(local_site, db_url, tmp_path: Path) -> None:
    site = local_site(static_routes())
    sink = ListSink()
    config = make_site(site.url, items=[text_rule(), image_rule()], follow={"max_depth": 2})
    report = Crawler(config, make_collect(), db_url, tmp_path / "data", sink=sink, run_id="run-1").run()

    paths = site.paths()
    # robots.txt is read once, first, and its Disallow is never crossed.
    assert paths[0] == "/robots.txt" and paths.count("/robots.txt") == 1
    assert not [p for p in paths if p.startswith("/private/")]
    # secret.html was queued, checked against robots.txt and never requested; /redirect-in leads to
    # b.html, which the frontier already has: it is not fetched a second time.
    assert report.skipped == {"robots": 1, "redirect_to_known": 1}
    assert paths.count("/b.html") == 1
    # Depth 2 stops at c.html: d.html is linked from depth 2 and never fetched.
    assert "/d.html" not in paths and "/c.html" in paths
    # Every request carries the honest User-Agent.
    assert {r["ua"] for r in site.requests()} == {TEST_UA}
    # Crawl-delay 0.25 s: requests after robots.txt are 0.25 s apart, as the server saw them.
    assert_spaced(sorted(site.times())[1:], 0.25)

    texts = sorted(i.text for i in sink.items.values() if i.modality == "text")
    assert "first café item" in texts  # NFKC + whitespace normalised
    # Broken HTML (unclosed tags) still extracts both items; lxml nests the second inside the first.
    assert "second broken" in texts and any(t.startswith("broken but readable") for t in texts)
    assert "secret item" not in texts and "too deep" not in texts
    first = next(i for i in sink.items.values() if i.text == "first café item")
    assert first.metadata["source_url"] == site.url + "/a.html"
    assert first.metadata["http_status"] == 200 and first.metadata["crawl_id"] == "run-1"
    assert first.metadata["crawl"] == "test" and first.metadata["fields"] == {"title": "FIRST CAFÉ ITEM"}

    images = [i for i in sink.items.values() if i.modality == "image"]
    # red.png and red-copy.png are the same bytes: one item; red-near.png is kept but flagged.
    assert len(images) == 3
    assert report.items_existing == 1
    for image in images:
        assert Path(image.path).is_file() and Path(image.path).name.startswith(image.content_hash)
    near = [i for i in images if "near_duplicate_of" in i.metadata]
    assert len(near) == 1 and report.near_duplicates == 1
    assert near[0].metadata["near_duplicate_of"] == next(i for i in images if i is not near[0]).content_hash

    assert report.failed["bad_image"] == 1
    assert any("/img/corrupt.png: not a valid image" in e for e in report.errors)
    assert report.failed["redirect_out_of_scope"] == 1
    assert any("/redirect-out: redirect to http://example.org/elsewhere not followed" in e for e in report.errors)
    assert report.failed["http_404"] == 1
    assert any(e == f"{site.url}/missing.html: HTTP 404" for e in report.errors)
    # Links never followed are counted by reason; file:// and friends are never requested.
    assert report.links_skipped["scheme_file"] == 1
    assert report.links_skipped["scheme_mailto"] == 1 and report.links_skipped["scheme_javascript"] == 1
    assert report.links_skipped["out_of_scope"] >= 1
    # A page where the item rules matched nothing is reported with the rule.
    assert any("quotes: container 'div.item'" in u for u in report.unmatched[site.url + "/"])

    states = {e["url"]: e["state"] for e in Frontier(db_url, "test").entries()}
    assert states[site.url + "/private/secret.html"] == "skipped"
    assert states[site.url + "/b.html"] == "done"
    assert report.pending_left == 0
