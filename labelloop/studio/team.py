"""A crowd round in plain Python: projects per annotator, plan, push, read back.

The Prefect flow (``labelloop.flows.crowd``), the tests and the benchmark all
drive Label Studio through :class:`CrowdTeam`; :func:`push_crowd_queue` is the
crowd stage's push (the store's queue in, task copies recorded back), and
:func:`answer_log` what its report reads.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from labelloop.store import TaskIn
from labelloop.studio.assign import (Assignment, CrowdState, OverlapPolicy, plan_assignments, push_assignments,
                                     read_crowd_state)
from labelloop.studio.bots import bot_email
from labelloop.studio.client import StudioClient
from labelloop.studio.preannotate import predictions_for
from labelloop.studio.projects import ProjectRef, ensure_project, find_projects, item_content, serve_files

__all__ = ["CrowdTeam", "push_crowd_queue", "answer_log"]


class CrowdTeam:
    """The crowd of one dataset in one Label Studio server.

    Parameters
    ----------
    client : StudioClient
        Admin client.
    dataset, modality, classes
        From the config's ``dataset`` section.
    annotators : sequence of str
        Emails; each gets their own crowd project.
    instructions : str, default=""
    show_predictions : bool, default=False
        Whether crowd tasks carry pre-annotations (off: no anchoring).
    """

    def __init__(self, client: StudioClient, dataset: str, modality: str, classes: Sequence[str],
                 annotators: Sequence[str], *, instructions: str = "", show_predictions: bool = False):
        self.client = client
        self.dataset = dataset
        self.modality = modality
        self.classes = list(classes)
        self.annotators = list(annotators)
        self.instructions = instructions
        self.show_predictions = show_predictions
        self._projects: dict[str, ProjectRef] | None = None

    def projects(self) -> dict[str, ProjectRef]:
        """Annotator -> their crowd project (created when missing)."""
        if self._projects is None:
            existing = find_projects(self.client, self.dataset, "crowd")
            self._projects = {
                a: ensure_project(self.client, dataset=self.dataset, role="crowd", modality=self.modality,
                                  classes=self.classes, annotator=a, instructions=self.instructions,
                                  show_predictions=self.show_predictions, existing=existing)
                for a in self.annotators}
        return self._projects

    def state(self) -> CrowdState:
        """What every crowd project holds now (one export per project)."""
        return read_crowd_state(self.client, self.projects().values(), self.classes)

    def push(self, queue: Iterable[int], content: Callable[[int], dict], policy: OverlapPolicy, *,
             gold: Mapping[int, int] | None = None, gold_rate: float = 0.0,
             model_labels: Mapping[int, int] | None = None, predictions: Mapping[int, dict] | None = None,
             state: CrowdState | None = None, seed: int = 0) -> tuple[list[Assignment], dict]:
        """Plan and push one round; returns the assignments and annotator -> [(item, task id)]."""
        state = state if state is not None else self.state()
        plan = plan_assignments(queue, self.annotators, state, policy, gold=gold, gold_rate=gold_rate,
                                model_labels=model_labels, seed=seed)
        pushed = push_assignments(self.client, self.projects(), plan, content,
                                  predictions=predictions if self.show_predictions else None, state=state)
        return plan, pushed


def _queued(store, dataset: str) -> pd.DataFrame:
    queued = store.tasks(dataset, queue="crowd", state="queued")
    return queued[queued["annotator"].isna()]


def push_crowd_queue(config, store, client: StudioClient, run_id: str, gold: Mapping[int, int],
                     probs: Mapping[int, np.ndarray], version: str) -> dict[str, int]:
    """Plan the round for the store's crowd queue (gold mixed in), push it and record every task copy.

    ``config`` is the pipeline config (its ``dataset`` and ``crowd`` sections);
    ``gold`` item -> gold class; ``probs``/``version`` the committee's newest
    probabilities (pre-annotations and ``crowd.model_agreement``). Queue rows
    taken become ``pushed``; the round's seed comes from ``run_id``, so a
    re-run of the same turn plans the same round.
    """
    c, ds = config.crowd, config.dataset
    annotators = list(c.annotators) + [bot_email(b.name) for b in c.bots]
    team = CrowdTeam(client, ds.name, ds.modality, ds.classes, annotators, instructions=c.instructions,
                     show_predictions=not c.hide_predictions_from_crowd)
    serve_files(client, team.projects().values(), ds.modality, config.data_path)
    state = team.state()
    queued = _queued(store, ds.name)
    if queued.empty and c.seed_queue and not store.tasks(ds.name, queue="crowd").shape[0]:
        labeled = set(store.standing(ds.name, kinds=["gold", "expert", "crowd"], decode=False)["item_id"])
        free = [int(i) for i in store.items(ds.name, columns=["id"])["id"] if int(i) not in labeled]
        store.add_tasks([TaskIn(item_id=i, queue="crowd", run_id=run_id) for i in free[: c.seed_queue]])
        queued = _queued(store, ds.name)
    queued = queued.head(c.batch_size)
    model_labels = {i: int(np.argmax(p)) for i, p in probs.items()}
    queue = [int(i) for i in queued["item_id"]] + list(state.answers)
    wanted = set(queue) | set(gold)
    preds = predictions_for({i: probs[i] for i in wanted if i in probs}, ds.classes, ds.modality, version) \
        if version and not c.hide_predictions_from_crowd else None
    plan, pushed = team.push(queue, item_content(store, ds.name, ds.modality, config.data_path, sorted(wanted)),
                             OverlapPolicy(c.overlap, c.initial_overlap, c.model_agreement), gold=gold,
                             gold_rate=c.gold_rate, model_labels=model_labels, predictions=preds, state=state,
                             seed=int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16))
    _record(store, team.projects(), plan, pushed, run_id)
    if len(queued):
        store.update_tasks(queued["id"].tolist(), state="pushed")
    return {"pushed": sum(len(v) for v in pushed.values()), "gold": sum(a.gold for a in plan),
            "queued_taken": int(len(queued))}


def _record(store, projects: Mapping[str, ProjectRef], plan: list[Assignment], pushed: Mapping[str, list],
            run_id: str) -> None:
    """One ``annotation_tasks`` row per pushed task copy (annotator, project, Label Studio task id, gold or not)."""
    is_gold = {(a.annotator, a.item): a.gold for a in plan}
    store.add_tasks([TaskIn(item_id=item, queue="crowd", project=str(projects[a].id), annotator=a,
                            external_id=str(tid), state="pushed", is_gold=is_gold.get((a, item), False), run_id=run_id)
                     for a, pairs in pushed.items() for item, tid in pairs])


def answer_log(client: StudioClient, dataset: str) -> pd.DataFrame:
    """Every answer in the dataset's crowd projects: ``source`` (email), ``created_at``, ``lead_time``."""
    users = {u["id"]: u["email"] for u in client.users()}
    tasks = [t for r in find_projects(client, dataset, "crowd") for t in client.export(r.id)]
    return pd.DataFrame([{"source": users.get(a["completed_by"], str(a["completed_by"])),
                          "created_at": a["created_at"], "lead_time": a.get("lead_time")}
                         for t in tasks for a in t.get("annotations") or []])
