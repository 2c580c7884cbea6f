"""Fixtures: a real Label Studio on 127.0.0.1.

A migrated template data dir (admin token and bot accounts included) is built
once per test session (~25 s); each server starts from a copy of it (~3 s) and
is stopped by PID in a ``finally`` even when the test fails.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from labelloop.store import ItemIn, LabelIn, Store
from labelloop.studio.bots import ensure_bot_accounts
from labelloop.studio.server import StudioServer, find_label_studio

BOTS = ["alice", "bob", "carol", "dave", "spammer"]


@pytest.fixture(scope="session")
def studio_template(tmp_path_factory) -> Path:
    find_label_studio()  # a clear error if setup did not install Label Studio
    root = tmp_path_factory.mktemp("ls-template")
    # one fresh start runs every migration: ~20 s idle, minutes on a loaded 2-core box
    server = StudioServer(root, startup_timeout=900)
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
    return StudioServer(studio_dir, startup_timeout=300).start()


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


def add_text_items(store: Store, dataset: str, n: int, classes, seed: int = 0):
    """``n`` text items; returns their ids and a hidden truth (item id -> class)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    truth_list = rng.integers(0, len(classes), n)
    res = store.add_items(dataset, [ItemIn(modality="text", text=f"{dataset} item {i}: about {classes[t]}")
                                    for i, t in enumerate(truth_list)])
    return res.ids, {i: int(t) for i, t in zip(res.ids, truth_list)}


def add_gold(store: Store, truth: dict, ids) -> dict:
    store.add_labels([LabelIn(item_id=i, label=truth[i], kind="gold", source="test-gold") for i in ids])
    return {i: truth[i] for i in ids}


@pytest.fixture
def helpers():
    """Plain helper functions (conftest modules cannot be imported under --import-mode=importlib)."""
    return SimpleNamespace(add_text_items=add_text_items, add_gold=add_gold, start_copy=start_copy)
