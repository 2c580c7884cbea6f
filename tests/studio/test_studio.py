"""Crowd labeling against a real Label Studio: projects, blind overlap, gold, sync."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from labelloop.labeling.crowd import CrowdAggregator, standing_votes
from labelloop.studio.assign import ITEM_KEY, OverlapPolicy
from labelloop.studio.bots import Bot, bot_email
from labelloop.studio.client import StudioClient
from labelloop.studio.projects import ensure_project, find_projects, task_data
from labelloop.studio.preannotate import to_prediction
from labelloop.studio.sync import sync_annotations
from labelloop.studio.team import CrowdTeam


CLASSES = ["sports", "politics", "science", "music"]


def bot_clients(studio, names):
    tokens = json.loads((studio.studio_dir / "bots.json").read_text())
    return {n: StudioClient(studio.url, tokens[n]["token"]) for n in names}


def text_content(store, dataset):
    items = store.items(dataset).set_index("id")
    return lambda item: task_data("text", {"text": items.at[item, "text"]})


def answer_all(studio, team, bots: dict[str, Bot], truth):
    clients = bot_clients(studio, bots)
    projects = team.projects()
    n = 0
    for name, bot in bots.items():
        n += bot.answer_project(clients[name], projects[bot.email].id, truth, CLASSES, "text")
    return n


def test_projects_from_config(studio):
    with studio.client() as admin:
        refs = {}
        for modality in ("text", "image", "tabular"):
            refs[modality] = ensure_project(admin, dataset=f"proj-{modality}", role="expert", modality=modality,
                                            classes=CLASSES, instructions="<b>Pick the topic</b>")
        again = ensure_project(admin, dataset="proj-text", role="expert", modality="text", classes=CLASSES)
        assert again.id == refs["text"].id  # found by its marker, not created twice
        review = ensure_project(admin, dataset="proj-text", role="review", modality="text", classes=CLASSES)
        assert review.id != refs["text"].id
        assert {r.role for r in find_projects(admin, "proj-text")} == {"expert", "review"}
        body = admin.request("GET", f"/api/projects/{refs['image'].id}/")
        assert '<Image name="image" value="$image"' in body["label_config"]
        assert all(f'<Choice value="{c}"/>' in body["label_config"] for c in CLASSES)
        assert body["expert_instruction"] == "<b>Pick the topic</b>" and body["show_instruction"] is True
        tab = admin.request("GET", f"/api/projects/{refs['tabular'].id}/")
        assert '<Table name="row" value="$row"/>' in tab["label_config"]
        # Label Studio parsed the config: its control and object tags are what sync reads
        assert "label" in tab["parsed_label_config"] and tab["parsed_label_config"]["label"]["labels"] == CLASSES
        # image items go in as inline PNGs, so no file serving is needed
        img = task_data("image", {"image": np.arange(64).reshape(8, 8)})
        assert img["image"].startswith("data:image/png;base64,")


def test_overlap_is_blind_and_adaptive(studio, store, helpers):
    dataset = "overlap"
    ids, truth = helpers.add_text_items(store, dataset, 16, CLASSES, seed=1)
    names = ["alice", "bob", "carol", "dave"]
    with studio.client() as admin:
        team = CrowdTeam(admin, dataset, "text", CLASSES, [bot_email(n) for n in names])
        policy = OverlapPolicy(overlap=3, initial_overlap=2)
        preds = {i: to_prediction(np.eye(4)[truth[i]] * 0.7 + 0.075, CLASSES, "text", "committee-1") for i in ids}
        plan, pushed = team.push(ids, text_content(store, dataset), policy, predictions=preds, seed=3)
        assert len(plan) == 2 * len(ids)
        state = team.state()
        assert all(len(per) == 2 for per in state.answers.values()) and set(state.answers) == set(ids)
        # a repeated push adds nothing: every copy is already there
        plan2, pushed2 = team.push(ids, text_content(store, dataset), policy, seed=4)
        assert plan2 == [] and pushed2 == {}

        # dave always answers wrong, the others always right: exactly dave's items disagree
        bots = {"alice": Bot("alice", 1.0), "bob": Bot("bob", 1.0), "carol": Bot("carol", 1.0),
                "dave": Bot("dave", 0.0)}
        clients = bot_clients(studio, names)
        projects = team.projects()
        for name, bot in bots.items():
            bot.answer_project(clients[name], projects[bot.email].id, truth, CLASSES, "text")
        # what labelloop serves each person: their own tasks only, no one else's answer, no predictions
        for name in names:
            mine = clients[name].tasks(projects[bot_email(name)].id)
            me = clients[name].whoami()["id"]
            assert mine and all(a["completed_by"] == me for t in mine for a in t["annotations"])
            assert all(t["predictions"] == [] for t in mine)
            assert {t["data"][ITEM_KEY] for t in mine} == {
                i for i, per in state.answers.items() if bot_email(name) in per}

        state = team.state()
        dave = bot_email("dave")
        disagree = {i for i, per in state.answers.items() if dave in per}
        plan3, _ = team.push(ids, text_content(store, dataset), policy, state=state, seed=5)
        assert {a.item for a in plan3} == disagree and len(plan3) == len(disagree)
        assert all(a.annotator not in state.answers[a.item] for a in plan3)
        # the third answers; 3 = k, so nothing more is ever asked
        for name, bot in bots.items():
            bot.answer_project(clients[name], projects[bot.email].id, truth, CLASSES, "text")
        plan4, _ = team.push(ids, text_content(store, dataset), policy, seed=6)
        assert plan4 == []
        for c in clients.values():
            c.close()


def test_gold_scoring_flags_the_bad_bot(studio, store, helpers):
    dataset = "gold"
    ids, truth = helpers.add_text_items(store, dataset, 48, CLASSES, seed=2)
    gold = helpers.add_gold(store, truth, ids[:12])
    queue = ids[12:]
    names = ["alice", "bob", "carol", "spammer"]
    bots = {"alice": Bot("alice", 0.95, seed=1), "bob": Bot("bob", 0.9, seed=2), "carol": Bot("carol", 0.9, seed=3),
            "spammer": Bot("spammer", 0.0, seed=4)}
    with studio.client() as admin:
        team = CrowdTeam(admin, dataset, "text", CLASSES, [bot_email(n) for n in names])
        plan, _ = team.push(queue, text_content(store, dataset), OverlapPolicy(2, 2), gold=gold, gold_rate=0.35,
                            seed=0)
        gold_copies = [a for a in plan if a.gold]
        assert {a.annotator for a in gold_copies} == {bot_email(n) for n in names}
        # a gold task carries exactly what any other task carries
        tasks = team.state().tasks
        assert {frozenset(t["data"]) for t in tasks} == {frozenset({"text", ITEM_KEY})}
        answer_all(studio, team, bots, truth)
        report = sync_annotations(admin, store, dataset, CLASSES)
    assert report.added == len(plan) and not report.quarantined
    votes = standing_votes(store, dataset)
    agg = CrowdAggregator(min_gold_accuracy=0.6, min_gold_answers=3).fit(votes, len(CLASSES), gold=gold)
    assert agg.flagged_ == [bot_email("spammer")]
    assert agg.gold_accuracy_.loc[bot_email("spammer"), "accuracy"] == 0.0
    assert agg.gold_accuracy_.loc[bot_email("alice"), "accuracy"] >= 0.6


def test_sync_is_idempotent_append_only_and_quarantines(studio, store, caplog, helpers):
    dataset = "sync"
    ids, truth = helpers.add_text_items(store, dataset, 10, CLASSES, seed=3)
    names = ["alice", "bob"]
    bots = {n: Bot(n, 1.0) for n in names}
    with studio.client() as admin:
        team = CrowdTeam(admin, dataset, "text", CLASSES, [bot_email(n) for n in names])
        team.push(ids, text_content(store, dataset), OverlapPolicy(1, 1), seed=0)
        assert answer_all(studio, team, bots, truth) == 10
        first = sync_annotations(admin, store, dataset, CLASSES, run_id="r1")
        assert first.added == 10 and first.deleted == 0
        second = sync_annotations(admin, store, dataset, CLASSES, run_id="r2")
        assert second.added == 0 and second.annotations == 10
        rows = store.labels(dataset, kinds=["annotator"])
        assert len(rows) == 10 and rows["dedupe_key"].is_unique
        assert all(rows["label"].to_numpy() == rows["item_id"].map(truth).to_numpy())

        # alice edits one answer, bob deletes one: one new row each, nothing overwritten
        clients = bot_clients(studio, names)
        a_task = clients["alice"].tasks(team.projects()[bot_email("alice")].id)[0]
        a_ann = a_task["annotations"][0]
        item = a_task["data"][ITEM_KEY]
        new_class = (truth[item] + 1) % 4
        clients["alice"].update_annotation(a_ann["id"], [{"from_name": "label", "to_name": "text", "type": "choices",
                                                          "value": {"choices": [CLASSES[new_class]]}}])
        b_task = clients["bob"].tasks(team.projects()[bot_email("bob")].id)[0]
        clients["bob"].delete_annotation(b_task["annotations"][0]["id"])
        # an answer that is not a class (e.g. a label config edited by hand) on another task
        bad_task = clients["bob"].tasks(team.projects()[bot_email("bob")].id)[1]
        bad = admin.create_annotation(bad_task["id"], [{"from_name": "label", "to_name": "text", "type": "choices",
                                                        "value": {"choices": ["zebra"]}}])
        with caplog.at_level(logging.WARNING, logger="labelloop.studio.sync"):
            third = sync_annotations(admin, store, dataset, CLASSES, run_id="r3")
        assert third.added == 2 and third.deleted == 1
        assert len(third.quarantined) == 1
        q = third.quarantined[0]
        assert q.task == bad_task["id"] and q.annotation == bad["id"]
        assert f"task {bad_task['id']}, annotation {bad['id']}" in q.error and "'zebra' is not one of the classes" in q.error
        assert "zebra" in caplog.text
        rows = store.labels(dataset, kinds=["annotator"])
        assert len(rows) == 12
        mine = rows[rows["item_id"] == item]
        assert mine["label"].tolist() == [truth[item], new_class]  # old opinion kept, new one appended
        votes = standing_votes(store, dataset)
        assert votes.set_index("item").loc[item, "label"] == new_class
        assert b_task["data"][ITEM_KEY] not in set(votes["item"])  # retracted
        assert sync_annotations(admin, store, dataset, CLASSES).added == 0
        for c in clients.values():
            c.close()


def test_no_token_or_password_in_logs(studio, caplog):
    secrets_ = [studio.credentials.token, studio.credentials.password]
    secrets_ += [v["token"] for v in json.loads((studio.studio_dir / "bots.json").read_text()).values()]
    secrets_ += [v["password"] for v in json.loads((studio.studio_dir / "bots.json").read_text()).values()]
    with caplog.at_level(logging.DEBUG):
        client = StudioClient(studio.url, studio.credentials.token, retries=0)
        client.whoami()
        text = repr(client) + repr(studio.credentials)
        with pytest.raises(Exception) as err:
            client.request("GET", "/api/projects/999999/")
        text += str(err.value)
    log = studio.log_path.read_text(errors="replace")
    assert "whoami" in log or "/api/" in log  # the log is real and holds the requests
    for secret in secrets_:
        for part in (secret, secret[-24:]):
            assert part not in log and part not in caplog.text and part not in text


def _artifacts(prefix):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=prefix)))
    return found


def test_crowd_flow_round_under_prefect(studio, tmp_path, monkeypatch, prefect_harness):
    import yaml

    from labelloop.flows.crowd import crowd_flow
    from labelloop.simulation import simulated_team
    from labelloop.store import ItemIn, LabelIn, Store, TaskIn

    data = tmp_path / "data"
    rng = np.random.default_rng(7)
    y = rng.integers(0, 4, 40)
    ext = [f"doc-{i}" for i in range(40)]
    np.savez(tmp_path / "truth.npz", ids=np.array(ext), y=y)
    config = {
        "dataset": {"name": "flowds", "modality": "text", "classes": CLASSES},
        "data_dir": str(data),
        "crowd": {"enabled": True, "url": studio.url, "overlap": 3, "initial_overlap": 2, "gold_rate": 0.3,
                  "gold_min_answers": 2, "gold_min_accuracy": 0.6, "instructions": "Pick the topic.",
                  "bots": [{"name": "alice", "accuracy": 0.95}, {"name": "bob", "accuracy": 0.9},
                           {"name": "carol", "accuracy": 0.9}, {"name": "spammer", "accuracy": 0.0}]},
        "evaluation": {"truth": str(tmp_path / "truth.npz")},
    }
    path = tmp_path / "labelloop.yaml"
    path.write_text(yaml.safe_dump(config))
    data.mkdir()
    store = Store(f"sqlite:///{data / 'labelloop.db'}").create()
    ids = store.add_items("flowds", [ItemIn(modality="text", text=f"text {i} on {CLASSES[t]}", external_id=e)
                                     for i, (t, e) in enumerate(zip(y, ext))]).ids
    store.add_labels([LabelIn(item_id=i, label=int(t), kind="gold", source="seed") for i, t in zip(ids[:10], y[:10])])
    store.add_tasks([TaskIn(item_id=i, queue="crowd") for i in ids[10:]])
    # the admin token reaches the flow through the environment, as in production
    monkeypatch.setenv("LABELLOOP_LS_TOKEN", studio.credentials.token)
    # bots keep their passwords and tokens in the data dir's studio folder
    (data / "studio").mkdir()
    (data / "studio" / "bots.json").write_text((studio.studio_dir / "bots.json").read_text())

    # a production round: pushed, nobody simulated answers, nothing waited for
    pushed = crowd_flow(str(path), "run-0")
    assert pushed["pushed"]["queued_taken"] == 30 and pushed["pushed"]["gold"] > 0
    assert pushed["answered"] == 0 and pushed["synced"] == 0 and pushed["crowd_rows"] == 0
    tasks = store.tasks("flowds", queue="crowd")
    copies = tasks[tasks["annotator"].notna()]
    assert len(copies) == pushed["pushed"]["pushed"] and copies["is_gold"].sum() == pushed["pushed"]["gold"]
    assert (tasks[tasks["annotator"].isna()]["state"] == "pushed").all() and (copies["state"] == "pushed").all()
    with simulated_team():  # the bots answer between push and sync
        first = crowd_flow(str(path), "run-1")  # nothing new to push: every copy awaits its answer
        assert first["pushed"]["pushed"] == 0 and first["answered"] == len(copies)
        assert first["flagged"] == [bot_email("spammer")]
        tasks = store.tasks("flowds", queue="crowd")
        copies = tasks[tasks["annotator"].notna()]
        assert (copies["state"] == "done").all()  # every copy was answered by a bot and synced
        second = crowd_flow(str(path), "run-2")  # the third annotator for items the first two disagreed on
    assert 0 < second["pushed"]["pushed"] <= 30
    crowd = store.labels("flowds", kinds=["crowd"])
    assert set(crowd["item_id"]) == set(ids[10:])
    latest = crowd.sort_values("id").groupby("item_id").tail(1)
    truth = dict(zip(ids, y))
    assert np.mean(latest["label"].to_numpy() == latest["item_id"].map(truth).to_numpy()) >= 0.85
    with simulated_team():
        third = crowd_flow(str(path), "run-3")  # nothing new anywhere: nothing added
    assert third["pushed"]["pushed"] == 0 and third["synced"] == 0 and third["crowd_rows"] == 0
    from labelloop.flows.crowd import crowd_sync_flow

    alone = crowd_sync_flow(str(path))  # what webhooks run: the sync alone, incremental, adds nothing here
    assert alone["mode"] == "incremental" and alone["added"] == 0 and alone["deleted"] == 0
    assert crowd_sync_flow(str(path), full=True)["mode"] == "full"

    arts = _artifacts("flowds-crowd%")
    keys = {a.key for a in arts}
    assert {"flowds-crowd-round", "flowds-crowd-annotators", "flowds-crowd-kappa"} <= keys
    round_md = next(a for a in sorted(arts, key=lambda a: a.created) if a.key == "flowds-crowd-round").data
    assert f"{studio.url}/projects/" in round_md and "spammer" in round_md
    secrets_ = [studio.credentials.token, studio.credentials.password] + [
        v["token"] for v in json.loads((studio.studio_dir / "bots.json").read_text()).values()]
    for art in arts:
        for secret in secrets_:
            assert secret not in str(art.data) and secret[-24:] not in str(art.data)
    store.close()


def test_preannotations_and_expert_rows(studio, store, helpers):
    dataset = "expertq"
    ids, truth = helpers.add_text_items(store, dataset, 4, CLASSES, seed=9)
    probs = {i: np.eye(4)[truth[i]] * 0.6 + 0.1 for i in ids}
    preds = {i: to_prediction(p, CLASSES, "text", "committee-7") for i, p in probs.items()}
    with studio.client() as admin:
        shown = CrowdTeam(admin, dataset, "text", CLASSES, [bot_email("alice")], show_predictions=True)
        shown.push(ids[:2], text_content(store, dataset), OverlapPolicy(1, 1), predictions=preds)
        tasks = admin.tasks(shown.projects()[bot_email("alice")].id)
        got = {t["data"][ITEM_KEY]: t["predictions"][0] for t in tasks}
        assert set(got) == set(ids[:2])
        for item, p in got.items():
            assert p["model_version"] == "committee-7" and p["score"] == pytest.approx(0.7)
            assert p["result"][0]["value"]["choices"] == [CLASSES[truth[item]]]

        expert = ensure_project(admin, dataset=dataset, role="expert", modality="text", classes=CLASSES)
        admin.import_tasks(expert.id, [{"data": {"text": "x", ITEM_KEY: i}, "predictions": [preds[i]]} for i in ids[2:]])
        for t in admin.tasks(expert.id):
            admin.create_annotation(t["id"], [{"from_name": "label", "to_name": "text", "type": "choices",
                                               "value": {"choices": [CLASSES[truth[t["data"][ITEM_KEY]]]]}}])
        report = sync_annotations(admin, store, dataset, CLASSES)
    assert report.added == 2
    rows = store.labels(dataset, kinds=["expert"])
    assert sorted(rows["item_id"]) == sorted(ids[2:])
    assert set(rows["source"]) == {studio.credentials.email}
    assert all(rows["label"].to_numpy() == rows["item_id"].map(truth).to_numpy())
