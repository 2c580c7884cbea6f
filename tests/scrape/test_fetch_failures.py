"""A server that answers 429 / 500 / slowly / drops connections: retries, back-off and clear errors."""

from __future__ import annotations

from pathlib import Path

from labelloop.scrape.crawler import Crawler

from scrape_helpers import make_collect, make_site, route

ROBOTS = route("User-agent: *\nAllow: /\n", headers={"Content-Type": "text/plain"})


def links(*paths: str) -> str:
    return "<html><body>" + "".join(f'<a href="{p}">{p}</a>' for p in paths) + "</body></html>"


def ok(text: str) -> dict:
    return route(f'<html><body><div class="item"><p class="text">{text}</p></div></body></html>')


def test_retries_backoff_and_errors(local_site, db_url, tmp_path: Path) -> None:
    site = local_site({
        "/robots.txt": ROBOTS,
        "/": route(links("/rate-limited", "/flaky", "/dropped", "/broken-server", "/slow", "/huge")),
        # 429 with Retry-After: 1 -> the whole host pauses 1 s, then the retry succeeds.
        "/rate-limited": {"sequence": [route("busy", status=429, headers={"Retry-After": "1"}), ok("after 429")]},
        "/flaky": {"sequence": [route("oops", status=500), route("oops", status=503), ok("after two 5xx")]},
        "/dropped": {"sequence": [{"drop": True}, ok("after a dropped connection")]},
        "/broken-server": route("down", status=500),
        "/slow": {**ok("too slow"), "delay": 3},
        "/huge": ok("x" * 20_000),
    })
    collect = make_collect()
    collect.fetch.timeout = 1.0
    collect.fetch.retries = 2
    collect.fetch.max_bytes = 10_000
    received: list = []
    report = Crawler(
        make_site(site.url, items=[{"name": "t", "container": "div.item", "text": "p.text"}]),
        collect, db_url, tmp_path / "data", sink=lambda items, conn: (received.extend(items) or (len(items), 0)),
    ).run()

    paths = site.paths()
    assert paths.count("/rate-limited") == 2
    assert paths.count("/flaky") == 3
    assert paths.count("/dropped") == 2
    assert paths.count("/broken-server") == 3  # 1 + 2 retries, then given up
    assert paths.count("/slow") == 3
    assert paths.count("/huge") == 1  # too large is not retried
    # Retry-After: 1 honoured, measured by the server between the 429 and the retry.
    rate_limited = site.times("/rate-limited")
    assert rate_limited[1] - rate_limited[0] >= 1.0 - 0.05
    # 1 (429) + 2 (flaky) + 1 (dropped) + 2 (broken-server) + 2 (slow)
    assert report.retries == 8

    texts = {i.text for i in received}
    assert texts == {"after 429", "after two 5xx", "after a dropped connection"}
    assert report.failed == {"http_500": 1, "timeout": 1, "too_large": 1}
    errors = "\n".join(report.errors)
    assert f"{site.url}/broken-server: HTTP 500 after 3 attempts" in errors
    assert f"{site.url}/slow: timed out (ReadTimeout) after 3 attempts" in errors
    assert f"{site.url}/huge: response larger than 10000 bytes" in errors


def test_retry_after_too_long_gives_the_url_up(local_site, db_url, tmp_path: Path) -> None:
    site = local_site({
        "/robots.txt": ROBOTS,
        "/": route("no", status=503, headers={"Retry-After": "3600"}),
    })
    report = Crawler(make_site(site.url), make_collect(), db_url, tmp_path / "data").run()
    assert site.paths().count("/") == 1
    assert report.failed == {"retry_after_too_long": 1}
    assert report.errors == [f"{site.url}/: HTTP 503 with Retry-After 3600 s (more than max_retry_after 120 s)"]


def test_robots_unavailable_means_nothing_is_fetched(local_site, db_url, tmp_path: Path) -> None:
    # RFC 9309: a robots.txt answering 5xx means "assume everything is disallowed".
    site = local_site({"/robots.txt": route("down", status=500), "/": ok("never")})
    collect = make_collect()
    collect.fetch.retries = 1
    report = Crawler(make_site(site.url), collect, db_url, tmp_path / "data").run()
    assert "/" not in site.paths()
    assert report.skipped == {"robots": 1}
    assert report.pages_fetched == 0
    # The start URL was asked for by name: its skip is reported as an error, with the reason.
    assert report.errors == [f"start URL {site.url}/ not fetched: robots.txt answered HTTP 500"]


def test_missing_robots_allows_everything(local_site, db_url, tmp_path: Path) -> None:
    site = local_site({"/robots.txt": route("nope", status=404), "/": ok("fine")})
    report = Crawler(make_site(site.url), make_collect(), db_url, tmp_path / "data").run()
    assert site.paths() == ["/robots.txt", "/"]
    assert report.pages_fetched == 1


def test_a_later_run_retries_what_failed_and_crawls_new_start_urls(local_site, db_url, tmp_path: Path) -> None:
    site = local_site({
        "/robots.txt": ROBOTS,
        "/": route(links("/recovers")),
        # Down for the whole first run (1 + 2 retries), up for the next one.
        "/recovers": {"sequence": [route("down", status=503)] * 3 + [ok("back up")]},
        "/new.html": ok("a new start page"),
    })
    rule = [{"name": "t", "container": "div.item", "text": "p.text"}]
    received: list = []
    sink = lambda items, conn: (received.extend(items) or (len(items), 0))  # noqa: E731
    first = Crawler(make_site(site.url, items=rule), make_collect(), db_url, tmp_path / "d", sink=sink).run()
    assert first.failed == {"http_503": 1} and received == []

    config = make_site(site.url, items=rule, start_urls=[site.url + "/", site.url + "/new.html"])
    second = Crawler(config, make_collect(), db_url, tmp_path / "d", sink=sink).run()
    assert second.failed == {} and sorted(i.text for i in received) == ["a new start page", "back up"]
    assert site.paths().count("/recovers") == 4 and site.paths().count("/new.html") == 1
