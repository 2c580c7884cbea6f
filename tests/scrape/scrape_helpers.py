"""Helpers of the crawler tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from labelloop.config import CollectConfig, SiteConfig
from labelloop.process import Process

TEST_UA = "labelloop-test/1.0 (+tests)"
RESOLVER = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"


@dataclass
class LocalSite:
    """A running ``labelloop.scrape.localsite`` server."""

    url: str
    port: int
    log_path: Path
    process: Process

    def requests(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests()]

    def times(self, path_prefix: str = "/") -> list[float]:
        return [r["t"] for r in self.requests() if r["path"].startswith(path_prefix)]


def png_bytes(seed: int, size: int = 64, brighten: int = 0) -> bytes:
    """A small natural-looking PNG: random 6x6 colours smoothly upsampled, one picture per ``seed``.

    ``brighten`` shifts every pixel: the same picture, other bytes (a near-duplicate).
    """
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), "RGB")
    array = np.asarray(small.resize((size, size), Image.BICUBIC)).astype(int) + brighten
    buf = io.BytesIO()
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


def route(body: str | bytes = "", status: int = 200, headers: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status, "headers": headers or {}, **extra}
    if isinstance(body, bytes):
        out["body_b64"] = base64.b64encode(body).decode()
    else:
        out["body"] = body
    return out


def make_collect(**politeness: Any) -> CollectConfig:
    """A collect config for tests: short back-offs so retries do not make tests slow."""
    base = {"per_host_concurrency": 4, "max_concurrency": 8, "failure_backoff": 0.0}
    base.update(politeness)
    return CollectConfig(
        user_agent=TEST_UA,
        politeness=base,
        fetch={"timeout": 5.0, "retries": 2, "backoff_base": 0.05, "backoff_max": 0.2},
        render={"pool_size": 2, "extra_args": [RESOLVER], "wait_timeout": 5.0, "page_load_timeout": 10.0},
    )


def make_site(url: str, **kwargs: Any) -> SiteConfig:
    data: dict[str, Any] = {"name": "test", "start_urls": [url + "/"], "terms": "local test server, ours"}
    data.update(kwargs)
    return SiteConfig.model_validate(data)


class ListSink:
    """Collects items in memory, deduplicating by content hash like the store does."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}
        self.calls = 0

    def __call__(self, items: list[Any], connection: Any = None) -> tuple[int, int]:
        self.calls += 1
        added = existing = 0
        for item in items:
            if item.content_hash in self.items:
                existing += 1
            else:
                self.items[item.content_hash] = item
                added += 1
        return added, existing


def assert_spaced(times: list[float], interval: float, slack: float = 0.1) -> None:
    """Requests (server arrival times) were spaced by at least ``interval`` on average over every window.

    For every pair i < j: ``t[j] - t[i] >= (j - i) * interval - slack``. The slack absorbs arrival jitter
    of one request at a busy server (a late accept compresses one gap and stretches the one before);
    over a window of k requests the bound still grows with k, so a crawler that ignored the delay fails.
    """
    times = sorted(times)
    assert len(times) >= 3, f"too few requests to measure spacing: {times}"
    worst = min(
        (times[j] - times[i]) - (j - i) * interval for i in range(len(times)) for j in range(i + 1, len(times))
    )
    assert worst >= -slack, f"requests closer than {interval} s apart (worst window short by {-worst:.3f} s): {times}"
