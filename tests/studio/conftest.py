"""Fixtures: a real Label Studio on 127.0.0.1.

A migrated template data dir (admin token and bot accounts included) is built
once per test session (~25 s); each server starts from a copy of it (~3 s) and
is stopped by PID in a ``finally`` even when the test fails.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labelloop.store import ItemIn, LabelIn, Store
from labelloop.studio.bots import ensure_bot_accounts
from labelloop.studio.server import StudioServer, find_label_studio

BOTS = ["alice", "bob", "carol", "dave", "spammer"]


@pytest.fixture(scope="session")
def studio_template(tmp_path_factory) -> Path:
    find_label_studio()  # a clear error if setup did not install Label Studio
    root = tmp_path_factory.mktemp("ls-template")
    server = StudioServer(root)
    try:
        server.start()
        with server.client() as admin:
            ensure_bot_accounts(admin, BOTS, root)
    finally:
        server.stop()
    return root


def start_copy(template: Path, studio_dir: Path) -> StudioServer:
    StudioServer.copy_data(template, studio_dir)
    shutil.copy2(template / "bots.json", studio_dir / "bots.json")
    return StudioServer(studio_dir).start()


@pytest.fixture(scope="module")
def studio(studio_template, tmp_path_factory):
    """One server per test module (tests use distinct dataset names so projects never collide)."""
    server = None
    try:
        server = start_copy(studio_template, tmp_path_factory.mktemp("ls") / "studio")
        yield server
    finally:
        if server is not None:
            server.stop()


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'store.db'}").create()
    yield s
    s.close()
