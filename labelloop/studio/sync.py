"""Pull annotations back into the store: incremental, idempotent, append-only, resumable.

Every Label Studio annotation becomes one label row keyed
``ls:{annotation_id}:{updated_at}`` (the store skips a key it already has):

- pulled twice -> the second pull adds nothing;
- edited in Label Studio -> a new ``updated_at``, so a new row; the old row stays
  (append-only) and the newest row per (item, annotator) is the opinion;
- deleted in Label Studio -> a row with label ``-1`` ("this source retracts")
  keyed ``ls:{annotation_id}:deleted``;
- a choice that is not one of the dataset's classes -> quarantined: no row, a
  :class:`~labelloop.exceptions.AnnotationError` message naming project, task and
  annotation in the report, and the rest is synced; fixing the annotation in
  Label Studio changes ``updated_at`` and the next sync takes it.

**Incremental.** Label Studio stamps a task's ``updated_at`` whenever one of
its annotations is created, edited or deleted, and its task list filters on it.
So a sync reads, per project, only the tasks changed since a cursor — a
re-sync with nothing new is one small request per project, whatever the
history. The cursor is Label Studio's own clock (the ``Date`` header) at the
start of the last sync minus ``overlap_s``: a change stamped before that was
committed before the last sync read, so it was seen; the last few seconds are
read again (dedupe keys make that free). A changed task whose known answer is
missing is checked with one request per missing annotation (404 -> deletion).

**Reconcile.** A full pass (every project exported, as before) runs every
``reconcile_every`` seconds, when a project lost tasks (its ``task_number``
fell: a deleted task leaves no changed task behind), or on ``mode="full"``.
It infers deletions only after *every* project was read, so a partial pull
never marks an annotation deleted.

**State and concurrency.** The cursors live in the store (one ``runs`` row
``ls-sync:{dataset}``) and are written only after the rows they cover, so a
sync killed midway (Label Studio restarted, the process killed) is re-read from
the old cursors next time: nothing lost, nothing doubled. Two syncs at once
(a cron sync and a webhook-triggered one) may read the same tasks; the dedupe
keys keep one row each, a row older than the stored version of the same
annotation is not appended after it, and whichever cursor is written last is
one both syncs had fully read. Projects are pulled one by one and each
project's rows are written before the next is fetched; the client retries a
down or slow server with backoff and then raises
:class:`~labelloop.exceptions.LabelStudioError` naming the URL.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Literal, Sequence

import pandas as pd

from labelloop.exceptions import AnnotationError
from labelloop.studio.assign import ITEM_KEY, answer_of
from labelloop.studio.client import StudioClient
from labelloop.studio.projects import ProjectRef

__all__ = ["Quarantined", "SyncReport", "annotation_rows", "sync_annotations", "sync_state", "close_answered",
           "answers_since_last_turn", "KIND_OF_ROLE"]

log = logging.getLogger("labelloop.studio.sync")

KIND_OF_ROLE = {"crowd": "annotator", "expert": "expert", "review": "expert"}
LS_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # Label Studio's datetime format (API output and filter input)
STATE_KIND = "ls-sync"


@dataclass(frozen=True)
class Quarantined:
    """An annotation that could not become a label row."""

    project: int
    task: int
    annotation: int
    item: int | None
    annotator: str
    value: Any
    error: str


@dataclass
class SyncReport:
    """What one sync did. ``mode`` is ``full`` or ``incremental``; ``tasks_read`` counts tasks fetched."""

    projects: int = 0
    annotations: int = 0
    added: int = 0
    deleted: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    per_project: dict[int, int] = field(default_factory=dict)
    answered_tasks: set[int] = field(default_factory=set)  # Label Studio task ids with a synced answer
    mode: str = "full"
    reason: str = ""
    tasks_read: int = 0


def annotation_rows(tasks: Iterable[dict], ref: ProjectRef, classes: Sequence[str], users: dict[int, str]
                    ) -> tuple[list[dict], list[Quarantined]]:
    """Label rows (plain dicts) and quarantined annotations of one project's exported tasks."""
    rows: list[dict] = []
    bad: list[Quarantined] = []
    kind = KIND_OF_ROLE[ref.role]
    for task in tasks:
        item = (task.get("data") or {}).get(ITEM_KEY)
        for ann in task.get("annotations") or []:
            if ann.get("was_cancelled"):
                continue  # a skip holds no opinion
            who = users.get(ann.get("completed_by"), f"user-{ann.get('completed_by')}")
            answer = answer_of(ann, classes)
            problem = None
            if item is None:
                problem = f"task has no data.{ITEM_KEY} (not pushed by labelloop)"
            elif answer is None:
                problem = "no choice in the result"
            elif not isinstance(answer, int):
                problem = f"label {answer!r} is not one of the classes {list(classes)}"
            if problem:
                msg = (f"Label Studio project {ref.id} ({ref.title!r}), task {task['id']}, "
                       f"annotation {ann['id']} by {who}: {problem}")
                bad.append(Quarantined(ref.id, task["id"], ann["id"], item, who, answer, msg))
                continue
            rows.append({"item_id": int(item), "label": int(answer), "kind": kind, "source": who,
                         "annotation_id": int(ann["id"]), "task_id": int(task["id"]), "project_id": ref.id,
                         "updated_at": ann.get("updated_at") or ann.get("created_at"),
                         "created_at": ann.get("created_at"), "lead_time": ann.get("lead_time"),
                         "dedupe_key": f"ls:{ann['id']}:{ann.get('updated_at') or ann.get('created_at')}"})
    return rows, bad


