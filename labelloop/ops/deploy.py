"""``labelloop deploy``: register ``deploy/prefect.yaml`` with a Prefect server.

The YAML is the template every project shares; what differs per project comes
from the labelloop config (dataset prefix, config path, crons, work pool) and is
filled in here, into ``<data_dir>/ops/prefect.yaml``, which is then registered
with Prefect's own ``prefect --no-prompt deploy --all`` (offline, no git).
"""

from __future__ import annotations

import copy
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labelloop.config import LabelloopConfig
from labelloop.exceptions import ConfigError, ServiceError
from labelloop.ops.prefect_server import prefect_env, prefect_executable

__all__ = ["deploy", "render_prefect_yaml", "template_path", "DeployResult"]


def template_path() -> Path:
    from labelloop.ops.services import project_dir

    return project_dir() / "deploy" / "prefect.yaml"


def _stage_of(deployment: dict[str, Any]) -> str:
    return str((deployment.get("parameters") or {}).get("stage") or deployment["name"])


@dataclass
class DeployResult:
    """What was registered, and what was left out and why."""

    prefect_file: Path
    deployments: list[str] = field(default_factory=list)
    schedules: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    automations: list[str] = field(default_factory=list)
    output: str = ""


def render_prefect_yaml(config: LabelloopConfig, template: Path | None = None) -> tuple[dict[str, Any], DeployResult]:
    """The template filled in from ``config``; raises ConfigError for a cron naming an unknown stage."""
    from labelloop.flows.scheduled import stage_available
    from labelloop.ops.services import project_dir

    template = template or template_path()
    if not template.is_file():
        raise ConfigError(f"{template}: the deployments template is missing")
    spec = yaml.safe_load(template.read_text(encoding="utf-8"))
    if not isinstance(spec, dict) or not isinstance(spec.get("deployments"), list):
        raise ConfigError(f"{template}: expected a mapping with a 'deployments' list")
    dataset = config.dataset.name
    schedule = config.schedule
    known = {_stage_of(d) for d in spec["deployments"]}
    unknown = sorted(set(schedule.stages) - known)
    if unknown:
        raise ConfigError(
            f"schedule.stages: no deployment for {', '.join(unknown)} in {template.name} "
            f"(expected one of {sorted(known - {'pipeline'})})"
        )
    out = copy.deepcopy(spec)
    out.pop("definitions", None)  # anchors are already expanded by the YAML loader
    out["pull"] = [{"prefect.deployments.steps.set_working_directory": {"directory": str(project_dir())}}]
    result = DeployResult(prefect_file=config.data_path / "ops" / "prefect.yaml")
    kept = []
    for deployment in out["deployments"]:
        stage = _stage_of(deployment)
        entrypoint = deployment.get("entrypoint", "")
        is_pipeline = entrypoint.endswith(":pipeline")
        if entrypoint.endswith(":run_stage"):
            if not stage_available(stage):
                result.skipped[stage] = f"labelloop/flows/{stage}.py is not in this checkout"
                continue
        elif not (project_dir() / entrypoint.split(":")[0]).is_file():
            result.skipped[stage] = f"{entrypoint.split(':')[0]} is not in this checkout"
            continue
        name = f"{dataset}-{deployment['name']}"
        deployment["name"] = name
        deployment["parameters"] = {**(deployment.get("parameters") or {}), "config_path": str(config.config_path)}
        cron = schedule.pipeline if is_pipeline else schedule.stages.get(stage)
        deployment["schedules"] = [{"cron": cron, "timezone": schedule.timezone, "active": True}] if cron else []
        if cron:
            result.schedules[name] = cron
        deployment["tags"] = sorted({*(deployment.get("tags") or []), f"dataset:{dataset}"})
        deployment["work_pool"] = {**(deployment.get("work_pool") or {}), "name": schedule.work_pool}
        kept.append(deployment)
        result.deployments.append(name)
    out["deployments"] = kept
    return out, result


