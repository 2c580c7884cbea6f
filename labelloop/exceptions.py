"""The labelloop exception tree.

::

    LabelloopError
     ├── ConfigError            a config file or value is invalid
     ├── StoreError             the dataset store refused an operation
     │    └── AppendOnlyError   someone tried to change or delete a label row
     ├── ImportDataError        an input file, row or image cannot be imported
     ├── LabelingFunctionError  a labeling function raised or is malformed
     ├── AggregationError       votes cannot be aggregated (bad shapes, classes)
     ├── CrawlError             a page cannot be fetched, rendered or parsed
     │    └── RobotsDisallowed  robots.txt forbids the URL
     ├── LabelStudioError       the Label Studio server is down, slow or refused
     │    └── AnnotationError   an annotation cannot be synced (unknown label...)
     ├── TrainingError          a model cannot be trained (bad item, no labels)
     └── ServiceError           a local service (Prefect, Label Studio) failed to start

Every message names the thing at fault (a file and key path, an item id, a URL,
a labeling function), what was expected and what came. Programmer mistakes
stay ``TypeError`` (wrong argument type) / ``ValueError`` (a parameter out of
range, a malformed array or selector passed to a library function): the tree
is for what goes wrong with data, files, servers and configs, not for a call
written wrongly.
"""

from __future__ import annotations

__all__ = [
    "LabelloopError",
    "ConfigError",
    "StoreError",
    "AppendOnlyError",
    "ImportDataError",
    "LabelingFunctionError",
    "AggregationError",
    "CrawlError",
    "RobotsDisallowed",
    "LabelStudioError",
    "AnnotationError",
    "TrainingError",
    "ServiceError",
]


class LabelloopError(Exception):
    """Base class of every error labelloop raises on purpose."""


class ConfigError(LabelloopError):
    """A config file or value is invalid; the message names file and key path."""


class StoreError(LabelloopError):
    """The dataset store refused an operation."""


class AppendOnlyError(StoreError):
    """A label row was about to be updated or deleted; labels are append-only."""


class ImportDataError(LabelloopError):
    """An input file, row or image cannot be imported."""


class LabelingFunctionError(LabelloopError):
    """A labeling function raised, or is declared wrongly."""


class AggregationError(LabelloopError):
    """Votes cannot be aggregated (bad shapes, unknown classes)."""


class CrawlError(LabelloopError):
    """A page cannot be fetched, rendered or parsed; the message names the URL."""


class RobotsDisallowed(CrawlError):
    """robots.txt forbids fetching the URL (or cannot be read, which RFC 9309 treats alike).

    Raised by :meth:`labelloop.scrape.robots.RobotsRules.check`; the crawler catches it
    where it skips the URL (counted as ``skipped: robots``).
    """

    def __init__(self, url: str, reason: str = "disallowed by robots.txt") -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason

    def __reduce__(self) -> tuple:  # keeps url and reason across processes (pickling)
        return (type(self), (self.url, self.reason))


class LabelStudioError(LabelloopError):
    """The Label Studio server is down, slow, or refused a request."""


class AnnotationError(LabelStudioError):
    """An annotation cannot be synced (unknown label, malformed result)."""


class TrainingError(LabelloopError):
    """A model cannot be trained (corrupt item, no labels, bad parameters)."""


class ServiceError(LabelloopError):
    """A local service (Prefect server, Label Studio, worker) failed to start or stop."""
