"""robots.txt, parsed by protego (a maintained, spec-following parser), cached per origin.

RFC 9309 rules for a robots.txt that cannot be read: a 4xx answer means no rules
(everything allowed); a 5xx answer or an unreachable server means everything is
disallowed until the file can be read, because "the server is struggling" is
not permission.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from protego import Protego

from labelloop.exceptions import RobotsDisallowed
from labelloop.scrape.urls import origin

__all__ = ["RobotsRules", "RobotsCache"]


@dataclass
class RobotsRules:
    """What one origin's robots.txt says for our user agent."""

    origin: str
    parser: Protego | None
    status: int | None
    disallow_all: bool = False
    reason: str = ""

    def allowed(self, url: str, user_agent: str) -> bool:
        if self.disallow_all:
            return False
        if self.parser is None:
            return True
        return bool(self.parser.can_fetch(url, user_agent))

    def check(self, url: str, user_agent: str) -> None:
        """Raise :class:`~labelloop.exceptions.RobotsDisallowed` naming ``url`` and why, unless it may be fetched.

        >>> rules = RobotsRules("http://h.test", Protego.parse("User-agent: *\\nDisallow: /private/"), 200)
        >>> rules.check("http://h.test/public/1", "bot")
        >>> rules.check("http://h.test/private/1", "bot")
        Traceback (most recent call last):
        ...
        labelloop.exceptions.RobotsDisallowed: http://h.test/private/1: disallowed by robots.txt
        """
        if not self.allowed(url, user_agent):
            raise RobotsDisallowed(url, self.reason or "disallowed by robots.txt")

    def crawl_delay(self, user_agent: str) -> float:
        if self.parser is None:
            return 0.0
        delay = self.parser.crawl_delay(user_agent)
        return float(delay) if delay else 0.0

    def request_rate(self, user_agent: str) -> float:
        """Seconds per request from a ``Request-rate`` line (0 when there is none)."""
        if self.parser is None:
            return 0.0
        rate = self.parser.request_rate(user_agent)
        if not rate or not rate.requests:
            return 0.0
        return float(rate.seconds) / float(rate.requests)


# (url) -> (status, text) ; raises on connection failure
RobotsFetch = Callable[[str], Awaitable[tuple[int, str]]]


@dataclass
class RobotsCache:
    """Fetches each origin's robots.txt once; concurrent callers wait on the same fetch."""

    fetch: RobotsFetch
    rules: dict[str, RobotsRules] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def get(self, url: str) -> RobotsRules:
        key = origin(url)
        cached = self.rules.get(key)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self.rules:
                return self.rules[key]
            robots_url = key + "/robots.txt"
            try:
                status, text = await self.fetch(robots_url)
            except Exception as exc:  # noqa: BLE001 - any failure to read it means "not allowed yet"
                rules = RobotsRules(key, None, None, disallow_all=True, reason=f"robots.txt unreachable ({exc})")
            else:
                if 200 <= status < 300:
                    rules = RobotsRules(key, Protego.parse(text), status)
                elif 400 <= status < 500:
                    rules = RobotsRules(key, None, status)
                else:
                    rules = RobotsRules(
                        key, None, status, disallow_all=True, reason=f"robots.txt answered HTTP {status}"
                    )
            self.rules[key] = rules
            return rules

    async def check(self, url: str, user_agent: str) -> RobotsRules:
        """The origin's rules, after :meth:`RobotsRules.check` let ``url`` through (else ``RobotsDisallowed``)."""
        rules = await self.get(url)
        rules.check(url, user_agent)
        return rules