def deploy(config: LabelloopConfig, api_url: str | None = None, timeout: float = 300.0) -> DeployResult:
    """Register the deployments with the server ``up`` started (or ``api_url``)."""
    from labelloop.ops.services import current_api_url, project_dir
    from labelloop.ops.worker import ensure_work_pool

    if config.config_path is None:
        raise ConfigError("deploy: the config must come from a file (its path is a deployment parameter)")
    api_url = api_url or current_api_url(config)
    if api_url is None:
        raise ServiceError(f"no Prefect server runs for {config.config_path}: run `labelloop up` first")
    spec, result = render_prefect_yaml(config)
    result.prefect_file.parent.mkdir(parents=True, exist_ok=True)
    result.prefect_file.write_text(
        "# Generated by `labelloop deploy` from deploy/prefect.yaml: edit that file or the config, not this one.\n"
        + yaml.safe_dump(spec, sort_keys=False),
        encoding="utf-8",
    )
    ensure_work_pool(api_url, config.schedule.work_pool)
    root = project_dir()
    env = prefect_env(config.data_path / "prefect-cli", api_url=api_url,
                      extra={"PYTHONPATH": str(root), "LABELLOOP_PROJECT_DIR": str(root),
                             "LABELLOOP_CONFIG": str(config.config_path)})
    argv = [prefect_executable(), "--no-prompt", "deploy", "--all", "--prefect-file", str(result.prefect_file)]
    try:
        done = subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"prefect deploy ({result.prefect_file}): no answer within {timeout:.0f} s") from exc
    result.output = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(result.output.strip().splitlines()[-20:])
        raise ServiceError(f"prefect deploy ({result.prefect_file}) failed with exit code {done.returncode}:\n{tail}")
    result.automations = ensure_automations(config, api_url, result)
    return result


async def _ensure_automations(config: LabelloopConfig, api_url: str, deployed: list[str]) -> list[str]:
    from datetime import timedelta

    from prefect.automations import EventTrigger, Posture, RunDeployment
    from prefect.client.orchestration import PrefectClient
    from prefect.events.schemas.automations import AutomationCore

    from labelloop.flows.annotations import TURN_EVENT
    from labelloop.ops.webhooks import EVENT, dataset_resource

    dataset = config.dataset.name
    resource = {"prefect.resource.id": dataset_resource(dataset)["prefect.resource.id"]}
    wanted: list[tuple[str, str, str, str]] = []  # (automation name, event, flow name, deployment name)
    if f"{dataset}-crowd-sync" in deployed and config.crowd.enabled and config.schedule.webhooks:
        wanted.append((f"{dataset}: sync new answers", EVENT, "annotations", f"{dataset}-crowd-sync"))
        if config.schedule.turn_after_answers and f"{dataset}-pipeline" in deployed:
            wanted.append((f"{dataset}: turn after {config.schedule.turn_after_answers} answers", TURN_EVENT,
                           "pipeline", f"{dataset}-pipeline"))
    names = []
    async with PrefectClient(api=api_url) as client:
        existing = {a.name: a for a in await client.read_automations()}
        ours = [a for name, a in existing.items() if name.startswith(f"{dataset}: ")]
        keep = {w[0] for w in wanted}
        for stale in ours:  # a changed threshold, or webhooks turned off: no automation left behind
            if stale.name not in keep:
                await client.delete_automation(stale.id)
        for name, event, flow_name, deployment in wanted:
            target = await client.read_deployment_by_name(f"{flow_name}/{deployment}")
            automation = AutomationCore(
                name=name,
                description=f"labelloop: on `{event}` for dataset {dataset}, run {deployment}",
                trigger=EventTrigger(expect={event}, match=resource, posture=Posture.Reactive, threshold=1,
                                     within=timedelta(0)),
                actions=[RunDeployment(source="selected", deployment_id=target.id)],
            )
            if name in existing:
                await client.update_automation(existing[name].id, automation)
            else:
                await client.create_automation(automation)
            names.append(name)
    return names


def ensure_automations(config: LabelloopConfig, api_url: str, result: DeployResult) -> list[str]:
    """The event automations of this dataset (sync on new answers; turn after N answers), created or updated."""
    import asyncio

    try:
        return asyncio.run(_ensure_automations(config, api_url, result.deployments))
    except Exception as exc:  # the client raises httpx and Prefect errors alike: name the server
        raise ServiceError(f"automations for {config.dataset.name} on {api_url}: {exc}") from exc
