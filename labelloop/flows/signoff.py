"""Expert sign-off: a flow pauses until someone approves in the Prefect UI (off by default).

A stage calls :func:`request_signoff` before it does something a person should
see first (e.g. accept pseudo-labels from a new teacher). With
``schedule.signoff: false`` (the default, for unattended runs) it returns at
once with ``approved=True``; with ``true`` the flow run pauses and the UI shows
a form (approve / comment) on the run's page; the run fails if nobody answers
within ``schedule.signoff_timeout_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from labelloop.config import LabelloopConfig
from labelloop.flows.artifacts import artifact_key, publish_markdown

__all__ = ["SignOff", "SignOffResult", "request_signoff"]


class SignOff(RunInput):
    """The form shown in the UI."""

    approve: bool = True
    comment: str = ""


@dataclass(frozen=True)
class SignOffResult:
    approved: bool
    comment: str
    asked: bool


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
    publish_markdown(key, f"# Sign-off needed: {topic}\n\n{details_markdown}\n\n"
                          "Resume the paused run on its page to approve (or untick *approve* to refuse).",
                     description=f"Waiting for an expert's sign-off: {topic}")
    answer = pause_flow_run(
        wait_for_input=SignOff.with_initial_data(description=f"Approve **{topic}**? See artifact `{key}`."),
        timeout=config.schedule.signoff_timeout_s,
        key=f"signoff-{topic}",
        poll_interval=poll_interval_s,
    )
    return SignOffResult(approved=bool(answer.approve), comment=answer.comment, asked=True)
