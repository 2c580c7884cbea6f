"""Expert sign-off: a turn pauses until someone approves in the Prefect UI (off by default).

A stage calls :func:`request_signoff` before it does something a person should
see first. The route stage asks through :func:`approve_route_writes` before its
pseudo-labels and queues are written: with ``schedule.signoff: false`` (the
default, for unattended runs) it returns at once with ``approved=True``; with
``true`` it publishes what would change (artifact ``<dataset>-signoff-<topic>``),
pauses the flow run (Prefect's ``pause_flow_run`` with ``wait_for_input``: the
run's page shows **Resume** with the approve/comment form; the API equivalent is
``prefect.flow_runs.resume_flow_run(id, run_input={"approve": true})``) and:

- approved -> the writes happen;
- refused (``approve`` unticked) or nobody answered within
  ``schedule.signoff_timeout_s`` -> nothing is written and the turn ends (the
  store run is closed as ``not-approved``; the next turn asks again).

Pausing keeps the flow's process waiting (not suspended), so a paused turn holds
its worker slot; the deployments' concurrency limit makes the next turn wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from labelloop.config import LabelloopConfig
from labelloop.flows.artifacts import artifact_key, markdown_table, publish_markdown

__all__ = ["SignOff", "SignOffResult", "request_signoff", "approve_route_writes", "route_changes"]


class SignOff(RunInput):
    """The form shown in the UI."""

    approve: bool = True
    comment: str = ""


@dataclass(frozen=True)
class SignOffResult:
    approved: bool
    comment: str
    asked: bool
    timed_out: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"approved": self.approved, "comment": self.comment, "asked": self.asked, "timed_out": self.timed_out}


def request_signoff(
    config: LabelloopConfig, topic: str, details_markdown: str, poll_interval_s: int = 10
) -> SignOffResult:
    """Ask for an expert's approval of ``topic`` (details published as an artifact first).

    Parameters
    ----------
    config : LabelloopConfig
        ``schedule.signoff`` turns the pause on; ``schedule.signoff_timeout_s`` bounds it.
    topic : str
        What is to be approved, e.g. ``"pseudo-labels"``; part of the artifact key.
    details_markdown : str
        What the expert needs to decide (counts, examples, links).
    poll_interval_s : int, default=10
        How often the paused run checks for an answer.
    """
    if not config.schedule.signoff:
        return SignOffResult(approved=True, comment="sign-off disabled (schedule.signoff: false)", asked=False)
    key = artifact_key(config.dataset.name, f"signoff-{topic}")
    timeout = config.schedule.signoff_timeout_s
    publish_markdown(key, f"# Sign-off needed: {topic}\n\n{details_markdown}\n\n"
                          "Resume the paused run on its page to approve (untick *approve* to refuse). "
                          f"Without an answer within {timeout} s the turn ends without writing.",
                     description=f"Waiting for an expert's sign-off: {topic}")
    try:
        answer = pause_flow_run(
            wait_for_input=SignOff.with_initial_data(description=f"Approve **{topic}**? See artifact `{key}`."),
            timeout=timeout,
            key=f"signoff-{topic}",
            poll_interval=poll_interval_s,
        )
    except FlowPauseTimeout:
        return SignOffResult(approved=False, comment=f"no answer within {timeout} s", asked=True, timed_out=True)
    return SignOffResult(approved=bool(answer.approve), comment=answer.comment, asked=True)


def route_changes(store, config: LabelloopConfig, fitted: dict[str, Any], routing) -> tuple[dict[str, int], list[dict]]:
    """What the route stage's writes would change: counts, and examples of new or changed pseudo-labels."""
    from labelloop.tasks.route import chosen_pseudo, pseudo_changes, standing_pseudo

    classes = config.dataset.classes
    standing = standing_pseudo(store, config.dataset.name)
    chosen = chosen_pseudo(fitted, routing)
    new_or_changed, kept, retract = pseudo_changes(standing, chosen)
    changed = [(item, chosen[item][0], chosen[item][1]) for item in new_or_changed]
    counts = {
        "pseudo_new": sum(1 for item in new_or_changed if item not in standing),
        "pseudo_changed": sum(1 for item in new_or_changed if item in standing),
        "pseudo_kept": kept,
        "pseudo_retracted": len(retract),
        "expert_queue": int((routing.queue == "expert").sum()),
        "crowd_queue": int((routing.queue == "crowd").sum()),
    }
    changed.sort(key=lambda row: -row[2])
    examples = [{"item": item, "now": classes[standing[item]] if item in standing else "-", "would be": classes[lab],
                 "confidence": round(conf, 3)} for item, lab, conf in changed[:20]]
    return counts, examples


def approve_route_writes(config: LabelloopConfig, store, fitted: dict[str, Any], routing,
                         poll_interval_s: int = 10) -> SignOffResult:
    """The route stage's question: may this turn's pseudo-labels and queues be written?"""
    if not config.schedule.signoff:
        return request_signoff(config, "route", "")
    counts, examples = route_changes(store, config, fitted, routing)
    pseudo_share = np.mean([e["confidence"] for e in examples]) if examples else float("nan")
    details = (
        "## What this turn would write\n\n"
        + markdown_table([{"change": k.replace("_", " "), "items": v} for k, v in counts.items()])
        + f"\n### New or changed pseudo-labels (highest confidence first; mean {pseudo_share:.3f})\n\n"
        + markdown_table(examples)
    )
    return request_signoff(config, "route", details, poll_interval_s=poll_interval_s)
