"""Server killed (by pid) mid-sync: a clear error naming the URL, and the next sync completes with nothing lost."""

from __future__ import annotations

import json
import re

import pytest

from labelloop.exceptions import LabelStudioError, ServiceError
from labelloop.process import is_alive, stop_pid
from labelloop.studio.assign import OverlapPolicy
from labelloop.studio.bots import Bot, bot_email
from labelloop.studio.client import StudioClient
from labelloop.studio.projects import task_data
from labelloop.studio.server import StudioServer
from labelloop.studio.sync import sync_annotations
from labelloop.studio.team import CrowdTeam


CLASSES = ["sports", "politics", "science", "music"]


class KilledAfterFirstProject(StudioClient):
    """A real client whose server is SIGKILLed (by pid) once the first project of a sync was read.

    Both passes read a project through ``export`` (an incremental one exports only the changed tasks).
    """

    def __init__(self, server: StudioServer):
        super().__init__(server.url, server.credentials.token, retries=2, backoff=0.05)
        self.server = server
        self.exports = 0

    def export(self, project_id, ids=None):
        if self.exports == 1:
            self.server.kill()
        self.exports += 1
        return super().export(project_id, ids)


def _answered_team(server: StudioServer, store, dataset: str, ids, truth, before_answers=None) -> CrowdTeam:
    """Push ``ids`` to three bots (one each) and let them answer every task right;
    ``before_answers(admin)`` runs between the push and the answers."""
    names = ["alice", "bob", "carol"]
    tokens = json.loads((server.studio_dir / "bots.json").read_text())
    items = store.items(dataset).set_index("id")
    with server.client() as admin:
        team = CrowdTeam(admin, dataset, "text", CLASSES, [bot_email(n) for n in names])
        team.push(ids, lambda i: task_data("text", {"text": items.at[i, "text"]}), OverlapPolicy(1, 1))
        if before_answers is not None:
            before_answers(admin)
        for n in names:
            with StudioClient(server.url, tokens[n]["token"]) as c:
                Bot(n, 1.0).answer_project(c, team.projects()[bot_email(n)].id, truth, CLASSES, "text")
    return team


@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_server_killed_mid_sync_then_restarted_loses_and_doubles_nothing(mode, studio_template, tmp_path, store,
                                                                        helpers):
    dataset = f"down-{mode}"
    ids, truth = helpers.add_text_items(store, dataset, 12, CLASSES, seed=5)
    cursors = []

    def sync_before_answers(admin):  # nothing answered yet: sets the cursors, so the next sync is incremental
        cursors.append(sync_annotations(admin, store, dataset, CLASSES))

    server = helpers.start_copy(studio_template, tmp_path / "studio")
    try:
        _answered_team(server, store, dataset, ids, truth, sync_before_answers if mode == "incremental" else None)
        assert [(c.mode, c.added) for c in cursors] == ([("full", 0)] if mode == "incremental" else [])
        with pytest.raises(LabelStudioError, match=rf"Label Studio at {re.escape(server.url)} failed GET "
                                                   r"/api/\S* after 3 attempts: cannot connect"):
            sync_annotations(KilledAfterFirstProject(server), store, dataset, CLASSES)
        partial = store.labels(dataset, kinds=["annotator"])
        assert 0 < len(partial) < 12  # the first project's rows were kept
        assert not (partial["label"] == -1).any()  # a partial pull marks nothing deleted

        server = StudioServer(server.studio_dir, port=server.port).start()  # back: same data dir, same URL
        with server.client() as admin:
            report = sync_annotations(admin, store, dataset, CLASSES)
            assert report.mode == mode  # an incremental sync's cursors were not moved by the broken one
            assert report.added == 12 - len(partial) and report.deleted == 0
            assert sync_annotations(admin, store, dataset, CLASSES).added == 0
        rows = store.labels(dataset, kinds=["annotator"])
        assert len(rows) == 12 and rows["dedupe_key"].is_unique
        assert sorted(rows["item_id"]) == sorted(ids)
    finally:
        server.stop()


def test_server_that_exits_at_start_is_a_clear_error(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    exe = venv / "bin" / "label-studio"
    exe.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
    exe.chmod(0o755)
    server = StudioServer(tmp_path / "studio", venv=venv, startup_timeout=30)
    with pytest.raises(ServiceError, match=r"Label Studio on http://127\.0\.0\.1:\d+: exited with code 3 during "
                                           r"start-up; last lines of .*server\.log:\nboom: cannot start"):
        server.start()
    assert server.pid is None  # stopped and forgotten
    assert not (server.studio_dir / "server.json").exists()


def test_cli_studio_up_status_down(studio_template, tmp_path):
    import os

    import httpx
    from typer.testing import CliRunner

    from labelloop.cli import app

    config = tmp_path / "labelloop.yaml"
    config.write_text("dataset: {name: d, modality: text, classes: [a, b]}\ndata_dir: data\n")
    StudioServer.copy_data(studio_template, tmp_path / "data" / "studio")
    runner = CliRunner()
    pid = None
    try:
        up = runner.invoke(app, ["studio", "up", "-c", str(config)])
        assert up.exit_code == 0, up.output
        info = json.loads((tmp_path / "data" / "studio" / "server.json").read_text())
        pid = info["pid"]
        assert f"Label Studio running at {info['url']}" in up.output
        assert httpx.get(info["url"] + "/health").status_code == 200
        creds = json.loads((tmp_path / "data" / "studio" / "credentials.json").read_text())
        assert creds["password"] not in up.output and creds["token"] not in up.output
        assert oct((tmp_path / "data" / "studio" / "credentials.json").stat().st_mode & 0o777) == "0o600"
        again = runner.invoke(app, ["studio", "up", "-c", str(config)])  # already running: same server
        assert f"(pid {pid})" in again.output
        assert "Label Studio at" in runner.invoke(app, ["studio", "status", "-c", str(config)]).output
        down = runner.invoke(app, ["studio", "down", "-c", str(config)])
        assert "Label Studio stopped" in down.output
        assert not is_alive(pid)  # exited (and reaped: it was started by this process)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        pid = None
        assert "not running" in runner.invoke(app, ["studio", "status", "-c", str(config)]).output
    finally:
        stop_pid(pid)
