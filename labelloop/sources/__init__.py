"""Importers: image folders, CSV/JSONL text, NumPy arrays. Each records provenance."""

from __future__ import annotations

from labelloop.config import ArraySource, ImageFolderSource, LabelloopConfig, TextFileSource
from labelloop.config.sources import source_name
from labelloop.sources.arrays import decode_array, encode_array, import_arrays
from labelloop.sources.base import ImportReport
from labelloop.sources.images import import_image_folder, verify_image
from labelloop.sources.text import import_text_file
from labelloop.store import Store

__all__ = [
    "ImportReport",
    "import_source",
    "import_arrays",
    "import_image_folder",
    "import_text_file",
    "encode_array",
    "decode_array",
    "verify_image",
    "source_name",
]


def import_source(
    store: Store, config: LabelloopConfig, source: ArraySource | ImageFolderSource | TextFileSource, run_id: str | None = None
) -> ImportReport:
    """Import one configured source into the store."""
    dataset, classes = config.dataset.name, config.dataset.classes
    path, name = config.resolve_path(source.path), source_name(source)
    if isinstance(source, ArraySource):
        return import_arrays(store, dataset, config.dataset.modality, classes, path, name, run_id=run_id)
    if isinstance(source, ImageFolderSource):
        return import_image_folder(store, dataset, classes, path, name, config.data_path / "files", run_id=run_id)
    return import_text_file(
        store, dataset, classes, path, name, source.text_field, source.label_field, source.id_field, run_id=run_id
    )
