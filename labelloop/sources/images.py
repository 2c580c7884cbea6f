"""Import an image folder: class sub-folders are gold labels, a flat folder is unlabeled."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from labelloop.exceptions import ImportDataError
from labelloop.sources.base import ImportReport, store_imported
from labelloop.store import ItemIn, Store, content_hash

__all__ = ["IMAGE_SUFFIXES", "verify_image", "import_image_folder"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


def verify_image(path: Path) -> tuple[int, int]:
    """Open and fully decode an image; return its size. Raises ImportDataError naming the file."""
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:  # verify() leaves the file unusable; load() catches truncation
            image.load()
            return image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImportDataError(f"{path}: not a readable image ({exc})") from exc


def import_image_folder(
    store: Store,
    dataset: str,
    classes: list[str],
    folder: Path,
    name: str,
    files_dir: Path,
    run_id: str | None = None,
) -> ImportReport:
    """Copy verified images under ``files_dir`` by content hash and add them as items."""
    if not folder.is_dir():
        raise ImportDataError(f"{folder}: image folder not found")
    report = ImportReport(source=name)
    provenance = store.add_provenance("import", name, uri=str(folder.resolve()), run_id=run_id)
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    if subdirs:
        groups: list[tuple[int | None, list[Path]]] = []
        for sub in subdirs:
            if sub.name not in classes:
                report.warn(f"{sub}: folder name {sub.name!r} is not a class ({', '.join(classes)}); skipped")
                continue
            groups.append((classes.index(sub.name), sorted(sub.rglob("*"))))
    else:
        groups = [(None, sorted(folder.iterdir()))]
    files_dir.mkdir(parents=True, exist_ok=True)
    items: list[ItemIn] = []
    labels: list[int | None] = []
    for label, paths in groups:
        for path in paths:
            if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                width, height = verify_image(path)
            except ImportDataError as exc:
                report.warn(f"{exc}; skipped")
                continue
            data = path.read_bytes()
            digest = content_hash(data)
            stored = files_dir / digest[:2] / f"{digest}{path.suffix.lower()}"
            if not stored.exists():
                stored.parent.mkdir(parents=True, exist_ok=True)
                tmp = stored.with_suffix(stored.suffix + ".part")
                shutil.copyfile(path, tmp)
                tmp.replace(stored)  # atomic: a killed import never leaves half a file under the final name
            items.append(
                ItemIn(
                    modality="image",
                    path=str(stored),
                    uri=path.resolve().as_uri(),
                    content_hash=digest,
                    external_id=str(path.relative_to(folder)),
                    meta={"width": width, "height": height, "original": str(path)},
                )
            )
            labels.append(label)
    return store_imported(store, dataset, items, labels, report, provenance, run_id)
