"""The weak_labeling flow under a real Prefect API and a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from labelloop.exceptions import ConfigError, LabelingFunctionError
from labelloop.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")

TEXTS = {
    "tech": ["the compiler crashed again", "unix pipes and the kernel", "debugging software at night",
             "my computer needs more memory", "a network of routers", "boom goes the software"],
    "civics": ["the senate voted on taxes", "the president spoke to congress", "citizens vote in the election",
               "a new law on taxes", "parliament debated the budget", "the weather is nice today"],
}

LFS = [
    {"name": "tech_words", "kind": "keyword", "class": "tech", "keywords": ["compiler", "unix", "kernel", "software", "computer"]},
    {"name": "civic_words", "kind": "keyword", "class": "civics", "keywords": ["senate", "taxes", "congress", "vote", "election"]},
    {"name": "net_regex", "kind": "regex", "class": "tech", "pattern": r"\bnetwork(s)?\b"},
    {"name": "explode", "kind": "heuristic", "path": "tests.labeling.lf_helpers:explode_on_boom"},
]


def write_config(folder: Path, lfs=LFS, enabled=True) -> Path:
    rows = [{"id": f"{k}-{i}", "text": t} for k, texts in TEXTS.items() for i, t in enumerate(texts)]
    (folder / "items.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = {
        "dataset": {"name": "toy", "modality": "text", "classes": ["tech", "civics"]},
        "data_dir": "data",
        "sources": [{"kind": "text_file", "name": "toy", "path": "items.jsonl", "id_field": "id"}],
        "weak": {"enabled": enabled, "lfs": lfs},
    }
    path = folder / "labelloop.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def read_artifact(key):
    from prefect.artifacts import Artifact

    return Artifact.get(key)


def weak_rows(config_path: Path):
    from labelloop.config import load_config

    store = Store(load_config(config_path).store_url)
    try:
        return store.labels("toy", kinds=["weak"]), store.items("toy", columns=["id", "external_id"])
    finally:
        store.close()


def test_flow_writes_weak_rows_and_artifacts_and_twice_writes_nothing(tmp_path):
    from labelloop.flows.importing import import_flow
    from labelloop.flows.weak import weak_flow

    config = write_config(tmp_path)
    import_flow(str(config), "run-1")
    first = weak_flow(str(config), "run-1")
    assert first["items"] == 12 and first["covered"] == 10  # "weather" and "parliament" match no LF
    assert first["rows_written"] == 10
    assert first["faults"] == 1  # the heuristic raised on the "boom" item; its other votes are kept
    rows, items = weak_rows(config)
    by_ext = dict(zip(items["id"], items["external_id"]))
    got = {by_ext[i]: int(lab) for i, lab in zip(rows["item_id"], rows["label"])}
    assert got["tech-0"] == 0 and got["civics-0"] == 1 and got["tech-4"] == 0
    assert "civics-5" not in got and "civics-4" not in got
    assert set(rows["source"]) == {first["lf_set"]} and first["lf_set"].startswith("lfs@")
    assert all(len(p) == 2 and abs(p.sum() - 1) < 1e-5 for p in rows["probs"])
    assert set(rows["run_id"]) == {"run-1"}

    table = read_artifact("toy-lf-analysis")
    assert table is not None and table.type == "table"
    analysed = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert [r["LF"] for r in analysed] == ["tech_words", "civic_words", "net_regex", "explode"]
    explode = next(r for r in analysed if r["LF"] == "explode")
    assert explode["Faults"] == 1
    summary = read_artifact("toy-weak-summary")
    assert "labeling function 'explode' failed on item" in summary.data and "boom found" in summary.data

    second = weak_flow(str(config), "run-2")
    assert second["rows_written"] == 0 and second["lf_set"] == first["lf_set"]
    assert len(weak_rows(config)[0]) == 10


def test_a_new_lf_set_supersedes_and_retracts_what_it_no_longer_covers(tmp_path):
    from labelloop.config import load_config
    from labelloop.flows.importing import import_flow
    from labelloop.flows.weak import weak_flow

    config = write_config(tmp_path)
    import_flow(str(config), "run-1")
    old = weak_flow(str(config), "run-1")
    write_config(tmp_path, lfs=LFS[:2])  # the regex LF is dropped: "a network of routers" loses its only vote
    new = weak_flow(str(config), "run-2")
    assert new["lf_set"] != old["lf_set"] and new["retracted"] == 1
    cfg = load_config(config)
    store = Store(cfg.store_url)
    try:
        resolved = store.resolve("toy", 2, ["gold", "weak"])
        ext = store.items("toy", columns=["id", "external_id"]).set_index("id")["external_id"]
        resolved_ext = set(ext.loc[resolved.item_ids])
    finally:
        store.close()
    assert "tech-4" not in resolved_ext and "tech-0" in resolved_ext


def test_bad_config_or_heuristic_path_fails_before_anything_is_written(tmp_path):
    from labelloop.flows.importing import import_flow
    from labelloop.flows.weak import weak_flow

    config = write_config(tmp_path)
    import_flow(str(config), "run-1")
    bad = [*LFS[:1], {"name": "typo", "kind": "regex", "class": "tech", "pattern": "(unclosed"}]
    write_config(tmp_path, lfs=bad)
    with pytest.raises(ConfigError, match=r"labelloop.yaml: weak.lfs\[1\]: LF 'typo': invalid regex '\(unclosed'"):
        weak_flow(str(config), "run-2")
    missing = [*LFS[:1], {"name": "gone", "kind": "heuristic", "path": "tests.labeling.lf_helpers:nope"}]
    write_config(tmp_path, lfs=missing)
    with pytest.raises(LabelingFunctionError, match=r"'gone': module 'tests.labeling.lf_helpers' has no attribute 'nope'"):
        weak_flow(str(config), "run-3")
    assert len(weak_rows(config)[0]) == 0


def test_pipeline_runs_the_weak_stage_and_the_model_predicts_uncovered_items(tmp_path):
    from labelloop.flows.pipeline import pipeline

    config = write_config(tmp_path, lfs=LFS[:3])
    result = pipeline(str(config))
    assert result["weak"]["covered"] == 10 and result["weak"]["rows_written"] == 10
    rows, items = weak_rows(config)
    from labelloop.config import load_config

    store = Store(load_config(config).store_url)
    try:
        model_rows = store.labels("toy", kinds=["model"])
    finally:
        store.close()
    assert set(model_rows["item_id"]) == set(items["id"])  # every item, covered or not, gets a model opinion
