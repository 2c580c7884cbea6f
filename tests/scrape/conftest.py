"""Fixtures of the crawler tests: real HTTP servers on 127.0.0.1 (subprocesses, stopped by PID)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

# pytest runs with --import-mode=importlib (test folders are not on sys.path): make this folder's
# helper module importable by the test modules beside it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from scrape_helpers import LocalSite  # noqa: E402

from labelloop.process import Process, free_port, port_open, start_process  # noqa: E402

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download a driver


@pytest.fixture
def local_site(tmp_path: Path) -> Iterator[Callable[..., LocalSite]]:
    """Start ``localsite`` servers from route dicts on free ports; every one is killed by PID afterwards."""
    started: list[Process] = []

    def start(routes: dict[str, Any], root: Path | None = None, name: str = "site") -> LocalSite:
        log = tmp_path / f"{name}-requests.jsonl"
        port = free_port()
        spec = {"log": str(log), "routes": routes, "root": str(root) if root else None, "port": port}
        spec_path = tmp_path / f"{name}-spec.json"
        spec_path.write_text(json.dumps(spec))
        process = start_process(f"local site {name} on 127.0.0.1:{port}",
                                [sys.executable, "-m", "labelloop.scrape.localsite", str(spec_path)],
                                log=tmp_path / f"{name}.log", cwd=Path(__file__).resolve().parents[2])
        started.append(process)
        process.wait_ready(lambda: port_open(port), timeout=60, interval=0.02)
        return LocalSite(f"http://127.0.0.1:{port}", port, log, process)

    try:
        yield start
    finally:
        for process in started:
            process.kill()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'labelloop.db'}"