def _label_in(row: dict, run_id: str | None):
    from labelloop.store import LabelIn

    return LabelIn(item_id=row["item_id"], label=row["label"], kind=row["kind"], source=row["source"],
                   run_id=run_id, dedupe_key=row["dedupe_key"])


_KNOWN_COLUMNS = ["annotation_id", "item_id", "source", "kind", "last", "deleted"]


def _known_annotations(store, dataset: str, item_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """Per Label Studio annotation id the store has rows for: item, source, kind, newest
    ``updated_at`` stored and whether a deletion row exists. ``item_ids`` limits the read
    (an incremental sync looks only at the items of changed tasks)."""
    from sqlalchemy import select

    from labelloop.store import schema

    labels, items = schema.labels, schema.items
    base = (select(labels.c.item_id, labels.c.source, labels.c.kind, labels.c.dedupe_key)
            .join(items, items.c.id == labels.c.item_id)
            .where(items.c.dataset == dataset, labels.c.kind.in_(["annotator", "expert"]),
                   labels.c.dedupe_key.like("ls:%")))
    chunks: list[list] = []
    with store.engine.connect() as conn:
        if item_ids is None:
            chunks.append(conn.execute(base).all())
        else:
            ids = sorted({int(i) for i in item_ids})
            for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
                chunks.append(conn.execute(base.where(labels.c.item_id.in_(ids[start:start + 900]))).all())
    rows = [r for chunk in chunks for r in chunk]
    if not rows:
        return pd.DataFrame(columns=_KNOWN_COLUMNS)
    df = pd.DataFrame(rows, columns=["item_id", "source", "kind", "dedupe_key"])
    parts = df["dedupe_key"].str.split(":", n=2, expand=True)
    df["annotation_id"] = parts[1].astype(int)
    df["deleted"] = parts[2] == "deleted"
    df["last"] = parts[2].where(~df["deleted"], "")
    # a deletion row wins over every earlier row of the same annotation
    return df.groupby("annotation_id").agg(item_id=("item_id", "first"), source=("source", "first"),
                                           kind=("kind", "first"), last=("last", "max"),
                                           deleted=("deleted", "max")).reset_index()[_KNOWN_COLUMNS]


def _fresh(rows: list[dict], known: pd.DataFrame) -> list[dict]:
    """Rows not older than what the store holds for their annotation (a slow concurrent sync's
    stale read must not become the newest opinion), and not of an annotation already retracted."""
    if not rows or known.empty:
        return rows
    last = dict(zip(known["annotation_id"], known["last"]))
    gone = set(known.loc[known["deleted"], "annotation_id"])
    return [r for r in rows if r["annotation_id"] not in gone and r["updated_at"] >= last.get(r["annotation_id"], "")]


# -- state ------------------------------------------------------------------------------------

def _state_id(dataset: str) -> str:
    return f"{STATE_KIND}:{dataset}"[:64]


def sync_state(store, dataset: str) -> dict:
    """The stored sync state of a dataset: server URL, per-project cursors, last reconcile (epoch s)."""
    from sqlalchemy import select

    from labelloop.store import schema

    with store.engine.connect() as conn:
        row = conn.execute(select(schema.runs.c.summary).where(schema.runs.c.id == _state_id(dataset))).first()
    return dict(row[0] or {}) if row else {}


def _save_state(store, dataset: str, state: dict) -> None:
    run_id = store.start_run(STATE_KIND, dataset=dataset, run_id=_state_id(dataset))
    store.finish_run(run_id, status="completed", summary=state)


def _project_key(project: dict) -> str:
    # ids restart in a fresh Label Studio data dir; the creation time tells two projects apart
    return f"{project['id']}:{project.get('created_at', '')}"


# -- the sync ---------------------------------------------------------------------------------

def sync_annotations(client: StudioClient, store, dataset: str, classes: Sequence[str],
                     projects: Sequence[ProjectRef] | None = None, *, run_id: str | None = None,
                     exports: dict[int, list[dict]] | None = None,
                     mode: Literal["auto", "full", "incremental"] = "auto",
                     reconcile_every: float | None = 3600.0, overlap_s: float = 10.0) -> SyncReport:
    """Pull the annotations of ``projects`` (default: every project of the dataset) into ``store``.

    Parameters
    ----------
    mode : {"auto", "full", "incremental"}, default="auto"
        ``auto``: incremental, with a full reconcile when one is due (see the
        module docstring); ``full``: reconcile now; ``incremental``: never
        reconcile (deletions of whole tasks wait for the next full pass).
    reconcile_every : float or None, default=3600
        Seconds between full reconciles in ``auto`` mode; ``None`` = only when
        a project lost tasks.
    overlap_s : float, default=10
        Seconds of changes before the cursor read again (covers transactions
        still open when the last sync read).
    exports : dict, optional
        Project id -> exported tasks made moments ago (a full pass reuses them).

    Safe to call concurrently and repeatedly; see the module docstring.
    """
    from labelloop.studio.projects import _parse_marker

    if mode not in ("auto", "full", "incremental"):
        raise ValueError(f"mode must be 'auto', 'full' or 'incremental', got {mode!r}")
    started = client.server_time()
    listing = {p["id"]: p for p in client.projects()}
    if projects is None:
        projects = []
        for p in sorted(listing.values(), key=lambda p: p["id"]):
            mark = _parse_marker(p.get("description"))
            if mark and mark.get("dataset") == dataset:
                projects.append(ProjectRef(p["id"], p["title"], dataset, mark["role"], mark.get("annotator")))
    state = sync_state(store, dataset)
    cursors: dict = dict(state.get("projects") or {}) if state.get("server") == client.url else {}
    full, reason = mode == "full", "asked" if mode == "full" else ""
    if not full and mode == "auto":
        last = float(state.get("reconciled_at") or 0.0)
        if not cursors:
            full, reason = True, "first sync of this server"
        elif reconcile_every is not None and time.time() - last >= reconcile_every:
            full, reason = True, f"reconcile due (every {reconcile_every:g} s)"
        else:
            for ref in projects:
                info, cur = listing.get(ref.id, {}), cursors.get(_project_key(listing.get(ref.id, {"id": ref.id})))
                if cur is not None and int(info.get("task_number") or 0) < int(cur.get("tasks") or 0):
                    full, reason = True, f"project {ref.id} lost tasks ({cur['tasks']} -> {info.get('task_number')})"
                    break
    users = {u["id"]: u["email"] for u in client.users()}
    since_next = (started - timedelta(seconds=overlap_s)).strftime(LS_TIME)
    report = SyncReport(mode="full" if full else "incremental", reason=reason)
    if full:
        _full_pass(client, store, dataset, classes, projects, users, run_id, exports, report)
    else:
        _incremental_pass(client, store, dataset, classes, projects, users, run_id, cursors, listing, report)
    new_cursors = dict(cursors)
    for ref in projects:
        key = _project_key(listing.get(ref.id, {"id": ref.id}))
        tasks = int(listing.get(ref.id, {}).get("task_number") or 0)
        if not full and key in cursors:  # a drop in tasks stays visible until a full pass has read it
            tasks = max(tasks, int(cursors[key].get("tasks") or 0))
        new_cursors[key] = {"since": since_next, "tasks": tasks}
    _save_state(store, dataset, {
        "server": client.url, "projects": new_cursors,
        "reconciled_at": time.time() if full else float(state.get("reconciled_at") or 0.0)})
    if report.quarantined:
        for q in report.quarantined:
            log.warning("quarantined: %s", AnnotationError(q.error))
    return report


def close_answered(store, dataset: str, answered_tasks: Iterable[int]) -> int:
    """Pushed task copies whose Label Studio task has a synced answer become ``done``; returns how many.

    The store's ``annotation_tasks`` mirror Label Studio: this is the step
    after a sync that keeps them so.
    """
    answered = set(answered_tasks)
    if not answered:
        return 0
    open_ = store.tasks(dataset, state="pushed")
    open_ = open_[open_["external_id"].notna()]
    done = open_[open_["external_id"].astype(int).isin(answered)]
    if len(done):
        store.update_tasks(done["id"].tolist(), state="done")
    return int(len(done))


def answers_since_last_turn(store, dataset: str) -> int:
    """Label Studio answers (``ls:`` rows, retractions excluded) stored since the last turn started."""
    labels = store.labels(dataset, kinds=["annotator", "expert"], decode=False)
    if labels.empty:
        return 0
    labels = labels[labels["dedupe_key"].fillna("").str.startswith("ls:") & (labels["label"] >= 0)]
    runs = store.runs(limit=50, kind="pipeline")
    runs = runs[runs["dataset"] == dataset] if "dataset" in runs.columns else runs
    if runs.empty:
        return int(len(labels))
    since = _utc(runs["started_at"].max())
    return int((labels["created_at"].map(_utc) >= since).sum())


def _utc(value: Any) -> datetime:
    stamp = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)  # SQLite drops the zone


