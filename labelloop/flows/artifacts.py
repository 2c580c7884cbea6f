"""Artifacts a lead reads in the Prefect UI, with stable keys so the UI keeps their history.

Keys must be lowercase letters, digits and dashes; :func:`artifact_key` builds them
from a dataset and a topic so every dataset has its own history.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

__all__ = ["artifact_key", "publish_markdown", "publish_table", "publish_image", "markdown_table"]


def artifact_key(dataset: str, topic: str) -> str:
    """A stable artifact key such as ``digits-label-counts``."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{dataset}-{topic}".lower()).strip("-")


def publish_markdown(key: str, markdown: str, description: str | None = None) -> None:
    create_markdown_artifact(key=key, markdown=markdown, description=description)


def publish_table(key: str, rows: Sequence[dict[str, Any]], description: str | None = None) -> None:
    """A table artifact from row dicts (values made JSON-friendly)."""
    clean = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()} for row in rows]
    create_table_artifact(key=key, table=clean, description=description)


def publish_image(key: str, png: bytes, title: str, description: str | None = None) -> None:
    """A PNG shown inline in a markdown artifact (data URI: no file server needed)."""
    encoded = base64.b64encode(png).decode("ascii")
    create_markdown_artifact(
        key=key, markdown=f"### {title}\n\n![{title}](data:image/png;base64,{encoded})\n", description=description
    )


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as a GitHub-flavoured markdown table."""
    if not rows:
        return "_(none)_\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row.get(c):.4g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
