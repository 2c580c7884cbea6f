"""Fixtures of the crawler tests: real HTTP servers on 127.0.0.1 (subprocesses, stopped by PID)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

# pytest runs with --import-mode=importlib (test folders are not on sys.path): make this folder's
# helper module importable by the test modules beside it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from scrape_helpers import LocalSite  # noqa: E402

from labelloop.process import Process  # noqa: E402
from labelloop.scrape import localsite  # noqa: E402

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download a driver


@pytest.fixture
def local_site(tmp_path: Path) -> Iterator[Callable[..., LocalSite]]:
    """Start ``localsite`` servers from route dicts on free ports; every one is killed by PID afterwards."""
    started: list[Process] = []

    def start(routes: dict[str, Any], root: Path | None = None, name: str = "site") -> LocalSite:
        log = tmp_path / f"{name}-requests.jsonl"
        spec = {"log": str(log), "routes": routes, "root": str(root) if root else None}
        url, process = localsite.start(spec, tmp_path / f"{name}-spec.json")
        started.append(process)
        return LocalSite(url, int(url.rsplit(":", 1)[1]), log, process)

    try:
        yield start
    finally:
        for process in started:
            process.kill()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'labelloop.db'}"


