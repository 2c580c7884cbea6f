"""The `labelloop` command end to end, in subprocesses with their own ephemeral Prefect."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from labelloop.config import load_config
from labelloop.process import start_process
from labelloop.store import Store


def labelloop(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "labelloop", *args], cwd=cwd, capture_output=True, text=True, timeout=600, **kwargs
    )


def test_init_writes_a_config_that_loads_and_refuses_to_overwrite(tmp_path):
    done = labelloop("init", str(tmp_path / "proj"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config = load_config(tmp_path / "proj" / "labelloop.yaml")
    assert config.dataset.name == "my-dataset"
    again = labelloop("init", str(tmp_path / "proj"), cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stdout


def test_run_with_bad_config_names_the_key(tmp_path):
    path = tmp_path / "labelloop.yaml"
    path.write_text(yaml.safe_dump({"dataset": {"name": "x", "modality": "text", "classes": ["a"]}}))
    done = labelloop("run", "-c", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert "labelloop.yaml: dataset.classes: needs at least 2 classes (got 1)" in done.stdout


def test_studio_commands_include_the_demo_defined_by_the_cli(tmp_path):
    done = labelloop("studio", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert all(name in done.stdout for name in ("up", "down", "status", "demo"))


def test_crowd_demo_config_gets_one_crowd_section_with_its_bots(tmp_path):
    from labelloop.demo import write_digits_example

    path = write_digits_example(tmp_path, crowd=True)
    again = write_digits_example(tmp_path, crowd=True)  # a second demo run appends nothing
    assert again == path and path.read_text().count("\ncrowd:") == 1
    config = load_config(path)
    assert config.crowd.enabled and [b.name for b in config.crowd.bots] == ["w0", "w1", "w2", "w4"]
    assert config.crowd.bots[2].confusions["3"] == "8"


def test_demo_end_to_end_then_status(tmp_path):
    import re

    done = labelloop("demo", str(tmp_path / "demo"), "--turns", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "learning curve" in done.stdout and "demo completed" in done.stdout
    turns = re.findall(r"turn (\d): model accuracy ([0-9.]+) after (\d+) labels bought", done.stdout)
    assert [t[0] for t in turns] == ["1", "2"]
    assert int(turns[0][2]) == 0 and int(turns[1][2]) > 0, "the simulated team answered the first turn's queues"
    assert all(0.5 < float(t[1]) <= 1.0 for t in turns)
    status = labelloop("status", "-c", str(tmp_path / "demo" / "labelloop.yaml"), cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "items 1797" in status.stdout and "pipeline" in status.stdout and "completed" in status.stdout
    assert "expert" in status.stdout and "pseudo" in status.stdout


def _counts(db: Path) -> dict:
    with sqlite3.connect(db) as conn:
        return {
            "items": conn.execute("SELECT COUNT(*) FROM items").fetchone()[0],
            "distinct_hashes": conn.execute("SELECT COUNT(DISTINCT content_hash) FROM items").fetchone()[0],
            "gold": conn.execute("SELECT COUNT(*) FROM labels WHERE kind='gold'").fetchone()[0],
            "gold_items": conn.execute("SELECT COUNT(DISTINCT item_id) FROM labels WHERE kind='gold'").fetchone()[0],
            "model": conn.execute("SELECT COUNT(*) FROM labels WHERE kind='model'").fetchone()[0],
        }


def test_run_killed_midway_resumes_without_duplicates_or_loss(tmp_path):
    from labelloop.demo import write_digits_example

    config_path = write_digits_example(tmp_path / "digits")
    db = tmp_path / "digits" / "data" / "labelloop.db"
    gold = int((np.load(tmp_path / "digits" / "digits.npz")["y"] >= 0).sum())
    run = start_process("labelloop run", [sys.executable, "-m", "labelloop", "run", "-c", str(config_path)],
                        log=tmp_path / "run.log", cwd=tmp_path)
    try:
        def imported() -> bool:
            if not db.exists():
                return False
            try:
                return _counts(db)["items"] > 0
            except sqlite3.OperationalError:  # schema not there yet
                return False

        run.wait_ready(imported, timeout=300, interval=0.05)
    finally:
        run.kill()
    killed = _counts(db)
    assert killed["model"] < 1797, "the run was not killed midway"
    done = labelloop("run", "-c", str(config_path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    after = _counts(db)
    assert after == {"items": 1797, "distinct_hashes": 1797, "gold": gold, "gold_items": gold, "model": 1797}
    store = Store(f"sqlite:///{db}")
    runs = store.runs(limit=5)
    store.close()
    assert runs.loc[0, "status"] == "completed"
