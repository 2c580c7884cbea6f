"""Collected items into the dataset store (content-hash dedup makes re-delivery harmless).

The crawler hands each batch over with the open connection of the transaction that also
records the pages' frontier state, so items and "this page is done" commit together.
"""

from __future__ import annotations

from typing import Any

from labelloop.scrape.items import CollectedItem
from labelloop.store import ItemIn, Store

__all__ = ["StoreSink"]


class StoreSink:
    """``sink(items) -> (added, existing)`` writing to one dataset of a :class:`~labelloop.store.Store`.

    Parameters
    ----------
    store : Store
    dataset : str
    provenance_id : int or None
        The crawl's provenance row (``store.add_provenance("scrape", site_name, ...)``).
    """

    def __init__(self, store: Store, dataset: str, provenance_id: int | None = None) -> None:
        self.store = store
        self.dataset = dataset
        self.provenance_id = provenance_id

    def __call__(self, items: list[CollectedItem], connection: Any = None) -> tuple[int, int]:
        rows = [
            ItemIn(
                modality=item.modality,
                text=item.text,
                uri=item.uri,
                path=item.path,
                meta=item.metadata,
                content_hash=item.content_hash,
            )
            for item in items
        ]
        if connection is not None and connection.engine.url != self.store.engine.url:
            connection = None  # the frontier lives in another database: the items get their own transaction
        result = self.store.add_items(self.dataset, rows, provenance_id=self.provenance_id, connection=connection)
        return result.added, result.existing
