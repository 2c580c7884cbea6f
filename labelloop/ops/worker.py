"""A process work pool and a ``prefect worker`` polling it.

Flow runs start as subprocesses of the worker, with the worker's environment:
``PYTHONPATH`` puts the project first so a run imports the same labelloop as
the deployment's entrypoint, whatever is installed in the environment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from labelloop.exceptions import ServiceError
from labelloop.ops._state import PidStateMixin
from labelloop.ops.prefect_server import prefect_env, prefect_executable

__all__ = ["PrefectWorker", "ensure_work_pool"]


async def _ensure_pool(api_url: str, pool: str) -> bool:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    async with PrefectClient(api=api_url) as client:
        try:
            await client.read_work_pool(pool)
            return False
        except ObjectNotFound:
            pass
        try:
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        except ObjectAlreadyExists:
            return False
    return True


def ensure_work_pool(api_url: str, pool: str) -> bool:
    """Create the process work pool ``pool`` unless it exists; True if created."""
    try:
        return asyncio.run(_ensure_pool(api_url, pool))
    except Exception as exc:  # the client raises httpx and Prefect errors alike: name the server
        raise ServiceError(f"work pool {pool!r} on {api_url}: cannot create it ({exc})") from exc


@dataclass
class PrefectWorker(PidStateMixin):
    """A process worker of one work pool.

    Parameters
    ----------
    home : Path
        ``PREFECT_HOME`` of the worker (its logs).
    api_url : str
        The Prefect API it polls.
    pool : str, default="labelloop"
    project_dir : str or None
        Put first on ``PYTHONPATH`` of the worker and its flow runs.
    """

    home: Path
    api_url: str
    pool: str = "labelloop"
    project_dir: str | None = None

    def healthy(self) -> bool:
        return True  # no health endpoint: a live worker process is a running worker

    def start(self) -> "PrefectWorker":
        """Create the pool if needed and start a worker unless one already runs."""
        ensure_work_pool(self.api_url, self.pool)
        if self.running():
            return self
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.home / f"worker-{self.pool}.log"
        env = prefect_env(self.home, api_url=self.api_url, extra=self.extra_env, project_dir=self.project_dir)
        argv = [prefect_executable(), "worker", "start", "--pool", self.pool, "--type", "process",
                "--name", f"labelloop-{self.pool}"]
        self._launch(f"Prefect worker for pool {self.pool!r}", argv, env, log,
                     cwd=Path(self.project_dir) if self.project_dir else None)
        if not self.running():
            raise ServiceError(f"Prefect worker for pool {self.pool!r}: exited at once; see {log}")
        return self



