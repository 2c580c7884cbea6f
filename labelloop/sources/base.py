"""What every importer returns, and the helpers they share."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from labelloop.store import ItemIn, LabelIn, Store

logger = logging.getLogger("labelloop.sources")

__all__ = ["ImportReport", "store_imported"]


@dataclass
class ImportReport:
    """Outcome of one import: counts, and a warning per input that was skipped."""

    source: str
    added: int = 0
    existing: int = 0
    labels_added: int = 0
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Record a skipped input; the message names the file (and line) at fault."""
        self.skipped += 1
        self.warnings.append(message)
        logger.warning(message)

    def as_row(self) -> dict:
        return {
            "source": self.source,
            "added": self.added,
            "existing": self.existing,
            "labels_added": self.labels_added,
            "skipped": self.skipped,
        }


def store_imported(
    store: Store,
    dataset: str,
    items: Sequence[ItemIn],
    labels: Sequence[int | None],
    report: ImportReport,
    provenance_id: int,
    run_id: str | None,
) -> ImportReport:
    """Add the items, then their known classes as gold rows (one per item and source, ever)."""
    added = store.add_items(dataset, items, provenance_id=provenance_id)
    report.added, report.existing = added.added, added.existing
    rows = [
        LabelIn(item_id, label, "gold", report.source, confidence=1.0, run_id=run_id,
                dedupe_key=f"gold:{report.source}:{item_id}")
        for item_id, label in zip(added.ids, labels)
        if label is not None
    ]
    report.labels_added = store.add_labels(rows)
    return report
