"""Label Studio webhooks -> Prefect events: the receiver ``labelloop up`` starts, and its registration.

The path of an answer::

    annotator submits in Label Studio
      -> Label Studio POSTs the webhook (ANNOTATION_CREATED / ANNOTATIONS_CREATED /
         ANNOTATION_UPDATED / ANNOTATIONS_DELETED) to this receiver on 127.0.0.1
      -> the receiver emits the Prefect event ``labelloop.annotations.changed``
         (resource ``labelloop.dataset.<dataset>``)
      -> the automation ``labelloop deploy`` created runs ``<dataset>-crowd-sync``
      -> the incremental sync appends the rows (idempotent: ``ls:{id}:{updated_at}`` keys).

Why the receiver throttles: every flow run of the sync deployment is a new
process on the worker (seconds of start-up), and a team submitting a few
answers a second must not queue one run per answer. The first delivery is
emitted at once (lowest latency); deliveries arriving within
``min_interval_s`` of the last event are folded into one trailing event, so a
change is never left without an event. Duplicate deliveries are harmless: the
sync reads Label Studio, not the payload, and skips rows it already holds. A
receiver that is down loses nothing either: Label Studio gives up on the
delivery, and the crowd cron (or the next delivery) syncs everything since the
sync cursor.

Deliveries must carry the header ``X-Labelloop-Secret`` (a random secret kept
in ``<data_dir>/ops/webhooks/secret``, mode 0600, set on each webhook by
:func:`register_project_webhooks`); anything else is refused with 401.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from labelloop.exceptions import LabelStudioError, ServiceError
from labelloop.ops._state import PidStateMixin
from labelloop.process import free_port, port_is_free

__all__ = [
    "ACTIONS",
    "EVENT",
    "SECRET_HEADER",
    "STUDIO_WEBHOOK_ENV",
    "Throttle",
    "WebhookReceiver",
    "make_server",
    "register_project_webhooks",
    "ensure_webhooks",
    "dataset_resource",
]

log = logging.getLogger("labelloop.webhooks")

# The Label Studio actions that change what the store should hold.
ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
EVENT = "labelloop.annotations.changed"
SECRET_HEADER = "X-Labelloop-Secret"
PATH_PREFIX = "/webhooks/label-studio/"

# Label Studio posts webhooks through `ssrf_safe_post`, which refuses loopback addresses by
# default. Ban the same reserved ranges again except 127.0.0.0/8, so the receiver on 127.0.0.1
# is reachable while private networks and cloud metadata (169.254/16) stay blocked.
_BANNED = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "233.252.0.0/24", "240.0.0.0/4", "255.255.255.255/32", "::/128", "64:ff9b::/96",
    "64:ff9b:1::/48", "100::/64", "2001:0000::/32", "2001:20::/28", "fc00::/7", "fe80::/10", "ff00::/8",
]
STUDIO_WEBHOOK_ENV = {
    "LABEL_STUDIO_USE_DEFAULT_BANNED_SUBNETS": "false",
    "LABEL_STUDIO_USER_ADDITIONAL_BANNED_SUBNETS": ",".join(_BANNED),
}


def dataset_resource(dataset: str) -> dict[str, str]:
    """The Prefect event resource of one dataset (what automations match on)."""
    return {"prefect.resource.id": f"labelloop.dataset.{dataset}", "prefect.resource.name": dataset}


# -- throttling -------------------------------------------------------------------------------


class Throttle:
    """Leading + trailing throttle: ``fire(summary)`` at once, then at most once per ``interval`` s.

    ``add(delivery)`` never blocks; what arrives while throttled is summed and
    fired once the interval has passed, so the last change always gets an event.
    """

    def __init__(self, fire: Callable[[dict[str, Any]], None], interval: float) -> None:
        self._fire = fire
        self.interval = float(interval)
        self._lock = threading.Lock()
        self._pending: dict[str, Any] | None = None
        self._last = float("-inf")
        self._timer: threading.Timer | None = None

    def add(self, delivery: dict[str, Any]) -> None:
        with self._lock:
            self._pending = _merge(self._pending, delivery)
            wait = self._last + self.interval - time.monotonic()
            if wait <= 0 and self._timer is None:
                summary, self._pending = self._pending, None
                self._last = time.monotonic()
            else:
                if self._timer is None:
                    self._timer = threading.Timer(max(wait, 0.0), self._flush)
                    self._timer.daemon = True
                    self._timer.start()
                return
        self._emit(summary)

    def _flush(self) -> None:
        with self._lock:
            summary, self._pending, self._timer = self._pending, None, None
            self._last = time.monotonic()
        if summary:
            self._emit(summary)

    def _emit(self, summary: dict[str, Any]) -> None:
        try:
            self._fire(summary)
        except Exception:  # a lost event is caught up by the cron sync; the receiver must stay up
            log.exception("emitting %s failed", EVENT)

    def close(self) -> None:
        """Fire what is pending now (used on shutdown)."""
        with self._lock:
            timer = self._timer
        if timer is not None:
            timer.cancel()
            self._flush()


def _merge(summary: dict[str, Any] | None, delivery: dict[str, Any]) -> dict[str, Any]:
    out = summary or {"deliveries": 0, "actions": {}, "projects": [], "annotations": [], "answers": 0}
    out["deliveries"] += 1
    actions = Counter(out["actions"])
    actions[delivery["action"]] += 1
    out["actions"] = dict(actions)
    out["projects"] = sorted(set(out["projects"]) | set(delivery["projects"]))
    out["annotations"] = (out["annotations"] + delivery["annotations"])[:200]  # a sample, for the event feed
    out["answers"] += delivery["answers"]
    return out


def delivery_summary(body: dict[str, Any]) -> dict[str, Any]:
    """What one Label Studio webhook body says changed (action, projects, annotation ids)."""
    action = str(body.get("action"))
    anns = body.get("annotation") if "annotation" in body else body.get("annotations")
    anns = anns if isinstance(anns, list) else [anns] if isinstance(anns, dict) else []
    ids = [a.get("id") for a in anns if isinstance(a, dict) and a.get("id") is not None]
    projects = set()
    if isinstance(body.get("project"), dict) and body["project"].get("id") is not None:
        projects.add(int(body["project"]["id"]))
    for a in anns:
        if isinstance(a, dict) and isinstance(a.get("project"), int):
            projects.add(a["project"])
    return {"action": action, "projects": sorted(projects), "annotations": ids, "answers": max(len(ids), 1)}


# -- the HTTP server --------------------------------------------------------------------------


def make_server(dataset: str, secret: str, emit: Callable[[dict[str, Any]], None], *, host: str = "127.0.0.1",
                port: int = 0, min_interval_s: float = 10.0) -> tuple[ThreadingHTTPServer, Throttle]:
    """The receiver: ``POST /webhooks/label-studio/<dataset>`` -> throttled ``emit(summary)``; ``GET /health``."""
    throttle = Throttle(emit, min_interval_s)
    expected_path = PATH_PREFIX + dataset
    counts = Counter()

    class Handler(BaseHTTPRequestHandler):
        server_version = "labelloop-webhooks"

        def log_message(self, fmt: str, *args: Any) -> None:  # one line per request, no headers (the secret)
            log.info("%s %s", self.address_string(), fmt % args)

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/health":
                self._reply(200, {"ok": True, "dataset": dataset, **counts})
            else:
                self._reply(404, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path.rstrip("/") != expected_path:
                counts["refused"] += 1
                return self._reply(404, {"error": f"expected POST {expected_path}"})
            if not hmac.compare_digest(self.headers.get(SECRET_HEADER, ""), secret):
                counts["refused"] += 1
                return self._reply(401, {"error": f"missing or wrong {SECRET_HEADER} header"})
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                counts["refused"] += 1
                return self._reply(400, {"error": "body is not JSON"})
            if not isinstance(body, dict) or body.get("action") not in ACTIONS:
                counts["ignored"] += 1
                return self._reply(202, {"ignored": str(body.get("action") if isinstance(body, dict) else None)})
            counts["accepted"] += 1
            throttle.add(delivery_summary(body))  # answer fast: Label Studio waits at most 1 s
            self._reply(200, {"accepted": True})

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server, throttle


def prefect_emitter(dataset: str) -> Callable[[dict[str, Any]], None]:
    """``emit(summary)`` sending ``labelloop.annotations.changed`` to the Prefect API of this process."""
    from prefect.events import emit_event

    def emit(summary: dict[str, Any]) -> None:
        related = [{"prefect.resource.id": f"label-studio.project.{p}", "prefect.resource.role": "project"}
                   for p in summary["projects"][:20]]
        emit_event(event=EVENT, resource=dataset_resource(dataset), related=related, payload=summary)
        log.info("emitted %s: %d deliveries, %d answers", EVENT, summary["deliveries"], summary["answers"])

    return emit


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m labelloop.ops.webhooks", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--secret-file", type=Path, required=True)
    parser.add_argument("--min-interval", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret = args.secret_file.read_text().strip()
    server, throttle = make_server(args.dataset, secret, prefect_emitter(args.dataset), host=args.host,
                                   port=args.port, min_interval_s=args.min_interval)
    import signal

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    log.info("receiving Label Studio webhooks on http://%s:%d%s%s", args.host, args.port, PATH_PREFIX, args.dataset)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        throttle.close()
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=5)  # send what the throttle fired last before exiting


# -- the service `labelloop up` starts ------------------------------------------------------


@dataclass
class WebhookReceiver(PidStateMixin):
    """The receiver process of one project.

    Parameters
    ----------
    home : Path
        ``<data_dir>/ops/webhooks``: its log and secret.
    dataset : str
    api_url : str
        The Prefect API events go to.
    min_interval_s : float, default=10
        At most one event per this many seconds (the first at once, the rest folded; see the module).
    """

    home: Path
    dataset: str
    api_url: str
    host: str = "127.0.0.1"
    port: int | None = None
    min_interval_s: float = 10.0
    project_dir: str | None = None

    @property
    def url(self) -> str:
        """Where Label Studio posts."""
        return f"http://{self.host}:{self.port}{PATH_PREFIX}{self.dataset}"

    @property
    def secret_path(self) -> Path:
        return self.home / "secret"

    def secret(self) -> str:
        """The shared secret (made on first use, mode 0600; never logged)."""
        if not self.secret_path.is_file():
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.secret_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        return self.secret_path.read_text().strip()

    @property
    def health_url(self) -> str | None:
        return f"http://{self.host}:{self.port}/health" if self.port is not None else None

    def start(self, timeout: float = 60.0) -> "WebhookReceiver":
        """Start unless running; the same port as before when it is free (registered webhooks stay valid)."""
        from labelloop.ops.prefect_server import prefect_env

        if self.running():
            return self
        self.stop()
        if self.port is None or not port_is_free(self.port, self.host):
            self.port = free_port(self.host)
        self.secret()
        log_path = self.home / "receiver.log"
        env = prefect_env(self.home / "prefect", api_url=self.api_url, extra=self.extra_env,
                          project_dir=self.project_dir)
        argv = [sys.executable, "-m", "labelloop.ops.webhooks", "--dataset", self.dataset, "--port", str(self.port),
                "--host", self.host, "--secret-file", str(self.secret_path), "--min-interval", str(self.min_interval_s)]
        self._launch(f"webhook receiver on {self.host}:{self.port}", argv, env, log_path,
                     cwd=Path(self.project_dir) if self.project_dir else None, timeout=timeout)
        return self


# -- registration in Label Studio -------------------------------------------------------------


def ensure_webhooks(client, project_ids: list[int], url: str, secret: str) -> int:
    """One active webhook per project posting :data:`ACTIONS` to ``url``; returns how many were created or fixed.

    A webhook of ours is recognised by its path (``/webhooks/label-studio/<dataset>``), so one left
    pointing at an old port or secret is updated in place, never doubled.
    """
    path = url[url.index(PATH_PREFIX):]
    changed = 0
    for project in project_ids:
        hooks = client.request("GET", "/api/webhooks/", params={"project": project}) or []
        ours = [h for h in hooks if h.get("project") == project and str(h.get("url", "")).endswith(path)]
        body = {"project": project, "url": url, "send_payload": True, "send_for_all_actions": False,
                "headers": {SECRET_HEADER: secret}, "is_active": True, "actions": list(ACTIONS)}
        if not ours:
            client.request("POST", "/api/webhooks/", json=body)
            changed += 1
            continue
        hook = ours[0]
        same = (hook.get("url") == url and hook.get("is_active") and sorted(hook.get("actions") or []) == sorted(ACTIONS)
                and (hook.get("headers") or {}).get(SECRET_HEADER) == secret)
        if not same:
            client.request("PATCH", f"/api/webhooks/{hook['id']}/", json=body)
            changed += 1
        for extra in ours[1:]:  # doubled by hand or by an old version: one delivery per answer is enough
            client.request("DELETE", f"/api/webhooks/{extra['id']}/")
    return changed


def register_project_webhooks(config, client) -> int:
    """Point every labelloop project of the dataset at the receiver `labelloop up` started; 0 without one."""
    from labelloop.ops.services import ServiceState
    from labelloop.studio.projects import find_projects

    receiver = ServiceState.load(config).webhooks
    if receiver is None or receiver.pid is None or not config.schedule.webhooks:
        return 0
    projects = [r.id for r in find_projects(client, config.dataset.name)]
    try:
        return ensure_webhooks(client, projects, receiver.url, receiver.secret())
    except LabelStudioError as exc:
        raise LabelStudioError(f"registering the webhook receiver {receiver.url} in Label Studio: {exc}") from None


if __name__ == "__main__":  # pragma: no cover - the receiver process
    try:
        _main()
    except ServiceError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
