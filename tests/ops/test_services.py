"""`labelloop up / deploy / status / down` against a real Prefect server and worker (one per module)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from labelloop.config import load_config
from labelloop.ops import ServiceState
from labelloop.process import group_members, is_alive, stop_pid


pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Screenshots and other files a person wants to look at after CI (git-ignored, kept by CI).
ARTIFACTS = ROOT / "artifacts"

# Quicker loops than the defaults, so a scheduled run starts within seconds of being due.
FAST_SERVICES = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    "PREFECT_WORKER_QUERY_SECONDS": "2",
    "PREFECT_WORKER_PREFETCH_SECONDS": "5",
}


def labelloop_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `labelloop` command (this checkout's package first on the path)."""
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    full_env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "labelloop", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_async(coro):
    return asyncio.run(coro)


def _write_project(directory: Path) -> Path:
    from labelloop.demo import write_digits_example

    config = write_digits_example(directory)
    text = config.read_text()
    # A turn every minute, so the test sees a scheduled run; the work pool is this test's own.
    text += "schedule:\n  pipeline: '* * * * *'\n  work_pool: ops-test\n"
    config.write_text(text)
    return config


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The digits example brought up with `labelloop up`; `labelloop down` at the end, whatever happens."""
    config_path = _write_project(tmp_path_factory.mktemp("ops") / "digits")
    config = load_config(config_path)
    try:
        done = labelloop_cli("up", "-c", str(config_path), "--no-studio", env=FAST_SERVICES)
        assert done.returncode == 0, done.stdout + done.stderr
        yield config_path, config, done.stdout
    finally:
        state = ServiceState.load(config)
        labelloop_cli("down", "-c", str(config_path))
        for service in (state.server, state.worker):  # belt and braces: never leave a server behind
            stop_pid(service and service.pid, sig=signal.SIGKILL)


def _deployments(api_url: str) -> dict:
    from prefect.client.orchestration import PrefectClient

    async def read():
        async with PrefectClient(api=api_url) as client:
            return {d.name: d for d in await client.read_deployments()}

    return run_async(read())


def _flow_runs(api_url: str, deployment_id) -> list:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    async def read():
        async with PrefectClient(api=api_url) as client:
            return await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]))
            )

    return run_async(read())


def test_up_starts_server_and_worker(project):
    config_path, config, output = project
    state = ServiceState.load(config)
    assert state.server is not None and state.worker is not None
    assert "started: prefect-server, prefect-worker" in output
    assert state.server.url in output
    assert state.server.host == "127.0.0.1"
    assert httpx.get(f"{state.server.api_url}/health", timeout=5).json() is True
    assert is_alive(state.worker.pid)
    assert Path(state.server.log).is_file() and Path(state.server.home).is_relative_to(config.data_path)


def test_up_twice_starts_nothing_twice(project):
    config_path, config, _ = project
    before = ServiceState.load(config)
    done = labelloop_cli("up", "-c", str(config_path), "--no-studio")
    assert done.returncode == 0, done.stderr
    assert "nothing (already running)" in done.stdout
    after = ServiceState.load(config)
    assert (after.server.pid, after.server.port, after.worker.pid) == (before.server.pid, before.server.port, before.worker.pid)


def test_deploy_registers_the_yaml_deployments(project):
    config_path, config, _ = project
    done = labelloop_cli("deploy", "-c", str(config_path))
    assert done.returncode == 0, done.stdout + done.stderr
    state = ServiceState.load(config)
    deployments = _deployments(state.server.api_url)
    assert {"digits-pipeline", "digits-import", "digits-model", "digits-report"} <= set(deployments)
    pipeline = deployments["digits-pipeline"]
    assert [s.schedule.cron for s in pipeline.schedules] == ["* * * * *"]
    assert pipeline.work_pool_name == "ops-test"
    assert pipeline.parameters["config_path"] == str(config_path.resolve())
    assert pipeline.global_concurrency_limit is not None and pipeline.global_concurrency_limit.limit == 1
    assert "dataset:digits" in pipeline.tags
    stage = deployments["digits-model"]
    assert stage.parameters["stage"] == "model" and stage.schedules == []
    # What is not in this checkout is said, not silently dropped.
    if "collect" not in {d.parameters.get("stage") for d in deployments.values()}:
        assert "skipped collect" in done.stdout


def test_cron_scheduled_turn_completes_on_the_worker(project):
    config_path, config, _ = project
    state = ServiceState.load(config)
    deployment = _deployments(state.server.api_url)["digits-pipeline"]
    deadline = time.monotonic() + 240
    completed = []
    while time.monotonic() < deadline and not completed:
        runs = _flow_runs(state.server.api_url, deployment.id)
        failed = [r for r in runs if r.state_type and r.state_type.value in ("FAILED", "CRASHED")]
        assert not failed, f"scheduled run {failed[0].name} ended {failed[0].state_name}; see {state.worker.log}"
        completed = [r for r in runs if r.state_type and r.state_type.value == "COMPLETED"]
        time.sleep(2)
    assert completed, f"no scheduled run completed within 240 s; see {state.worker.log}"
    assert completed[0].auto_scheduled
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    async def pause():  # one scheduled turn is the point; the next tests want a quiet store
        async with PrefectClient(api=state.server.api_url) as client:
            await client.pause_deployment(deployment.id)
            for run in await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]))
            ):
                if run.state_type and run.state_type.value == "SCHEDULED":
                    await client.delete_flow_run(run.id)

    run_async(pause())
    while any(r.state_type and r.state_type.value in ("RUNNING", "PENDING") for r in _flow_runs(state.server.api_url, deployment.id)):
        time.sleep(1)  # a second turn that had already started finishes first
    from labelloop.store import Store

    store = Store(config.store_url)
    runs = store.runs(kind="pipeline")
    store.close()
    assert "completed" in set(runs["status"])
    assert store is not None


def test_artifacts_read_back_through_the_client(project):
    config_path, config, _ = project
    state = ServiceState.load(config)
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read(key):
        async with PrefectClient(api=state.server.api_url) as client:
            return await client.read_latest_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )

    summary = run_async(read("digits-turn-summary"))
    assert summary and re.search(r"# Turn \d+ of `digits`", summary[0].data)
    assert "accuracy (model vs hidden truth)" in summary[0].data
    curve = run_async(read("digits-learning-curve"))
    assert curve and "data:image/png;base64," in curve[0].data
    report = run_async(read("digits-turn-report"))
    assert report and "Turn report: digits" in report[0].data


def test_status_shows_services_runs_and_labels(project):
    config_path, _, _ = project
    done = labelloop_cli("status", "-c", str(config_path))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "prefect-server" in out and "prefect-worker" in out
    assert "digits-pipeline" in out and "Completed" in out, out
    assert "'gold': 89" in out  # label rows by kind


def test_run_goes_through_the_server_up_started(project):
    config_path, config, _ = project
    state = ServiceState.load(config)
    done = labelloop_cli("run", "-c", str(config_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"using the Prefect server started by `labelloop up`: {state.server.url}" in done.stdout
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async def manual_turns():
        async with PrefectClient(api=state.server.api_url) as client:
            runs = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["pipeline"])))
            return [r for r in runs if r.deployment_id is None and r.state_type.value == "COMPLETED"]

    assert len(run_async(manual_turns())) == 1


def test_ui_artifact_page_screenshot_is_not_blank(project):
    """The last turn's summary as a lead sees it; the PNG is kept under artifacts/ for people to look at."""
    from PIL import Image
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    config_path, config, _ = project
    state = ServiceState.load(config)

    async def latest():
        async with PrefectClient(api=state.server.api_url) as client:
            return await client.read_latest_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["digits-turn-summary"]))
            )

    artifact = run_async(latest())[0]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "prefect-ui-turn-summary.png"
    shot.unlink(missing_ok=True)
    url = f"{state.server.url}/artifacts/artifact/{artifact.latest_id}"
    flags = ["--headless", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
             "--window-size=1400,1000",
             # The UI renders after its API calls; without a virtual time budget the shot is blank.
             "--virtual-time-budget=15000"]
    done = subprocess.run(["/usr/bin/chromium", *flags, f"--screenshot={shot}", url],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    histogram = Image.open(shot).convert("L").histogram()
    dominant = max(histogram) / sum(histogram)
    # An empty UI page is ~98% background; the rendered summary (tables, text) is far less uniform.
    assert dominant < 0.95, f"{shot}: {dominant:.1%} of the pixels share one grey level (blank page?)"
    dom = subprocess.run(["/usr/bin/chromium", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert re.search(r"Turn \d+ of", dom.stdout) and "cost per accuracy point" in dom.stdout, dom.stdout[-2000:]


def test_down_leaves_no_process_behind(project):
    config_path, config, _ = project
    state = ServiceState.load(config)
    pids = [state.server.pid, state.worker.pid]
    done = labelloop_cli("down", "-c", str(config_path))
    assert done.returncode == 0, done.stderr
    assert "prefect-worker" in done.stdout and "prefect-server" in done.stdout
    assert all(group_members(pid) == [] for pid in pids)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{state.server.api_url}/health", timeout=2)
    again = labelloop_cli("down", "-c", str(config_path))
    assert "nothing was running" in again.stdout
