"""A real ``prefect server`` on 127.0.0.1: start, health check, stop by pid.

Its data (``PREFECT_HOME``: database, logs) lives under ``<data_dir>/prefect``,
so two projects on one machine never share a Prefect database.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from labelloop.exceptions import ServiceError
from labelloop.ops._state import PidStateMixin
from labelloop.process import free_port, is_alive, port_is_free, stop_pid

__all__ = ["PrefectServer", "prefect_env", "prefect_executable"]

# Prefect phones home and shares ~/.prefect unless told otherwise (see the facts).
BASE_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def prefect_executable() -> str:
    """The ``prefect`` script of the running interpreter's environment."""
    candidate = Path(sys.executable).parent / "prefect"
    if not candidate.exists():
        raise ServiceError(f"{candidate}: the prefect command is missing from this environment; pip install prefect")
    return str(candidate)


def prefect_env(home: Path, api_url: str | None = None, extra: dict[str, str] | None = None,
                project_dir: str | None = None) -> dict[str, str]:
    """The environment of a Prefect process: this one's, with labelloop's defaults and its own home.

    ``project_dir`` goes first on ``PYTHONPATH`` (of ``extra``, else none), so the process and its flow
    runs import the same labelloop as the deployment's entrypoint.
    """
    env = dict(os.environ)
    for key, value in BASE_ENV.items():
        env.setdefault(key, value)
    env["PREFECT_HOME"] = str(home)
    env.pop("PREFECT_PROFILE", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    else:
        env.pop("PREFECT_API_URL", None)
    env.update(extra or {})
    if project_dir:
        env["PYTHONPATH"] = project_dir + (":" + extra["PYTHONPATH"] if extra and extra.get("PYTHONPATH") else "")
    return env


@dataclass
class PrefectServer(PidStateMixin):
    """One Prefect API + UI server.

    Parameters
    ----------
    home : Path
        Its ``PREFECT_HOME`` (database and logs).
    host : str, default="127.0.0.1"
    port : int or None, default=None
        None: a free port chosen at start.
    database_url : str or None, default=None
        ``PREFECT_API_DATABASE_CONNECTION_URL``; None keeps SQLite under ``home``.
    """

    home: Path
    host: str = "127.0.0.1"
    port: int | None = None
    database_url: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def health_url(self) -> str | None:
        return f"{self.api_url}/health" if self.port is not None else None

    def start(self, timeout: float = 120.0) -> "PrefectServer":
        """Start the server unless it already runs; wait until healthy."""
        if self.running():
            return self
        if self.pid and is_alive(self.pid):
            stop_pid(self.pid)  # alive but not answering: a stale start, replace it
        if self.port is None or not port_is_free(self.port, self.host):
            self.port = free_port(self.host)
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.home / "server.log"
        extra = {
            # The UI reads its API address from these two; `--port` alone leaves it pointing at 4200.
            "PREFECT_SERVER_API_HOST": self.host,
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_UI_API_URL": self.api_url,
            **self.extra_env,
        }
        if self.database_url:
            extra["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        self._launch(f"Prefect server on {self.url}", [prefect_executable(), "server", "start"],
                     prefect_env(self.home, extra=extra), log, timeout=timeout)
        return self
