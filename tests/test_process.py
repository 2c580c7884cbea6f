"""The one process manager: real processes started, awaited, and stopped by pid (groups included)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from labelloop.exceptions import ServiceError
from labelloop.process import (
    free_port,
    group_members,
    is_alive,
    port_is_free,
    port_open,
    start_process,
    stop_pid,
    url_ok,
    wait_until,
)

# A parent that ignores SIGTERM and a child of it (same process group) that also ignores it.
STUBBORN = textwrap.dedent("""
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('child up', flush=True); time.sleep(600)"])
    print("parent up", flush=True)
    time.sleep(600)
""")


def test_http_server_on_a_free_port_is_awaited_and_stopped_by_pid(tmp_path):
    port = free_port()
    assert port_is_free(port) and not port_open(port)
    server = start_process("test http server", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                           log=tmp_path / "logs" / "http.log", cwd=tmp_path)
    try:
        assert server.wait_ready(lambda: url_ok(f"http://127.0.0.1:{port}/"), timeout=60)
        assert port_open(port) and not port_is_free(port) and server.alive()
    finally:
        assert server.stop() is True
    assert group_members(server.pid) == [] and not is_alive(server.pid)
    assert server.returncode is not None  # reaped by us: no zombie left
    assert port_is_free(port) and not port_open(port)
    assert stop_pid(server.pid) is False  # nothing left to stop


def test_exit_during_start_up_names_the_service_its_exit_code_and_log(tmp_path):
    process = start_process("flaky service on 127.0.0.1:1",
                            [sys.executable, "-c", "import sys; print('cannot open the database'); sys.exit(3)"],
                            log=tmp_path / "flaky.log")
    with pytest.raises(ServiceError, match=r"^flaky service on 127\.0\.0\.1:1: exited with code 3 during start-up; "
                                           r"last lines of .*flaky\.log:\ncannot open the database$"):
        process.wait_ready(lambda: False, timeout=120)


def test_not_ready_in_time_is_a_clear_error_and_the_context_manager_still_stops_it(tmp_path):
    log = tmp_path / "slow.log"
    with pytest.raises(ServiceError, match=r"^slow service: not ready after 0\.3 s; last lines of .*slow\.log:\nwarming up$"):
        with start_process("slow service", [sys.executable, "-c", "print('warming up', flush=True); "
                                            "import time; time.sleep(600)"], log=log) as slow:
            wait_until(lambda: "warming up" in log.read_text(), timeout=60, what="the log line")
            slow.wait_ready(lambda: False, timeout=0.3, interval=0.05)
    assert group_members(slow.pid) == []


def test_whole_group_is_stopped_even_when_it_ignores_sigterm(tmp_path):
    log = tmp_path / "stubborn.log"
    stubborn = start_process("stubborn", [sys.executable, "-c", STUBBORN], log=log)
    try:
        members = wait_until(lambda: "child up" in log.read_text() and len(group_members(stubborn.pid)) == 2 and
                             group_members(stubborn.pid), timeout=60, what="parent and child")
        assert stubborn.pid in members
    finally:
        assert stop_pid(stubborn.pid, timeout=0.5)  # SIGTERM is ignored: SIGKILL after half a second
    assert all(not is_alive(pid) for pid in members)
    assert group_members(stubborn.pid) == []


def test_a_pid_from_a_state_file_is_stopped_too(tmp_path):
    # started by someone else (here: plain Popen, as another shell's `labelloop up` would be)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        assert is_alive(other.pid)
        assert stop_pid(other.pid) is True
        assert not is_alive(other.pid) and group_members(other.pid) == []
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
