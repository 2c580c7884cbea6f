"""A crowd round in plain Python: projects per annotator, plan, push, read back.

The Prefect flow (``labelloop.flows.crowd``), the tests and the benchmark all
drive Label Studio through this one class.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

from labelloop.studio.assign import (Assignment, CrowdState, OverlapPolicy, plan_assignments, push_assignments,
                                     read_crowd_state)
from labelloop.studio.client import StudioClient
from labelloop.studio.projects import ProjectRef, ensure_project, find_projects

__all__ = ["CrowdTeam"]


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
