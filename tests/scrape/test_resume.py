"""A crawl SIGKILLed midway resumes where it stopped: nothing done is fetched again, nothing stored twice,
and at most the pages in flight at the kill (<= the concurrency) are fetched a second time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from labelloop.scrape.frontier import Frontier
from labelloop.store import Store

from scrape_helpers import make_collect, make_site, route

N_PAGES = 40

CRAWL_SCRIPT = """
import json, sys
from labelloop.config import CollectConfig, SiteConfig
from labelloop.scrape.crawler import Crawler
from labelloop.scrape.sink import StoreSink
from labelloop.store import Store

site, collect, url, data = json.loads(sys.argv[1])
store = Store(url).create()
crawler = Crawler(SiteConfig.model_validate(site), CollectConfig.model_validate(collect), store.engine, data,
                  sink=StoreSink(store, "quotes"))
print(json.dumps(crawler.run().as_dict()))
"""


def chain_site() -> dict:
    # Each page links to the next two: breadth-first order is page order.
    routes = {"/robots.txt": route("User-agent: *\nAllow: /\n", headers={"Content-Type": "text/plain"})}
    for i in range(N_PAGES):
        nxt = "".join(f'<a href="/p{j}.html">{j}</a>' for j in (i + 1, i + 2) if j < N_PAGES)
        routes[f"/p{i}.html" if i else "/"] = route(
            f'<html><body><div class="q"><p>quote number {i}</p></div>{nxt}</body></html>'
        )
    return routes


def test_sigkilled_crawl_resumes_without_duplicates(local_site, db_url, tmp_path: Path) -> None:
    site = local_site(chain_site())
    site_config = make_site(
        site.url, items=[{"name": "q", "container": "div.q", "text": "p"}], follow={"max_depth": N_PAGES}
    )
    concurrency = 3
    collect = make_collect(min_delay=0.05, per_host_concurrency=concurrency, max_concurrency=concurrency)
    args = json.dumps([site_config.model_dump(mode="json"), collect.model_dump(mode="json"), db_url, str(tmp_path / "data")])
    cwd = Path(__file__).resolve().parents[2]

    proc = subprocess.Popen([sys.executable, "-c", CRAWL_SCRIPT, args], cwd=cwd, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len([p for p in site.paths() if p != "/robots.txt"]) < N_PAGES // 2:
            assert proc.poll() is None, "the crawl ended before it could be killed"
            assert time.monotonic() < deadline, "the crawl made no progress"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    frontier = Frontier(db_url, "test")
    done_at_kill = {e["url"] for e in frontier.entries() if e["state"] == "done"}
    fetched_at_kill = len(site.requests())
    assert 0 < len(done_at_kill) < N_PAGES
    store = Store(db_url)
    stored_at_kill = store.count_items("quotes")

    resumed = subprocess.run([sys.executable, "-c", CRAWL_SCRIPT, args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert report["resumed"] is True

    first_run = {site.url + r["path"] for r in site.requests()[:fetched_at_kill] if r["path"] != "/robots.txt"}
    second_run = [site.url + r["path"] for r in site.requests()[fetched_at_kill:] if r["path"] != "/robots.txt"]
    # Nothing the killed run had finished is fetched again, and of what it had requested only the pages in
    # flight at the kill are: a page's state commits with its items before its worker takes another URL.
    assert not done_at_kill & set(second_run)
    refetched = first_run & set(second_run)
    assert len(refetched) <= concurrency, f"{len(refetched)} pages fetched twice: {sorted(refetched)}"
    assert len(first_run) - len(done_at_kill) <= concurrency
    # ... every page ends done exactly once in the frontier, and every quote is stored exactly once.
    entries = frontier.entries()
    assert len(entries) == N_PAGES and {e["state"] for e in entries} == {"done"}
    items = store.items("quotes")
    assert len(items) == N_PAGES == items["content_hash"].nunique()
    assert sorted(items["text"]) == sorted(f"quote number {i}" for i in range(N_PAGES))
    # Pages in flight at the kill were fetched again, but their items were not added twice.
    assert report["items_added"] == N_PAGES - stored_at_kill
    store.close()
