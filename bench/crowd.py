"""Crowd round through a real Label Studio: 10,000 items x 3 annotators.

One run measures, on the same data:

- push: labelloop's per-annotator assignment (overlap 3, blind) imported into
  five per-annotator projects, in items/s and task copies/s. Each copy is
  imported together with that simulated annotator's answer (``completed_by`` =
  the bot's own user) so 30,000 answers need not be typed through 30,000 API
  calls; the API answer path itself is timed on a small sample
  (``answer_api_per_s``: bots with their own tokens, one POST per answer);
- sync: every annotation pulled back into a SQLite store, annotations/s, then
  a second sync (idempotence, adds nothing);
- aggregation: labelloop's Dawid-Skene vs majority vote on the synced answers,
  with crowd-kit 1.4.2's MajorityVote and DawidSkene as anchors.

Annotators follow ANCHORS.md's crowd protocol: w0, w1 90% right with uniform
errors; w2, w3 70% right, 80% of errors to a fixed confusable class; w4 a
uniform spammer. Usage: ``.venv/bin/python bench/crowd.py [--items 10000]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labelloop.labeling.crowd import CrowdAggregator, latest_votes  # noqa: E402
from labelloop.store import ItemIn, Store  # noqa: E402
from labelloop.studio.assign import ITEM_KEY, OverlapPolicy, plan_assignments  # noqa: E402
from labelloop.studio.bots import Bot, bot_email, ensure_bot_accounts  # noqa: E402
from labelloop.studio.client import StudioClient  # noqa: E402
from labelloop.studio.projects import CONTROL, find_projects, task_data  # noqa: E402
from labelloop.studio.server import StudioServer  # noqa: E402
from labelloop.studio.sync import sync_annotations  # noqa: E402
from labelloop.studio.team import CrowdTeam  # noqa: E402

CLASSES = [f"c{k}" for k in range(10)]
W2 = [6, 7, 7, 8, 9, 6, 5, 1, 3, 4]
W3 = [8, 4, 3, 5, 1, 3, 0, 2, 9, 8]


def write_results(name: str, rows: list[dict]) -> Path:
    out = Path(__file__).resolve().parent / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    return out


def make_bots(seed: int) -> list[Bot]:
    return [Bot("w0", 0.9, seed=seed), Bot("w1", 0.9, seed=seed),
            Bot("w2", 0.7, dict(enumerate(W2)), 0.8, seed=seed), Bot("w3", 0.7, dict(enumerate(W3)), 0.8, seed=seed),
            Bot("w4", 0.1, seed=seed)]  # 1/10 right, errors uniform: a uniform spammer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-sample", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    truth_arr = rng.integers(0, 10, args.items)
    bots = make_bots(args.seed)
    rows: list[dict] = []
    task = f"crowd-{args.items // 1000}k-x3"

    with tempfile.TemporaryDirectory(prefix="bench-crowd-") as tmp:
        tmp = Path(tmp)
        store = Store(f"sqlite:///{tmp / 'store.db'}").create()
        ids = store.add_items("bench", [ItemIn(modality="text", text=f"item {i}") for i in range(args.items)]).ids
        truth = dict(zip(ids, truth_arr.tolist()))
        texts = {i: f"item {k}" for k, i in enumerate(ids)}
        t0 = time.perf_counter()
        server = StudioServer(tmp / "studio", startup_timeout=900).start()
        print(f"Label Studio up (fresh data dir) in {time.perf_counter() - t0:.1f} s at {server.url}")
        try:
            admin = server.client(timeout=300)
            ensure_bot_accounts(admin, [b.name for b in bots], tmp / "studio")
            users = {u["email"]: u["id"] for u in admin.users()}
            team = CrowdTeam(admin, "bench", "text", CLASSES, [b.email for b in bots])
            projects = team.projects()
            by_email = {b.email: b for b in bots}

            # -- push: plan + import (answers attached, see the module docstring) --------------
            t0 = time.perf_counter()
            plan = plan_assignments(ids, [b.email for b in bots], {}, OverlapPolicy(3, 3), seed=args.seed)
            per: dict[str, list[int]] = {}
            for a in plan:
                per.setdefault(a.annotator, []).append(a.item)
            for email, items in per.items():
                bot = by_email[email]
                for start in range(0, len(items), 1000):
                    chunk = items[start:start + 1000]
                    tasks = [{"data": {**task_data("text", {"text": texts[i]}), ITEM_KEY: i},
                              "annotations": [{"completed_by": users[email], "result": [
                                  {"from_name": CONTROL, "to_name": "text", "type": "choices",
                                   "value": {"choices": [CLASSES[bot.draw(truth[i], 10)]]}}]}]} for i in chunk]
                    admin.import_tasks(projects[email].id, tasks)
            push_s = time.perf_counter() - t0
            rows += [{"task": task, "system": "labelloop", "metric": "push_items_per_s", "value": args.items / push_s},
                     {"task": task, "system": "labelloop", "metric": "push_task_copies_per_s", "value": len(plan) / push_s}]

            # -- the API answer path, timed on a small sample -----------------------------------
            sample = ids[: args.api_sample]
            team2 = CrowdTeam(admin, "bench-api", "text", CLASSES, [b.email for b in bots])
            team2.push(sample, lambda i: task_data("text", {"text": texts[i]}), OverlapPolicy(1, 1), seed=1)
            tokens = json.loads((tmp / "studio" / "bots.json").read_text())
            t0 = time.perf_counter()
            answered = 0
            for b in bots:
                with StudioClient(server.url, tokens[b.name]["token"]) as own:
                    answered += b.answer_project(own, team2.projects()[b.email].id, truth, CLASSES, "text")
            rows.append({"task": task, "system": "labelloop", "metric": "answer_api_per_s",
                         "value": answered / (time.perf_counter() - t0)})

            # -- sync twice ------------------------------------------------------------------
            crowd_projects = find_projects(admin, "bench", "crowd")
            t0 = time.perf_counter()
            report = sync_annotations(admin, store, "bench", CLASSES, crowd_projects, run_id="bench-1")
            sync_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = sync_annotations(admin, store, "bench", CLASSES, crowd_projects, run_id="bench-2")
            resync_s = time.perf_counter() - t0
            assert report.added == len(plan) and again.added == 0, (report.added, again.added)
            rows += [{"task": task, "system": "labelloop", "metric": "sync_annotations_per_s", "value": report.added / sync_s},
                     {"task": task, "system": "labelloop", "metric": "sync_items_per_s", "value": args.items / sync_s},
                     {"task": task, "system": "labelloop", "metric": "resync_added_rows", "value": again.added},
                     {"task": task, "system": "labelloop", "metric": "resync_s", "value": resync_s}]
        finally:
            server.stop()

        # -- aggregation on the synced answers ------------------------------------------------
        votes = latest_votes(store.labels("bench", kinds=["annotator"], decode=False))
        y = np.array([truth[i] for i in sorted(set(votes["item"]))])
        for method in ("dawid_skene", "majority"):
            t0 = time.perf_counter()
            agg = CrowdAggregator(method, min_gold_accuracy=0.0).fit(votes, 10)
            fit_s = time.perf_counter() - t0
            rows += [{"task": task, "system": "labelloop", "metric": f"acc_{method}", "value": float(np.mean(agg.predict() == y))},
                     {"task": task, "system": "labelloop", "metric": f"fit_s_{method}", "value": fit_s}]
        try:
            from crowdkit.aggregation import DawidSkene as CkDS, MajorityVote as CkMV

            df = votes.rename(columns={"item": "task", "source": "worker"})
            for name, model in (("dawid_skene", CkDS(n_iter=100)), ("majority", CkMV())):
                t0 = time.perf_counter()
                pred = model.fit_predict(df)
                fit_s = time.perf_counter() - t0
                acc = float(np.mean(pred.reindex(sorted(set(votes["item"]))).to_numpy() == y))
                rows += [{"task": task, "system": "crowd-kit", "metric": f"acc_{name}", "value": acc},
                         {"task": task, "system": "crowd-kit", "metric": f"fit_s_{name}", "value": fit_s}]
        except ImportError:
            print("crowd-kit not installed (pip install -e '.[bench]'): anchor rows left out")
        store.close()

    table = pd.DataFrame(rows).pivot_table(index="metric", columns="system", values="value", aggfunc="first")
    if "crowd-kit" in table:
        table["labelloop / crowd-kit"] = table["labelloop"] / table["crowd-kit"]
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    ds = next(r["value"] for r in rows if r["system"] == "labelloop" and r["metric"] == "acc_dawid_skene")
    mv = next(r["value"] for r in rows if r["system"] == "labelloop" and r["metric"] == "acc_majority")
    print(f"labelloop Dawid-Skene vs majority vote on the same answers: {ds:.4f} vs {mv:.4f} ({ds / mv:.3f}x)")
    print("results:", write_results("crowd", rows))


if __name__ == "__main__":
    main()
