"""Service processes: start with an environment and a log file, wait until ready, stop by pid.

The one process manager of labelloop. Every server it runs or tests against
goes through here: Label Studio (:mod:`labelloop.studio.server`), ``prefect
server`` and the Prefect worker (:mod:`labelloop.ops`), the webhook receiver
(:mod:`labelloop.ops.webhooks`) and the fixtures of the test suite.

- :func:`start_process` runs a command in its own session (process group),
  stdout and stderr appended to a log file, so stopping it also stops what it
  spawned (uvicorn workers, flow-run subprocesses), and a Ctrl-C in the shell
  that ran ``labelloop up`` does not take it down. It returns a :class:`Process`.
- :func:`wait_until` (and :meth:`Process.wait_ready`) polls a predicate —
  :func:`url_ok` for an HTTP health check, :func:`port_open` for a bare port —
  and fails with a :class:`~labelloop.exceptions.ServiceError` naming the
  service, why (it exited with code N, or was not ready in time) and the last
  lines of its log.
- :func:`stop_pid` stops a process group by pid (SIGTERM, then SIGKILL) and
  reaps it; the pid may come back from a state file written by another shell.
  Tests call it in ``finally`` (or use a :class:`Process` as a context
  manager), so a failing test leaves no server behind.
- :func:`free_port` picks a port on 127.0.0.1; servers bind 127.0.0.1 only.

Importing this module starts nothing and imports only the standard library.

>>> port = free_port()
>>> port_is_free(port) and not port_open(port)
True
>>> wait_until(lambda: 42, timeout=1, what="the answer")
42
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from labelloop.exceptions import ServiceError

__all__ = [
    "Process",
    "free_port",
    "port_is_free",
    "port_open",
    "url_ok",
    "start_process",
    "is_alive",
    "exit_code",
    "group_members",
    "stop_pid",
    "wait_until",
    "log_tail",
]

T = TypeVar("T")

# Processes this interpreter started, by pid: polling the Popen reaps it (no zombie) and keeps its exit code.
_CHILDREN: dict[int, subprocess.Popen] = {}


# -- ports --------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could bind ``port`` on ``host`` now (a closed one's TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do (uvicorn, http.server)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def url_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``GET url`` answers 200 (a health check); False on any connection error."""
    import httpx  # here, not at import: the module stays standard-library only for the test fixtures

    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


# -- processes ----------------------------------------------------------------------------


@dataclass
class Process:
    """A started service process: its name (used in every error), pid and log file."""

    name: str
    pid: int
    log: Path | None = None

    def alive(self) -> bool:
        return is_alive(self.pid)

    @property
    def returncode(self) -> int | None:
        """Its exit code once it has exited (None while it runs, or when another process started it)."""
        return exit_code(self.pid)

    def wait_ready(self, ready: Callable[[], T], timeout: float, interval: float = 0.2) -> T:
        """Poll ``ready`` until truthy; a ServiceError naming this service if it exits or times out first."""
        return wait_until(ready, timeout, self.name, log=self.log, pid=self.pid, interval=interval)

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM its process group, SIGKILL what is left after ``timeout``; True if it was running."""
        return stop_pid(self.pid, timeout)

    def kill(self) -> bool:
        """SIGKILL its process group at once (tests: a server that dies mid-request)."""
        return stop_pid(self.pid, sig=signal.SIGKILL)

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_process(name: str, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None,
                  cwd: Path | None = None) -> Process:
    """Start ``argv`` detached in its own process group, stdout and stderr appended to ``log``.

    Parameters
    ----------
    name : str
        What to call it in errors, e.g. ``"Label Studio on http://127.0.0.1:8123"``.
    argv : sequence of str
    log : Path
        Appended to (created with its folder if missing).
    env : mapping, optional
        Its whole environment; default this process's.
    cwd : Path, optional
    """
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            popen = subprocess.Popen(
                list(argv), env=dict(env) if env is not None else None, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True,
            )
        except OSError as exc:
            raise ServiceError(f"{name}: cannot start {argv[0]} ({exc})") from exc
    _CHILDREN[popen.pid] = popen
    return Process(name, popen.pid, log)


def _stat(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _reap(pid: int) -> None:
    popen = _CHILDREN.get(pid)
    if popen is not None:
        popen.poll()
        return
    try:
        os.waitpid(pid, os.WNOHANG)  # a child of ours started some other way
    except ChildProcessError:
        pass  # someone else's child: its parent reaps it


def is_alive(pid: int | None) -> bool:
    """True when the process exists and is not a zombie (an exited child of ours is reaped here)."""
    if not pid:
        return False
    popen = _CHILDREN.get(pid)
    if popen is not None:
        return popen.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _stat(pid) in ("Z", "X"):
        _reap(pid)
        return False
    return True


def exit_code(pid: int | None) -> int | None:
    """The exit code of a process this interpreter started, once it has exited; else None."""
    popen = _CHILDREN.get(pid) if pid else None
    return popen.poll() if popen is not None else None


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
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _running(pid: int) -> bool:
    """The leader or any process of its group still runs."""
    return is_alive(pid) or bool(group_members(pid))


def _signal(pid: int, sig: int) -> None:
    members = group_members(pid)
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass  # the group is gone (its leader may remain, in a group of its own)
    except PermissionError as exc:
        raise ServiceError(f"process {pid}: not allowed to stop it ({exc})") from exc
    if pid not in members and is_alive(pid):  # the leader left its group (setsid): signal it by pid too
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_pid(pid: int | None, timeout: float = 20.0, sig: int = signal.SIGTERM) -> bool:
    """Signal the process group of ``pid`` (``sig``, then SIGKILL after ``timeout`` s) and reap it.

    Returns True if something was running. Waits until neither the process nor
    any of its group is left, so a port it held is free when this returns.
    """
    if not pid or not _running(pid):
        return False
    for current in [sig] if sig == signal.SIGKILL else [sig, signal.SIGKILL]:
        _signal(pid, current)
        deadline = time.monotonic() + (timeout if current != signal.SIGKILL else 5.0)
        while _running(pid):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        else:
            return True
    return True


# -- waiting ------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], T], timeout: float = 60.0, what: str = "condition", *,
               log: Path | str | None = None, pid: int | None = None, interval: float = 0.2) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Raises
    ------
    ServiceError
        Naming ``what``: when process ``pid`` exits first (with its exit code)
        or after ``timeout`` seconds; with the last lines of ``log`` when given.

    >>> wait_until(lambda: [], timeout=0.1, what="an empty list", interval=0.05)
    Traceback (most recent call last):
    ...
    labelloop.exceptions.ServiceError: an empty list: not ready after 0.1 s
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if pid is not None and not is_alive(pid):
            code = exit_code(pid)
            how = f"exited with code {code}" if code is not None else "exited"
            raise ServiceError(f"{what}: {how} during start-up{log_tail(log)}")
        if time.monotonic() >= deadline:
            raise ServiceError(f"{what}: not ready after {timeout:g} s{log_tail(log)}")
        time.sleep(interval)


def log_tail(log: Path | str | None, lines: int = 15) -> str:
    """``"; last lines of LOG:\\n..."`` for an error message, or ``""`` without a log."""
    if log is None or not Path(log).exists():
        return ""
    text = Path(log).read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log}:\n" + "\n".join(text)
