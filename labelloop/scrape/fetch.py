"""HTTP fetching with httpx: pooling, timeouts, retries with back-off, conditional requests, a size cap.

Every request passes through :class:`~labelloop.scrape.politeness.Politeness`
(one host slot per attempt, so retries are spaced like any other request).
Failures are returned as a :class:`FetchResult` with a short ``reason`` and a
message naming the URL, never raised: the crawler counts them per reason.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import httpx

from labelloop.scrape.politeness import Politeness
from labelloop.scrape.urls import ALLOWED_SCHEMES, normalize_url, origin, scheme_of

__all__ = ["FetchResult", "Fetcher", "make_client", "parse_retry_after", "RETRY_STATUSES"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

# (target url) -> None when the redirect may be followed, else a reason such as "redirect_out_of_scope"
RedirectCheck = Callable[[str], Awaitable[str | None]]


@dataclass
class FetchResult:
    """The outcome of fetching one URL (after retries and redirects)."""

    url: str
    final_url: str
    status: int | None = None
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    retries: int = 0
    not_modified: bool = False
    reason: str | None = None
    error: str | None = None
    fetched_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.reason is None and self.status is not None and 200 <= self.status < 300

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text(self) -> str:
        """Body decoded with the declared charset, falling back to UTF-8 with replacement."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip("\"' ")
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("soon") is None
    True
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def make_client(user_agent: str, timeout: float = 30.0, http2: bool = True, pool: int = 64) -> httpx.AsyncClient:
    """One pooled client per crawl: keep-alive connections are what make a crawl fast."""
    return httpx.AsyncClient(
        http2=http2,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
        follow_redirects=False,  # redirects are checked against scheme, scope and robots.txt one by one
    )


class _TooLarge(Exception):
    pass


class Fetcher:
    """Fetch URLs politely with retries.

    Parameters
    ----------
    client : httpx.AsyncClient
        A pooled client (see :func:`make_client`).
    politeness : Politeness
        Gates every attempt.
    retries : int, default=3
        Retries on 429, 5xx and connection errors.
    backoff_base, backoff_max : float
        Exponential back-off with jitter between retries: about ``base * 2**n`` seconds, capped.
    max_bytes : int
        Responses larger than this are abandoned (reason ``too_large``).
    max_redirects : int
    max_retry_after : float
        A ``Retry-After`` longer than this gives the URL up (reason ``retry_after_too_long``).
    seed : int or None
        Seed of the jitter.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        politeness: Politeness,
        retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_bytes: int = 10_000_000,
        max_redirects: int = 5,
        max_retry_after: float = 120.0,
        seed: int | None = None,
    ) -> None:
        self.client = client
        self.politeness = politeness
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.max_retry_after = max_retry_after
        self._random = random.Random(seed)
        self.retry_count = 0

    def backoff(self, attempt: int) -> float:
        """Wait before retry ``attempt`` (1-based): half fixed, half random ("equal jitter")."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        redirect_check: RedirectCheck | None = None,
    ) -> FetchResult:
        """Fetch ``url``, following allowed redirects; never raises for network or HTTP failures."""
        result = FetchResult(url=url, final_url=url)
        current = url
        for _hop in range(self.max_redirects + 1):
            if scheme_of(current) not in ALLOWED_SCHEMES:
                return self._fail(result, "bad_scheme", f"{current}: only http and https are fetched")
            headers: dict[str, str] = {}
            if current == url:
                if etag:
                    headers["If-None-Match"] = etag
                if last_modified:
                    headers["If-Modified-Since"] = last_modified
            response = await self._fetch_one(current, headers, result)
            if response is None:
                return result
            status, resp_headers, body = response
            result.status, result.headers, result.final_url = status, resp_headers, current
            if status in (301, 302, 303, 307, 308) and "location" in resp_headers:
                target = normalize_url(str(httpx.URL(current).join(resp_headers["location"])))
                if scheme_of(target) not in ALLOWED_SCHEMES:
                    return self._fail(result, "bad_scheme", f"{current}: redirect to {target}: only http and https are fetched")
                if redirect_check is not None:
                    refused = await redirect_check(target)
                    if refused:
                        return self._fail(result, refused, f"{current}: redirect to {target} not followed ({refused})")
                current = target
                continue
            if status == 304:
                result.not_modified = True
                return result
            if status >= 400:
                return self._fail(result, f"http_{status}", f"{current}: HTTP {status}")
            result.content = body
            return result
        return self._fail(result, "too_many_redirects", f"{url}: more than {self.max_redirects} redirects")

    def _fail(self, result: FetchResult, reason: str, message: str) -> FetchResult:
        result.reason, result.error = reason, message
        return result

    async def _fetch_one(
        self, url: str, headers: dict[str, str], result: FetchResult
    ) -> tuple[int, dict[str, str], bytes] | None:
        """One URL with retries; ``None`` (and ``result`` filled in) when it failed for good."""
        host = origin(url)
        attempt = 0
        while True:
            attempt += 1
            result.attempts += 1
            retry_after: float | None = None
            async with self.politeness.request(host) as gate:
                try:
                    status, resp_headers, body = await self._request(url, headers)
                except _TooLarge:
                    gate.succeeded()
                    self._fail(result, "too_large", f"{url}: response larger than {self.max_bytes} bytes")
                    return None
                except httpx.TimeoutException as exc:
                    gate.failed()
                    reason, message = "timeout", f"{url}: timed out ({type(exc).__name__})"
                except httpx.TransportError as exc:
                    gate.failed()
                    reason, message = "connection_error", f"{url}: connection failed ({type(exc).__name__}: {exc})"
                else:
                    if status not in RETRY_STATUSES:
                        gate.succeeded()
                        return status, resp_headers, body
                    gate.failed()
                    result.status = status
                    reason, message = f"http_{status}", f"{url}: HTTP {status}"
                    retry_after = parse_retry_after(resp_headers.get("retry-after"))
                    if retry_after is not None:
                        if retry_after > self.max_retry_after:
                            self._fail(
                                result,
                                "retry_after_too_long",
                                f"{url}: HTTP {status} with Retry-After {retry_after:.0f} s "
                                f"(more than max_retry_after {self.max_retry_after:.0f} s)",
                            )
                            return None
                        # The host asked for a pause: honour it for every request to it, not just this URL.
                        gate.pause(retry_after)
            if attempt > self.retries:
                self._fail(result, reason, f"{message} after {attempt} attempts")
                return None
            result.retries += 1
            self.retry_count += 1
            wait = self.backoff(attempt)
            if retry_after is not None:
                wait = max(wait, retry_after)
            await asyncio.sleep(wait)

    async def _request(self, url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        async with self.client.stream("GET", url, headers=headers) as response:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise _TooLarge
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise _TooLarge
                chunks.append(chunk)
            return response.status_code, {k.lower(): v for k, v in response.headers.items()}, b"".join(chunks)
