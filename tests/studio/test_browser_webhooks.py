"""A person in a real browser drives a turn: Label Studio webhook -> receiver -> Prefect event -> automation -> sync.

One module-scoped project runs everything `labelloop up` starts (Prefect server and worker,
Label Studio from the session's migrated template, the webhook receiver) and `labelloop deploy`
registers (deployments and the automations). A headless Chromium, driven by Selenium, logs in
as an annotator account labelloop created, labels three tasks with the choice hotkeys and
submits; nothing but the webhook path syncs (the crowd-sync deployment has no cron until the
last test), so exactly those three rows reaching the store proves the path.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml

from labelloop.config import load_config
from labelloop.ops import ServiceState
from labelloop.ops.webhooks import SECRET_HEADER, STUDIO_WEBHOOK_ENV
from labelloop.process import stop_pid, wait_until
from labelloop.store import ItemIn, Store, TaskIn
from labelloop.studio.bots import bot_email
from labelloop.studio.server import StudioServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DATASET = "hooks"
CLASSES = ["sports", "politics", "science", "music"]
ANNOTATOR = "alice"  # an account labelloop made (invite signup + own token), password in bots.json
# Quick loops so runs start seconds after they are due; Label Studio may post to 127.0.0.1.
FAST = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5", "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5", **STUDIO_WEBHOOK_ENV}


def labelloop_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, **FAST, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "labelloop", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


async def _runs(api_url: str, deployment: str) -> list:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    async with PrefectClient(api=api_url) as client:
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])))


def runs_of(api_url: str, deployment: str) -> list:
    return asyncio.run(_runs(api_url, deployment))


async def _run_deployment(api_url: str, name: str, timeout: float):
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api=api_url) as client:
        deployment = await client.read_deployment_by_name(name)
        run = await client.create_flow_run_from_deployment(deployment.id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = await client.read_flow_run(run.id)
            if run.state and run.state.is_final():
                return run
            await asyncio.sleep(1)
    raise AssertionError(f"{name}: flow run {run.id} not finished within {timeout:.0f} s")


def rows_of(config, who: str):
    store = Store(config.store_url)
    try:
        rows = store.labels(DATASET, kinds=["annotator"], decode=False)
    finally:
        store.close()
    return rows[rows["source"] == who].sort_values("id")


@pytest.fixture(scope="module")
def project(studio_template, tmp_path_factory):
    root = tmp_path_factory.mktemp("hooks")
    data = root / "data"
    StudioServer.copy_data(studio_template, data / "studio")  # migrated, admin token and bot accounts inside
    shutil.copy2(studio_template / "bots.json", data / "studio" / "bots.json")
    config_path = root / "labelloop.yaml"
    config_path.write_text(yaml.safe_dump({
        "dataset": {"name": DATASET, "modality": "text", "classes": CLASSES},
        "data_dir": str(data),
        "crowd": {"enabled": True, "annotators": [bot_email(ANNOTATOR)], "overlap": 1, "initial_overlap": 1,
                  "gold_rate": 0.0},
        # a turn only after 1000 answers: the automation exists, this module never reaches it
        "schedule": {"work_pool": "hooks-test", "webhook_min_interval_s": 1, "turn_after_answers": 1000},
    }))
    config = load_config(config_path)
    store = Store(config.store_url).create()
    texts = ["The match went to extra time", "Parliament passed the budget", "A new exoplanet was found"]
    ids = store.add_items(DATASET, [ItemIn(modality="text", text=t) for t in texts]).ids
    store.add_tasks([TaskIn(item_id=i, queue="crowd") for i in ids])
    store.close()
    try:
        done = labelloop_cli("up", "-c", str(config_path))
        assert done.returncode == 0, done.stdout + done.stderr
        deployed = labelloop_cli("deploy", "-c", str(config_path))
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        state = ServiceState.load(config)
        # the crowd stage pushes the queue into the annotator's own project (and points its webhook at us)
        pushed = _run_deployment_sync(state.server.api_url, f"stage/{DATASET}-crowd", 300)
        assert pushed.state.is_completed(), pushed.state
        yield SimpleNamespace(path=config_path, config=config, state=state, ids=ids, up=done.stdout,
                              deploy=deployed.stdout)
    finally:
        state = ServiceState.load(config)
        labelloop_cli("down", "-c", str(config_path))
        for service in (state.server, state.worker, state.webhooks):  # never leave a process behind
            stop_pid(service and service.pid, sig=signal.SIGKILL)
        stop_pid((state.studio or {}).get("pid"), sig=signal.SIGKILL)


def _run_deployment_sync(api_url: str, name: str, timeout: float):
    return asyncio.run(_run_deployment(api_url, name, timeout))


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from labelloop.scrape.render import BROWSER_FLAGS

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/lib/chromium/chromium"
    for flag in (*BROWSER_FLAGS, "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _studio(project):
    from labelloop.tasks.crowd import connect

    return connect(project.config)


# Label Studio re-renders its panels while a task loads: an element found a moment ago may be gone; look again.
def _redrawn():
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    return (StaleElementReferenceException, NoSuchElementException)


def _radios(driver):
    from selenium.webdriver.common.by import By

    return {r.get_attribute("name"): r for r in driver.find_elements(By.CSS_SELECTOR, "input[type=radio]")
            if r.get_attribute("name") in CLASSES}


def _shown_text(driver, texts):
    from selenium.webdriver.common.by import By

    body = driver.find_element(By.TAG_NAME, "body").text
    shown = [t for t in texts if t in body]
    return shown[0] if len(shown) == 1 else None


def _press(driver, *keys):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def _submit(driver):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()


def test_up_started_the_receiver_and_deploy_the_automation(project):
    receiver = project.state.webhooks
    assert receiver is not None and receiver.running()
    assert "Webhook receiver" in project.up and receiver.url in project.up
    assert f"automation: {DATASET}: sync new answers" in project.deploy
    assert f"automation: {DATASET}: turn after 1000 answers" in project.deploy
    with _studio(project) as client:
        from labelloop.studio.projects import find_projects

        ref = next(r for r in find_projects(client, DATASET, "crowd") if r.annotator == bot_email(ANNOTATOR))
        hooks = client.request("GET", "/api/webhooks/", params={"project": ref.id})
    assert len(hooks) == 1 and hooks[0]["url"] == receiver.url and hooks[0]["is_active"]
    assert set(hooks[0]["actions"]) == {"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED",
                                        "ANNOTATIONS_DELETED"}


def test_three_answers_in_the_browser_become_exactly_three_rows(project, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from labelloop.studio.projects import find_projects

    secrets_ = json.loads((project.config.data_path / "studio" / "bots.json").read_text())
    with _studio(project) as client:
        ref = next(r for r in find_projects(client, DATASET, "crowd") if r.annotator == bot_email(ANNOTATOR))
        tasks = client.tasks(ref.id)
    texts = [t["data"]["text"] for t in tasks]
    assert len(tasks) == 3 and not any(t["annotations"] for t in tasks)
    url = project.state.studio["url"]
    browser.get(f"{url}/user/login/")
    browser.find_element(By.NAME, "email").send_keys(bot_email(ANNOTATOR))
    browser.find_element(By.NAME, "password").send_keys(secrets_[ANNOTATOR]["password"] + Keys.ENTER)
    WebDriverWait(browser, 60, poll_frequency=0.05, ignored_exceptions=_redrawn()).until(lambda d: "/user/login" not in d.current_url)
    browser.get(f"{url}/projects/{ref.id}/data?labeling=1")  # "Label all tasks": one task after the other
    chosen: dict[str, str] = {}
    for n in range(3):
        text = WebDriverWait(browser, 120, poll_frequency=0.05, ignored_exceptions=_redrawn()).until(
            lambda d: len(_radios(d)) == 4 and (_shown_text(d, texts) not in chosen) and _shown_text(d, texts))
        label = CLASSES[(n + 1) % len(CLASSES)]
        _press(browser, str(CLASSES.index(label) + 1))  # the choice's hotkey, as a person types it
        WebDriverWait(browser, 20, poll_frequency=0.05, ignored_exceptions=_redrawn()).until(lambda d: _radios(d)[label].is_selected())
        _submit(browser)  # Ctrl+Enter
        chosen[text] = label
        WebDriverWait(browser, 60, poll_frequency=0.05, ignored_exceptions=_redrawn()).until(lambda d: _shown_text(d, texts) != text)
    project.chosen = chosen

    wait_until(lambda: len(rows_of(project.config, bot_email(ANNOTATOR))) >= 3, 240, interval=1.0, what="three rows from the webhook path")
    time.sleep(3)  # any further (duplicate) sync would land now
    rows = rows_of(project.config, bot_email(ANNOTATOR))
    assert len(rows) == 3
    store = Store(project.config.store_url)
    items = store.items(DATASET).set_index("id")["text"]
    store.close()
    assert {items[i]: CLASSES[label] for i, label in zip(rows["item_id"], rows["label"])} == chosen
    runs = runs_of(project.state.server.api_url, f"{DATASET}-crowd-sync")
    assert runs, "no crowd-sync run: the rows did not come through the automation"
    assert all(r.created_by is not None and r.created_by.type == "AUTOMATION" for r in runs)
    health = httpx.get(project.state.webhooks.url.split("/webhooks")[0] + "/health").json()
    assert health["accepted"] >= 3


def test_an_edit_in_the_browser_appends_one_row(project, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    from labelloop.studio.projects import find_projects

    before = rows_of(project.config, bot_email(ANNOTATOR))
    with _studio(project) as client:
        ref = next(r for r in find_projects(client, DATASET, "crowd") if r.annotator == bot_email(ANNOTATOR))
        task = client.tasks(ref.id)[0]
    old = task["annotations"][0]["result"][0]["value"]["choices"][0]
    new = next(c for c in CLASSES if c != old)
    browser.get(f"{project.state.studio['url']}/projects/{ref.id}/data?task={task['id']}")
    WebDriverWait(browser, 120, poll_frequency=0.05, ignored_exceptions=_redrawn()).until(lambda d: len(_radios(d)) == 4 and _radios(d)[old].is_selected())
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    main = browser.find_element(By.CSS_SELECTOR, ".lsf-main-view")
    ActionChains(browser).move_to_element_with_offset(main, 0, 100).click().perform()  # focus the labeling area
    _press(browser, str(CLASSES.index(new) + 1))
    WebDriverWait(browser, 20, poll_frequency=0.05, ignored_exceptions=_redrawn()).until(lambda d: _radios(d)[new].is_selected())
    _submit(browser)  # Ctrl+Enter = Update
    wait_until(lambda: len(rows_of(project.config, bot_email(ANNOTATOR))) > len(before), 240, interval=1.0, what="the edit's row")
    time.sleep(3)
    rows = rows_of(project.config, bot_email(ANNOTATOR))
    assert len(rows) == len(before) + 1
    added = rows.iloc[-1]
    assert int(added["item_id"]) == int(task["data"]["labelloop_item"]) and CLASSES[int(added["label"])] == new
    assert rows.iloc[:-1]["id"].tolist() == before["id"].tolist()  # append-only: the old opinion stays


def test_duplicate_deliveries_double_nothing(project):
    receiver = project.state.webhooks
    before = rows_of(project.config, bot_email(ANNOTATOR))
    api = project.state.server.api_url
    done_before = sum(r.state.is_final() for r in runs_of(api, f"{DATASET}-crowd-sync"))
    with _studio(project) as client:
        from labelloop.studio.projects import find_projects

        ref = next(r for r in find_projects(client, DATASET, "crowd") if r.annotator == bot_email(ANNOTATOR))
        ann = client.tasks(ref.id)[0]["annotations"][0]
    body = {"action": "ANNOTATION_UPDATED", "annotation": ann, "project": {"id": ref.id}}
    for _ in range(2):  # Label Studio retried the same delivery
        reply = httpx.post(receiver.url, json=body, headers={SECRET_HEADER: receiver.secret()})
        assert reply.status_code == 200
    wait_until(lambda: sum(r.state.is_final() for r in runs_of(api, f"{DATASET}-crowd-sync")) > done_before, 240, interval=1.0,
             what="a sync run for the repeated delivery")
    wait_until(lambda: all(r.state.is_final() for r in runs_of(api, f"{DATASET}-crowd-sync")), 240, interval=1.0, what="syncs done")
    assert rows_of(project.config, bot_email(ANNOTATOR))["id"].tolist() == before["id"].tolist()


def test_receiver_down_the_cron_sync_catches_up(project):
    from labelloop.studio.client import StudioClient
    from labelloop.studio.projects import find_projects

    state = ServiceState.load(project.config)
    assert state.webhooks.stop()  # the receiver died
    before = rows_of(project.config, bot_email(ANNOTATOR))
    token = json.loads((project.config.data_path / "studio" / "bots.json").read_text())[ANNOTATOR]["token"]
    with _studio(project) as admin:
        ref = next(r for r in find_projects(admin, DATASET, "crowd") if r.annotator == bot_email(ANNOTATOR))
        task = admin.tasks(ref.id)[1]
    ann = task["annotations"][0]
    old = ann["result"][0]["value"]["choices"][0]
    new = next(c for c in CLASSES if c != old)
    with StudioClient(project.state.studio["url"], token) as own:  # the annotator changes their mind
        own.update_annotation(ann["id"], [{"from_name": "label", "to_name": "text", "type": "choices",
                                          "value": {"choices": [new]}}])
    # The crowd-sync cron (every minute) is what catches up when no delivery arrives.
    config = yaml.safe_load(project.path.read_text())
    config["schedule"]["stages"] = {"crowd-sync": "* * * * *"}
    project.path.write_text(yaml.safe_dump(config))
    deployed = labelloop_cli("deploy", "-c", str(project.path))
    assert deployed.returncode == 0, deployed.stderr
    wait_until(lambda: len(rows_of(project.config, bot_email(ANNOTATOR))) > len(before), 240, interval=1.0, what="the cron sync's row")
    rows = rows_of(project.config, bot_email(ANNOTATOR))
    assert len(rows) == len(before) + 1 and CLASSES[int(rows.iloc[-1]["label"])] == new
    # The row is written before the cron's flow run reports Completed: wait for that state, then check who ran it.
    wait_until(lambda: any(r.created_by is None or r.created_by.type != "AUTOMATION"
                         for r in runs_of(project.state.server.api_url, f"{DATASET}-crowd-sync")
                         if r.state.is_completed()), 120, interval=1.0, what="a completed crowd-sync run not started by an automation")
    again = labelloop_cli("up", "-c", str(project.path))  # `up` brings the receiver back on the same port
    assert again.returncode == 0 and "webhook-receiver" in again.stdout
    back = ServiceState.load(project.config).webhooks
    assert back.running() and back.url == state.webhooks.url
