"""JavaScript pages rendered by Debian's Chromium through the driver pool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labelloop.exceptions import CrawlError
from labelloop.scrape.crawler import Crawler
from labelloop.scrape.render import DriverPool

from scrape_helpers import RESOLVER, TEST_UA, make_collect, make_site, route

# The items exist only after a script runs 50 ms after load; #ready appears last.
JS_PAGE = """<!doctype html><html><body><div id="app"></div><script>
setTimeout(function () {
  var app = document.getElementById('app');
  for (var i = 0; i < 3; i++) {
    var d = document.createElement('div'); d.className = 'item';
    d.innerHTML = '<p class="text">rendered ' + i + ' by ' + navigator.userAgent.split(' ')[0] + '</p>';
    app.appendChild(d);
  }
  var a = document.createElement('a'); a.href = '/second.html'; a.textContent = 'next'; app.appendChild(a);
  var r = document.createElement('div'); r.id = 'ready'; app.appendChild(r);
}, 50);
</script></body></html>"""


def children_named(name: str) -> list[int]:
    """PIDs of live descendants of this process whose command line mentions ``name``."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        state = stat.rsplit(")", 1)[1].split()[0]
        if ppid == me and name in cmd and state != "Z":
            found.append(int(entry))
    return found


def test_javascript_pages_are_rendered_and_browsers_closed(local_site, db_url, tmp_path: Path) -> None:
    site = local_site({
        "/robots.txt": route("User-agent: *\nDisallow: /private\n", headers={"Content-Type": "text/plain"}),
        "/": route(JS_PAGE),
        "/second.html": route(JS_PAGE.replace("rendered", "second")),
        "/plain.html": route('<div class="item"><p class="text">static</p></div>'),
    })
    config = make_site(
        site.url,
        start_urls=[site.url + "/", site.url + "/plain.html"],
        javascript=[r"/$", r"/second\.html$"],
        wait_selector="#ready",
        items=[{"name": "t", "container": "div.item", "text": "p.text"}],
    )
    received: list = []
    report = Crawler(config, make_collect(), db_url, tmp_path / "d", sink=lambda i, conn: (received.extend(i) or (len(i), 0))).run()

    texts = sorted(i.text for i in received)
    # The browser ran the script (and sent our User-Agent, not Chromium's); the link it built was followed.
    assert texts == sorted([f"rendered {i} by labelloop-test/1.0" for i in range(3)]
                           + [f"second {i} by labelloop-test/1.0" for i in range(3)] + ["static"])
    assert report.pages_rendered == 2 and report.pages_fetched == 3
    rendered = [i for i in received if i.metadata["rendered"]]
    assert len(rendered) == 6 and {i.metadata["http_status"] for i in rendered} == {200}
    assert {r["ua"] for r in site.requests()} == {TEST_UA}
    # Every browser and chromedriver started by the crawl is gone.
    assert children_named("chromedriver") == []


def test_render_failure_names_url_and_selector_and_closes_browsers(local_site, db_url, tmp_path: Path) -> None:
    site = local_site({"/robots.txt": route("", status=404), "/": route("<html><body>never ready</body></html>")})
    config = make_site(site.url, javascript=[".*"], wait_selector="#ready")
    collect = make_collect()
    collect.render.wait_timeout = 0.5
    report = Crawler(config, collect, db_url, tmp_path / "d").run()
    assert report.failed == {"render": 1}
    assert report.errors == [f"{site.url}/: wait selector '#ready' did not appear within 0.5 s"]
    assert children_named("chromedriver") == []


def test_pool_reuses_browsers_and_close_quits_them(local_site) -> None:
    site = local_site({f"/{i}": route(f'<p id="x">{i}</p>') for i in range(4)})
    pool = DriverPool(size=2, extra_args=[RESOLVER], wait_timeout=5)
    try:
        htmls = [pool.render(f"{site.url}/{i}", "#x").html for i in range(4)]
        assert all(f'id="x">{i}<' in h for i, h in enumerate(htmls))
        assert pool.started == 1  # one page at a time: one browser was enough, and it was reused
        assert len(children_named("chromedriver")) == 1
    finally:
        pool.close()
    assert children_named("chromedriver") == []
    with pytest.raises(CrawlError, match="driver pool is closed"):
        pool.render(site.url + "/0")


def test_missing_browser_is_a_clear_error(tmp_path: Path) -> None:
    pool = DriverPool(size=1, chromium=tmp_path / "no-chromium")
    with pytest.raises(CrawlError, match=r"no-chromium: Chromium not found; install Debian's chromium"):
        pool.render("http://127.0.0.1:9/")
    pool.close()


