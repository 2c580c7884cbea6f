"""The label kinds and the default precedence, defined once in the store."""

from __future__ import annotations

import doctest

import labelloop.store as store
from labelloop.store import kinds


def test_kinds_are_defined_once_and_exported_by_the_store() -> None:
    failures, tried = doctest.testmod(kinds)
    assert failures == 0 and tried > 0
    assert store.LABEL_KINDS is kinds.LABEL_KINDS and store.DEFAULT_PRECEDENCE is kinds.DEFAULT_PRECEDENCE
    # Every resolvable kind is a label kind; the default ranks each of them exactly once, gold first.
    assert set(kinds.SOURCE_KINDS) < set(kinds.LABEL_KINDS)
    assert sorted(kinds.DEFAULT_PRECEDENCE) == sorted(kinds.SOURCE_KINDS) and kinds.DEFAULT_PRECEDENCE[0] == "gold"


def test_the_lazy_package_still_exports_everything() -> None:
    for name in store.__all__:
        assert getattr(store, name) is not None, name
    assert set(store.__all__) <= set(dir(store))
