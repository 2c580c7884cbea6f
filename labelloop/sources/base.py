"""What every importer returns, and the helpers they share."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

logger = logging.getLogger("labelloop.sources")

__all__ = ["ImportReport"]


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
