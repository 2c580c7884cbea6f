"""Per-annotator assignment with blind overlap k, adaptive overlap and seeded gold items.

The open-source Label Studio cannot assign a task to a person (the Enterprise
endpoints answer 404) and its API lets anyone read anything. labelloop
therefore gives every crowd annotator **their own project**: a task copy of an
item lives only in the projects of the people it was assigned to, so what
labelloop serves a person holds no one else's answer, and the number of copies
*is* the overlap. Gold items are pushed the same way, as ordinary tasks mixed
into the batch in random order. How blind this is (and is not) is written up
in ``docs/crowd.md``.

Planning is pure (:func:`plan_assignments` works on plain dicts); pushing
(:func:`push_assignments`) and reading the state back (:func:`read_crowd_state`)
talk to the server. Label Studio itself is the record of what was pushed: each
task carries ``labelloop_item``, so a push killed midway is completed by the
next one without duplicates.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from labelloop.studio.client import StudioClient
from labelloop.studio.projects import CONTROL, ProjectRef

__all__ = ["Assignment", "OverlapPolicy", "CrowdState", "plan_assignments", "push_assignments",
           "read_crowd_state", "answer_of", "ITEM_KEY"]

ITEM_KEY = "labelloop_item"


@dataclass(frozen=True)
class Assignment:
    """One task copy: ``item`` goes to ``annotator``; ``gold`` is known only to labelloop."""

    annotator: str
    item: int
    gold: bool = False


class OverlapPolicy:
    """When an item needs one more annotator.

    Parameters
    ----------
    overlap : int, default=3
        The most annotators an item ever gets (k).
    initial_overlap : int, default=2
        Annotators asked at first.
    model_agreement : bool, default=False
        When true, one annotator who agrees with the committee's prediction
        settles an item (so ``initial_overlap`` may be 1).

    An item is settled when at least two annotators answered and all agree,
    or (``model_agreement``) when its only answer equals the model's label.
    An unsettled item with every assigned answer in gets one more annotator,
    until ``overlap``.

    >>> p = OverlapPolicy(overlap=3, initial_overlap=2)
    >>> p.needs_more([4, 4]), p.needs_more([4, 7]), p.needs_more([4, 7, 4])
    (False, True, False)
    """

    def __init__(self, overlap: int = 3, initial_overlap: int = 2, model_agreement: bool = False):
        if overlap < 1:
            raise ValueError(f"overlap must be >= 1, got {overlap}")
        if not 1 <= initial_overlap <= overlap:
            raise ValueError(f"initial_overlap must be in [1, overlap={overlap}], got {initial_overlap}")
        self.overlap = overlap
        self.initial_overlap = initial_overlap
        self.model_agreement = model_agreement

    def settled(self, answers: Sequence[int], model_label: int | None = None) -> bool:
        if len(answers) >= 2 and len(set(answers)) == 1:
            return True
        return (self.model_agreement and len(answers) == 1 and model_label is not None
                and answers[0] == model_label)

    def needs_more(self, answers: Sequence[int], model_label: int | None = None) -> bool:
        return len(answers) < self.overlap and not self.settled(answers, model_label)


@dataclass
class CrowdState:
    """What the crowd projects hold: per item, per annotator, the answer (``None`` = not yet)."""

    answers: dict[int, dict[str, int | None]] = field(default_factory=lambda: defaultdict(dict))
    tasks: list[dict] = field(default_factory=list)  # exported tasks, each with "_project" and "_annotator"

    def load(self) -> Counter:
        """Open (unanswered) tasks per annotator."""
        return Counter(a for per in self.answers.values() for a, v in per.items() if v is None)


def answer_of(annotation: Mapping[str, Any], classes: Sequence[str]) -> int | str | None:
    """The class id an annotation chose; the raw value when it is not a class; ``None`` if empty."""
    for region in annotation.get("result") or []:
        if region.get("from_name") != CONTROL:
            continue
        chosen = (region.get("value") or {}).get("choices") or []
        if not chosen:
            return None
        try:
            return list(classes).index(chosen[0])
        except ValueError:
            return str(chosen[0])
    return None


def read_crowd_state(client: StudioClient, projects: Iterable[ProjectRef], classes: Sequence[str]) -> CrowdState:
    """Export every crowd project once; the latest non-cancelled answer per task counts."""
    state = CrowdState()
    for ref in projects:
        for task in client.export(ref.id):
            item = task.get("data", {}).get(ITEM_KEY)
            if item is None:
                continue  # not a labelloop task (someone imported by hand)
            task["_project"], task["_annotator"] = ref.id, ref.annotator
            state.tasks.append(task)
            done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
            value = None
            if done:
                latest = max(done, key=lambda a: (a.get("updated_at") or "", a["id"]))
                answer = answer_of(latest, classes)
                value = answer if isinstance(answer, int) else None
            state.answers[int(item)][ref.annotator] = value
    return state


def plan_assignments(queue: Iterable[int], annotators: Sequence[str], state: CrowdState | Mapping,
                     policy: OverlapPolicy, *, gold: Mapping[int, int] | None = None, gold_rate: float = 0.0,
                     model_labels: Mapping[int, int] | None = None, seed: int = 0) -> list[Assignment]:
    """The task copies to push now.

    Parameters
    ----------
    queue : iterable of int
        Items routed to the crowd (already-assigned ones are looked up in ``state``).
    annotators : sequence of str
        The crowd (emails); each item goes to distinct people, least loaded first.
    state : CrowdState or mapping item -> {annotator: answer or None}
    policy : OverlapPolicy
    gold : mapping item -> class, optional
        Items with known labels, seeded into each person's stream.
    gold_rate : float, default=0
        Share of each person's new tasks that are gold (0 <= rate < 1).
    model_labels : mapping item -> class, optional
        Committee predictions, for ``policy.model_agreement``.
    seed : int, default=0

    Returns
    -------
    list of Assignment
        In random order per annotator, gold mixed in.
    """
    if not 0.0 <= gold_rate < 1.0:
        raise ValueError(f"gold_rate must be in [0, 1), got {gold_rate}")
    rng = np.random.default_rng(seed)
    answers = state.answers if isinstance(state, CrowdState) else state
    gold = dict(gold or {})
    model_labels = model_labels or {}
    annotators = list(annotators)
    load = Counter({a: 0 for a in annotators})
    for per in answers.values():
        for a, v in per.items():
            if v is None and a in load:
                load[a] += 1
    out: list[Assignment] = []

    def pick(exclude: set[str], n: int) -> list[str]:
        free = [a for a in annotators if a not in exclude]
        rng.shuffle(free)  # random tie-break, then least loaded
        free.sort(key=lambda a: load[a])
        chosen = free[:n]
        for a in chosen:
            load[a] += 1
        return chosen

    for item in dict.fromkeys(int(i) for i in queue):
        if item in gold:
            continue  # gold items only ever go out as seeded gold
        per = answers.get(item, {})
        if not per:
            want = policy.initial_overlap
        elif any(v is None for v in per.values()):
            continue  # still waiting for someone
        elif policy.needs_more([v for v in per.values()], model_labels.get(item)):
            want = 1
        else:
            continue
        for a in pick(set(per), want):
            out.append(Assignment(a, item))

    if gold and gold_rate > 0:
        new = Counter(a.annotator for a in out)
        had = defaultdict(set)
        for item, per in answers.items():
            for a in per:
                had[a].add(item)
        gold_items = np.array(sorted(gold))
        for a in annotators:
            expected = new[a] * gold_rate / (1.0 - gold_rate)
            n = int(math.floor(expected) + (rng.random() < expected - math.floor(expected)))
            fresh = [g for g in gold_items if g not in had[a]]
            for g in rng.permutation(fresh)[:n]:
                out.append(Assignment(a, int(g), gold=True))

    order = rng.permutation(len(out))  # gold tasks land anywhere in the stream
    return [out[i] for i in order]


def push_assignments(client: StudioClient, projects: Mapping[str, ProjectRef], assignments: Iterable[Assignment],
                     content: Callable[[int], dict], *, predictions: Mapping[int, dict] | None = None,
                     state: CrowdState | None = None, chunk: int = 500) -> dict[str, list[tuple[int, int]]]:
    """Import the assigned task copies into each annotator's project.

    ``content(item)`` gives the task data (see :func:`~labelloop.studio.projects.task_data`);
    ``predictions`` (item -> Label Studio prediction) is attached when given,
    which the crowd flow does only when pre-annotations are shown to the crowd.
    Copies already in a project (per ``state``) are skipped, so a repeated or
    resumed push adds nothing twice. Returns annotator -> [(item, task id)].
    """
    present = defaultdict(set)
    if state is not None:
        for task in state.tasks:
            present[task["_annotator"]].add(int(task["data"][ITEM_KEY]))
    per: dict[str, list[int]] = defaultdict(list)
    for a in assignments:
        if a.item not in present[a.annotator]:
            per[a.annotator].append(a.item)
            present[a.annotator].add(a.item)
    pushed: dict[str, list[tuple[int, int]]] = {}
    for annotator, items in per.items():
        ref = projects[annotator]
        pushed[annotator] = []
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            tasks = []
            for item in part:
                task: dict[str, Any] = {"data": {**content(item), ITEM_KEY: item}}
                if predictions and item in predictions:
                    task["predictions"] = [predictions[item]]
                tasks.append(task)
            ids = client.import_tasks(ref.id, tasks)
            pushed[annotator].extend(zip(part, ids))
    return pushed
