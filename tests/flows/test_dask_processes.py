"""A turn on a Dask task runner with worker PROCESSES against a real `prefect server`.

Fold training and pool prediction are Prefect tasks; on a local Dask cluster of
two worker processes they run outside the process of the flow (their pids are
recorded in the committee's stored outputs), and the store ends up equal to
the one a default-runner turn writes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _project(directory, runner: str = ""):
    from labelloop.demo import write_digits_example

    config = write_digits_example(directory)
    text = config.read_text()
    # A small MLP member, one fold per task: five fit tasks for the runner to spread.
    text = text.replace("  model: cnn", "  model: mlp\n  epochs: 3\n  min_steps: 20\n  parallel_folds: 1")
    text = text.split("  cnn: {")[0] + "  mlp: {hidden: [32]}\n" + text.split("GaussNoise: {std_range: [0.02, 0.05]}}\n")[1]
    config.write_text(text + runner)
    return config


def _turn(config, env) -> int:
    """One `labelloop run` in its own process; returns that process's pid."""
    proc = subprocess.Popen([sys.executable, "-m", "labelloop", "run", "-c", str(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-4000:]
    return proc.pid


def _store_contents(config):
    from labelloop.config import load_config
    from labelloop.store import Store
    from labelloop.models.outputs import latest_outputs

    cfg = load_config(config)
    store = Store(cfg.store_url)
    try:
        items = store.items("digits", columns=["id", "external_id"])
        by_id = dict(zip(items["id"], items["external_id"]))
        labels = store.labels("digits", decode=False)
        labels = labels.assign(item=labels["item_id"].map(by_id), confidence=labels["confidence"].round(4))
        labels = labels[["item", "label", "kind", "source", "confidence"]].sort_values(["item", "kind", "source"])
        outputs = latest_outputs(store, "digits", mmap=False)
    finally:
        store.close()
    return labels.reset_index(drop=True), outputs


def test_dask_worker_processes_train_and_predict_and_the_store_matches_the_default_runner(tmp_path):
    import pandas as pd

    from labelloop.ops.prefect_server import PrefectServer, prefect_env

    server = PrefectServer(home=tmp_path / "prefect").start()
    try:
        env = prefect_env(tmp_path / "prefect", api_url=server.api_url,
                          extra={"PYTHONPATH": os.pathsep.join(sys.path), "NO_ALBUMENTATIONS_UPDATE": "1"})
        default = _project(tmp_path / "default")
        dask = _project(tmp_path / "dask", "\nrunner:\n  kind: dask\n  n_workers: 2\n  processes: true\n")
        flow_pid_default = _turn(default, env)
        flow_pid_dask = _turn(dask, env)
    finally:
        server.stop()
    labels_a, out_a = _store_contents(default)
    labels_b, out_b = _store_contents(dask)
    # default runner: every task in the flow's own process; Dask: in the worker processes, none in the flow's
    assert set(out_a.info["fit_pids"]) == {flow_pid_default}
    fit_pids, predict_pids = set(out_b.info["fit_pids"]), set(out_b.info["predict_pids"])
    assert flow_pid_dask not in fit_pids | predict_pids
    assert len(fit_pids) == 2  # five fold tasks spread over both workers
    pd.testing.assert_frame_equal(labels_a, labels_b)
    np.testing.assert_allclose(out_a.oof_proba, out_b.oof_proba, atol=1e-4)
    np.testing.assert_allclose(out_a.pool_members, out_b.pool_members, atol=1e-4)
