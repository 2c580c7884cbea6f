"""The same two-turn pipeline on Prefect's default runner and on a 2-worker DaskTaskRunner over PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelloop.config import RunnerConfig, load_config
from labelloop.exceptions import ConfigError

pytestmark = pytest.mark.slow


def _project(directory, extra: str = ""):
    from labelloop.demo import write_digits_example

    config = write_digits_example(directory)
    config.write_text(config.read_text() + extra)
    return config


def _contents(config_path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Items and label rows, without what legitimately differs between runs (ids of runs, times)."""
    from labelloop.store import Store

    config = load_config(config_path)
    store = Store(config.store_url)
    try:
        items = store.items("digits", columns=["id", "external_id", "content_hash"]).sort_values("external_id")
        labels = store.labels("digits", decode=False)
    finally:
        store.close()
    by_id = dict(zip(items["id"], items["external_id"]))
    labels = labels.assign(item=labels["item_id"].map(by_id), confidence=labels["confidence"].round(6))
    labels = labels[["item", "label", "kind", "source", "confidence", "dedupe_key"]]
    return (items[["external_id", "content_hash"]].reset_index(drop=True),
            labels.sort_values(["item", "kind", "source", "dedupe_key"]).reset_index(drop=True))


def _two_turns(config_path) -> list[dict]:
    from labelloop.flows.pipeline import pipeline

    return [pipeline(str(config_path)) for _ in range(2)]


def test_dask_runner_on_postgres_gives_the_default_runners_store(prefect_harness, tmp_path, postgres_url):
    default = _project(tmp_path / "default")
    dask = _project(
        tmp_path / "dask",
        f"store:\n  url: {postgres_url}\nrunner:\n  kind: dask\n  n_workers: 2\n  processes: false\n",
    )
    default_turns = _two_turns(default)
    dask_turns = _two_turns(dask)

    items_a, labels_a = _contents(default)
    items_b, labels_b = _contents(dask)
    pd.testing.assert_frame_equal(items_a, items_b)
    pd.testing.assert_frame_equal(labels_a, labels_b)
    assert len(items_a) == 1797 and (labels_a["kind"] == "gold").sum() == 89
    # The second turn adds nothing twice (idempotent stages) on both runners.
    for turns in (default_turns, dask_turns):
        assert turns[1]["import"]["added"] == 0 and turns[1]["model"]["rows_written"] == 0
        assert [t["summary"]["turn"] for t in turns] == [1, 2]
        assert turns[1]["summary"]["accuracy_gained_points"] == pytest.approx(0.0)
        assert turns[1]["summary"]["labels_bought"] == 0
    assert default_turns[0]["summary"]["accuracy"] == pytest.approx(dask_turns[0]["summary"]["accuracy"])


def test_runner_config_is_checked_up_front():
    from labelloop.config import parse_config

    base = {"dataset": {"name": "d", "modality": "tabular", "classes": ["a", "b"]}}
    with pytest.raises(ConfigError, match=r"f.yaml: runner: address is set \('tcp://h:8786'\) but kind is 'default'; set kind: dask"):
        parse_config({**base, "runner": {"address": "tcp://h:8786"}}, "f.yaml")
    with pytest.raises(ConfigError, match=r"runner: address must be a Dask scheduler URL such as tcp://host:8786 \(got 'h:8786'\)"):
        parse_config({**base, "runner": {"kind": "dask", "address": "h:8786"}}, "f.yaml")
    with pytest.raises(ConfigError, match=r"runner.n_workers: must be >= 1 \(got 0\)"):
        parse_config({**base, "runner": {"n_workers": 0}}, "f.yaml")
    assert RunnerConfig().kind == "default"


def test_existing_scheduler_address_is_used_as_is():
    from labelloop.ops.runner import turn_task_runner

    with turn_task_runner(RunnerConfig(kind="dask", address="tcp://10.1.2.3:8786")) as runner:
        assert runner.address == "tcp://10.1.2.3:8786"
    with turn_task_runner(RunnerConfig()) as runner:
        assert runner is None


def test_local_cluster_has_the_configured_workers():
    from distributed import Client

    from labelloop.ops.runner import turn_task_runner

    with turn_task_runner(RunnerConfig(kind="dask", n_workers=2, processes=False)) as runner:
        with Client(runner.address) as client:
            assert len(client.scheduler_info()["workers"]) == 2
            assert np.sum(client.gather(client.map(lambda x: x * x, range(10)))) == 285
