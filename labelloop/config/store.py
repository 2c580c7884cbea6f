"""The ``store`` section: where the dataset store lives."""

from __future__ import annotations

from pydantic import Field, field_validator

from labelloop.config.base import Section, check_url_scheme

__all__ = ["StoreConfig"]


class StoreConfig(Section):
    """Where the dataset store lives."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default `sqlite:///<data_dir>/labelloop.db`. "
        "PostgreSQL: `postgresql+psycopg://user:pass@host/db`.",
    )

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        return check_url_scheme(value, ("sqlite", "postgresql"), "a sqlite:// or postgresql:// URL")
