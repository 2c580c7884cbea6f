"""A local filtering proxy for the crawler's browsers: their own requests obey robots.txt and the limits.

A rendered page makes requests of its own (scripts, styles, images, XHR/fetch calls).
Chromium is started with ``--proxy-server`` pointing here (and
``--proxy-bypass-list=<-loopback>``, so even 127.0.0.1 goes through it), and this proxy,
running on the crawl's event loop, handles each plain-HTTP request the way the crawler
handles its own: robots.txt first (a disallowed URL gets a 403 from the proxy and never
reaches the site), then a slot of the host's :class:`~labelloop.scrape.politeness.HostGate`
(per-host concurrency, Crawl-delay / min_delay spacing, global limits, back-off), then the
request over the crawler's pooled httpx client.

Requests outside the crawl's scope pass only with a Referer inside it (a page's CDN image);
the browser's own background traffic is refused without leaving the machine.

HTTPS requests reach a proxy as ``CONNECT host:port`` tunnels whose paths are encrypted:
a tunnel reaches only the crawl's own hosts, takes one host slot when it opens (so it is
spaced and counted), and robots.txt is checked for the host's root only. Paths inside an
HTTPS tunnel are not seen one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from labelloop.exceptions import RobotsDisallowed
from labelloop.scrape.politeness import Politeness
from labelloop.scrape.urls import normalize_url, origin

__all__ = ["GateProxy", "browser_proxy_args"]

# Headers that belong to one connection, not to the request or response (RFC 9110 7.6.1), and the
# ones httpx sets itself.
_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te",
    "trailer", "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding",
})
_MAX_HEAD = 65536

# (url) -> None; raises RobotsDisallowed when robots.txt forbids the URL.
RobotsCheck = Callable[[str], Awaitable[None]]


def browser_proxy_args(port: int) -> list[str]:
    """Chromium flags sending every request, loopback included, through the proxy on ``port``."""
    return [f"--proxy-server=http://127.0.0.1:{port}", "--proxy-bypass-list=<-loopback>"]


class GateProxy:
    """An HTTP/1.1 forward proxy on 127.0.0.1 that gates every request like the crawler's own.

    Parameters
    ----------
    check_robots : coroutine function
        ``check_robots(url)``: the crawl's robots.txt check; raises
        :class:`~labelloop.exceptions.RobotsDisallowed`, answered here with a 403.
    politeness : Politeness
        The crawl's gates (shared with its own requests).
    client : httpx.AsyncClient
        The crawl's pooled client (redirects are not followed: the browser follows them through here).
    max_bytes : int
        Larger responses are cut off with a 502.
    on_outcome : callable or None
        ``on_outcome(kind, url)`` per request: ``fetched``, ``blocked_robots``, ``blocked_foreign``,
        ``failed``, ``tunnel``.
    in_scope : callable or None
        ``in_scope(url)``: the crawl's scope. A request outside it is proxied only when its ``Referer``
        is inside it (a page's CDN image); the browser's own background traffic (update and time
        services, no Referer) is refused without leaving the machine.
    origins : set of str or None
        The crawl's origins: the only hosts an HTTPS tunnel (no Referer, no path) may reach.
    """

    def __init__(
        self,
        check_robots: RobotsCheck,
        politeness: Politeness,
        client: httpx.AsyncClient,
        max_bytes: int = 10_000_000,
        on_outcome: Callable[[str, str], None] | None = None,
        in_scope: Callable[[str], bool] | None = None,
        origins: set[str] | None = None,
    ) -> None:
        self.check_robots = check_robots
        self.in_scope = in_scope or (lambda url: True)
        self.origins = origins
        self.politeness = politeness
        self.client = client
        self.max_bytes = max_bytes
        self.on_outcome = on_outcome or (lambda kind, url: None)
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self._connections: set[asyncio.Task] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
            self.server = None

    # -- one client connection --------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                if len(head) > _MAX_HEAD:
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, _version = lines[0].split(" ", 2)
                except ValueError:
                    await self._answer(writer, 400, b"bad request line")
                    return
                headers: list[tuple[str, str]] = []
                for line in lines[1:]:
                    if ":" in line:
                        key, _, value = line.partition(":")
                        headers.append((key.strip(), value.strip()))
                if method.upper() == "CONNECT":
                    await self._tunnel(target, reader, writer)
                    return
                length = next((int(v) for k, v in headers if k.lower() == "content-length" and v.isdigit()), 0)
                body = await reader.readexactly(length) if length else b""
                keep = await self._forward(method.upper(), target, headers, body, writer)
                if not keep or any(k.lower() in ("connection", "proxy-connection") and v.lower() == "close" for k, v in headers):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if task is not None:
                self._connections.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        if urlsplit(target).scheme.lower() != "http":
            await self._answer(writer, 400, b"only absolute http:// URLs (or CONNECT) are proxied")
            return False
        url = normalize_url(target)
        referer = next((v for k, v in headers if k.lower() == "referer"), "")
        if not self.in_scope(url) and not (referer and self.in_scope(referer)):
            self.on_outcome("blocked_foreign", url)
            await self._answer(writer, 403, f"labelloop: {url} not fetched: outside the crawl's scope".encode())
            return True
        try:
            await self.check_robots(url)
        except RobotsDisallowed as exc:
            self.on_outcome("blocked_robots", url)
            await self._answer(writer, 403, f"labelloop: {url} not fetched: {exc.reason}".encode())
            return True
        send = [(k, v) for k, v in headers if k.lower() not in _HOP]
        async with self.politeness.request(origin(url)) as gate:
            try:
                status, resp_headers, content = await self._request(method, target, send, body)
            except httpx.HTTPError as exc:
                gate.failed()
                self.on_outcome("failed", url)
                await self._answer(writer, 502, f"labelloop: {url}: {type(exc).__name__}".encode())
                return True
            except _TooLarge:
                gate.succeeded()
                self.on_outcome("failed", url)
                await self._answer(writer, 502, f"labelloop: {url}: larger than {self.max_bytes} bytes".encode())
                return True
            if status >= 500 or status == 429:
                gate.failed()
            else:
                gate.succeeded()
        self.on_outcome("fetched", url)
        out = [f"HTTP/1.1 {status} {_reason(status)}"]
        out += [f"{k}: {v}" for k, v in resp_headers if k.lower() not in _HOP and k.lower() != "content-encoding"]
        out.append(f"Content-Length: {len(content)}")
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + content)
        await writer.drain()
        return True

    async def _request(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        async with self.client.stream(method, url, headers=headers, content=body or None) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():  # decoded: Content-Encoding is dropped on the way back
                size += len(chunk)
                if size > self.max_bytes:
                    raise _TooLarge
                chunks.append(chunk)
            return response.status_code, list(response.headers.multi_items()), b"".join(chunks)

    async def _tunnel(self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            await self._answer(writer, 400, b"CONNECT needs host:port")
            return
        root = normalize_url(f"https://{target}/" if port != "443" else f"https://{host}/")
        if self.origins is not None and origin(root) not in self.origins:
            # A tunnel carries no Referer: only the crawl's own hosts are reached over HTTPS.
            self.on_outcome("blocked_foreign", root)
            await self._answer(writer, 403, f"labelloop: {root} not reached: outside the crawl's hosts".encode())
            return
        try:
            await self.check_robots(root)
        except RobotsDisallowed as exc:
            self.on_outcome("blocked_robots", root)
            await self._answer(writer, 403, f"labelloop: {root} not fetched: {exc.reason}".encode())
            return
        async with self.politeness.request(origin(root)):
            try:
                up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            except OSError:
                self.on_outcome("failed", root)
                await self._answer(writer, 502, f"labelloop: cannot reach {target}".encode())
                return
        self.on_outcome("tunnel", root)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
        head = (
            f"HTTP/1.1 {status} {_reason(status)}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()


class _TooLarge(Exception):
    pass


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"
