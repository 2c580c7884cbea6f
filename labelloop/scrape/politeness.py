"""Per-host and global restraint: concurrency, spacing between requests, failure back-off.

A :class:`HostGate` is what every request to one host passes through. It holds
a slot (per-host concurrency) and spaces request *starts* by the host's current
interval: the longest of the configured minimum delay, robots.txt
``Crawl-delay`` / ``Request-rate`` and the failure back-off. A host that asks us
to wait (``Retry-After``) is paused as a whole, not just for the one URL.
:class:`Politeness` owns the gates and the global limits.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator

__all__ = ["HostGate", "Politeness", "HostStats"]


@dataclass
class HostStats:
    """Counts for one host, reported per crawl."""

    requests: int = 0
    failures: int = 0
    first_start: float | None = None
    last_start: float | None = None
    gaps_under_interval: int = 0  # request starts closer to the previous one than the host's interval asked

    @property
    def rate(self) -> float:
        """Requests per second between the first and last request start."""
        if self.first_start is None or self.last_start is None or self.requests < 2:
            return 0.0
        span = self.last_start - self.first_start
        return (self.requests - 1) / span if span > 0 else float("inf")


class _Spacer:
    """Spaces event starts by an interval.

    Callers reserve the next free start under a lock (so N waiters line up
    instead of all waking at once), then check against the *actual* start of
    the previous event: a caller that woke late (busy event loop) pushes the
    next one back instead of letting two requests go out closer than asked.
    """

    def __init__(self) -> None:
        self.next_free = 0.0
        self.last_start = float("-inf")
        self.lock = asyncio.Lock()

    async def wait(self, interval: float) -> float:
        """Wait for the next start; returns its time (``time.monotonic``)."""
        if interval <= 0:
            self.last_start = time.monotonic()
            return self.last_start
        async with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + interval
        delay = start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        while True:
            now = time.monotonic()
            short = self.last_start + interval - now
            if short <= 0:
                break
            await asyncio.sleep(short)
        self.last_start = now
        self.next_free = max(self.next_free, now + interval)
        return now


@dataclass
class HostGate:
    """Everything that limits requests to one host."""

    host: str
    concurrency: int
    min_delay: float = 0.0
    robots_delay: float = 0.0
    failure_backoff: float = 1.0
    max_backoff: float = 60.0
    consecutive_failures: int = 0
    paused_until: float = 0.0
    stats: HostStats = field(default_factory=HostStats)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)
        self._spacer = _Spacer()

    @property
    def backoff(self) -> float:
        """Extra spacing after failures in a row: base, 2x base, 4x base ... capped."""
        if self.consecutive_failures <= 0 or self.failure_backoff <= 0:
            return 0.0
        return min(self.max_backoff, self.failure_backoff * 2 ** (self.consecutive_failures - 1))

    @property
    def interval(self) -> float:
        return max(self.min_delay, self.robots_delay, self.backoff)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the host's request slots, starting no sooner than the spacing allows."""
        async with self._slots:
            while True:
                # A pause (Retry-After) may be set while we wait: check again after sleeping.
                pause = self.paused_until - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                    continue
                now = await self._spacer.wait(self.interval)
                if self.paused_until <= time.monotonic():
                    break
            self.stats.requests += 1
            if self.stats.first_start is None:
                self.stats.first_start = now
            elif self.stats.last_start is not None and now - self.stats.last_start < self.interval:
                self.stats.gaps_under_interval += 1
            self.stats.last_start = now
            yield

    def succeeded(self) -> None:
        self.consecutive_failures = 0

    def failed(self) -> None:
        self.consecutive_failures += 1
        self.stats.failures += 1

    def pause(self, seconds: float) -> None:
        """Stop starting requests to this host for ``seconds`` (Retry-After)."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


class Politeness:
    """The gates of all hosts plus the global concurrency and rate limits.

    Parameters
    ----------
    per_host_concurrency : int
        Requests in flight per host.
    max_concurrency : int
        Requests in flight over all hosts.
    min_delay : float
        Seconds between request starts to one host (robots.txt may ask for more).
    global_rate : float or None
        Requests per second over all hosts.
    failure_backoff, max_backoff : float
        Spacing added after failures in a row, doubling, capped.
    """

    def __init__(
        self,
        per_host_concurrency: int = 8,
        max_concurrency: int = 32,
        min_delay: float = 0.0,
        global_rate: float | None = None,
        failure_backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        self.per_host_concurrency = per_host_concurrency
        self.max_concurrency = max_concurrency
        self.min_delay = min_delay
        self.global_rate = global_rate
        self.failure_backoff = failure_backoff
        self.max_backoff = max_backoff
        self.gates: dict[str, HostGate] = {}
        self._global_slots = asyncio.Semaphore(max_concurrency)
        self._global_spacer = _Spacer()

    def gate(self, host: str) -> HostGate:
        gate = self.gates.get(host)
        if gate is None:
            gate = HostGate(
                host,
                self.per_host_concurrency,
                min_delay=self.min_delay,
                failure_backoff=self.failure_backoff,
                max_backoff=self.max_backoff,
            )
            self.gates[host] = gate
        return gate

    @asynccontextmanager
    async def request(self, host: str) -> AsyncIterator[HostGate]:
        """Hold a global slot and a host slot for one request."""
        gate = self.gate(host)
        async with gate.slot():
            async with self._global_slots:
                if self.global_rate:
                    await self._global_spacer.wait(1.0 / self.global_rate)
                yield gate
