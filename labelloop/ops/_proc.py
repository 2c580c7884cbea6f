"""Detached service processes: start with a log file, find by pid, stop by pid.

A service is started in its own session (process group) so that stopping it
also stops what it spawned (uvicorn workers, flow-run subprocesses), and so a
Ctrl-C in the shell that ran ``labelloop up`` does not take it down.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from labelloop.exceptions import ServiceError

__all__ = ["free_port", "spawn", "is_alive", "stop_pid", "group_members", "read_json", "write_json", "wait_until"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def spawn(argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path | None = None) -> int:
    """Start ``argv`` detached, stdout and stderr appended to ``log``; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            process = subprocess.Popen(
                list(argv), env=dict(env), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=cwd, start_new_session=True,
            )
        except OSError as exc:
            raise ServiceError(f"cannot start {argv[0]}: {exc}") from exc
    return process.pid


def _stat(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def is_alive(pid: int | None) -> bool:
    """True when the process exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = _stat(pid)
    if state == "Z":
        _reap(pid)
        return False
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop_pid(pid: int | None, timeout: float = 20.0) -> bool:
    """SIGTERM the process group of ``pid``, SIGKILL what is left after ``timeout``; True if it was running."""
    if not pid or not (is_alive(pid) or group_members(pid)):
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise ServiceError(f"process {pid}: not allowed to stop it ({exc})") from exc
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            _reap(pid)
            if not group_members(pid):
                return True
            time.sleep(0.1)
    return True


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, log: Path | None = None,
               pid: int | None = None) -> Any:
    """Poll ``predicate`` until truthy; a ServiceError naming ``what`` and the log's tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if pid is not None and not is_alive(pid):
            raise ServiceError(f"{what}: the process exited during start-up{_tail(log)}")
        time.sleep(0.2)
    raise ServiceError(f"{what}: not ready after {timeout:.0f} s{_tail(log)}")


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log}:\n" + "\n".join(text)


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


class PidStateMixin:
    """Stop-by-pid and the JSON state round trip shared by the services `labelloop up` starts.

    The dataclass using it has ``pid``, ``home`` (a Path) and ``extra_env`` fields.
    """

    def stop(self) -> bool:
        """Stop it by pid; True if something was running."""
        stopped = stop_pid(self.pid)
        self.pid = None
        return stopped

    def as_state(self) -> dict:
        from dataclasses import asdict

        state = asdict(self)
        state["home"] = str(self.home)
        state.pop("extra_env")
        return state

    @classmethod
    def from_state(cls, state: dict):
        from pathlib import Path

        return cls(**{**state, "home": Path(state["home"])})
