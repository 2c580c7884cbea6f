"""Importers: provenance, idempotence, and bad input named by file and line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from labelloop.exceptions import ImportDataError
from labelloop.sources import decode_array, import_arrays, import_image_folder, import_text_file
from labelloop.store import Store

CLASSES = ["cat", "dog"]


@pytest.fixture
def sqlite_store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}").create()
    yield store
    store.close()


def make_png(path, value: int, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, dtype=np.uint8)).save(path)


def test_image_folder_with_class_subfolders(tmp_path, sqlite_store):
    root = tmp_path / "images"
    for i in range(3):
        make_png(root / "cat" / f"c{i}.png", 10 + i)
        make_png(root / "dog" / f"d{i}.png", 100 + i)
    make_png(root / "horse" / "h.png", 200)  # not a class
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = root / "cat" / "trunc.png"
    make_png(good, 50, size=(64, 64))
    good.write_bytes(good.read_bytes()[:-40])  # truncated
    report = import_image_folder(sqlite_store, "pets", CLASSES, root, "pets", tmp_path / "files", run_id="r1")
    assert (report.added, report.labels_added) == (6, 6)
    assert report.skipped == 3
    assert any("horse" in w and "not a class" in w for w in report.warnings)
    assert any("broken.png: not a readable image" in w for w in report.warnings)
    assert any("trunc.png: not a readable image" in w for w in report.warnings)
    items = sqlite_store.items("pets")
    assert items["path"].map(lambda p: p.startswith(str(tmp_path / "files"))).all()
    assert items["provenance_id"].nunique() == 1
    labels = sqlite_store.labels("pets")
    assert sorted(labels["label"].tolist()) == [0, 0, 0, 1, 1, 1]
    # twice: nothing new, nothing lost
    again = import_image_folder(sqlite_store, "pets", CLASSES, root, "pets", tmp_path / "files", run_id="r2")
    assert (again.added, again.existing, again.labels_added) == (0, 6, 0)
    assert sqlite_store.count_items("pets") == 6 and sqlite_store.count_labels("pets") == 6


def test_flat_image_folder_is_unlabeled(tmp_path, sqlite_store):
    for i in range(4):
        make_png(tmp_path / "flat" / f"{i}.png", i * 20)
    report = import_image_folder(sqlite_store, "pets", CLASSES, tmp_path / "flat", "flat", tmp_path / "files")
    assert (report.added, report.labels_added) == (4, 0)


def test_missing_image_folder(tmp_path, sqlite_store):
    with pytest.raises(ImportDataError, match=r"nowhere: image folder not found"):
        import_image_folder(sqlite_store, "pets", CLASSES, tmp_path / "nowhere", "x", tmp_path / "files")


def test_csv_with_labels_bad_rows_and_unknown_class(tmp_path, sqlite_store):
    path = tmp_path / "reviews.csv"
    path.write_text(
        "id,text,label\n"
        "r1,a lovely cat,cat\n"
        "r2,a loyal dog,dog\n"
        "r3,,cat\n"
        "r4,a parrot,parrot\n"
        "r5,too,many,fields\n"
        "r6,just text,\n",
        encoding="utf-8",
    )
    report = import_text_file(sqlite_store, "pets", CLASSES, path, "reviews", label_field="label", id_field="id")
    assert report.added == 4  # r1, r2, r4 (unlabeled), r6
    assert report.labels_added == 2
    assert any(w.startswith(f"{path}:4: no text") for w in report.warnings)
    assert any(w.startswith(f"{path}:5: label 'parrot' is not a class") for w in report.warnings)
    assert any(w.startswith(f"{path}:6: more fields") for w in report.warnings)
    items = sqlite_store.items("pets")
    assert set(items["external_id"]) == {"r1", "r2", "r4", "r6"}


def test_jsonl_bad_line_is_skipped_and_named(tmp_path, sqlite_store):
    path = tmp_path / "docs.jsonl"
    lines = [json.dumps({"text": "first cat", "y": "cat"}), "{not json", json.dumps(["a list"]), json.dumps({"text": "dog here", "y": "dog"})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_text_file(sqlite_store, "pets", CLASSES, path, "docs", label_field="y")
    assert (report.added, report.labels_added, report.skipped) == (2, 2, 2)
    assert any(w.startswith(f"{path}:2: not valid JSON") for w in report.warnings)
    assert any(w.startswith(f"{path}:3: expected a JSON object") for w in report.warnings)


def test_failed_import_leaves_stored_items_untouched(tmp_path, sqlite_store):
    good = tmp_path / "good.csv"
    good.write_text("text,label\nhello cat,cat\n", encoding="utf-8")
    import_text_file(sqlite_store, "pets", CLASSES, good, "good", label_field="label")
    with pytest.raises(ImportDataError, match=r"data\.xml: unknown text file type '\.xml'"):
        bad = tmp_path / "data.xml"
        bad.write_text("<a/>")
        import_text_file(sqlite_store, "pets", CLASSES, bad, "bad")
    assert sqlite_store.count_items("pets") == 1 and sqlite_store.count_labels("pets") == 1


def test_arrays_roundtrip_and_gold(tmp_path, sqlite_store):
    X = np.arange(5 * 4, dtype=np.float32).reshape(5, 2, 2)
    np.savez(tmp_path / "a.npz", X=X, y=np.array([0, -1, 1, 7, -1]))
    report = import_arrays(sqlite_store, "arr", "tabular", CLASSES, tmp_path / "a.npz", "a")
    assert (report.added, report.labels_added) == (5, 2)
    assert any("y[3] = 7 is not a class id" in w for w in report.warnings)
    ids = sqlite_store.items("arr")["id"].tolist()
    assert np.array_equal(decode_array(sqlite_store.payloads(ids)[2]), X[2])


def test_arrays_shape_mismatch_is_named(tmp_path, sqlite_store):
    np.savez(tmp_path / "b.npz", X=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(ImportDataError, match=r"b\.npz: 'y' has 2 rows but 'X' has 3"):
        import_arrays(sqlite_store, "arr", "tabular", CLASSES, tmp_path / "b.npz", "b")
    (tmp_path / "c.npz").write_bytes(b"garbage")
    with pytest.raises(ImportDataError, match=r"c\.npz: not a readable \.npz file"):
        import_arrays(sqlite_store, "arr", "tabular", CLASSES, tmp_path / "c.npz", "c")
