"""A small local web server for tests, benchmarks and demos of the crawler.

Run as ``python -m labelloop.scrape.localsite SPEC.json``: it binds 127.0.0.1 on a
free port, prints ``PORT <n>`` and serves until killed. Every request is logged
as one JSON line (time, method, path, headers that matter) to the spec's
``log`` file, flushed at once, so a test can read exactly what the crawler
asked for and when.

Spec::

    {"log": "requests.jsonl",
     "root": "site/",                       # optional: static files (ETag + Last-Modified, 304s)
     "routes": {"/path": ROUTE, ...}}       # take precedence over files

    ROUTE = {"status": 200, "headers": {...}, "body": "text" | "body_b64": "...",
             "delay": 0.5,                   # seconds before answering
             "drop": true,                   # close the connection without an answer
             "sequence": [ROUTE, ...]}       # n-th request gets the n-th route (the last repeats)

The server is threaded, speaks HTTP/1.1 keep-alive and sets TCP_NODELAY
(without it a keep-alive client stalls ~40 ms per response on Nagle's algorithm).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import mimetypes
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from labelloop.process import Process, free_port, port_open, start_process

__all__ = ["serve", "start", "main"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        pass

    def _log(self) -> None:
        entry = {
            "t": time.time(),
            "m": self.command,
            "path": self.path,
            "ua": self.headers.get("User-Agent"),
            "inm": self.headers.get("If-None-Match"),
            "ims": self.headers.get("If-Modified-Since"),
        }
        with self.server.log_lock:
            self.server.log_file.write(json.dumps(entry) + "\n")
            self.server.log_file.flush()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._log()
        path = self.path.split("#")[0]
        route = self.server.routes.get(path)
        if route is None:
            route = self.server.routes.get(path.split("?")[0])
        if route is not None:
            with self.server.log_lock:
                hits = self.server.hits.get(path, 0)
                self.server.hits[path] = hits + 1
            if "sequence" in route:
                seq = route["sequence"]
                route = seq[min(hits, len(seq) - 1)]
            self._answer_route(route)
            return
        self._answer_file(path.split("?")[0])

    def _answer_route(self, route: dict[str, Any]) -> None:
        if route.get("delay"):
            time.sleep(float(route["delay"]))
        if route.get("drop"):
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        if "body_b64" in route:
            body = base64.b64decode(route["body_b64"])
        else:
            body = str(route.get("body", "")).encode("utf-8")
        headers = {"Content-Type": "text/html; charset=utf-8", **route.get("headers", {})}
        self.send_response(int(route.get("status", 200)))
        for key, value in headers.items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer_file(self, path: str) -> None:
        root = self.server.root
        if root is None:
            return self._answer_route({"status": 404, "body": "not found"})
        target = (root / path.lstrip("/")).resolve()
        if target.is_dir():
            target = target / "index.html"
        if root not in target.parents and target != root or not target.is_file():
            return self._answer_route({"status": 404, "body": "not found"})
        stat = target.stat()
        etag = '"' + hashlib.md5(f"{stat.st_mtime_ns}-{stat.st_size}".encode()).hexdigest() + '"'
        modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/"):
            ctype += "; charset=utf-8"
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", int(spec.get("port", 0))), _Handler)
        self.routes: dict[str, dict[str, Any]] = spec.get("routes", {})
        self.root = Path(spec["root"]).resolve() if spec.get("root") else None
        self.log_file = open(spec.get("log", os.devnull), "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the server
        self.log_lock = threading.Lock()
        self.hits: dict[str, int] = {}


def serve(spec: dict[str, Any]) -> _Server:
    """Build the server (not yet serving); ``server.server_address[1]`` is the port."""
    return _Server(spec)


def start(spec: dict[str, Any], spec_path: Path) -> tuple[str, Process]:
    """Run ``spec`` in a child process on a free 127.0.0.1 port; its base URL and the process.

    Started and awaited by :mod:`labelloop.process` (its output in ``<spec_path>.out``); the caller
    stops it by pid (``process.kill()``), also when a test fails.
    """
    port = free_port()
    spec_path.write_text(json.dumps({**spec, "port": port}), encoding="utf-8")
    process = start_process(f"local site {spec_path.stem} on 127.0.0.1:{port}",
                            [sys.executable, "-m", "labelloop.scrape.localsite", str(spec_path)],
                            log=spec_path.with_suffix(".out"))
    try:
        process.wait_ready(lambda: port_open(port), timeout=60, interval=0.02)
    except BaseException:
        process.kill()
        raise
    return f"http://127.0.0.1:{port}", process


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m labelloop.scrape.localsite SPEC.json")
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    server = serve(spec)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
