"""Server killed mid-sync: a clear error naming the URL, and the next sync completes with nothing lost."""

from __future__ import annotations

import json

import pytest

from labelloop.exceptions import LabelStudioError, ServiceError
from labelloop.studio.assign import OverlapPolicy
from labelloop.studio.bots import Bot, bot_email
from labelloop.studio.client import StudioClient
from labelloop.studio.projects import task_data
from labelloop.studio.server import StudioServer
from labelloop.studio.sync import sync_annotations
from labelloop.studio.team import CrowdTeam

from studio_helpers import add_text_items
from conftest import start_copy

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


def test_server_killed_mid_sync_then_resumes(studio_template, tmp_path, store):
    dataset = "down"
    ids, truth = add_text_items(store, dataset, 12, CLASSES, seed=5)
    names = ["alice", "bob", "carol"]
    server = None
    try:
        server = start_copy(studio_template, tmp_path / "studio")
        port = server.port
        tokens = json.loads((server.studio_dir / "bots.json").read_text())
        items = store.items(dataset).set_index("id")
        with server.client() as admin:
            team = CrowdTeam(admin, dataset, "text", CLASSES, [bot_email(n) for n in names])
            team.push(ids, lambda i: task_data("text", {"text": items.at[i, "text"]}), OverlapPolicy(1, 1))
            for n in names:
                with StudioClient(server.url, tokens[n]["token"]) as c:
                    Bot(n, 1.0).answer_project(c, team.projects()[bot_email(n)].id, truth, CLASSES, "text")
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


def test_server_that_exits_at_start_is_a_clear_error(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    exe = venv / "bin" / "label-studio"
    exe.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
    exe.chmod(0o755)
    server = StudioServer(tmp_path / "studio", venv=venv, startup_timeout=30)
    with pytest.raises(ServiceError, match=r"Label Studio exited with code 3 while starting on "
                                           r"http://127\.0\.0\.1:\d+; see .*server\.log"):
        server.start()
    assert server.pid is None  # stopped and forgotten
    assert "boom: cannot start" in server.log_path.read_text()
