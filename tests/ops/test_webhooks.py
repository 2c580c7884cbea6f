"""The webhook receiver on a real 127.0.0.1 socket: secret, paths, throttling, and its process (pid-managed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from labelloop.ops.webhooks import ACTIONS, SECRET_HEADER, Throttle, WebhookReceiver, delivery_summary, make_server
from labelloop.process import group_members, wait_until

SECRET = "s3cret-for-tests"


@contextmanager
def serving(min_interval_s: float) -> Iterator[tuple[str, list[dict]]]:
    """The receiver on a free 127.0.0.1 port in a thread: its URL and the events it fired; shut down on exit."""
    fired: list[dict] = []
    server, throttle = make_server("digits", SECRET, fired.append, port=0, min_interval_s=min_interval_s)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fired
    finally:
        server.shutdown()
        server.server_close()
        throttle.close()


@pytest.fixture
def receiver():
    with serving(min_interval_s=0.5) as running:
        yield running


def _body(action="ANNOTATION_CREATED", ann_id=7, project=3):
    return {"action": action, "annotation": {"id": ann_id, "project": project, "task": 11},
            "project": {"id": project, "title": "digits crowd alice"}}


def test_refuses_without_the_secret_and_on_other_paths(receiver):
    url, fired = receiver
    path = f"{url}/webhooks/label-studio/digits"
    assert httpx.post(path, json=_body()).status_code == 401
    assert httpx.post(path, json=_body(), headers={SECRET_HEADER: "wrong"}).status_code == 401
    other = httpx.post(f"{url}/webhooks/label-studio/other-dataset", json=_body(), headers={SECRET_HEADER: SECRET})
    assert other.status_code == 404 and "digits" in other.json()["error"]
    bad = httpx.post(path, content=b"{not json", headers={SECRET_HEADER: SECRET, "Content-Type": "application/json"})
    assert bad.status_code == 400
    time.sleep(0.6)
    assert fired == []  # nothing refused ever becomes an event


def test_other_actions_are_ignored_not_emitted(receiver):
    url, fired = receiver
    done = httpx.post(f"{url}/webhooks/label-studio/digits", json={"action": "PROJECT_UPDATED"},
                      headers={SECRET_HEADER: SECRET})
    assert done.status_code == 202 and done.json() == {"ignored": "PROJECT_UPDATED"}
    time.sleep(0.6)
    assert fired == []


@pytest.mark.parametrize("action", ACTIONS)
def test_every_annotation_action_fires_at_once(receiver, action):
    url, fired = receiver
    body = _body(action)
    if action in ("ANNOTATIONS_CREATED", "ANNOTATIONS_DELETED"):  # these carry lists
        body = {"action": action, ("annotation" if action == "ANNOTATIONS_CREATED" else "annotations"):
                [{"id": 1, "project": 3}, {"id": 2, "project": 3}], "project": {"id": 3}}
    done = httpx.post(f"{url}/webhooks/label-studio/digits", json=body, headers={SECRET_HEADER: SECRET})
    assert done.status_code == 200
    wait_until(lambda: len(fired) == 1, timeout=10.0, interval=0.02, what="one event")
    assert fired[0]["actions"] == {action: 1} and fired[0]["projects"] == [3]
    health = httpx.get(f"{url}/health").json()
    assert health["accepted"] == 1 and health["dataset"] == "digits"


def test_a_burst_is_folded_into_one_trailing_event():
    # an interval far longer than the burst: the trailing event is released by close(), not by a clock
    with serving(min_interval_s=3600) as (url, fired):
        path = f"{url}/webhooks/label-studio/digits"
        for ann in range(1, 6):  # the first fires at once; the other four (and a duplicate) wait
            assert httpx.post(path, json=_body(ann_id=ann), headers={SECRET_HEADER: SECRET}).status_code == 200
        httpx.post(path, json=_body(ann_id=5), headers={SECRET_HEADER: SECRET})  # Label Studio retried a delivery
        assert len(fired) == 1 and fired[0]["deliveries"] == 1 and fired[0]["annotations"] == [1]
    assert len(fired) == 2, fired
    assert fired[1]["deliveries"] == 5 and fired[1]["annotations"] == [2, 3, 4, 5, 5]


def test_throttle_fires_pending_on_close_and_survives_a_failing_emit():
    calls = []

    def flaky(summary):
        calls.append(summary)
        if len(calls) == 1:
            raise RuntimeError("Prefect API down")

    throttle = Throttle(flaky, interval=60)
    throttle.add(delivery_summary(_body(ann_id=1)))  # fires, raises, is logged: the receiver stays up
    throttle.add(delivery_summary(_body(ann_id=2)))  # pending for a minute
    assert len(calls) == 1
    throttle.close()
    assert len(calls) == 2 and calls[1]["annotations"] == [2]


def test_receiver_process_starts_answers_and_stops_by_pid(tmp_path):
    receiver = WebhookReceiver(home=tmp_path / "webhooks", dataset="digits", api_url="http://127.0.0.1:9/api",
                               min_interval_s=0.2)
    try:
        receiver.start()
        assert receiver.running()
        secret = receiver.secret()
        assert (receiver.secret_path.stat().st_mode & 0o777) == 0o600
        assert httpx.post(receiver.url, json=_body()).status_code == 401
        assert httpx.post(receiver.url, json=_body(), headers={SECRET_HEADER: secret}).status_code == 200
        state = receiver.as_state()
        again = WebhookReceiver.from_state(state)
        assert again.running() and again.url == receiver.url
        again.start()  # idempotent: the same process
        assert again.pid == receiver.pid
    finally:
        pid = receiver.pid
        receiver.stop()
    assert group_members(pid) == []
    assert secret not in (tmp_path / "webhooks" / "receiver.log").read_text()
