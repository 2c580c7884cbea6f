"""The task runner of a pipeline turn: Prefect's thread pool, or Dask.

With ``runner.kind: dask`` one Dask cluster serves the whole turn: an existing
scheduler (``runner.address``: a team's cluster) or a local cluster started for
the turn and closed after it. Every stage flow gets a ``DaskTaskRunner`` bound to
that one scheduler (on a Dask runner the stages run as sub-flows, see
``flows/pipeline.py``), so a turn pays for cluster start-up once, not per stage.

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

__all__ = ["turn_task_runner"]


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
