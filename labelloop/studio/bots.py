"""Simulated annotators: real Label Studio users that answer from the hidden truth.

Each bot is an account made through the organisation's invite link (the API's
``users.create`` makes accounts that cannot log in), logs in, creates its own
personal access token and answers the tasks in *its own* crowd project through
the API, so its annotations carry its own user id exactly as a person's would.
Answers are drawn from the truth with the bot's accuracy; a wrong answer goes to
the bot's confusable class for that true class with ``confusion_share``, else
to a uniformly chosen other class. A spammer is ``accuracy = 1 / n_classes``.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from labelloop.exceptions import LabelStudioError
from labelloop.studio.assign import ITEM_KEY
from labelloop.studio.client import StudioClient, create_personal_token, signup_with_invite
from labelloop.studio.projects import CONTROL, OBJECT, find_projects

__all__ = ["Bot", "ensure_bot_accounts", "bot_email", "answer_open_tasks"]

BOT_DOMAIN = "bots.labelloop.example.org"


def bot_email(name: str) -> str:
    return f"{name}@{BOT_DOMAIN}"


@dataclass
class Bot:
    """One simulated annotator.

    Parameters
    ----------
    name : str
        Account is ``<name>@bots.labelloop.example.org``.
    accuracy : float, default=0.9
        Probability of answering the true class.
    confusions : mapping true class id -> class id, optional
        Where most errors on a true class go.
    confusion_share : float, default=0.8
        Share of errors that go to the confusable class (when one is given).
    seed : int, default=0
    """

    name: str
    accuracy: float = 0.9
    confusions: Mapping[int, int] = field(default_factory=dict)
    confusion_share: float = 0.8
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.accuracy <= 1.0:
            raise ValueError(f"bot {self.name}: accuracy must be in [0, 1], got {self.accuracy}")
        self._rng = np.random.default_rng([self.seed, sum(map(ord, self.name))])

    @property
    def email(self) -> str:
        return bot_email(self.name)

    def draw(self, truth: int, n_classes: int) -> int:
        """One answer for an item whose true class is ``truth``."""
        rng = self._rng
        if rng.random() < self.accuracy:
            return int(truth)
        target = self.confusions.get(int(truth))
        if target is not None and target != truth and rng.random() < self.confusion_share:
            return int(target)
        others = [c for c in range(n_classes) if c != truth]
        return int(rng.choice(others))

    def answer_project(self, client: StudioClient, project_id: int, truth: Mapping[int, int],
                       classes: Sequence[str], modality: str, *, limit: int | None = None) -> int:
        """Answer the open tasks of one project with this bot's own ``client``; returns how many."""
        done = 0
        me = client.whoami()["id"]
        for task in client.tasks(project_id):
            if limit is not None and done >= limit:
                break
            if any(a.get("completed_by") == me for a in task.get("annotations") or []):
                continue
            item = (task.get("data") or {}).get(ITEM_KEY)
            if item is None or int(item) not in truth:
                continue
            choice = classes[self.draw(truth[int(item)], len(classes))]
            client.create_annotation(task["id"], [{"from_name": CONTROL, "to_name": OBJECT[modality],
                                                   "type": "choices", "value": {"choices": [choice]}}],
                                     lead_time=round(float(self._rng.uniform(2, 8)), 2))
            done += 1
        return done


def ensure_bot_accounts(admin: StudioClient, names: Sequence[str], secrets_dir: str | Path) -> dict[str, str]:
    """Make sure each bot has a Label Studio account and a token; bot name -> token.

    Passwords and tokens are kept in ``<secrets_dir>/bots.json`` (mode 0600),
    never printed.
    """
    path = Path(secrets_dir) / "bots.json"
    saved: dict = json.loads(path.read_text()) if path.is_file() else {}
    existing = {u["email"] for u in admin.users()}
    invite = None
    changed = False
    for name in names:
        email = bot_email(name)
        entry = saved.get(name)
        if entry and entry.get("token") and email in existing:
            continue
        if email in existing and not entry:
            raise LabelStudioError(f"Label Studio at {admin.url}: bot account {email} exists but its password is "
                                   f"not in {path}; delete the account or restore the file")
        entry = entry or {"password": secrets.token_urlsafe(15)}
        if email not in existing:
            invite = invite or admin.invite_url()
            signup_with_invite(admin.url, invite, email, entry["password"])
        entry["token"] = create_personal_token(admin.url, email, entry["password"])
        saved[name] = entry
        changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(saved, fh)
    return {name: saved[name]["token"] for name in names}


def answer_open_tasks(admin: StudioClient, bots: Sequence[Bot], truth: Mapping[int, int], dataset: str,
                      classes: Sequence[str], modality: str, secrets_dir: str | Path) -> int:
    """Each bot answers the open tasks of its own crowd project of ``dataset``, as itself; returns the answers."""
    tokens = ensure_bot_accounts(admin, [b.name for b in bots], secrets_dir)
    projects = {r.annotator: r for r in find_projects(admin, dataset, "crowd")}
    answered = 0
    for bot in bots:
        ref = projects.get(bot.email)
        if ref is not None:
            with StudioClient(admin.url, tokens[bot.name]) as own:
                answered += bot.answer_project(own, ref.id, truth, classes, modality)
    return answered
