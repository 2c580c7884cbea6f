"""What the expert sees: the disputed label, where it came from, and what the committee suggests.

An item in the expert queue is either a label-error suspect (it has a label the
committee doubts) or an active-learning pick (no label yet). Each expert task
carries, next to the item's own data:

- ``labelloop_review``: ``{"current_label", "current_source", "suggestion",
  "confidence", "reason"}`` (machine-readable: ``current_label`` is the class
  name that wins resolution without the ``model`` kind, or ``null``;
  ``current_source`` is ``kind:source``, e.g. ``crowd:crowd:dawid_skene``);
- ``review``: the same as one sentence, shown above the choices by the expert
  project's label config (:func:`expert_label_config`).

The expert's answer is synced as an ``expert`` row (``studio/sync.py``), and
``expert`` comes before ``crowd``, ``weak``, ``pseudo`` and ``model`` in the
resolution precedence, so it replaces the disputed label.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from labelloop.studio.assign import ITEM_KEY
from labelloop.studio.preannotate import predictions_for
from labelloop.studio.projects import ensure_project, item_content, label_config, serve_files

__all__ = ["REVIEW_KEY", "expert_label_config", "review_fields", "review_sentence", "ensure_expert_config",
           "push_expert_queue"]

REVIEW_KEY = "labelloop_review"
_TEXT = "review"  # the data key and the <Text> tag showing the sentence


def expert_label_config(modality: str, classes: Sequence[str]) -> str:
    """The crowd label config with the review sentence shown above the item.

    The choices keep the tag names sync reads (``label`` -> the item's object
    tag), so an expert answer is read exactly like a crowd answer.

    >>> xml = expert_label_config("text", ["spam", "ham"])
    >>> '<Text name="review" value="$review"' in xml and '<Choices name="label" toName="text"' in xml
    True
    """
    base = label_config(modality, classes)
    panel = (f'  <View style="padding: 8px 12px; margin-bottom: 8px; background: #fff7e6; border-left: 4px solid #fa8c16">\n'
             f'    <Header value="Expert review" size="5"/>\n'
             f'    <Text name="{_TEXT}" value="${_TEXT}" granularity="word" selectionEnabled="false"/>\n'
             f'  </View>\n')
    return base.replace("<View>\n", "<View>\n" + panel, 1)


def review_sentence(review: Mapping[str, Any]) -> str:
    """One line for a person: current label and source, the committee's suggestion and confidence, why."""
    if review.get("current_label") is None:
        current = "No label yet"
    else:
        current = f"Current label: {review['current_label']} (source: {review['current_source']})"
    suggestion = review.get("suggestion")
    committee = (f"committee suggests {suggestion} (confidence {review['confidence']:.2f})" if suggestion is not None
                 else "no committee prediction yet")
    return f"{current}; {committee}. Why here: {review.get('reason') or 'expert queue'}."


def review_fields(store, dataset: str, classes: Sequence[str], precedence: Sequence[str], item_ids: Sequence[int],
                  probs: Mapping[int, np.ndarray], tasks: pd.DataFrame | None = None) -> dict[int, dict[str, Any]]:
    """Item id -> task data additions (``labelloop_review`` and ``review``) for the expert project.

    ``probs`` are the committee's latest probabilities per item; ``tasks`` the
    store's expert-queue rows (their ``details`` hold the route stage's reason).
    """
    wanted = [int(i) for i in item_ids]
    # The committee's own prediction is the suggestion, not a label under dispute.
    resolution = store.resolve(dataset, len(classes), [k for k in precedence if k != "model"])
    winner = {int(i): (int(lab), str(kind)) for i, lab, kind in
              zip(resolution.item_ids, resolution.labels, resolution.kind_of()) if int(i) in set(wanted)}
    sources = _winning_sources(store, dataset, winner)
    reasons: dict[int, str] = {}
    if tasks is not None and len(tasks):
        for item, details in zip(tasks["item_id"], tasks["details"]):
            if isinstance(details, dict) and details.get("reason"):
                reasons[int(item)] = str(details["reason"])
    out = {}
    for item in wanted:
        label, kind = winner.get(item, (None, None))
        p = probs.get(item)
        review = {
            "current_label": classes[label] if label is not None else None,
            "current_source": f"{kind}:{sources.get(item, '?')}" if label is not None else None,
            "suggestion": classes[int(np.argmax(p))] if p is not None else None,
            "confidence": round(float(np.max(p)), 4) if p is not None else None,
            "reason": reasons.get(item, ""),
        }
        out[item] = {REVIEW_KEY: review, _TEXT: review_sentence(review)}
    return out


def _winning_sources(store, dataset: str, winner: Mapping[int, tuple[int, str]]) -> dict[int, str]:
    """The source of each item's winning opinion: the newest standing opinion of the winning kind (resolution rule 3)."""
    if not winner:
        return {}
    rows = store.standing(dataset, kinds=sorted({kind for _, kind in winner.values()}), decode=False)
    newest = rows[rows["item_id"].isin(list(winner))].drop_duplicates(["item_id", "kind"], keep="last")
    return {int(i): str(source) for i, kind, source in zip(newest["item_id"], newest["kind"], newest["source"])
            if winner[int(i)][1] == kind}


def ensure_expert_config(client, project_id: int, modality: str, classes: Sequence[str]) -> bool:
    """Give the expert project the review panel (projects made before it existed too); True if changed."""
    wanted = expert_label_config(modality, classes)
    current = client.request("GET", f"/api/projects/{project_id}/").get("label_config")
    if current == wanted:
        return False
    client.update_project(project_id, label_config=wanted)
    return True



def push_expert_queue(config, store, client, probs: Mapping[int, np.ndarray], version: str) -> int:
    """Push the store's queued expert items (not yet in the expert project) with predictions and review fields.

    ``config`` is the pipeline config; ``probs``/``version`` the committee's
    newest probabilities. Queue rows become ``pushed``; returns the tasks made.
    """
    ds = config.dataset
    queued = store.tasks(ds.name, queue="expert", state="queued")
    if queued.empty:
        return 0
    ref = ensure_project(client, dataset=ds.name, role="expert", modality=ds.modality, classes=ds.classes,
                         instructions=config.crowd.expert_instructions, show_predictions=True)
    serve_files(client, [ref], ds.modality, config.data_path)
    ensure_expert_config(client, ref.id, ds.modality, ds.classes)  # the review panel
    present = {int(t["data"][ITEM_KEY]) for t in client.export(ref.id) if ITEM_KEY in t.get("data", {})}
    ids = [int(i) for i in queued["item_id"] if int(i) not in present]
    content = item_content(store, ds.name, ds.modality, config.data_path, ids)
    preds = predictions_for({i: probs[i] for i in ids if i in probs}, ds.classes, ds.modality, version) if version else {}
    # current label and its source, the committee's suggestion and confidence, why it is here
    review = review_fields(store, ds.name, ds.classes, config.resolution.precedence, ids, probs, queued)
    tasks = [{"data": {**content(i), **review[i], ITEM_KEY: i}, **({"predictions": [preds[i]]} if i in preds else {})}
             for i in ids]
    task_ids = client.import_tasks(ref.id, tasks) if tasks else []
    store.update_tasks(queued["id"].tolist(), state="pushed", project=str(ref.id))
    return len(task_ids)