def test_a_browser_whose_page_timed_out_is_replaced(local_site) -> None:
    site = local_site({"/slow": {**route("<p id='x'>late</p>"), "delay": 8}, "/ok": route("<p id='x'>ok</p>")})
    pool = DriverPool(size=1, extra_args=[RESOLVER], page_load_timeout=3, wait_timeout=5)
    try:
        with pytest.raises(CrawlError, match=rf"{site.url}/slow: page did not load within 3 s"):
            pool.render(site.url + "/slow", "#x")
        assert children_named("chromedriver") == []  # the failed browser was quit, not returned to the pool
        assert "ok" in pool.render(site.url + "/ok", "#x").html
        assert pool.started == 2
    finally:
        pool.close()
    assert children_named("chromedriver") == []


# A page whose script loads images and data of its own: one of them is disallowed by robots.txt.
SUBREQUEST_PAGE = """<!doctype html><html><body><div id="app"></div>
<img src="/img/a.png"><img src="/img/b.png"><img src="/private/tracker.png">
<script>
Promise.all([fetch('/api/one.json').then(r => r.json()), fetch('/api/two.json').then(r => r.json()),
             fetch('/private/secret.json').then(r => r.status).catch(() => 0)])
  .then(function (got) {
    var app = document.getElementById('app');
    for (var i = 0; i < 2; i++) {
      var d = document.createElement('div'); d.className = 'item';
      d.innerHTML = '<p class="text">' + got[i].word + '</p>'; app.appendChild(d);
    }
    var r = document.createElement('div'); r.id = 'ready'; r.textContent = got[2]; app.appendChild(r);
  });
</script></body></html>"""


def test_browser_subrequests_pass_robots_and_the_per_host_limiter(local_site, db_url, tmp_path: Path) -> None:
    from labelloop.scrape.frontier import Frontier  # noqa: F401 - the crawl's own tables

    from scrape_helpers import assert_spaced, png_bytes

    site = local_site({
        "/robots.txt": route("User-agent: *\nDisallow: /private/\n", headers={"Content-Type": "text/plain"}),
        "/": route(SUBREQUEST_PAGE),
        "/img/a.png": route(png_bytes(1), headers={"Content-Type": "image/png"}),
        "/img/b.png": route(png_bytes(2), headers={"Content-Type": "image/png"}),
        "/api/one.json": route('{"word": "alpha"}', headers={"Content-Type": "application/json"}),
        "/api/two.json": route('{"word": "beta"}', headers={"Content-Type": "application/json"}),
        "/private/secret.json": route('{"word": "never"}', headers={"Content-Type": "application/json"}),
        "/private/tracker.png": route(png_bytes(3), headers={"Content-Type": "image/png"}),
    })
    config = make_site(site.url, javascript=[r"/$"], wait_selector="#ready", follow={"max_depth": 0},
                       items=[{"name": "t", "container": "div.item", "text": "p.text"},
                              {"name": "status", "container": "body", "text": "#ready"}])
    collect = make_collect(per_host_concurrency=1, max_concurrency=4, min_delay=0.1)
    received: list = []
    report = Crawler(config, collect, db_url, tmp_path / "d", sink=lambda i, conn: (received.extend(i) or (len(i), 0))).run()

    # The script ran on data the browser fetched through the crawler ...
    by_rule = {rule: sorted(i.text for i in received if i.metadata["rule"] == rule) for rule in ("t", "status")}
    assert by_rule["t"] == ["alpha", "beta"]
    # ... the disallowed sub-requests never reached the site (the proxy answered 403 itself) ...
    assert not [p for p in site.paths() if p.startswith("/private/")]
    blocked = sorted(e.split(":")[0:3][-1] for e in report.errors if e.startswith(site.url) and "disallowed by robots.txt" in e)
    assert by_rule["status"] == ["403"] and len(blocked) == 2, report.errors
    # ... and every request the site saw (robots.txt, the page, its images and data) passed the host's limiter:
    # counted by it and spaced by its min_delay, which the browser alone would never do.
    seen = site.paths()
    assert {"/", "/img/a.png", "/img/b.png", "/api/one.json", "/api/two.json"} <= set(seen)
    host = report.hosts[site.url]
    assert host["requests"] == len(seen) and report.subrequests["fetched"] == len(seen) - 1
    assert_spaced(site.times(), 0.1, slack=0.05)
    assert children_named("chromedriver") == []
