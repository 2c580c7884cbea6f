"""Politeness measured from the servers' logs: minimum delay, global rate, failure back-off."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from labelloop.scrape.crawler import Crawler
from labelloop.scrape.politeness import Politeness

from scrape_helpers import assert_spaced, make_collect, make_site, route

ROBOTS = route("User-agent: *\nAllow: /\n", headers={"Content-Type": "text/plain"})


def linked_site(n: int) -> dict:
    pages = {f"/p{i}.html": route(f"<html><body><p>page {i}</p></body></html>") for i in range(n)}
    index = "<html><body>" + "".join(f'<a href="/p{i}.html">{i}</a>' for i in range(n)) + "</body></html>"
    return {"/robots.txt": ROBOTS, "/": route(index), **pages}


def gaps(times: list[float]) -> list[float]:
    times = sorted(times)
    return [b - a for a, b in zip(times, times[1:])]


def test_min_delay_spaces_requests_to_a_host(local_site, db_url, tmp_path: Path) -> None:
    site = local_site(linked_site(6))
    report = Crawler(make_site(site.url), make_collect(min_delay=0.2), db_url, tmp_path / "d").run()
    assert report.pages_fetched == 7
    assert_spaced(site.times(), 0.2)


def test_global_rate_limits_all_hosts_together(local_site, db_url, tmp_path: Path) -> None:
    a = local_site(linked_site(4), name="a")
    b = local_site(linked_site(4), name="b")
    config = make_site(a.url, start_urls=[a.url + "/", b.url + "/"])
    report = Crawler(config, make_collect(global_rate=8.0), db_url, tmp_path / "d").run()
    assert report.pages_fetched == 10 and set(report.hosts) == {a.url, b.url}
    # Each host alone would allow 4 in flight with no delay; together they stay at 8 requests/s.
    assert_spaced(a.times() + b.times(), 1 / 8)


def test_failing_host_is_backed_off(local_site, db_url, tmp_path: Path) -> None:
    site = local_site({"/robots.txt": ROBOTS, "/": route("down", status=500)})
    collect = make_collect(failure_backoff=0.2)
    collect.fetch.retries = 3
    report = Crawler(make_site(site.url), collect, db_url, tmp_path / "d").run()
    assert report.failed == {"http_500": 1}
    g = gaps([r["t"] for r in site.requests() if r["path"] == "/"])
    # Retry waits are <= 0.2 s here; the host's own back-off doubles per failure in a row: 0.2, 0.4, 0.8.
    assert g[1] + g[2] >= 1.2 - 0.1 and g[2] >= 0.8 - 0.1, g
    assert report.hosts[site.url]["failures"] == 4


def test_retry_after_pauses_the_whole_host() -> None:
    async def scenario() -> list[float]:
        politeness = Politeness(per_host_concurrency=4)
        loop = asyncio.get_running_loop()
        starts: list[float] = []
        async with politeness.request("http://h") as gate:
            gate.pause(0.3)
        begin = loop.time()

        async def one() -> None:
            async with politeness.request("http://h"):
                starts.append(loop.time() - begin)

        await asyncio.gather(one(), one())
        return starts

    starts = asyncio.run(scenario())
    assert len(starts) == 2 and min(starts) >= 0.3 - 0.01


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"per_host_concurrency": 0}, "per_host_concurrency: must be >= 1 (got 0)"),
        ({"min_delay": -1}, "min_delay: must be >= 0.0 (got -1)"),
        ({"global_rate": 0}, "global_rate: must be > 0.0 (got 0)"),
    ],
)
def test_politeness_config_is_validated(bad: dict, message: str) -> None:
    from labelloop.config import parse_config
    from labelloop.exceptions import ConfigError

    data = {"dataset": {"name": "d", "modality": "text", "classes": ["a", "b"]}, "collect": {"politeness": bad}}
    with pytest.raises(ConfigError, match=re.escape(f"collect.politeness.{message}")):
        parse_config(data)