def _write(store, rows: list[dict], bad: list[Quarantined], known: pd.DataFrame, ref: ProjectRef,
           run_id: str | None, report: SyncReport) -> None:
    rows = _fresh(rows, known)
    added = store.add_labels([_label_in(r, run_id) for r in rows]) if rows else 0
    report.answered_tasks.update(r["task_id"] for r in rows)
    report.projects += 1
    report.annotations += len(rows)
    report.added += added
    report.per_project[ref.id] = report.per_project.get(ref.id, 0) + added
    report.quarantined.extend(bad)


def _retract(store, gone: pd.DataFrame, run_id: str | None) -> int:
    from labelloop.store import LabelIn

    if gone.empty:
        return 0
    return store.add_labels([LabelIn(item_id=int(r.item_id), label=-1, kind=r.kind, source=r.source, run_id=run_id,
                                     dedupe_key=f"ls:{int(r.annotation_id)}:deleted") for r in gone.itertuples()])


def _full_pass(client, store, dataset, classes, projects, users, run_id, exports, report) -> None:
    known = _known_annotations(store, dataset)
    present: set[int] = set()
    for ref in projects:
        tasks = exports[ref.id] if exports and ref.id in exports else client.export(ref.id)
        report.tasks_read += len(tasks)
        rows, bad = annotation_rows(tasks, ref, classes, users)
        present.update(r["annotation_id"] for r in rows)
        present.update(q.annotation for q in bad)  # quarantined still exists: not deleted
        _write(store, rows, bad, known, ref, run_id, report)
    kinds = {KIND_OF_ROLE[r.role] for r in projects}
    gone = known[~known["deleted"].astype(bool) & ~known["annotation_id"].isin(present) & known["kind"].isin(kinds)]
    report.deleted = _retract(store, gone, run_id)
    report.added += report.deleted


