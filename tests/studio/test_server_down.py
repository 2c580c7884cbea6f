"""Server killed mid-sync: a clear error naming the URL, and the next sync completes with nothing lost."""

from __future__ import annotations

import json

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


class KillAfterFirstExport(StudioClient):
    """A real client whose server dies right after the first project was pulled."""

    def __init__(self, server: StudioServer, **kw):
        super().__init__(server.url, server.credentials.token, **kw)
        self.server = server
        self.exports = 0

    def export(self, project_id):
        out = super().export(project_id)
        self.exports += 1
        if self.exports == 1:
            self.server.kill()
        return out


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


def test_server_killed_mid_sync_then_resumes(studio_template, tmp_path, store, helpers):
    dataset = "down"
    ids, truth = helpers.add_text_items(store, dataset, 12, CLASSES, seed=5)
    server = None
    try:
        server = helpers.start_copy(studio_template, tmp_path / "studio")
        port = server.port
        team = _answered_team(server, store, dataset, ids, truth)
        dying = KillAfterFirstExport(server, retries=2, backoff=0.05)
        with pytest.raises(LabelStudioError, match=rf"Label Studio at http://127\.0\.0\.1:{port} failed GET "
                                                   r"/api/.* after 3 attempts: cannot connect"):
            sync_annotations(dying, store, dataset, CLASSES, projects=list(team.projects().values()))
        partial = store.labels(dataset, kinds=["annotator"])
        assert 0 < len(partial) < 12  # the first project's rows were kept
        assert not (partial["label"] == -1).any()  # a partial pull marks nothing deleted

        server = StudioServer(server.studio_dir, port=port).start()  # same data dir, same URL
        with server.client() as admin:
            report = sync_annotations(admin, store, dataset, CLASSES)
        assert report.added == 12 - len(partial) and report.deleted == 0
        rows = store.labels(dataset, kinds=["annotator"])
        assert len(rows) == 12 and rows["dedupe_key"].is_unique
        assert sorted(rows["item_id"]) == sorted(ids)
    finally:
        if server is not None:
            server.stop()


class KillAfterFirstChangedProject(StudioClient):
    """A real client whose server dies after the first project of an incremental sync was read."""

    def __init__(self, server: StudioServer, **kw):
        super().__init__(server.url, server.credentials.token, **kw)
        self.server = server
        self.reads = 0

    def changed_tasks(self, project_id, since=None, batch=500):
        if self.reads == 1:
            self.server.kill()
        self.reads += 1
        return super().changed_tasks(project_id, since=since, batch=batch)


def test_server_restarted_mid_incremental_sync_loses_and_doubles_nothing(studio_template, tmp_path, store, helpers):
    dataset = "restart"
    ids, truth = helpers.add_text_items(store, dataset, 12, CLASSES, seed=6)
    first = []

    def sync_before_answers(admin):  # nothing answered yet: sets the cursors
        first.append(sync_annotations(admin, store, dataset, CLASSES))

    server = None
    try:
        server = helpers.start_copy(studio_template, tmp_path / "studio")
        port = server.port
        _answered_team(server, store, dataset, ids, truth, before_answers=sync_before_answers)
        assert first[0].mode == "full" and first[0].added == 0
        dying = KillAfterFirstChangedProject(server, retries=2, backoff=0.05)
        with pytest.raises(LabelStudioError, match=rf"Label Studio at http://127\.0\.0\.1:{port} failed GET "
                                                   r"/api/tasks/ after 3 attempts: cannot connect"):
            sync_annotations(dying, store, dataset, CLASSES, mode="incremental")
        partial = store.labels(dataset, kinds=["annotator"])
        assert 0 < len(partial) < 12  # the first project's rows were kept

        server = StudioServer(server.studio_dir, port=port).start()  # Label Studio back, same data, same URL
        with server.client() as admin:
            report = sync_annotations(admin, store, dataset, CLASSES)
            assert report.mode == "incremental"  # the cursors were not moved by the broken sync
            assert report.added == 12 - len(partial) and report.deleted == 0
            assert sync_annotations(admin, store, dataset, CLASSES).added == 0
        rows = store.labels(dataset, kinds=["annotator"])
        assert len(rows) == 12 and rows["dedupe_key"].is_unique
        assert sorted(rows["item_id"]) == sorted(ids)
    finally:
        if server is not None:
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
