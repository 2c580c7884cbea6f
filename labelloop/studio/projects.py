"""Label Studio projects for a dataset: label config from classes and modality, one per queue.

Projects labelloop owns carry a marker in their description,
``labelloop:{"dataset": ..., "role": ..., "annotator": ...}``, so they are found
again by dataset and role whatever the user renames them to. Roles:

- ``crowd``: one project per annotator (see :mod:`labelloop.studio.assign` for why);
- ``expert``: the expert queue, predictions shown;
- ``review``: label-error suspects, the current label shown as a prediction.

Item files are never inlined: an image item's task holds a URL,
``/data/local-files/?d=<path relative to the data dir>``, which Label Studio
serves (to logged-in members only) through the local-files import storage
that :func:`ensure_file_storage` attaches to every project. A task stays a few
hundred bytes whatever the file size.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from labelloop.exceptions import ConfigError, LabelStudioError
from labelloop.studio.client import StudioClient

__all__ = ["ProjectRef", "label_config", "task_data", "ensure_project", "find_projects", "ensure_file_storage",
           "local_file_url", "render_image_file", "item_content", "serve_files", "FILES_DIR", "CONTROL", "OBJECT"]

Role = Literal["crowd", "expert", "review"]
CONTROL = "label"  # the Choices tag's name: sync reads answers from it
OBJECT = {"image": "image", "text": "text", "tabular": "row"}
_MARK = "labelloop:"
FILES_DIR = "files"  # under the data dir: imported images and rendered arrays; the storage Label Studio serves
LOCAL_FILES_ROUTE = "/data/local-files/?d="


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
    return "data:image/png;base64," + base64.b64encode(_png_bytes(pixels, scale)).decode()


def _png_bytes(pixels: np.ndarray, scale: int) -> bytes:
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
    return buf.getvalue()


def local_file_url(path: str | Path, document_root: str | Path) -> str:
    """The URL Label Studio serves a file under its ``LOCAL_FILES_DOCUMENT_ROOT`` at.

    >>> local_file_url("/data/files/ab/ab12 x.png", "/data")
    '/data/local-files/?d=files/ab/ab12%20x.png'
    """
    root = Path(document_root).resolve()
    full = Path(path).resolve()
    try:
        rel = full.relative_to(root)
    except ValueError:
        raise LabelStudioError(
            f"file {full} is outside the data dir {root} that Label Studio serves; import the images with "
            f"labelloop (copied under {root / FILES_DIR}) or give the item a http(s) uri") from None
    return LOCAL_FILES_ROUTE + quote(rel.as_posix())


def render_image_file(pixels: np.ndarray, out: Path, *, scale: int = 16) -> Path:
    """Write an array of pixels as a PNG once (kept: the next push reuses it)."""
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        tmp.write_bytes(_png_bytes(np.asarray(pixels), scale))
        tmp.replace(out)  # atomic: a reader never sees half a file
    return out


def ensure_file_storage(client: StudioClient, ref: ProjectRef, files_dir: str | Path) -> int:
    """Attach a local-files import storage on ``files_dir`` to a project (once); returns its id.

    Label Studio serves ``/data/local-files/?d=...`` only for files under a
    storage of a project the logged-in user may open, so without it the
    labeling UI would show a broken image. Nothing is scanned or imported.
    """
    files_dir = Path(files_dir).resolve()
    for storage in client.local_storages(ref.id):
        if Path(storage.get("path") or "/nonexistent") == files_dir:
            return int(storage["id"])
    files_dir.mkdir(parents=True, exist_ok=True)
    return int(client.create_local_storage(ref.id, str(files_dir))["id"])


def task_data(modality: str, item: Mapping[str, Any], *, image_scale: int = 16) -> dict[str, Any]:
    """Label Studio task data for one item.

    ``item`` holds ``text`` (text), ``image`` (a URL — e.g. from
    :func:`local_file_url` — or an array of pixels made into an inline PNG, for
    tiny images where no data dir is at hand), or ``row`` / ``values``
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


def item_content(store, dataset: str, modality: str, data_dir: str | Path,
                 ids: Sequence[int]) -> Callable[[int], dict[str, Any]]:
    """Item id -> Label Studio task data, from what the store holds (text, array payload, file, URI).

    Image files are never inlined: a file under the data dir goes as a
    local-files URL Label Studio serves; an image held as an array is rendered
    once to ``<data_dir>/files/rendered/`` and goes the same way; a remote
    image goes as its URI. Rows are read once for all ``ids``.
    """
    if not ids:
        return lambda item: {}
    root = Path(data_dir).resolve()
    items = store.items(dataset, ids=list(ids)).set_index("id")
    payloads = dict(zip(ids, store.payloads(list(ids)))) if modality != "text" else {}

    def given(row, column: str) -> str | None:  # pandas gives NaN for a missing value in a mixed column
        value = row.get(column)
        return value if isinstance(value, str) and value else None

    def content(item: int) -> dict[str, Any]:
        row = items.loc[item]
        if modality == "text":
            return task_data("text", {"text": row["text"]})
        blob = payloads.get(item)
        if modality == "image" and given(row, "path"):
            return {"image": local_file_url(row["path"], root)}
        if blob is not None:
            from labelloop.sources.arrays import decode_array

            values = decode_array(blob)
            if modality == "image":
                png = render_image_file(values, root / FILES_DIR / "rendered" / f"{row['content_hash']}.png")
                return {"image": local_file_url(png, root)}
            return task_data(modality, {"row": values})
        if modality == "image" and given(row, "uri"):
            return {"image": row["uri"]}
        return task_data(modality, {"row": row.get("meta") or {}} if modality == "tabular" else {"image": row["uri"]})
    return content


def serve_files(client: StudioClient, refs: Iterable["ProjectRef"], modality: str, data_dir: str | Path) -> None:
    """Image projects get the local-files storage that lets Label Studio serve the data dir's files."""
    if modality == "image":
        for ref in refs:
            ensure_file_storage(client, ref, Path(data_dir).resolve() / FILES_DIR)


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
