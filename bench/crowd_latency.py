"""Submit-to-store latency: an answer submitted in Label Studio until its row is in labelloop's store.

The whole production path on one machine, started the way a team starts it
(`labelloop up`, `labelloop deploy`): Label Studio, the Prefect server and a
process worker, the webhook receiver, the automation. An annotator account
(made by labelloop, own token) submits answers one at a time through the API,
which fires the same webhook as the UI's Submit; the clock stops when the row
is readable in the store.

- ``system=labelloop``: webhook -> receiver -> Prefect event -> automation ->
  ``<dataset>-crowd-sync`` run on the worker -> incremental sync;
- ``system=cron-1min`` (the anchor, what there was before): receiver stopped,
  the same deployment on a ``* * * * *`` cron (Prefect's finest cron).

Rows (``task=crowd-submit``): ``submit_to_store_s`` median and ``submit_to_store_max_s``.
Usage: ``.venv/bin/python bench/crowd_latency.py [--answers 6 --cron-answers 2]``
(bench/crowd.py runs it with ``--latency``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from _common import print_table, row, write_results  # noqa: E402

__all__ = ["submit_to_store_rows"]

CLASSES = ["sports", "politics", "science", "music"]
DATASET = "latency"


def _cli(*args: str, extra_env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(extra_env or {})}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "labelloop", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"labelloop {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


async def _run_and_wait(api_url: str, name: str) -> None:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api=api_url) as client:
        deployment = await client.read_deployment_by_name(name)
        run = await client.create_flow_run_from_deployment(deployment.id)
        while True:
            run = await client.read_flow_run(run.id)
            if run.state and run.state.is_final():
                if not run.state.is_completed():
                    raise SystemExit(f"{name}: {run.state}")
                return
            await asyncio.sleep(1)


def _rows_in_store(store_url: str) -> int:
    from labelloop.store import Store

    store = Store(store_url)
    try:
        return len(store.labels(DATASET, kinds=["annotator"], decode=False))
    finally:
        store.close()


def _measure(own, tasks: list[dict], store_url: str, timeout: float) -> list[float]:
    """Submit one answer per task, each after the previous one reached the store; seconds each."""
    seconds = []
    for n, task in enumerate(tasks):
        before = _rows_in_store(store_url)
        start = time.monotonic()
        own.create_annotation(task["id"], [{"from_name": "label", "to_name": "text", "type": "choices",
                                            "value": {"choices": [CLASSES[n % len(CLASSES)]]}}])
        while _rows_in_store(store_url) <= before:
            if time.monotonic() - start > timeout:
                raise SystemExit(f"answer to task {task['id']} not in the store after {timeout:.0f} s")
            time.sleep(0.2)
        seconds.append(time.monotonic() - start)
        print(f"  answer {n + 1}/{len(tasks)}: {seconds[-1]:.1f} s", flush=True)
    return seconds


def submit_to_store_rows(answers: int = 6, cron_answers: int = 2, workdir: Path | None = None) -> list[dict]:
    """Measure both paths on one stack; returns result rows (see the module docstring)."""
    from labelloop.config import load_config
    from labelloop.tasks.crowd import connect
    from labelloop.ops import ServiceState
    from labelloop.store import ItemIn, Store, TaskIn
    from labelloop.studio.bots import bot_email, ensure_bot_accounts
    from labelloop.studio.client import StudioClient
    from labelloop.studio.projects import find_projects

    root = Path(workdir or tempfile.mkdtemp(prefix="labelloop-latency-"))
    path = root / "labelloop.yaml"
    spec = {"dataset": {"name": DATASET, "modality": "text", "classes": CLASSES}, "data_dir": str(root / "data"),
            "crowd": {"enabled": True, "annotators": [bot_email("ann")], "overlap": 1, "initial_overlap": 1,
                      "gold_rate": 0.0},
            "schedule": {"work_pool": "latency-bench", "webhook_min_interval_s": 1}}
    path.write_text(yaml.safe_dump(spec))
    config = load_config(path)
    n = answers + cron_answers
    store = Store(config.store_url).create()
    ids = store.add_items(DATASET, [ItemIn(modality="text", text=f"item {i}") for i in range(n)]).ids
    store.add_tasks([TaskIn(item_id=i, queue="crowd") for i in ids])
    store.close()
    rows: list[dict] = []
    try:
        print("labelloop up (a fresh Label Studio migrates its database first) ...", flush=True)
        _cli("up", "-c", str(path))
        state = ServiceState.load(config)
        with connect(config) as admin:
            token = ensure_bot_accounts(admin, ["ann"], config.data_path / "studio")["ann"]
        _cli("deploy", "-c", str(path))
        asyncio.run(_run_and_wait(state.server.api_url, f"stage/{DATASET}-crowd"))  # push into ann's project
        with connect(config) as admin:
            ref = next(r for r in find_projects(admin, DATASET, "crowd") if r.annotator == bot_email("ann"))
            tasks = admin.tasks(ref.id)
        with StudioClient(state.studio["url"], token) as own:
            print(f"webhook path, {answers} answers", flush=True)
            hooked = _measure(own, tasks[:answers], config.store_url, timeout=600)
            state.webhooks.stop()  # the anchor: no webhooks, the finest cron Prefect has
            spec["schedule"]["stages"] = {"crowd-sync": "* * * * *"}
            path.write_text(yaml.safe_dump(spec))
            _cli("deploy", "-c", str(path))
            print(f"cron path, {cron_answers} answers", flush=True)
            cron = _measure(own, tasks[answers:], config.store_url, timeout=600)
    finally:
        _cli("down", "-c", str(path))
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    for system, values in (("labelloop", hooked), ("cron-1min", cron)):
        rows.append(row("crowd-submit", system, "submit_to_store_s", float(np.median(values))))
        rows.append(row("crowd-submit", system, "submit_to_store_max_s", float(np.max(values))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=6)
    parser.add_argument("--cron-answers", type=int, default=2)
    args = parser.parse_args()
    rows = submit_to_store_rows(args.answers, args.cron_answers)
    print_table(rows, baseline="cron-1min")
    print("results:", write_results("crowd_latency", rows))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
