"""The store on SQLite and PostgreSQL: idempotent items, append-only labels, precedence."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sqlalchemy import text

from labelloop.exceptions import AppendOnlyError, StoreError
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
    # ... and the database refuses it too, as the store's own error naming the table
    for statement, verb in (("UPDATE labels SET label = 0", "UPDATE"), ("DELETE FROM labels", "DELETE")):
        with pytest.raises(AppendOnlyError, match=rf"^labels: rows are append-only, the database refused {verb}; "):
            with store.engine.begin() as conn:
                conn.execute(text(statement))
    frame = store.labels("ds")
    assert frame["label"].tolist() == [1]
    # other failures stay what they are
    with pytest.raises(Exception) as caught:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE no_such_table SET x = 1"))
    assert not isinstance(caught.value, AppendOnlyError)


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


# -- the standing-opinion query ---------------------------------------------------------------

def standing_of(store, dataset="ds", **kw):
    frame = store.standing(dataset, decode=False, **kw)
    return sorted(zip(frame["item_id"].tolist(), frame["kind"].tolist(), frame["source"].tolist(),
                      frame["label"].tolist()))


def test_standing_is_the_newest_row_per_item_kind_and_source_with_retractions_applied(store):
    a, b, c = add_texts(store, ["a", "b", "c"]).ids
    store.add_labels([
        LabelIn(a, 0, "annotator", "ann1"), LabelIn(a, 1, "annotator", "ann2"),
        LabelIn(b, 2, "annotator", "ann1"), LabelIn(c, 1, "gold", "import"),
        LabelIn(a, 1, "expert", "ann1"),  # the same name under another kind is another opinion
    ])
    store.add_labels([LabelIn(a, 2, "annotator", "ann1")])  # re-decided: replaces ann1's 0
    store.add_labels([LabelIn(b, -1, "annotator", "ann1")])  # withdrawn
    store.add_labels([LabelIn(c, -1, "gold", "import")])
    assert standing_of(store) == [(a, "annotator", "ann1", 2), (a, "annotator", "ann2", 1), (a, "expert", "ann1", 1)]
    # an opinion given again after a retraction stands again
    store.add_labels([LabelIn(b, 0, "annotator", "ann1")])
    assert (b, "annotator", "ann1", 0) in standing_of(store)
    assert store.count_labels("ds") == 9  # nothing deleted


def test_standing_filters_and_per_item(store):
    a, b = add_texts(store, ["a", "b"]).ids
    (other,) = add_texts(store, ["a"], dataset="other").ids
    store.add_labels([
        LabelIn(a, 0, "model", "m1", probs=[0.9, 0.1]), LabelIn(b, 1, "model", "m1", probs=[0.2, 0.8]),
        LabelIn(a, 1, "model", "m2", probs=[0.3, 0.7]), LabelIn(a, 1, "pseudo", "teacher", confidence=0.97),
        LabelIn(b, 0, "pseudo", "other-teacher"), LabelIn(other, 1, "model", "m1"),
    ])
    assert standing_of(store, kinds=["pseudo"]) == [(a, "pseudo", "teacher", 1), (b, "pseudo", "other-teacher", 0)]
    assert standing_of(store, kinds=["pseudo"], sources=["teacher"]) == [(a, "pseudo", "teacher", 1)]
    assert standing_of(store, kinds=["model"], sources=[]) == []
    # per item: the newest standing opinion whatever its source
    newest = store.standing("ds", kinds=["model"], per="item")
    assert newest["item_id"].tolist() == [b, a] and newest["source"].tolist() == ["m1", "m2"]
    assert np.allclose(np.stack(newest["probs"].tolist()), [[0.2, 0.8], [0.3, 0.7]])
    assert newest["probs"].iloc[0].dtype == np.float32
    # another dataset's rows never show
    assert standing_of(store, dataset="other") == [(other, "model", "m1", 1)]
    store.add_labels([LabelIn(a, -1, "model", "m2")])
    assert store.standing("ds", kinds=["model"], per="item", decode=False)["source"].tolist() == ["m1", "m1"]


def test_standing_of_nothing_and_bad_parameters(store):
    empty = store.standing("empty")
    assert len(empty) == 0 and list(empty.columns) == list(store.labels("empty").columns)
    with pytest.raises(ValueError, match=r"standing: unknown kind 'oracle'; expected some of \('gold'"):
        store.standing("ds", kinds=["oracle"])
    with pytest.raises(ValueError, match=r"per must be 'source' or 'item', got 'kind'"):
        store.standing("ds", per="kind")


def test_resolution_is_precedence_over_the_standing_opinions(store):
    """Random opinions and retractions: resolve() == strongest kind, then newest, of standing()."""
    rng = np.random.default_rng(7)
    ids = add_texts(store, [f"t{i}" for i in range(60)]).ids
    kinds = ["gold", "expert", "crowd", "weak", "pseudo"]
    for _ in range(4):  # several writes, so later rows replace and retract earlier ones
        store.add_labels([LabelIn(int(rng.choice(ids[:40])), int(rng.choice([-1, -1, 0, 1, 2])), str(rng.choice(kinds)),
                                  f"s{rng.integers(2)}") for _ in range(40)])
    standing = store.standing("ds", kinds=kinds, decode=False)
    rank = standing["kind"].map({k: r for r, k in enumerate(kinds)})
    expected = (standing.assign(rank=rank).sort_values(["rank", "id"], ascending=[True, False])
                .drop_duplicates("item_id").sort_values("item_id"))
    res = store.resolve("ds", 3, precedence=kinds)
    assert res.item_ids.tolist() == expected["item_id"].tolist()
    assert res.labels.tolist() == expected["label"].tolist()
    assert res.kind_of().tolist() == expected["kind"].tolist()
    # the case that matters is there: items with opinions, all of them withdrawn
    withdrawn = set(store.labels("ds")["item_id"]) - set(res.item_ids.tolist())
    assert withdrawn and len(res) > 10
