"""Pull annotations back into the store: idempotent, append-only, resumable.

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

Projects are pulled one by one and each project's rows are written before the
next is fetched, so a server that dies midway loses nothing already pulled;
the client retries with backoff and then raises
:class:`~labelloop.exceptions.LabelStudioError` naming the URL. Deletions are
only inferred after *every* project was read, so a partial pull never marks an
annotation deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import pandas as pd

from labelloop.exceptions import AnnotationError
from labelloop.studio.assign import ITEM_KEY, answer_of
from labelloop.studio.client import StudioClient
from labelloop.studio.projects import ProjectRef

__all__ = ["Quarantined", "SyncReport", "annotation_rows", "sync_annotations", "KIND_OF_ROLE"]

log = logging.getLogger("labelloop.studio.sync")

KIND_OF_ROLE = {"crowd": "annotator", "expert": "expert", "review": "expert"}


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
    """What one sync did."""

    projects: int = 0
    annotations: int = 0
    added: int = 0
    deleted: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    per_project: dict[int, int] = field(default_factory=dict)
    answered_tasks: set[int] = field(default_factory=set)  # Label Studio task ids with a synced answer


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


def _seen_annotations(store, dataset: str) -> pd.DataFrame:
    """Latest known state per Label Studio annotation id, from the store's own rows."""
    labels = store.labels(dataset, kinds=["annotator", "expert"])
    if labels is None or len(labels) == 0 or "dedupe_key" not in labels.columns:
        return pd.DataFrame(columns=["annotation_id", "item_id", "source", "kind", "deleted"])
    ls = labels[labels["dedupe_key"].fillna("").str.startswith("ls:")].copy()
    parts = ls["dedupe_key"].str.split(":", n=2, expand=True)
    ls["annotation_id"] = parts[1].astype(int)
    ls["deleted"] = parts[2] == "deleted"
    item_col = "item_id" if "item_id" in ls.columns else "item"
    ls = ls.rename(columns={item_col: "item_id"})
    # a deletion row wins over every earlier row of the same annotation
    return ls.groupby("annotation_id").agg(item_id=("item_id", "first"), source=("source", "first"),
                                           kind=("kind", "first"), deleted=("deleted", "max")).reset_index()


def sync_annotations(client: StudioClient, store, dataset: str, classes: Sequence[str],
                     projects: Sequence[ProjectRef] | None = None, *, run_id: str | None = None,
                     exports: dict[int, list[dict]] | None = None) -> SyncReport:
    """Pull every annotation of ``projects`` into ``store`` (see the module docstring).

    ``exports`` (project id -> exported tasks) reuses a pull made moments ago
    (the crowd flow reads the projects once for assignment and sync).
    """
    from labelloop.store import LabelIn

    from labelloop.studio.projects import find_projects

    # Deletions are inferred against everything pulled, so by default every
    # project of the dataset is pulled; a subset must not mark the rest deleted.
    if projects is None:
        projects = find_projects(client, dataset)
    report = SyncReport()
    users = {u["id"]: u["email"] for u in client.users()}
    present: set[int] = set()
    for ref in projects:
        tasks = exports[ref.id] if exports and ref.id in exports else client.export(ref.id)
        rows, bad = annotation_rows(tasks, ref, classes, users)
        added = store.add_labels([_label_in(r, run_id) for r in rows]) if rows else 0
        present.update(r["annotation_id"] for r in rows)
        report.answered_tasks.update(r["task_id"] for r in rows)
        present.update(q.annotation for q in bad)  # quarantined still exists: not deleted
        report.projects += 1
        report.annotations += len(rows)
        report.added += added
        report.per_project[ref.id] = added
        report.quarantined.extend(bad)
        for q in bad:
            log.warning("quarantined: %s", AnnotationError(q.error))
    seen = _seen_annotations(store, dataset)
    kinds = {KIND_OF_ROLE[r.role] for r in projects}
    gone = seen[~seen["deleted"] & ~seen["annotation_id"].isin(present) & seen["kind"].isin(kinds)]
    if len(gone):
        rows = [LabelIn(item_id=int(r.item_id), label=-1, kind=r.kind, source=r.source, run_id=run_id,
                        dedupe_key=f"ls:{int(r.annotation_id)}:deleted") for r in gone.itertuples()]
        report.deleted = store.add_labels(rows)
        report.added += report.deleted
    return report
