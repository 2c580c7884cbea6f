"""Retry policies of the tasks that talk to servers, chosen on purpose and explained here.

Network tasks (a site's crawl, Label Studio calls) retry: servers restart, time
out, rate-limit. Delays grow (exponential backoff) and are jittered so a batch of
tasks that failed together does not retry in lock-step against a recovering
server. Retrying is safe only because those tasks are idempotent (a crawl
resumes from its stored frontier; a push or sync skips what Label Studio or the
store already holds). Pure transforms never retry: a bug fails the same way twice.

No task is cached: every stage reads the store, which changes between runs, and
the turn is already resumable through the store itself (nothing is recomputed
that is stored).

Usage::

    @task(**SERVER_RETRIES)
    def push_task(...): ...
"""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

__all__ = ["NETWORK_RETRIES", "SERVER_RETRIES"]

# A site's crawl (``tasks/collect.py``): 3 retries after ~2, 4, 8 s (±50 %); the crawler keeps its own
# per-URL retry for transient HTTP errors, this is the task-level safety net.
NETWORK_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
}

# Label Studio push and sync (``tasks/crowd.py``), a local server that may be restarting: longer waits, same shape.
SERVER_RETRIES: dict[str, Any] = {
    "retries": 4,
    "retry_delay_seconds": exponential_backoff(backoff_factor=5),
    "retry_jitter_factor": 0.5,
}
