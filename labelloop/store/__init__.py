"""The dataset store: items, append-only labels, annotation tasks, runs."""

from labelloop.store.resolve import Resolution
from labelloop.store.store import (
    LABEL_KINDS,
    AddItemsResult,
    ItemIn,
    LabelIn,
    Store,
    TaskIn,
    content_hash,
    decode_probs,
    encode_probs,
    insert_ignoring,
    make_engine,
    migrate,
)

__all__ = [
    "Store",
    "ItemIn",
    "LabelIn",
    "TaskIn",
    "AddItemsResult",
    "Resolution",
    "LABEL_KINDS",
    "content_hash",
    "encode_probs",
    "decode_probs",
    "make_engine",
    "migrate",
    "insert_ignoring",
]
