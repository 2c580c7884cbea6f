"""Parsing off the event loop when the loop's core is saturated.

A crawl runs on one asyncio thread: fetching, politeness timers and parsing share one
core. While that core has room, pages are parsed inline (no copying, no latency). When
the loop thread's demand for a core (time on the CPU plus time waiting in the run queue
for one, from Linux's ``/proc/thread-self/schedstat``; CPU time alone elsewhere) reaches
``saturation`` of the wall clock over a window, the loop is CPU-bound and its timers
fire late, so parsing moves to a pool of worker processes (``workers``; by default the
machine's other cores, at most 4). Run-queue time counts because on a busy machine a
CPU-bound loop spends much of its time waiting for a core, not on it. The workers
compile the same rules once, at start; each page costs a pickle of its bytes and of the
links and items found.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from labelloop.scrape.extract import Extractor, LinkRules, PageExtract

__all__ = ["ParsePool", "available_cpus"]

_WORKER_EXTRACTOR: Extractor | None = None


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _core_demand() -> float:
    """Seconds the calling thread ran or waited to run (Linux schedstat); its CPU time elsewhere."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as handle:
            ran, waited = handle.read().split()[:2]
        return (int(ran) + int(waited)) / 1e9
    except (OSError, ValueError):
        return time.thread_time()


def _init_worker(rules: list[Any], links: LinkRules | None) -> None:
    global _WORKER_EXTRACTOR
    _WORKER_EXTRACTOR = Extractor(rules, links)


def _parse_in_worker(html: str | bytes, url: str) -> PageExtract:
    assert _WORKER_EXTRACTOR is not None
    return _WORKER_EXTRACTOR(html, url)


class ParsePool:
    """Parse pages inline, or in worker processes once the loop's core is saturated.

    Parameters
    ----------
    extractor : Extractor
        The compiled rules (used inline; workers compile their own copy from ``rules``, ``links``).
    rules, links
        What the workers compile.
    workers : int or None, default=None
        Worker processes once saturated; ``None`` = the other cores (at most 4), ``0`` = never.
    saturation : float, default=0.85
        Share of wall time the loop thread spends on (or waiting for) a core that counts as saturated.
    window : float, default=1.0
        Seconds over which that share is measured.
    """

    def __init__(
        self,
        extractor: Extractor,
        rules: list[Any],
        links: LinkRules | None,
        workers: int | None = None,
        saturation: float = 0.85,
        window: float = 1.0,
    ) -> None:
        self.extractor = extractor
        self.rules = rules
        self.links = links
        self.workers = min(4, available_cpus() - 1) if workers is None else workers
        self.saturation = saturation
        self.window = window
        self.executor: ProcessPoolExecutor | None = None
        self.pages_inline = 0
        self.pages_pooled = 0
        self.cpu_seconds = 0.0  # parse + extraction CPU, inline and in the workers
        self.started_at: float | None = None  # monotonic time the pool started, if it did
        self._mark = (time.monotonic(), _core_demand())

    def _saturated(self) -> bool:
        now, cpu = time.monotonic(), _core_demand()
        wall = now - self._mark[0]
        if wall < self.window:
            return False
        busy = (cpu - self._mark[1]) / wall
        self._mark = (now, cpu)
        return busy >= self.saturation

    def _start(self) -> None:
        # forkserver: never fork the crawler itself (it holds threads, sockets and database connections).
        context = multiprocessing.get_context("forkserver")
        self.executor = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker, initargs=(self.rules, self.links)
        )
        self.started_at = time.monotonic()

    async def parse(self, html: str | bytes, url: str) -> PageExtract:
        if self.executor is None and self.workers > 0 and self._saturated():
            self._start()
        if self.executor is None:
            out = self.extractor(html, url)
            self.pages_inline += 1
        else:
            out = await asyncio.get_running_loop().run_in_executor(self.executor, _parse_in_worker, html, url)
            self.pages_pooled += 1
        self.cpu_seconds += out.cpu_seconds
        return out

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
