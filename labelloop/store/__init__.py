"""The dataset store: items, append-only labels, annotation tasks, runs.

The label kinds and the default precedence (:mod:`labelloop.store.kinds`) are
imported eagerly: the config validates against them and must stay cheap to
import. Everything else loads on first use (SQLAlchemy, pandas).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from labelloop.store.kinds import DEFAULT_PRECEDENCE, LABEL_KINDS, SOURCE_KINDS

if TYPE_CHECKING:
    from labelloop.store.resolve import Resolution
    from labelloop.store.store import (
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
    "SOURCE_KINDS",
    "DEFAULT_PRECEDENCE",
    "content_hash",
    "encode_probs",
    "decode_probs",
    "make_engine",
    "migrate",
    "insert_ignoring",
]

# Public name -> the module defining it (loaded on first access).
_LAZY = {
    "Resolution": "labelloop.store.resolve",
    **{
        name: "labelloop.store.store"
        for name in ("Store", "ItemIn", "LabelIn", "TaskIn", "AddItemsResult", "content_hash", "encode_probs", "decode_probs",
                     "make_engine", "migrate", "insert_ignoring")
    },
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'labelloop.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
