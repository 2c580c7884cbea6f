"""The store on SQLite and PostgreSQL: idempotent items, append-only labels, precedence."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from labelloop.exceptions import StoreError
from labelloop.store import ItemIn, LabelIn, Store, TaskIn


def add_texts(store: Store, texts, dataset="ds"):
    return store.add_items(dataset, [ItemIn("text", text=t) for t in texts])


def test_migrations_are_idempotent(store):
    from sqlalchemy import inspect

    assert {"items", "labels", "annotation_tasks", "runs", "provenance"} <= set(inspect(store.engine).get_table_names())
    before = store.revision()
    assert before, "the database records its schema revision"
    store.create()
    assert store.revision() == before


def test_same_content_twice_adds_nothing(store):
    first = add_texts(store, ["a", "b", "c", "b"])
    assert (first.added, first.existing) == (3, 1)
    assert first.ids[1] == first.ids[3]
    second = add_texts(store, ["c", "a", "d"])
    assert (second.added, second.existing) == (1, 2)
    assert second.ids[:2] == [first.ids[2], first.ids[0]]
    assert store.count_items("ds") == 4
    # another dataset is another namespace
    assert add_texts(store, ["a"], dataset="other").added == 1


def test_item_without_content_is_refused(store):
    with pytest.raises(StoreError, match=r"item x-1: has no content"):
        store.add_items("ds", [ItemIn("text", external_id="x-1")])


def test_labels_are_append_only(store):
    ids = add_texts(store, ["a"]).ids
    store.add_labels([LabelIn(ids[0], 1, "weak", "lfs")])
    # the API has no way to change a label ...
    public = [name for name, _ in inspect.getmembers(Store, inspect.isfunction) if not name.startswith("_")]
    assert not [n for n in public if "label" in n and any(w in n for w in ("update", "delete", "set", "remove"))]
    # ... and the database refuses it too
    for statement in ("UPDATE labels SET label = 0", "DELETE FROM labels"):
        with pytest.raises(DBAPIError, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text(statement))
    frame = store.labels("ds")
    assert frame["label"].tolist() == [1]


def test_dedupe_key_makes_writes_idempotent(store):
    ids = add_texts(store, ["a", "b"]).ids
    rows = [LabelIn(i, 0, "gold", "import", dedupe_key=f"gold:{i}") for i in ids]
    assert store.add_labels(rows) == 2
    assert store.add_labels(rows) == 0
    assert store.add_labels(rows + rows) == 0
    assert store.count_labels("ds") == 2


def test_unknown_kind_and_bad_class_are_refused(store):
    ids = add_texts(store, ["a"]).ids
    with pytest.raises(StoreError, match=rf"label for item {ids[0]}: unknown kind 'oracle'"):
        store.add_labels([LabelIn(ids[0], 0, "oracle", "x")])
    with pytest.raises(StoreError, match=r"class id must be >= -1 \(got -5\)"):
        store.add_labels([LabelIn(ids[0], -5, "weak", "x")])
    assert store.count_labels("ds") == 0


def test_resolution_follows_precedence(store):
    ids = add_texts(store, ["gold", "expert", "crowd", "weak", "pseudo", "model", "none"]).ids
    g, e, c, w, p, m, _ = ids
    rows = [
        LabelIn(g, 1, "model", "m1", probs=[0.4, 0.6]),
        LabelIn(g, 0, "weak", "lfs", probs=[0.7, 0.3]),
        LabelIn(g, 1, "gold", "import"),
        LabelIn(e, 0, "crowd", "ds", probs=[0.8, 0.2]),
        LabelIn(e, 1, "expert", "alice"),
        LabelIn(c, 1, "weak", "lfs", probs=[0.1, 0.9]),
        LabelIn(c, 0, "crowd", "ds", probs=[0.9, 0.1]),
        LabelIn(w, 1, "pseudo", "teacher", confidence=0.99),
        LabelIn(w, 0, "weak", "lfs", probs=[0.6, 0.4]),
        LabelIn(p, 1, "pseudo", "teacher", confidence=0.97),
        LabelIn(p, 0, "model", "m1", probs=[0.55, 0.45]),
        LabelIn(m, 0, "model", "m1", probs=[0.51, 0.49]),
    ]
    store.add_labels(rows)
    res = store.resolve("ds", 2)
    got = dict(zip(res.item_ids.tolist(), zip(res.labels.tolist(), res.kind_of().tolist())))
    assert got == {g: (1, "gold"), e: (1, "expert"), c: (0, "crowd"), w: (0, "weak"), p: (1, "pseudo"), m: (0, "model")}
    assert np.allclose(res.probs[res.item_ids == w], [[0.6, 0.4]])
    assert np.allclose(res.probs[res.item_ids == g], [[0.0, 1.0]])  # hard label → one-hot
    assert res.report["by_kind"] == {"gold": 1, "expert": 1, "crowd": 1, "weak": 1, "pseudo": 1, "model": 1}
    # a configurable rule: experts above gold, model left out entirely
    custom = store.resolve("ds", 2, precedence=["expert", "gold", "weak"])
    got = dict(zip(custom.item_ids.tolist(), custom.kind_of().tolist()))
    assert got[g] == "gold" and got[e] == "expert" and got[w] == "weak" and m not in got and p not in got


def test_newest_opinion_of_a_source_wins_and_retraction_withdraws_it(store):
    a, b = add_texts(store, ["a", "b"]).ids
    store.add_labels([LabelIn(a, 0, "pseudo", "teacher", confidence=0.95), LabelIn(b, 1, "pseudo", "teacher")])
    store.add_labels([LabelIn(a, 1, "pseudo", "teacher", confidence=0.96)])  # re-decided
    store.add_labels([LabelIn(b, -1, "pseudo", "teacher")])  # no longer supported
    res = store.resolve("ds", 2)
    assert res.item_ids.tolist() == [a]
    assert res.labels.tolist() == [1]
    assert res.confidence[0] == pytest.approx(0.96)
    assert store.count_labels("ds") == 4  # nothing deleted


def test_two_sources_of_one_kind_newest_standing_opinion_wins(store):
    (a,) = add_texts(store, ["a"]).ids
    store.add_labels([LabelIn(a, 0, "expert", "alice"), LabelIn(a, 1, "expert", "bob")])
    assert store.resolve("ds", 2).labels.tolist() == [1]
    store.add_labels([LabelIn(a, -1, "expert", "bob")])
    assert store.resolve("ds", 2).labels.tolist() == [0]


def test_stored_probabilities_must_match_class_count(store):
    (a,) = add_texts(store, ["a"]).ids
    store.add_labels([LabelIn(a, 0, "weak", "lfs", probs=[0.2, 0.3, 0.5])])
    with pytest.raises(StoreError, match=rf"item {a}: stored class probabilities do not have 2 entries"):
        store.resolve("ds", 2)


def test_resolution_of_empty_dataset(store):
    res = store.resolve("empty", 3)
    assert len(res) == 0 and res.probs.shape == (0, 3)


def test_tasks_reuse_open_task_and_track_state(store):
    a, b = add_texts(store, ["a", "b"]).ids
    first = store.add_tasks([TaskIn(a, "crowd", annotator="ann1"), TaskIn(b, "expert")])
    again = store.add_tasks([TaskIn(a, "crowd", annotator="ann1")])
    assert again == first[:1]
    store.update_tasks(first, state="done")
    assert set(store.tasks("ds", state="done")["id"]) == set(first)
    with pytest.raises(StoreError, match="unknown state 'lost'"):
        store.update_tasks(first, state="lost")


def test_runs_are_recorded(store):
    run_id = store.start_run("pipeline", "ds", {"x": 1})
    store.finish_run(run_id, "completed", {"items": 3})
    runs = store.runs()
    assert runs.loc[0, "id"] == run_id and runs.loc[0, "status"] == "completed"
    assert runs.loc[0, "summary"] == {"items": 3}
