"""``labelloop up`` / ``down`` / ``status``: the local services of one project.

State lives in ``<data_dir>/ops/state.json`` (pids, ports, URLs, logs). ``up``
reads it first and starts only what is not already running, so calling it twice
starts nothing twice; ``down`` stops every pid it lists and clears it.

Layout under the data dir::

    prefect/            PREFECT_HOME of the server (database, server.log)
    prefect-worker/     PREFECT_HOME of the worker (worker-<pool>.log)
    studio/             Label Studio (see labelloop.studio.server), when enabled
    ops/webhooks/       the Label Studio webhook receiver (labelloop.ops.webhooks): log, secret
    ops/state.json      what `up` started
"""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelloop.config import LabelloopConfig
from labelloop.exceptions import ServiceError
from labelloop.ops._state import read_json, write_json
from labelloop.ops.prefect_server import PrefectServer
from labelloop.ops.webhooks import WebhookReceiver
from labelloop.ops.worker import PrefectWorker
from labelloop.process import is_alive, stop_pid

__all__ = ["ServiceState", "up", "down", "status", "project_dir", "state_path", "current_api_url"]


def project_dir() -> Path:
    """The folder holding the ``labelloop`` package: the deployments' working directory."""
    import labelloop

    return Path(labelloop.__file__).resolve().parent.parent


def state_path(config: LabelloopConfig) -> Path:
    return config.data_path / "ops" / "state.json"


@dataclass
class ServiceState:
    """What ``up`` started; ``urls`` is what to open in a browser."""

    server: PrefectServer | None = None
    worker: PrefectWorker | None = None
    studio: dict[str, Any] | None = None
    webhooks: WebhookReceiver | None = None
    started: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def urls(self) -> dict[str, str]:
        urls = {}
        if self.server:
            urls["Prefect UI"] = self.server.url
            urls["Prefect API"] = self.server.api_url
        if self.studio:
            urls["Label Studio"] = self.studio["url"]
        if self.webhooks:
            urls["Webhook receiver"] = self.webhooks.url
        return urls

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server.as_state() if self.server else None,
            "worker": self.worker.as_state() if self.worker else None,
            "studio": self.studio,
            "webhooks": self.webhooks.as_state() if self.webhooks else None,
        }

    @classmethod
    def load(cls, config: LabelloopConfig) -> "ServiceState":
        data = read_json(state_path(config))
        return cls(
            server=PrefectServer.from_state(data["server"]) if data.get("server") else None,
            worker=PrefectWorker.from_state(data["worker"]) if data.get("worker") else None,
            studio=data.get("studio"),
            webhooks=WebhookReceiver.from_state(data["webhooks"]) if data.get("webhooks") else None,
        )

    def save(self, config: LabelloopConfig) -> None:
        write_json(state_path(config), self.to_json())


def current_api_url(config: LabelloopConfig) -> str | None:
    """The API of the server ``up`` started for this project, if it runs."""
    state = ServiceState.load(config)
    return state.server.api_url if state.server and state.server.running() else None


def require_studio():
    """``labelloop.studio.server``, or a ServiceError saying where it comes from."""
    module = _studio_module()
    if module is None:
        raise ServiceError(
            "Label Studio: labelloop.studio.server is not in this checkout (it comes with the crowd stage); "
            "run `labelloop up --no-studio`, or update labelloop"
        )
    return module


def _studio_module():
    """``labelloop.studio.server`` when this checkout has it (the crowd stage), else None."""
    if importlib.util.find_spec("labelloop.studio") is None:
        return None
    if importlib.util.find_spec("labelloop.studio.server") is None:
        return None
    import labelloop.studio.server as module

    return module


