"""Files served by Label Studio (not inlined) and the incremental sync, against a real server."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest

from labelloop.config import parse_config
from labelloop.exceptions import LabelStudioError
from labelloop.store import ItemIn
from labelloop.studio.assign import ITEM_KEY, OverlapPolicy
from labelloop.studio.bots import Bot, bot_email
from labelloop.studio.client import StudioClient, _session_login
from labelloop.studio.projects import ensure_file_storage, ensure_project, item_content, local_file_url, task_data
from labelloop.studio.sync import _fresh, _known_annotations, sync_annotations, sync_state
from labelloop.studio.team import CrowdTeam

pytestmark = pytest.mark.slow

CLASSES = ["sports", "politics", "science", "music"]
CHOICE = {"from_name": "label", "to_name": "text", "type": "choices"}


def bots_json(studio) -> dict:
    return json.loads((studio.studio_dir / "bots.json").read_text())


def test_image_items_reach_label_studio_by_url_and_the_annotator_sees_them(studio, store):
    from PIL import Image

    root = studio.files_root
    config = parse_config({"dataset": {"name": "photos", "modality": "image", "classes": CLASSES},
                           "data_dir": str(root)})
    assert config.data_path.resolve() == root
    # a big photo (random pixels do not compress: ~7 MB) stored where labelloop's importer puts files
    big = root / "files" / "ab" / "abcdef big photo.png"
    big.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > 5_000_000
    from labelloop.sources.arrays import encode_array

    ids = store.add_items("photos", [
        ItemIn(modality="image", path=str(big), uri=big.as_uri(), external_id="big"),
        ItemIn(modality="image", payload=encode_array(np.arange(64.0).reshape(8, 8)), external_id="digit"),
    ]).ids
    content = item_content(store, "photos", "image", config.data_path, ids)
    datas = [content(i) for i in ids]
    assert datas[0]["image"] == local_file_url(big, root) and datas[0]["image"].startswith("/data/local-files/?d=files/ab/")
    assert datas[1]["image"].startswith("/data/local-files/?d=files/rendered/")  # an array goes as a rendered file
    with studio.client() as admin:
        ref = ensure_project(admin, dataset="photos", role="crowd", modality="image", classes=CLASSES,
                             annotator=bot_email("alice"))
        storage = ensure_file_storage(admin, ref, root / "files")
        assert ensure_file_storage(admin, ref, root / "files") == storage  # once per project
        admin.import_tasks(ref.id, [{"data": {**d, ITEM_KEY: i}} for d, i in zip(datas, ids)])
        tasks = admin.tasks(ref.id)
    assert len(tasks) == 2
    for t in tasks:  # what Label Studio holds per task: a URL, never the file
        assert len(json.dumps(t["data"])) <= 2048
    # the labeling UI loads the URL with the annotator's session: the real bytes come back
    creds = bots_json(studio)["alice"]
    session = _session_login(studio.url, bot_email("alice"), creds["password"], 30)
    try:
        got = session.get(datas[0]["image"])
        assert got.status_code == 200 and got.content == big.read_bytes()
        rendered = session.get(datas[1]["image"])
        assert rendered.status_code == 200 and rendered.content[:8] == b"\x89PNG\r\n\x1a\n"
        # nothing outside the served folder: not the credentials next to it
        assert session.get("/data/local-files/?d=studio/credentials.json").status_code == 404
    finally:
        session.close()
    anonymous = httpx.get(studio.url + datas[0]["image"], follow_redirects=False)
    assert anonymous.status_code != 200 and big.read_bytes()[:64] not in anonymous.content
    with pytest.raises(LabelStudioError, match=r"file /etc/hostname is outside the data dir .* Label Studio serves"):
        local_file_url("/etc/hostname", root)
    # text and tabular items are unchanged
    assert task_data("text", {"text": "hi"}) == {"text": "hi"}
    assert task_data("tabular", {"row": [1.5, 2]}) == {"row": {"f0": 1.5, "f1": 2.0}}


def _push_and_answer(studio, store, helpers, dataset, names, n):
    ids, truth = helpers.add_text_items(store, dataset, n, CLASSES, seed=11)
    items = store.items(dataset).set_index("id")
    admin = studio.client()
    team = CrowdTeam(admin, dataset, "text", CLASSES, [bot_email(x) for x in names])
    team.push(ids, lambda i: task_data("text", {"text": items.at[i, "text"]}), OverlapPolicy(1, 1), seed=0)
    tokens = bots_json(studio)
    clients = {x: StudioClient(studio.url, tokens[x]["token"]) for x in names}
    for x in names:
        Bot(x, 1.0).answer_project(clients[x], team.projects()[bot_email(x)].id, truth, CLASSES, "text")
    return admin, team, clients, ids, truth


def test_incremental_sync_reads_only_changes_and_keeps_every_guarantee(studio, store, helpers):
    dataset = "incr"
    names = ["alice", "bob"]
    admin, team, clients, ids, truth = _push_and_answer(studio, store, helpers, dataset, names, 12)
    try:
        time.sleep(1.5)  # the cursor is Label Studio's clock in whole seconds: let it pass the answers
        first = sync_annotations(admin, store, dataset, CLASSES, run_id="s1", overlap_s=0)
        assert first.mode == "full" and first.added == 12 and first.tasks_read == 12
        assert set(sync_state(store, dataset)["projects"]) and sync_state(store, dataset)["server"] == studio.url
        again = sync_annotations(admin, store, dataset, CLASSES, run_id="s2", overlap_s=0)
        assert again.mode == "incremental" and again.added == 0 and again.tasks_read == 0
        time.sleep(1.5)

        # alice edits one answer, bob deletes one, and an unknown label lands on a third task
        a_project, b_project = (team.projects()[bot_email(x)].id for x in names)
        a_task = clients["alice"].tasks(a_project)[0]
        item = a_task["data"][ITEM_KEY]
        new_class = (truth[item] + 1) % 4
        clients["alice"].update_annotation(a_task["annotations"][0]["id"],
                                           [{**CHOICE, "value": {"choices": [CLASSES[new_class]]}}])
        b_tasks = clients["bob"].tasks(b_project)
        clients["bob"].delete_annotation(b_tasks[0]["annotations"][0]["id"])
        bad = admin.create_annotation(b_tasks[1]["id"], [{**CHOICE, "value": {"choices": ["zebra"]}}])

        # two syncs at once (a cron sync and a webhook-triggered one): each change is stored once
        results = []
        threads = [threading.Thread(target=lambda k=k: results.append(sync_annotations(
            StudioClient(studio.url, studio.credentials.token), store, dataset, CLASSES, run_id=f"c{k}",
            mode="incremental", overlap_s=0))) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 2 and all(r.mode == "incremental" for r in results)
        assert all(r.tasks_read == 3 for r in results)  # the three changed tasks, not the 12
        assert all(r.added <= 2 for r in results) and max(r.deleted for r in results) == 1
        assert all(len(r.quarantined) == 1 and r.quarantined[0].annotation == bad["id"] for r in results)
        assert "'zebra' is not one of the classes" in results[0].quarantined[0].error
        rows = store.labels(dataset, kinds=["annotator"])
        assert len(rows) == 14 and rows["dedupe_key"].is_unique
        mine = rows[rows["item_id"] == item]
        assert mine["label"].tolist() == [truth[item], new_class]  # edit appended, old row kept
        retracted = rows[rows["label"] == -1]
        assert retracted["item_id"].tolist() == [b_tasks[0]["data"][ITEM_KEY]]
        assert retracted["dedupe_key"].iloc[0] == f"ls:{b_tasks[0]['annotations'][0]['id']}:deleted"

        # fixing the quarantined answer syncs it next time
        time.sleep(1.5)
        admin.update_annotation(bad["id"], [{**CHOICE, "value": {"choices": [CLASSES[0]]}}])
        time.sleep(1.5)
        fixed = sync_annotations(admin, store, dataset, CLASSES, run_id="s3", overlap_s=0)
        assert fixed.mode == "incremental" and fixed.added == 1 and not fixed.quarantined

        # a whole task deleted leaves no changed task: incremental cannot see it, the reconcile does
        time.sleep(1.5)
        gone_task = clients["alice"].tasks(a_project)[-1]
        admin.request("DELETE", f"/api/tasks/{gone_task['id']}/")
        blind = sync_annotations(admin, store, dataset, CLASSES, mode="incremental", overlap_s=0)
        assert blind.deleted == 0 and blind.tasks_read == 0
        auto = sync_annotations(admin, store, dataset, CLASSES, run_id="s4")  # the project lost a task
        assert auto.mode == "full" and "lost tasks" in auto.reason and auto.deleted == 1
        rows = store.labels(dataset, kinds=["annotator"])
        assert rows[rows["label"] == -1]["item_id"].tolist()[-1] == gone_task["data"][ITEM_KEY]
        # the periodic reconcile runs when due, and adds nothing when nothing changed
        due = sync_annotations(admin, store, dataset, CLASSES, reconcile_every=0.001)
        assert due.mode == "full" and "reconcile due" in due.reason and due.added == 0
        assert sync_annotations(admin, store, dataset, CLASSES).added == 0
        assert store.count_labels(dataset) == len(rows)
    finally:
        admin.close()
        for c in clients.values():
            c.close()


def test_a_stale_read_never_becomes_the_newest_opinion(store, helpers):
    ids, _ = helpers.add_text_items(store, "stale", 2, CLASSES)
    from labelloop.store import LabelIn

    store.add_labels([LabelIn(item_id=ids[0], label=2, kind="annotator", source="a@x", dedupe_key="ls:7:2026-01-02T00:00:00.000000Z"),
                      LabelIn(item_id=ids[1], label=1, kind="annotator", source="a@x", dedupe_key="ls:8:2026-01-01T00:00:00.000000Z"),
                      LabelIn(item_id=ids[1], label=-1, kind="annotator", source="a@x", dedupe_key="ls:8:deleted")])
    known = _known_annotations(store, "stale", [ids[0], ids[1]])
    assert known.set_index("annotation_id")["deleted"].to_dict() == {7: False, 8: True}
    rows = [{"annotation_id": 7, "updated_at": "2026-01-01T00:00:00.000000Z"},   # older than stored: dropped
            {"annotation_id": 7, "updated_at": "2026-01-03T00:00:00.000000Z"},   # newer: kept
            {"annotation_id": 8, "updated_at": "2026-01-04T00:00:00.000000Z"},   # retracted already: dropped
            {"annotation_id": 9, "updated_at": "2026-01-01T00:00:00.000000Z"}]   # unknown: kept
    assert [r["updated_at"][:10] for r in _fresh(rows, known)] == ["2026-01-03", "2026-01-01"]
    with pytest.raises(ValueError, match="mode must be 'auto', 'full' or 'incremental', got 'fast'"):
        sync_annotations(None, store, "stale", CLASSES, mode="fast")
