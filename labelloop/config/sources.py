"""The ``sources`` section: files imported into the store (one entry per source, told apart by ``kind``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field

from labelloop.config.base import Section

__all__ = ["ImageFolderSource", "TextFileSource", "ArraySource", "SourceConfig", "SOURCE_TAGS", "source_name"]


class ImageFolderSource(Section):
    """Images in a folder: class sub-folders are gold labels, a flat folder is unlabeled."""

    kind: Literal["image_folder"]
    name: str | None = Field(default=None, description="Provenance name; default: the path.")
    path: Path


class TextFileSource(Section):
    """CSV or JSONL text with an optional label column."""

    kind: Literal["text_file"]
    name: str | None = None
    path: Path
    text_field: str = "text"
    label_field: str | None = Field(default=None, description="Column with gold class names, if any.")
    id_field: str | None = Field(default=None, description="Column with a stable external id, if any.")


class ArraySource(Section):
    """A NumPy `.npz` file with `X` (items), optional `y` (class ids, -1 = unlabeled) and `ids`."""

    kind: Literal["arrays"]
    name: str | None = None
    path: Path


SourceConfig = Annotated[Union[ImageFolderSource, TextFileSource, ArraySource], Field(discriminator="kind")]

#: The ``kind`` values; pydantic puts them in error paths, where the loader leaves them out.
SOURCE_TAGS = ("image_folder", "text_file", "arrays")


def source_name(source: ImageFolderSource | TextFileSource | ArraySource) -> str:
    """The provenance name of a source: its ``name``, else its path."""
    return source.name or str(source.path)
