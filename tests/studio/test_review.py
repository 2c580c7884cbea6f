"""Expert review against a real Label Studio: a suspect shows its label, source, the committee's view; the answer wins."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from labelloop.store import ItemIn, LabelIn, Store, TaskIn
from labelloop.studio.assign import ITEM_KEY
from labelloop.studio.bots import bot_email
from labelloop.studio.review import REVIEW_KEY, expert_label_config, review_sentence

CLASSES = ["sports", "politics", "science", "music"]


def test_review_sentence_says_what_is_disputed():
    suspect = {"current_label": "sports", "current_source": "crowd:crowd:dawid_skene", "suggestion": "science",
               "confidence": 0.912, "reason": "label-error suspect"}
    assert review_sentence(suspect) == ("Current label: sports (source: crowd:crowd:dawid_skene); committee suggests "
                                        "science (confidence 0.91). Why here: label-error suspect.")
    fresh = {"current_label": None, "current_source": None, "suggestion": None, "confidence": None, "reason": ""}
    assert review_sentence(fresh) == "No label yet; no committee prediction yet. Why here: expert queue."


@pytest.mark.parametrize("modality", ["text", "image", "tabular"])
def test_expert_config_keeps_the_answer_tags_sync_reads(modality):
    from labelloop.studio.projects import label_config

    xml = expert_label_config(modality, CLASSES)
    crowd = label_config(modality, CLASSES)
    assert '<Text name="review" value="$review"' in xml
    choices = crowd[crowd.index("  <Choices"):crowd.index("</Choices>")]
    assert choices in xml  # same Choices tag (name="label", same toName, same classes)


def test_suspect_reaches_the_expert_with_its_context_and_the_answer_wins(studio, tmp_path, monkeypatch):
    from labelloop.config import load_config
    from labelloop.tasks.crowd import connect, push_task
    from labelloop.studio.projects import find_projects
    from labelloop.studio.sync import sync_annotations

    dataset = "review"
    path = tmp_path / "labelloop.yaml"
    path.write_text(yaml.safe_dump({
        "dataset": {"name": dataset, "modality": "text", "classes": CLASSES},
        "data_dir": str(tmp_path / "data"),
        "crowd": {"enabled": True, "url": studio.url, "annotators": [bot_email("alice")], "overlap": 1,
                  "initial_overlap": 1, "gold_rate": 0.0},
    }))
    monkeypatch.setenv("LABELLOOP_LS_TOKEN", studio.credentials.token)
    config = load_config(path)
    store = Store(config.store_url).create()
    ids = store.add_items(dataset, [ItemIn(modality="text", text=t) for t in
                                    ["The telescope saw a comet", "A fresh album from the band", "Goal in the 90th"]]).ids
    suspect, pick, other = ids
    # the suspect holds a crowd label the committee doubts; the pick has no label at all
    store.add_labels([LabelIn(item_id=suspect, label=0, kind="crowd", source="crowd:dawid_skene", confidence=0.6)])
    committee = {suspect: np.array([0.05, 0.05, 0.85, 0.05]), pick: np.array([0.1, 0.1, 0.2, 0.6]),
                 other: np.array([0.7, 0.1, 0.1, 0.1])}
    store.add_labels([LabelIn(item_id=i, label=int(p.argmax()), kind="model", source="committee-v3", probs=p,
                              confidence=float(p.max())) for i, p in committee.items()])
    store.add_tasks([TaskIn(item_id=suspect, queue="expert", details={"reason": "label-error suspect"}),
                     TaskIn(item_id=pick, queue="expert", details={"reason": "active-learning batch"})])
    client = connect(config)
    try:
        pushed = push_task.fn(config, store, client, "run-review")
        assert pushed["expert_pushed"] == 2
        expert = find_projects(client, dataset, "expert")[0]
        project = client.request("GET", f"/api/projects/{expert.id}/")
        assert project["label_config"] == expert_label_config("text", CLASSES)  # Label Studio accepted it
        tasks = {t["data"][ITEM_KEY]: t for t in client.tasks(expert.id)}
        assert set(tasks) == {suspect, pick}
        shown = tasks[suspect]["data"]
        assert shown[REVIEW_KEY] == {"current_label": "sports", "current_source": "crowd:crowd:dawid_skene",
                                     "suggestion": "science", "confidence": 0.85, "reason": "label-error suspect"}
        assert shown["review"].startswith("Current label: sports (source: crowd:crowd:dawid_skene); committee "
                                          "suggests science (confidence 0.85)")
        assert tasks[pick]["data"][REVIEW_KEY]["current_label"] is None
        assert tasks[pick]["data"]["review"].startswith("No label yet; committee suggests music")
        # the committee's suggestion is pre-selected for the expert (a prediction, not an answer)
        assert tasks[suspect]["predictions"][0]["result"][0]["value"]["choices"] == ["science"]
        assert not tasks[suspect]["annotations"]

        client.create_annotation(tasks[suspect]["id"], [{"from_name": "label", "to_name": "text", "type": "choices",
                                                         "value": {"choices": ["science"]}}])
        report = sync_annotations(client, store, dataset, CLASSES)
        assert report.added == 1
        again = push_task.fn(config, store, client, "run-review-2")  # nothing pushed twice
        assert again["expert_pushed"] == 0
    finally:
        client.close()
    rows = store.labels(dataset, kinds=["expert"])
    assert rows[["item_id", "label", "source"]].values.tolist() == [[suspect, 2, studio.credentials.email]]
    resolution = store.resolve(dataset, len(CLASSES), config.resolution.precedence)
    by_item = dict(zip(resolution.item_ids.tolist(), zip(resolution.labels.tolist(), resolution.kind_of().tolist())))
    assert by_item[suspect] == (2, "expert")  # the expert's answer replaced the disputed crowd label
    assert by_item[pick] == (3, "model")
    store.close()