def up(
    config: LabelloopConfig,
    studio: bool | None = None,
    worker: bool = True,
    server_env: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None,
    receiver_env: dict[str, str] | None = None,
) -> ServiceState:
    """Start the Prefect server, the work pool and its worker, and Label Studio; idempotent.

    Parameters
    ----------
    config : LabelloopConfig
    studio : bool or None, default=None
        Start Label Studio; None: when ``crowd.enabled`` is true.
    worker : bool, default=True
        Start a process worker on ``schedule.work_pool``.
    server_env, worker_env, receiver_env : dict, optional
        Extra environment (e.g. faster scheduler loops in tests).

    With ``crowd.enabled`` and ``schedule.webhooks`` it also starts the Label Studio webhook
    receiver (:mod:`labelloop.ops.webhooks`) and registers it on labelloop's projects.
    """
    want_studio = config.crowd.enabled if studio is None else studio
    studio_module = require_studio() if want_studio else None  # fail before starting anything
    data = config.data_path
    data.mkdir(parents=True, exist_ok=True)
    state = ServiceState.load(config)

    server = state.server or PrefectServer(home=data / "prefect")
    server.database_url = config.schedule.prefect_database_url
    server.extra_env = dict(server_env or {})
    _ensure_running(config, state, "server", server)

    if worker:
        current = state.worker
        if current is not None and (current.api_url != server.api_url or current.pool != config.schedule.work_pool):
            current.stop()  # it polls a server or pool that is gone
            current = None
        current = current or PrefectWorker(
            home=data / "prefect-worker", api_url=server.api_url, pool=config.schedule.work_pool,
            project_dir=str(project_dir()),
        )
        # Poll every 2 s (Prefect's default is 10): a run an automation starts for new answers waits less.
        current.extra_env = {"PREFECT_WORKER_QUERY_SECONDS": "2", **(worker_env or {})}
        _ensure_running(config, state, "worker", current)

    if studio_module is not None:
        module = studio_module
        studio_dir = data / "studio"
        running = module.StudioServer.running(studio_dir)
        if running is None:
            running = module.StudioServer(studio_dir).start()
            state.started.append("label-studio")
        state.studio = {"pid": running.pid, "port": running.port, "url": running.url, "dir": str(studio_dir),
                        "log": str(studio_dir / "server.log")}
        state.save(config)

    if config.crowd.enabled and config.schedule.webhooks and (studio_module is not None or config.crowd.url):
        _start_webhooks(config, state, server, receiver_env)
    return state


_NAMES = {"server": "prefect-server", "worker": "prefect-worker", "webhooks": "webhook-receiver"}


def _ensure_running(config: LabelloopConfig, state: ServiceState, slot: str, service: Any) -> None:
    """Start ``service`` unless it runs, and save it in ``state`` at once: a later failure must not orphan it."""
    if not service.running():
        service.start()
        state.started.append(_NAMES[slot])
    setattr(state, slot, service)
    state.save(config)


def _start_webhooks(config: LabelloopConfig, state: ServiceState, server: PrefectServer,
                    env: dict[str, str] | None) -> None:
    """Start the webhook receiver (events to ``server``) and point labelloop's Label Studio projects at it."""
    receiver = state.webhooks
    if receiver is not None and receiver.api_url != server.api_url:
        receiver.stop()  # it sends events to a server that is gone
        receiver.api_url = server.api_url
    receiver = receiver or WebhookReceiver(home=config.data_path / "ops" / "webhooks", dataset=config.dataset.name,
                                           api_url=server.api_url, project_dir=str(project_dir()))
    receiver.min_interval_s = config.schedule.webhook_min_interval_s
    receiver.extra_env = dict(env or {})
    _ensure_running(config, state, "webhooks", receiver)
    from labelloop.tasks.crowd import connect
    from labelloop.ops.webhooks import register_project_webhooks

    with connect(config) as client:  # projects made before the receiver existed; the crowd push does the rest
        register_project_webhooks(config, client)


