"""The ``schedule`` section: deployment crons, sign-off, webhooks and Prefect's own database."""

from __future__ import annotations

from pydantic import Field, field_validator

from labelloop.config.base import Section, check_cron, check_entries, check_slug, check_url_scheme

__all__ = ["ScheduleConfig"]


class ScheduleConfig(Section):
    """Cron schedules of the deployments (standard 5-field cron) and how scheduled runs behave.

    A stage left unset has a deployment without a schedule (run it from the UI or
    ``prefect deployment run``).
    """

    pipeline: str | None = Field(default=None, description="Cron of a full loop turn, e.g. `0 2 * * *` (nightly).")
    stages: dict[str, str] = Field(
        default_factory=dict,
        description="Cron per stage deployment, e.g. `{collect: '0 * * * *', crowd: '*/10 * * * *'}`.",
    )
    timezone: str = "UTC"
    work_pool: str = Field(default="labelloop", description="Process work pool the deployments run on.")
    signoff: bool = Field(
        default=False,
        description="Pause each turn before the route stage writes pseudo-labels and queues, until an expert approves in "
        "the Prefect UI (off for unattended runs).",
    )
    signoff_timeout_s: int = Field(
        default=3600, ge=10, description="How long a sign-off waits; past it the turn ends without writing.")
    webhooks: bool = Field(
        default=True,
        description="With crowd enabled: `labelloop up` starts a webhook receiver and `labelloop deploy` an "
        "automation, so answers submitted in Label Studio start a crowd sync within seconds (crons keep working).",
    )
    webhook_min_interval_s: float = Field(
        default=10.0, ge=0, description="At most one sync started by webhooks per this many seconds (the first at "
        "once, later deliveries folded into one trailing sync).")
    turn_after_answers: int | None = Field(
        default=None, ge=1, description="Start a whole turn once this many new answers were synced since the last "
        "turn started (needs `webhooks`); null: turns only on the `pipeline` cron.")
    prefect_database_url: str | None = Field(
        default=None,
        description="Prefect's own database for `labelloop up`, e.g. `postgresql+asyncpg://user@host/prefect`; "
        "default SQLite under the data dir.",
    )

    @field_validator("pipeline")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return check_cron(value)

    @field_validator("stages")
    @classmethod
    def _stage_crons(cls, value: dict[str, str]) -> dict[str, str]:
        return check_entries(value, check_slug, check_cron)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"must be an IANA time zone such as UTC or Europe/Paris (got {value!r})") from None
        return value

    @field_validator("prefect_database_url")
    @classmethod
    def _prefect_db(cls, value: str | None) -> str | None:
        prefixes = ("sqlite+aiosqlite://", "postgresql+asyncpg://")
        return check_url_scheme(value, prefixes, "a sqlite+aiosqlite:// or postgresql+asyncpg:// URL")
