"""A project that starts from the web: `labelloop collect` crawls alone with live figures, and a whole turn
with no labels anywhere completes (exit 0), saying why the label-needing stages waited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labelloop.flows.pipeline import NEEDS_LABELS, _why_no_labels
from labelloop.store import LabelIn, Store

from scrape_helpers import TEST_UA


def write_project(tmp_path: Path, url: str) -> Path:
    config = {
        "dataset": {"name": "sayings", "modality": "text", "classes": ["wise", "silly"]},
        "data_dir": "data",
        "collect": {
            "user_agent": TEST_UA,
            "politeness": {"per_host_concurrency": 2, "failure_backoff": 0},
            "sites": [{
                "name": "sayings-site",
                "start_urls": [url + "/"],
                "terms": "Local test site written by the test; no terms restrict it.",
                "items": [{"name": "saying", "container": "blockquote", "text": "p"}],
            }],
        },
    }
    path = tmp_path / "labelloop.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_site(root: Path, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /drafts/\n")
    links = "".join(f'<a href="/p{i}.html">{i}</a>' for i in range(n)) + '<a href="/drafts/x.html">draft</a>'
    links += '<a href="http://elsewhere.test/">out</a>'
    (root / "index.html").write_text(f"<html><body>{links}</body></html>")
    for i in range(n):
        (root / f"p{i}.html").write_text(f"<html><body><blockquote><p>saying number {i}</p></blockquote></body></html>")


def labelloop(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}  # room for the final table's columns
    return subprocess.run([sys.executable, "-m", "labelloop", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.mark.slow
def test_collect_command_then_a_turn_without_labels_exits_0(local_site, tmp_path: Path) -> None:
    root = tmp_path / "www"
    write_site(root, 6)
    site = local_site({}, root=root)
    config = write_project(tmp_path, site.url)

    done = labelloop("collect", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # Live figures, then the final table: 7 pages, 6 items stored, 1 URL skipped by robots.txt, 1 link out of
    # scope, no errors.
    assert "7 pages" in done.stdout and "6 items stored; skipped: robots 1, scope 1, errors 0" in done.stdout
    assert "completed" in done.stdout
    row = next(line for line in done.stdout.splitlines() if "sayings-site" in line and "│" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[0] == "sayings-site" and cells[1] == "7" and cells[4] == "6" and cells[6:9] == ["1", "1", "0"]
    assert "/drafts/x.html" not in site.paths()
    store = Store(f"sqlite:///{tmp_path / 'data' / 'labelloop.db'}")
    assert store.count_items("sayings") == 6

    # A whole turn on a project with items but no labels: exit 0, the model and route stages say why they waited.
    turn = labelloop("run", "-c", str(config), cwd=tmp_path)
    assert turn.returncode == 0, turn.stdout[-3000:] + turn.stderr[-3000:]
    assert "Traceback" not in turn.stdout + turn.stderr
    for stage in NEEDS_LABELS:
        assert f"stage {stage} skipped: needs training labels of at least 2 classes; 0 of 6 items are labeled" in turn.stdout + turn.stderr
    runs = store.runs(limit=5)
    turn_run = runs[runs["kind"] == "pipeline"].iloc[0]
    assert turn_run["status"] == "completed"
    assert turn_run["summary"]["model"]["skipped"] is True
    assert "needs training labels" in turn_run["summary"]["route"]["reason"]
    store.close()


def test_label_needing_stages_wait_until_two_classes_have_labels(tmp_path: Path) -> None:
    config = write_project(tmp_path, "http://127.0.0.1:9")
    store = Store(f"sqlite:///{tmp_path / 'data' / 'labelloop.db'}").create()
    from labelloop.store import ItemIn

    ids = store.add_items("sayings", [ItemIn(modality="text", text=f"t{i}") for i in range(4)]).ids
    assert _why_no_labels(str(config)).startswith("needs training labels of at least 2 classes; 0 of 4 items")
    store.add_labels([LabelIn(item_id=ids[0], label=0, kind="gold", source="test")])
    assert "1 of 4 items are labeled (only class 'wise')" in _why_no_labels(str(config))
    store.add_labels([LabelIn(item_id=ids[1], label=1, kind="gold", source="test")])
    assert _why_no_labels(str(config)) is None  # the next turn trains and routes
    store.close()