def down(config: LabelloopConfig) -> list[str]:
    """Stop everything ``up`` started (by pid); the names of what was running."""
    state = ServiceState.load(config)
    stopped = []
    # Worker first: stopping the server under a busy worker makes it log a burst of errors.
    if state.worker and state.worker.stop():
        stopped.append("prefect-worker")
    if state.webhooks and state.webhooks.stop():
        stopped.append("webhook-receiver")
    if state.studio:
        module = _studio_module()
        if module is not None:
            running = module.StudioServer.running(Path(state.studio["dir"]))
            if running is not None:
                running.stop()
                stopped.append("label-studio")
        elif stop_pid(state.studio.get("pid")):
            stopped.append("label-studio")
    if state.server and state.server.stop():
        stopped.append("prefect-server")
    ServiceState().save(config)
    return stopped


# -- status -------------------------------------------------------------------------------


async def _prefect_status(api_url: str, dataset: str, runs_per_deployment: int) -> dict[str, Any]:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterTags,
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    async with PrefectClient(api=api_url) as client:
        deployments = await client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[f"dataset:{dataset}"]))
        )
        rows = []
        for deployment in sorted(deployments, key=lambda d: d.name):
            by_deployment = FlowRunFilterDeploymentId(any_=[deployment.id])
            # Past and running runs, newest first; then the next scheduled one (an every-minute
            # cron has a hundred runs scheduled ahead, which must not hide what happened).
            happened = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=by_deployment,
                    state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED])),
                ),
                sort=FlowRunSort.START_TIME_DESC,
                limit=runs_per_deployment,
            )
            upcoming = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=by_deployment,
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=1,
            )
            rows.append({
                "deployment": deployment.name,
                "schedule": ", ".join(getattr(s.schedule, "cron", None) or str(s.schedule) for s in deployment.schedules) or "-",
                "last_runs": [
                    {"name": r.name, "state": r.state_name,
                     "start": r.start_time.isoformat() if r.start_time else None}
                    for r in happened
                ],
                "next": min((r.expected_start_time for r in upcoming), default=None),
            })
        pools = await client.read_work_pools()
        return {"deployments": rows, "work_pools": [{"name": p.name, "status": str(p.status.value if p.status else "-")} for p in pools]}


def status(config: LabelloopConfig, runs_per_deployment: int = 3) -> dict[str, Any]:
    """What runs, the last runs per deployment, queue sizes and label counts."""
    from labelloop.store import Store

    state = ServiceState.load(config)
    services = []
    if state.server:
        services.append({"service": "prefect-server", "pid": state.server.pid, "url": state.server.url,
                         "running": state.server.running(), "log": state.server.log})
    if state.worker:
        services.append({"service": "prefect-worker", "pid": state.worker.pid, "url": f"pool {state.worker.pool}",
                         "running": state.worker.running(), "log": state.worker.log})
    if state.webhooks:
        services.append({"service": "webhook-receiver", "pid": state.webhooks.pid, "url": state.webhooks.url,
                         "running": state.webhooks.running(), "log": state.webhooks.log})
    if state.studio:
        services.append({"service": "label-studio", "pid": state.studio.get("pid"), "url": state.studio.get("url"),
                         "running": is_alive(state.studio.get("pid")), "log": state.studio.get("log")})
    result: dict[str, Any] = {"services": services, "deployments": [], "work_pools": []}
    if state.server and state.server.running():
        try:
            result.update(asyncio.run(_prefect_status(state.server.api_url, config.dataset.name, runs_per_deployment)))
        except Exception as exc:  # status must still show the store when the API misbehaves
            result["prefect_error"] = f"{state.server.api_url}: {exc}"
    store = Store(config.store_url).create()
    try:
        result["label_counts"] = store.label_counts(config.dataset.name).groupby("kind")["rows"].sum().to_dict()
        result["items"] = store.count_items(config.dataset.name)
        tasks = store.tasks(config.dataset.name)
        if len(tasks):
            result["queues"] = (
                tasks.groupby(["queue", "state"]).size().rename("tasks").reset_index().to_dict("records")
            )
        else:
            result["queues"] = []
    finally:
        store.close()
    return result
