"""Shared fixtures: Prefect's test harness, real SQLite and PostgreSQL stores, the digits example.

The environment is set at import, before any test module imports Prefect.
"""

from __future__ import annotations

import os
import shutil
import sys
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from labelloop.process import free_port

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="labelloop-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect-home")
os.environ.pop("PREFECT_API_URL", None)
from labelloop.runtime import prepare_prefect_env  # noqa: E402

prepare_prefect_env()  # the same environment `labelloop run` sets, before any test imports Prefect

ROOT = Path(__file__).resolve().parent.parent

# Tests import with --import-mode=importlib (no basename clashes between folders); each
# folder's helper module (uniquely named: ops_helpers, scrape_helpers, ...) is importable.
for _folder in sorted(Path(__file__).resolve().parent.iterdir()):
    if _folder.is_dir() and not _folder.name.startswith((".", "_")) and str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


@pytest.fixture(scope="session")
def prefect_harness():
    """A real Prefect API (temporary database, ephemeral server) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _pg_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


@pytest.fixture(scope="session")
def postgres_server():
    """A throw-away PostgreSQL cluster on 127.0.0.1 (Debian's server binaries), stopped at the end."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries not found under /usr/lib/postgresql: run `make setup`")
    root = Path(tempfile.mkdtemp(prefix="labelloop-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(as_user + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "labelloop", "-E", "UTF8"],
                   check=True, capture_output=True)
    port = free_port()
    log = root / "postgres.log"
    if as_user:
        log.touch()
        shutil.chown(log, "postgres")
    subprocess.run(
        as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start",
                   "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"],
        check=True, capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://labelloop@127.0.0.1:{port}"
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the session's PostgreSQL server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = postgres_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{dsn}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The same store tests on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url):
    from labelloop.store import Store

    s = Store(store_url).create()
    yield s
    s.close()


@pytest.fixture
def digits_example(tmp_path):
    """The digits example (5% gold) written into a temp dir; returns the config path."""
    from labelloop.demo import write_digits_example

    return write_digits_example(tmp_path / "digits")
