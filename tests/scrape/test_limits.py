"""max_pages counts pages requested, not URLs robots.txt or the scope skipped; a page's state and its items
commit together."""

from __future__ import annotations

from pathlib import Path

from labelloop.scrape.crawler import Crawler
from labelloop.scrape.frontier import Frontier
from labelloop.store import Store
from labelloop.scrape.sink import StoreSink

from scrape_helpers import make_collect, make_site, route


def limited_site() -> dict:
    # The index links to 10 disallowed pages first, then to 20 allowed ones.
    private = "".join(f'<a href="/private/{i}.html">p{i}</a>' for i in range(10))
    public = "".join(f'<a href="/pub/{i}.html">{i}</a>' for i in range(20))
    routes = {
        "/robots.txt": route("User-agent: *\nDisallow: /private/\n", headers={"Content-Type": "text/plain"}),
        "/": route(f'<html><body><div class="q"><p>index</p></div>{private}{public}</body></html>'),
    }
    for i in range(20):
        routes[f"/pub/{i}.html"] = route(f'<html><body><div class="q"><p>page {i}</p></div></body></html>')
    for i in range(10):
        routes[f"/private/{i}.html"] = route("<html><body>secret</body></html>")
    return routes


def test_max_pages_counts_fetched_pages_not_robots_skips(local_site, db_url, tmp_path: Path) -> None:
    site = local_site(limited_site())
    config = make_site(site.url, items=[{"name": "q", "container": "div.q", "text": "p"}], max_pages=5)
    collect = make_collect(per_host_concurrency=4, max_concurrency=4)
    store = Store(db_url).create()

    report = Crawler(config, collect, store.engine, tmp_path / "d", sink=StoreSink(store, "quotes")).run()
    pages = [p for p in site.paths() if p != "/robots.txt"]
    # Exactly max_pages pages were requested, although the 10 disallowed links came first in the queue.
    assert len(pages) == 5 and not any(p.startswith("/private/") for p in pages)
    assert report.skipped["robots"] == 10
    assert report.pages_fetched == 5 and report.pending_left == 16
    states = [e["state"] for e in Frontier(db_url, "test").entries()]
    assert states.count("done") == 5 and states.count("skipped") == 10 and states.count("pending") == 16
    # The items of exactly the done pages are stored (they were committed with the pages' state).
    assert store.count_items("quotes") == 5

    # The next run goes on with the next 5 pages; nothing done is fetched again.
    seen = len(site.requests())
    again = Crawler(config, collect, store.engine, tmp_path / "d", sink=StoreSink(store, "quotes")).run()
    second = [r["path"] for r in site.requests()[seen:] if r["path"] != "/robots.txt"]
    assert again.resumed and again.pages_fetched == 5 and len(second) == 5
    assert not set(second) & set(pages)
    assert store.count_items("quotes") == 10
    store.close()
