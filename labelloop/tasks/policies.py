"""Retry and cache policies shared by the tasks, chosen on purpose and explained here.

Network tasks (page fetches, Label Studio calls) retry: servers restart, time
out, rate-limit. Delays grow (exponential backoff) and are jittered so a batch of
tasks that failed together does not retry in lock-step against a recovering
server. Pure transforms never retry: a bug fails the same way twice.

Expensive deterministic results (embeddings, fold training) are cached by what
they are computed from, so a turn re-run after a failure resumes instead of
starting over. Their parameters often hold a ``Store`` or big arrays, which
Prefect's default ``INPUTS`` policy cannot hash (or hashes slowly); use
:func:`cache_on` with the parameters that identify the work (a config section,
a model version hash) instead.

Usage::

    @task(**NETWORK_RETRIES)
    def push_tasks(...): ...

    @task(cache_key_fn=cache_on("version", "fold"), cache_expiration=CACHE_EXPIRATION)
    def train_fold(store, version, fold, ...): ...
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any, Callable

from prefect.tasks import exponential_backoff

__all__ = ["NETWORK_RETRIES", "SERVER_RETRIES", "CACHE_EXPIRATION", "cache_on"]

# Page fetches: 3 retries after ~2, 4, 8 s (±50 %); a crawl keeps its own per-URL
# retry for transient HTTP errors, this is the task-level safety net.
NETWORK_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
}

# A local server (Label Studio) that may be restarting: longer waits, same shape.
SERVER_RETRIES: dict[str, Any] = {
    "retries": 4,
    "retry_delay_seconds": exponential_backoff(backoff_factor=5),
    "retry_jitter_factor": 0.5,
}

# Cached results are kept a week: long enough to resume any failed turn, short enough
# that the result storage does not grow without bound.
CACHE_EXPIRATION = timedelta(days=7)


def _stable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _stable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"cache_on: parameter of type {type(value).__name__} cannot be a cache key; "
                    "pass a hash or version string instead")


def cache_on(*names: str) -> Callable[[Any, dict[str, Any]], str]:
    """A ``cache_key_fn`` over the named parameters only (and the task's name).

    Parameters
    ----------
    *names : str
        Parameters that identify the result (JSON-able values or pydantic models).
    """
    if not names:
        raise ValueError("cache_on needs at least one parameter name")

    def key(context: Any, parameters: dict[str, Any]) -> str:
        missing = [n for n in names if n not in parameters]
        if missing:
            raise KeyError(f"cache_on: task has no parameter {missing[0]!r} (has {sorted(parameters)})")
        task_name = getattr(getattr(context, "task", None), "name", "task")
        payload = json.dumps({"task": task_name, **{n: _stable(parameters[n]) for n in names}}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    return key
