"""The task runner of a pipeline turn: Prefect's thread pool, or Dask.

With ``runner.kind: dask`` one Dask cluster serves the whole turn: an existing
scheduler (``runner.address``: a team's cluster) or a local cluster started for
the turn and closed after it. Every stage flow gets a ``DaskTaskRunner`` bound to
that one scheduler, so a turn pays for cluster start-up once, not per stage.

Worker processes talk to the Prefect API of the flow run; without a Prefect
server each process would start its own ephemeral server (twice as slow), so
use a server (``labelloop up``) or ``processes: false`` on one machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from labelloop.config import RunnerConfig
from labelloop.exceptions import ConfigError

__all__ = ["turn_task_runner", "quiet_subflows"]


def _dask_runner_class() -> Any:
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise ConfigError(
            "runner.kind: dask needs the prefect-dask package; pip install 'labelloop[dask]'"
        ) from exc
    return DaskTaskRunner


@contextlib.contextmanager
def turn_task_runner(runner: RunnerConfig) -> Iterator[Any | None]:
    """Yield the task runner each stage flow of a turn should use; None keeps Prefect's default."""
    if runner.kind == "default":
        yield None
        return
    DaskTaskRunner = _dask_runner_class()
    if runner.address:
        yield DaskTaskRunner(address=runner.address)
        return
    from distributed import LocalCluster

    # Worker processes listen on loopback only; threads in this process talk over inproc://.
    where = {"host": "127.0.0.1"} if runner.processes else {}
    with LocalCluster(
        n_workers=runner.n_workers,
        threads_per_worker=runner.threads_per_worker,
        processes=runner.processes,
        dashboard_address=None,  # no dashboard port to collide with on a shared machine
        **where,
    ) as cluster:
        yield DaskTaskRunner(address=cluster.scheduler_address)


@contextlib.contextmanager
def quiet_subflows() -> Iterator[None]:
    """No heartbeat threads for the stage sub-flows of a turn.

    A sync flow run starts a heartbeat thread and joins it on exit, which costs
    up to a second per flow (it sleeps in 1 s steps). Heartbeats let the server
    mark a run as crashed when its process dies; stage sub-flows run in the
    turn's own process, whose run keeps its heartbeat, so theirs add nothing.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
