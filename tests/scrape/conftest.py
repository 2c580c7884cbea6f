"""Fixtures of the crawler tests: real HTTP servers on 127.0.0.1 (subprocesses, stopped by PID)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from scrape_helpers import LocalSite

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download a driver
# Prefect (flow tests): a private home, no telemetry; set before Prefect is first imported.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="labelloop-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@pytest.fixture
def local_site(tmp_path: Path) -> Iterator[Callable[..., LocalSite]]:
    """Start ``localsite`` servers from route dicts; every one is killed by PID afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(routes: dict[str, Any], root: Path | None = None, name: str = "site") -> LocalSite:
        log = tmp_path / f"{name}-requests.jsonl"
        spec = {"log": str(log), "routes": routes, "root": str(root) if root else None}
        spec_path = tmp_path / f"{name}-spec.json"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.Popen(
            [sys.executable, "-m", "labelloop.scrape.localsite", str(spec_path)],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
        )
        started.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"local site did not start (got {line!r})")
        port = int(line.split()[1])
        return LocalSite(f"http://127.0.0.1:{port}", port, log, proc)

    try:
        yield start
    finally:
        for proc in started:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait(timeout=10)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'labelloop.db'}"


