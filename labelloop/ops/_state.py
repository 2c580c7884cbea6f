"""What ``labelloop up`` keeps about its services: the JSON state file and the pid round trip.

Processes themselves are started, awaited and stopped by :mod:`labelloop.process`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labelloop.exceptions import ServiceError
from labelloop.process import is_alive, start_process, stop_pid, url_ok

__all__ = ["PidStateMixin", "read_json", "write_json"]


def read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ServiceError(f"{path}: not valid JSON ({exc}); remove it after stopping the processes it lists") from exc


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)  # atomic: a reader never sees half a file


@dataclass(kw_only=True)
class PidStateMixin:
    """Start, health, stop-by-pid and the JSON state round trip of the services `labelloop up` starts.

    A dataclass using it has a ``home`` (a Path) field; ``health_url`` is its HTTP health check
    (a service without one overrides :meth:`healthy`).

    Parameters
    ----------
    pid : int or None
        Set once started (or read back from the state file).
    log : str or None
        Its log file, set once started.
    extra_env : dict
        Extra environment of the process (not saved in the state file).
    """

    pid: int | None = None
    log: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def health_url(self) -> str | None:
        return None

    def healthy(self) -> bool:
        """True when its health URL answers 200 (False before it has a port)."""
        url = self.health_url
        return url is not None and url_ok(url)

    def running(self) -> bool:
        return is_alive(self.pid) and self.healthy()

    def _launch(self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path | None = None,
                timeout: float | None = None) -> None:
        """Start the process (its pid and log kept), and wait ``timeout`` s until :meth:`healthy`."""
        process = start_process(name, argv, env=env, log=log, cwd=cwd)
        self.pid, self.log = process.pid, str(log)
        if timeout is not None:
            process.wait_ready(self.healthy, timeout)

    def stop(self) -> bool:
        """Stop it by pid; True if something was running."""
        stopped = stop_pid(self.pid)
        self.pid = None
        return stopped

    def as_state(self) -> dict:
        state = asdict(self)
        state["home"] = str(self.home)
        state.pop("extra_env")
        return state

    @classmethod
    def from_state(cls, state: dict):
        return cls(**{**state, "home": Path(state["home"])})