def _incremental_pass(client, store, dataset, classes, projects, users, run_id, cursors, listing, report) -> None:
    for ref in projects:
        cur = cursors.get(_project_key(listing.get(ref.id, {"id": ref.id})))
        tasks = client.changed_tasks(ref.id, since=cur["since"] if cur else None)
        report.tasks_read += len(tasks)
        if not tasks:
            report.projects += 1
            continue
        rows, bad = annotation_rows(tasks, ref, classes, users)
        items = {int(t["data"][ITEM_KEY]) for t in tasks if ITEM_KEY in (t.get("data") or {})}
        known = _known_annotations(store, dataset, items)
        _write(store, rows, bad, known, ref, run_id, report)
        # deletions: a changed task whose known answer is gone. Only this project's answers are
        # candidates (same kind; in a person's crowd project, that person's); each is confirmed
        # with Label Studio before it is retracted, since the item also lives in other projects.
        present = {int(a["id"]) for t in tasks for a in t.get("annotations") or []}
        kind = KIND_OF_ROLE[ref.role]
        cand = known[~known["deleted"].astype(bool) & known["item_id"].isin(items) & (known["kind"] == kind)
                     & ~known["annotation_id"].isin(present)]
        if ref.role == "crowd" and ref.annotator:
            cand = cand[cand["source"] == ref.annotator]
        gone = cand[[client.annotation(int(a)) is None for a in cand["annotation_id"]]]
        n = _retract(store, gone, run_id)
        report.deleted += n
        report.added += n
