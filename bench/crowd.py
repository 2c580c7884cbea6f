"""Crowd round through a real Label Studio: 10,000 items x 3 annotators.

One run measures, on the same data:

- push: labelloop's per-annotator assignment (overlap 3, blind) imported into
  five per-annotator projects, in items/s and task copies/s. Each copy is
  imported together with that simulated annotator's answer (``completed_by`` =
  the bot's own user) so 30,000 answers need not be typed through 30,000 API
  calls; the API answer path itself is timed on a small sample
  (``answer_api_per_s``: bots with their own tokens, one POST per answer);
- sync: every annotation pulled back into a SQLite store, annotations/s;
- re-sync with nothing new (``resync_s``, 30k copies at the default size):
  the old path (every project exported in full, ``system=full-export``) and
  the incremental sync (``system=labelloop``) on the same server and store;
- changes: new answers imported in bulk, answers edited and deleted through
  the API, then one incremental sync: ``sync_s_per_1k_changes``;
- images with files: ``--image-items`` PNG files under the data dir pushed
  with overlap 3 through the crowd flow's content path (task data = a
  local-files URL), ``push_images_items_per_s`` / ``push_images_copies_per_s``
  and the largest task's bytes; the old inline path (base64 data URI) on a
  sample is the anchor (``system=inline``);
- aggregation: labelloop's Dawid-Skene vs majority vote on the synced answers,
  with crowd-kit 1.4.2's MajorityVote and DawidSkene as anchors.

Annotators follow ANCHORS.md's crowd protocol: w0, w1 90% right with uniform
errors; w2, w3 70% right, 80% of errors to a fixed confusable class; w4 a
uniform spammer. Usage: ``.venv/bin/python bench/crowd.py [--items 10000]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from _common import print_table, row, write_results  # noqa: E402
from labelloop.config import parse_config  # noqa: E402
from labelloop.labeling.crowd import CrowdAggregator, standing_votes  # noqa: E402
from labelloop.store import ItemIn, Store  # noqa: E402
from labelloop.studio.assign import ITEM_KEY, OverlapPolicy, plan_assignments  # noqa: E402
from labelloop.studio.bots import Bot, bot_email, ensure_bot_accounts  # noqa: E402
from labelloop.studio.client import StudioClient  # noqa: E402
from labelloop.studio.projects import CONTROL, FILES_DIR, ensure_file_storage, find_projects, task_data  # noqa: E402
from labelloop.studio.server import StudioServer  # noqa: E402
from labelloop.studio.sync import sync_annotations  # noqa: E402
from labelloop.studio.team import CrowdTeam  # noqa: E402

CLASSES = [f"c{k}" for k in range(10)]
W2 = [6, 7, 7, 8, 9, 6, 5, 1, 3, 4]
W3 = [8, 4, 3, 5, 1, 3, 0, 2, 9, 8]


def make_bots(seed: int) -> list[Bot]:
    return [Bot("w0", 0.9, seed=seed), Bot("w1", 0.9, seed=seed),
            Bot("w2", 0.7, dict(enumerate(W2)), 0.8, seed=seed), Bot("w3", 0.7, dict(enumerate(W3)), 0.8, seed=seed),
            Bot("w4", 0.1, seed=seed)]  # 1/10 right, errors uniform: a uniform spammer


def answer_result(label: str) -> list[dict]:
    return [{"from_name": CONTROL, "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def write_images(root: Path, n: int, seed: int) -> list[Path]:
    """``n`` distinct 48x48 RGB PNGs where labelloop's importer keeps files (``files/<hh>/<sha>.png``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        img = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        data = img.tobytes()
        digest = hashlib.sha256(data).hexdigest()
        path = root / FILES_DIR / digest[:2] / f"{digest}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)
        out.append(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--image-items", type=int, default=10_000)
    parser.add_argument("--inline-sample", type=int, default=1_000)
    parser.add_argument("--changes", type=int, default=1_000, help="new answers imported before the timed sync")
    parser.add_argument("--api-changes", type=int, default=50, help="answers edited and as many deleted via the API")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-sample", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    truth_arr = rng.integers(0, 10, args.items)
    bots = make_bots(args.seed)
    rows: list[dict] = []
    task = f"crowd-{args.items // 1000}k-x3"
    img_task = f"images-{args.image_items // 1000}k-x3"

    import os

    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (timings scale with it)")
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
            admin = server.client(timeout=600)
            ensure_bot_accounts(admin, [b.name for b in bots], tmp / "studio")
            users = {u["email"]: u["id"] for u in admin.users()}
            team = CrowdTeam(admin, "bench", "text", CLASSES, [b.email for b in bots])
            projects = team.projects()
            by_email = {b.email: b for b in bots}

            def import_answered(items_by_person: dict[str, list[int]]) -> None:
                for email, items in items_by_person.items():
                    bot = by_email[email]
                    for start in range(0, len(items), 1000):
                        chunk = items[start:start + 1000]
                        admin.import_tasks(projects[email].id, [
                            {"data": {**task_data("text", {"text": texts[i]}), ITEM_KEY: i},
                             "annotations": [{"completed_by": users[email],
                                              "result": answer_result(CLASSES[bot.draw(truth[i], 10)])}]}
                            for i in chunk])

            # -- push: plan + import (answers attached, see the module docstring) --------------
            t0 = time.perf_counter()
            plan = plan_assignments(ids, [b.email for b in bots], {}, OverlapPolicy(3, 3), seed=args.seed)
            per: dict[str, list[int]] = {}
            for a in plan:
                per.setdefault(a.annotator, []).append(a.item)
            import_answered(per)
            push_s = time.perf_counter() - t0
            rows += [row(task, "labelloop", "push_items_per_s", args.items / push_s),
                     row(task, "labelloop", "push_task_copies_per_s", len(plan) / push_s)]
            print(f"pushed {len(plan)} answered task copies in {push_s:.1f} s")

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
            rows.append(row(task, "labelloop", "answer_api_per_s", answered / (time.perf_counter() - t0)))

            # -- first sync (full: no cursor yet), then re-syncs with nothing new -------------------
            crowd_projects = find_projects(admin, "bench", "crowd")
            t0 = time.perf_counter()
            report = sync_annotations(admin, store, "bench", CLASSES, crowd_projects, run_id="bench-1")
            sync_s = time.perf_counter() - t0
            assert report.mode == "full" and report.added == len(plan), (report.mode, report.added)
            rows += [row(task, "labelloop", "sync_annotations_per_s", report.added / sync_s),
                     row(task, "labelloop", "sync_items_per_s", args.items / sync_s)]
            print(f"first sync: {report.added} rows in {sync_s:.1f} s")
            votes = standing_votes(store, "bench")  # before the edits below
            # interleaved: new, old, new (the machine is shared; the best of each is reported)
            times: dict[str, list[float]] = {"labelloop": [], "full-export": []}
            for system in ("labelloop", "full-export", "labelloop"):
                t0 = time.perf_counter()
                again = sync_annotations(admin, store, "bench", CLASSES, crowd_projects, run_id="bench-2",
                                         mode="full" if system == "full-export" else "incremental")
                times[system].append(time.perf_counter() - t0)
                assert again.added == 0, (system, again.added)
                print(f"re-sync, nothing new, {system}: {times[system][-1]:.2f} s, {again.tasks_read} tasks read")
            for system, ts in times.items():
                rows += [row(task, system, "resync_s", min(ts)), row(task, system, "resync_added_rows", 0)]

            # -- changes: new answers (bulk), edits and deletions (API), one incremental sync -------
            # new work: fresh items, each answered by one person (labelloop never gives a person an item twice)
            extra = store.add_items("bench", [ItemIn(modality="text", text=f"new item {k}")
                                              for k in range(args.changes)]).ids
            for k, i in enumerate(extra):
                texts[i], truth[i] = f"new item {k}", int(rng.integers(0, 10))
            new_per: dict[str, list[int]] = {}
            for k, i in enumerate(extra):
                new_per.setdefault(bots[k % len(bots)].email, []).append(int(i))
            import_answered(new_per)
            victims = admin.changed_tasks(projects[bots[0].email].id)[: 2 * args.api_changes]
            for t in victims[: args.api_changes]:
                admin.update_annotation(t["annotations"][0]["id"], answer_result(CLASSES[(truth[t["data"][ITEM_KEY]] + 1) % 10]))
            for t in victims[args.api_changes:]:
                admin.delete_annotation(t["annotations"][0]["id"])
            n_changes = args.changes + 2 * args.api_changes
            t0 = time.perf_counter()
            changed = sync_annotations(admin, store, "bench", CLASSES, crowd_projects, run_id="bench-3",
                                       mode="incremental")
            change_s = time.perf_counter() - t0
            assert changed.deleted == args.api_changes and changed.added == n_changes, (changed.added, changed.deleted)
            rows.append(row(task, "labelloop", "sync_s_per_1k_changes", change_s / (n_changes / 1000)))
            print(f"{n_changes} changes synced incrementally in {change_s:.2f} s ({changed.tasks_read} tasks read)")
            # the old path pays a full export for any change, however small: its resync_s above
            rows.append(row(task, "full-export", "sync_s_per_1k_changes", min(times["full-export"]) / (n_changes / 1000)))

            # -- images with files: pushed as URLs through the crowd flow's content path -----------
            if args.image_items:
                from labelloop.studio.projects import item_content

                t0 = time.perf_counter()
                paths = write_images(tmp, args.image_items, args.seed)
                img_ids = store.add_items("imgs", [ItemIn(modality="image", path=str(p_), uri=p_.as_uri())
                                                   for p_ in paths]).ids
                print(f"{len(paths)} image files written in {time.perf_counter() - t0:.1f} s")
                config = parse_config({"dataset": {"name": "imgs", "modality": "image", "classes": CLASSES},
                                       "data_dir": str(tmp)})
                iteam = CrowdTeam(admin, "imgs", "image", CLASSES, [b.email for b in bots])
                t0 = time.perf_counter()
                for ref in iteam.projects().values():
                    ensure_file_storage(admin, ref, tmp / FILES_DIR)
                content = item_content(store, "imgs", "image", config.data_path, img_ids)
                iplan, pushed = iteam.push(img_ids, content, OverlapPolicy(3, 3), seed=args.seed)
                img_s = time.perf_counter() - t0
                copies = sum(len(v) for v in pushed.values())
                biggest = max(len(json.dumps(t["data"])) for t in admin.request("GET", "/api/tasks/", params={
                    "project": iteam.projects()[bots[0].email].id, "page_size": 200})["tasks"])
                rows += [row(img_task, "labelloop", "push_images_items_per_s", len(img_ids) / img_s),
                         row(img_task, "labelloop", "push_images_copies_per_s", copies / img_s),
                         row(img_task, "labelloop", "push_100k_copies_s_est", 100_000 / (copies / img_s)),
                         row(img_task, "labelloop", "task_json_bytes_max", biggest)]
                print(f"pushed {copies} image task copies in {img_s:.1f} s")
                # anchor: the old inline path (base64 data URI per task) on a sample
                import base64

                sample_ids = img_ids[: args.inline_sample]
                inline = {i: {"image": "data:image/png;base64," + base64.b64encode(Path(p_).read_bytes()).decode()}
                          for i, p_ in zip(sample_ids, paths)}
                old = CrowdTeam(admin, "imgs-inline", "image", CLASSES, [b.email for b in bots])
                old.projects()
                t0 = time.perf_counter()
                _, opushed = old.push(sample_ids, inline.__getitem__, OverlapPolicy(3, 3), seed=args.seed)
                old_s = time.perf_counter() - t0
                ocopies = sum(len(v) for v in opushed.values())
                rows += [row(img_task, "inline", "push_images_items_per_s", len(sample_ids) / old_s),
                         row(img_task, "inline", "push_images_copies_per_s", ocopies / old_s),
                         row(img_task, "inline", "push_100k_copies_s_est", 100_000 / (ocopies / old_s)),
                         row(img_task, "inline", "task_json_bytes_max", max(len(json.dumps(d)) for d in inline.values()))]
        finally:
            server.stop()

        # -- aggregation on the synced answers ------------------------------------------------
        y = np.array([truth[i] for i in sorted(set(votes["item"]))])
        for method in ("dawid_skene", "majority"):
            t0 = time.perf_counter()
            agg = CrowdAggregator(method, min_gold_accuracy=0.0).fit(votes, 10)
            fit_s = time.perf_counter() - t0
            rows += [row(task, "labelloop", f"acc_{method}", float(np.mean(agg.predict() == y))),
                     row(task, "labelloop", f"fit_s_{method}", fit_s)]
        try:
            from crowdkit.aggregation import DawidSkene as CkDS, MajorityVote as CkMV

            df = votes.rename(columns={"item": "task", "source": "worker"})
            for name, model in (("dawid_skene", CkDS(n_iter=100)), ("majority", CkMV())):
                t0 = time.perf_counter()
                pred = model.fit_predict(df)
                fit_s = time.perf_counter() - t0
                acc = float(np.mean(pred.reindex(sorted(set(votes["item"]))).to_numpy() == y))
                rows += [row(task, "crowd-kit", f"acc_{name}", acc), row(task, "crowd-kit", f"fit_s_{name}", fit_s)]
        except ImportError:
            print("crowd-kit not installed (pip install -e '.[bench]'): anchor rows left out")
        store.close()

    print("\nsync: incremental (labelloop) vs every project exported in full (the old path)")
    print_table([r for r in rows if r["system"] in ("labelloop", "full-export") and r["metric"].startswith(("resync", "sync_s"))],
                baseline="full-export")
    print("\npush of image items: URL to a served file (labelloop) vs inline base64 (the old path)")
    print_table([r for r in rows if r["task"] == img_task], baseline="inline", higher_is_better=["push_images_items_per_s"])
    print("\naggregation and the rest")
    print_table([r for r in rows if r["task"] == task and r["system"] in ("labelloop", "crowd-kit")
                 and not r["metric"].startswith(("resync", "sync_s"))], baseline="crowd-kit")
    ds = next(r["value"] for r in rows if r["system"] == "labelloop" and r["metric"] == "acc_dawid_skene")
    mv = next(r["value"] for r in rows if r["system"] == "labelloop" and r["metric"] == "acc_majority")
    print(f"labelloop Dawid-Skene vs majority vote on the same answers: {ds:.4f} vs {mv:.4f} ({ds / mv:.3f}x)")
    rows.append(row(task, "machine", "load_average_1m_end", os.getloadavg()[0]))
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print("results:", write_results("crowd", rows))


if __name__ == "__main__":
    main()
