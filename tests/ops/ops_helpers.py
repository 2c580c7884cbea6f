"""Helpers of the operations tests (imported by the test modules)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Screenshots and other files a person wants to look at after CI (git-ignored, kept by CI).
ARTIFACTS = ROOT / "artifacts"

# Quicker loops than the defaults, so a scheduled run starts within seconds of being due.
FAST_SERVICES = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    "PREFECT_WORKER_QUERY_SECONDS": "2",
    "PREFECT_WORKER_PREFETCH_SECONDS": "5",
}


def labelloop_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `labelloop` command (this checkout's package first on the path)."""
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    full_env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "labelloop", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_async(coro):
    return asyncio.run(coro)
