"""What every config section shares: the :class:`Section` base and the one set of value checks.

Each check raises ``ValueError`` with the reason and the value that came; pydantic
puts the key path in front and :func:`labelloop.config.load.parse_config` the file
name, so a message reads ``labelloop.yaml: weak.lfs: LF names must be distinct
(repeated: spam)``. A section never writes a check of its own that one of these
already makes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict

__all__ = [
    "Section",
    "Slug",
    "SLUG_RE",
    "check_slug",
    "check_regex",
    "check_regexes",
    "check_cron",
    "check_http_url",
    "check_url_scheme",
    "check_entries",
    "check_distinct",
    "distinct",
]

SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Section(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def check_slug(value: str) -> str:
    """A name used in paths and ids: letters, digits, ``_ . -``.

    >>> check_slug("digits-v2")
    'digits-v2'
    >>> check_slug("my data!")
    Traceback (most recent call last):
    ...
    ValueError: must be letters, digits, '_', '.' or '-' (got 'my data!')
    """
    if not SLUG_RE.match(value):
        raise ValueError(f"must be letters, digits, '_', '.' or '-' (got {value!r})")
    return value


#: A ``str`` field holding a slug (see :func:`check_slug`).
Slug = Annotated[str, AfterValidator(check_slug)]


def check_regex(pattern: str) -> str:
    """A Python regular expression that compiles."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regex ({exc}) (got {pattern!r})") from None
    return pattern


def check_regexes(patterns: list[str]) -> list[str]:
    """Every entry of a list is a regex that compiles."""
    for pattern in patterns:
        check_regex(pattern)
    return patterns


def check_cron(value: str | None) -> str | None:
    """A standard 5-field cron expression (or unset)."""
    if value is not None and len(value.split()) != 5:
        raise ValueError(f"must be a 5-field cron expression (got {value!r})")
    return value


def check_http_url(url: str, wrong_scheme: str) -> str:
    """An absolute http(s) URL with a host and, if any, a valid port; ``wrong_scheme`` says what else it must be."""
    if not re.match(r"^https?://[^/\s]+", url):
        raise ValueError(f"{wrong_scheme} (got {url!r})")
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError:
        raise ValueError(f"has an invalid port (got {url!r})") from None
    if not parts.hostname or parts.netloc.endswith(":"):
        raise ValueError(f"needs a host and, after ':', a port number (got {url!r})")
    return url


def check_url_scheme(value: str | None, prefixes: tuple[str, ...], expected: str) -> str | None:
    """A database URL (or unset) starting with one of ``prefixes``; ``expected`` names them for the message."""
    if value is not None and not value.startswith(prefixes):
        raise ValueError(f"must be {expected} (got {value!r})")
    return value


def check_entries(mapping: dict[str, Any], check_key: Callable[[str], Any] | None, check_value: Callable[[Any], Any]) -> dict[str, Any]:
    """Every key and value of a mapping; a fault is prefixed with its key (``stages: collect: must be ...``)."""
    for key, value in mapping.items():
        try:
            if check_key is not None:
                check_key(key)
            check_value(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return mapping


def check_distinct(names: Iterable[str], what: str) -> None:
    """The one duplicate-name check: ``what`` must not repeat; repeats are named in order of appearance.

    >>> check_distinct(["a", "b", "a"], "class names")
    Traceback (most recent call last):
    ...
    ValueError: class names must be distinct (repeated: a)
    """
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise ValueError(f"{what} must be distinct (repeated: {', '.join(map(str, repeated))})")


def distinct(what: str, key: Callable[[Any], str] | None = None) -> AfterValidator:
    """A list field's validator (``Annotated[list[X], distinct(...)]``): its entries, or ``key(entry)``, must not repeat."""

    def check(values: list[Any]) -> list[Any]:
        check_distinct((key(v) if key else v for v in values), what)
        return values

    return AfterValidator(check)
