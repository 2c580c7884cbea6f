"""Label Studio projects for a dataset: label config from classes and modality, one per queue.

Projects labelloop owns carry a marker in their description,
``labelloop:{"dataset": ..., "role": ..., "annotator": ...}``, so they are found
again by dataset and role whatever the user renames them to. Roles:

- ``crowd``: one project per annotator (see :mod:`labelloop.studio.assign` for why);
- ``expert``: the expert queue, predictions shown;
- ``review``: label-error suspects, the current label shown as a prediction.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping
from xml.sax.saxutils import quoteattr

import numpy as np

from labelloop.exceptions import ConfigError
from labelloop.studio.client import StudioClient

__all__ = ["ProjectRef", "label_config", "task_data", "ensure_project", "find_projects", "CONTROL", "OBJECT"]

Role = Literal["crowd", "expert", "review"]
CONTROL = "label"  # the Choices tag's name: sync reads answers from it
OBJECT = {"image": "image", "text": "text", "tabular": "row"}
_MARK = "labelloop:"


@dataclass(frozen=True)
class ProjectRef:
    """A labelloop-owned Label Studio project."""

    id: int
    title: str
    dataset: str
    role: str
    annotator: str | None = None


def label_config(modality: str, classes: Iterable[str], *, title: str | None = None) -> str:
    """The labeling interface XML: one object tag for the item and single-choice classes.

    >>> print(label_config("text", ["spam", "ham"]))  # doctest: +NORMALIZE_WHITESPACE
    <View>
      <Text name="text" value="$text"/>
      <Choices name="label" toName="text" choice="single-radio" showInline="true" required="true">
        <Choice value="spam"/>
        <Choice value="ham"/>
      </Choices>
    </View>
    """
    classes = list(classes)
    if modality == "image":
        obj = '<Image name="image" value="$image" zoom="true" maxWidth="320px"/>'
    elif modality == "text":
        obj = '<Text name="text" value="$text"/>'
    elif modality == "tabular":
        obj = '<Table name="row" value="$row"/>'
    else:
        raise ConfigError(f"dataset.modality: must be image, text or tabular (got {modality!r})")
    if len(classes) < 2:
        raise ConfigError(f"dataset.classes: needs at least 2 classes (got {len(classes)})")
    header = f"  <Header value={quoteattr(title)}/>\n" if title else ""
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in classes)
    return (f"<View>\n{header}  {obj}\n"
            f'  <Choices name="{CONTROL}" toName="{OBJECT[modality]}" choice="single-radio" '
            f'showInline="true" required="true">\n{choices}\n  </Choices>\n</View>')


def _png_data_uri(pixels: np.ndarray, scale: int) -> str:
    from PIL import Image

    arr = np.asarray(pixels, dtype=float)
    if arr.ndim == 1:
        side = int(round(np.sqrt(arr.size)))
        arr = arr.reshape(side, side)
    span = float(arr.max() - arr.min()) or 1.0
    img = Image.fromarray(((arr - arr.min()) / span * 255).astype(np.uint8))
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def task_data(modality: str, item: Mapping[str, Any], *, image_scale: int = 16) -> dict[str, Any]:
    """Label Studio task data for one item.

    ``item`` holds ``text`` (text), ``image`` (a URL, or an array of pixels made
    into an inline PNG so nothing needs file serving), or ``row`` / ``values``
    (tabular: a mapping column -> value, or a sequence shown as ``f0, f1 ...``).
    Only the content goes in: no label, no gold flag, nothing that tells a
    gold task from another.
    """
    if modality == "text":
        return {"text": str(item["text"])}
    if modality == "image":
        image = item["image"]
        if isinstance(image, str):
            return {"image": image}
        return {"image": _png_data_uri(np.asarray(image), image_scale)}
    row = item.get("row", item.get("values"))
    if isinstance(row, Mapping):
        return {"row": {str(k): _plain(v) for k, v in row.items()}}
    return {"row": {f"f{i}": _plain(v) for i, v in enumerate(np.asarray(row).ravel())}}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _marker(dataset: str, role: str, annotator: str | None) -> str:
    return _MARK + json.dumps({"dataset": dataset, "role": role, "annotator": annotator}, sort_keys=True)


def _parse_marker(description: str | None) -> dict | None:
    if not description:
        return None
    for line in description.splitlines():
        if line.startswith(_MARK):
            try:
                return json.loads(line[len(_MARK):])
            except ValueError:
                return None
    return None


def find_projects(client: StudioClient, dataset: str, role: str | None = None) -> list[ProjectRef]:
    """labelloop's projects of one dataset (optionally one role), oldest first."""
    out = []
    for p in client.projects():
        mark = _parse_marker(p.get("description"))
        if mark and mark.get("dataset") == dataset and (role is None or mark.get("role") == role):
            out.append(ProjectRef(p["id"], p["title"], dataset, mark["role"], mark.get("annotator")))
    return sorted(out, key=lambda r: r.id)


def ensure_project(client: StudioClient, *, dataset: str, role: Role, modality: str, classes: list[str],
                   annotator: str | None = None, instructions: str = "", show_predictions: bool = True,
                   existing: list[ProjectRef] | None = None) -> ProjectRef:
    """Create the project if missing (found by marker), else bring its config up to date.

    Returns its :class:`ProjectRef`. ``show_predictions=False`` turns off
    showing pre-annotations to annotators (Label Studio's
    ``show_collab_predictions``); crowd pushes additionally leave predictions
    out of the task when they are hidden, since the API could read them.
    """
    projects = existing if existing is not None else find_projects(client, dataset, role)
    for ref in projects:
        if ref.role == role and ref.annotator == annotator:
            return ref
    title = f"{dataset} {role}" + (f" {annotator.split('@')[0]}" if annotator else "")
    title = title[:50] if len(title) >= 3 else title.ljust(3, "_")
    fields = dict(
        title=title,
        description=f"labelloop {role} queue for dataset {dataset}"
        + (f", annotator {annotator}" if annotator else "") + "\n" + _marker(dataset, role, annotator),
        label_config=label_config(modality, classes, title=None),
        expert_instruction=instructions,
        show_instruction=bool(instructions),
        show_collab_predictions=show_predictions,
        show_skip_button=False,
        maximum_annotations=1,
        sampling="Sequential sampling",
    )
    body = client.create_project(**fields)
    return ProjectRef(body["id"], body["title"], dataset, role, annotator)


def project_url(base_url: str, project_id: int) -> str:
    """Where a person opens the project's data manager."""
    return f"{base_url.rstrip('/')}/projects/{project_id}/data"
