"""A small Label Studio REST client: personal access tokens, retries with backoff, clear errors.

Why not only ``label_studio_sdk``: every call labelloop makes must (1) retry a
down or slow server with backoff and then raise :class:`LabelStudioError`
naming the URL, and (2) never put a token in a message, a log line or a
``repr``. The SDK's generated client retries but raises its own ``ApiError``
without the URL; wrapping each of its calls would be larger than the dozen
endpoints used here. The SDK accepts the same tokens
(``LabelStudio(base_url=client.url, api_key=client.token)``) for anything else.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import httpx

from labelloop.exceptions import LabelStudioError

__all__ = ["StudioClient", "create_personal_token", "signup_with_invite"]

log = logging.getLogger("labelloop.studio")

# Status codes worth retrying: the server is starting, overloaded, or behind a proxy that gave up.
_RETRY_STATUS = {429, 502, 503, 504}


def _jwt_exp(token: str) -> float | None:
    """Expiry (epoch seconds) of a JWT without verifying it; ``None`` for legacy tokens."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return float(payload.get("exp", 0)) or None


class StudioClient:
    """Talks to one Label Studio server as one user.

    Parameters
    ----------
    url : str
        Base URL, e.g. ``http://127.0.0.1:8080``.
    token : str
        A personal access token (JWT refresh token, exchanged for short-lived
        access tokens here) or a legacy token. Never logged or shown.
    timeout : float, default=30
        Seconds per request before it counts as slow.
    retries : int, default=4
        Extra attempts after a connection error, timeout or 5xx.
    backoff : float, default=0.5
        First wait in seconds; doubles after each failed attempt.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 30.0, retries: int = 4, backoff: float = 0.5):
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._legacy = _jwt_exp(token) is None
        self._access: str | None = None
        self._access_exp = 0.0
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def __repr__(self) -> str:  # the token stays out of reprs, tracebacks and logs
        return f"StudioClient(url={self.url!r})"

    @property
    def token(self) -> str:
        """The personal token this client was made with (for the SDK; never log it)."""
        return self._token

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "StudioClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- auth -------------------------------------------------------------------------------
    def _auth_header(self) -> dict[str, str]:
        if self._legacy:
            return {"Authorization": f"Token {self._token}"}
        if self._access is None or time.time() > self._access_exp - 30:
            body = self._send("POST", "/api/token/refresh/", json={"refresh": self._token}, auth=False)
            self._access = body["access"]
            self._access_exp = _jwt_exp(self._access) or time.time() + 240
        return {"Authorization": f"Bearer {self._access}"}

    # -- requests ---------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; JSON body back (``None`` for empty answers)."""
        return self._send(method, path, **kwargs)

    def _send(self, method: str, path: str, *, auth: bool = True, missing_ok: bool = False, **kwargs: Any) -> Any:
        where = f"{self.url}{path}"
        delay = self.backoff
        last: str = ""
        for attempt in range(self.retries + 1):
            try:
                headers = self._auth_header() if auth else {}
                response = self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TimeoutException:
                last = f"no answer within {self.timeout:g} s (server slow)"
            except httpx.TransportError as exc:
                last = f"cannot connect ({type(exc).__name__}); is the server running?"
            else:
                if response.status_code == 401 and auth and not self._legacy and attempt == 0:
                    self._access = None  # access token expired early: refresh once and retry
                    continue
                if response.status_code in _RETRY_STATUS or response.status_code >= 500:
                    last = f"HTTP {response.status_code}"
                else:
                    if response.status_code == 404 and missing_ok:
                        return None
                    if response.status_code >= 400:
                        raise LabelStudioError(
                            f"Label Studio {method} {where} refused: HTTP {response.status_code} "
                            f"{_detail(response)}"
                        )
                    if not response.content:
                        return None
                    try:
                        return response.json()
                    except ValueError:
                        raise LabelStudioError(
                            f"Label Studio {method} {where}: expected JSON, got "
                            f"{response.headers.get('content-type', 'no content type')}"
                        ) from None
            if attempt < self.retries:
                log.warning("Label Studio %s %s: %s; retry %d/%d in %.1f s", method, where, last,
                            attempt + 1, self.retries, delay)
                time.sleep(delay)
                delay *= 2
        raise LabelStudioError(
            f"Label Studio at {self.url} failed {method} {path} after {self.retries + 1} attempts: {last}"
        )

    # -- the endpoints labelloop uses --------------------------------------------------------
    def server_time(self) -> "datetime":
        """Label Studio's clock (its HTTP ``Date`` header, whole seconds); ours when it sends none."""
        from datetime import datetime, timezone
        from email.utils import parsedate_to_datetime

        try:
            response = self._http.get("/health", timeout=self.timeout)
            return parsedate_to_datetime(response.headers["date"]).astimezone(timezone.utc)
        except (httpx.HTTPError, KeyError, TypeError, ValueError):  # unreachable: the next call raises clearly
            return datetime.now(timezone.utc)

    def whoami(self) -> dict:
        return self.request("GET", "/api/current-user/whoami")

    def users(self) -> list[dict]:
        return self.request("GET", "/api/users/")

    def invite_url(self) -> str:
        """The organisation's signup link (relative), for creating users who can log in."""
        return self.request("GET", "/api/invite")["invite_url"]

    def projects(self) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            body = self.request("GET", "/api/projects/", params={"page": page, "page_size": 100})
            out.extend(body["results"])
            if not body.get("next"):
                return out
            page += 1

    def create_project(self, **fields: Any) -> dict:
        return self.request("POST", "/api/projects/", json=fields)

    def update_project(self, project_id: int, **fields: Any) -> dict:
        return self.request("PATCH", f"/api/projects/{project_id}/", json=fields)

    def import_tasks(self, project_id: int, tasks: list[dict]) -> list[int]:
        body = self.request("POST", f"/api/projects/{project_id}/import",
                            params={"return_task_ids": "true"}, json=tasks)
        return list(body.get("task_ids") or [])

    def export(self, project_id: int, ids: list[int] | None = None) -> list[dict]:
        """Every task of a project with its annotations (one request); only ``ids`` when given."""
        params: dict[str, Any] = {"exportType": "JSON", "download_all_tasks": "true"}
        if ids is not None:
            if not ids:
                return []
            params["ids[]"] = [int(i) for i in ids]
        for attempt in range(self.retries + 1):
            body = self.request("GET", f"/api/projects/{project_id}/export", params=params)
            if body is not None:
                return body
            # Label Studio now and then answers an export with an empty 200 while another export of the
            # same project runs (two syncs at once): ask again rather than read it as "no tasks".
            time.sleep(self.backoff * (attempt + 1))
        raise LabelStudioError(f"Label Studio at {self.url}: the export of project {project_id} came back empty "
                               f"{self.retries + 1} times")

    def tasks(self, project_id: int, page_size: int = 1000) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            try:
                body = self.request("GET", "/api/tasks/", params={
                    "project": project_id, "page": page, "page_size": page_size, "fields": "all"})
            except LabelStudioError as exc:
                if "HTTP 404" in str(exc) and page > 1:  # past the last page
                    return out
                raise
            out.extend(body["tasks"])
            if len(out) >= body.get("total", 0) or not body["tasks"]:
                return out
            page += 1

    def changed_task_ids(self, project_id: int, since: str | None = None, page_size: int = 5000) -> list[int]:
        """Ids of the tasks whose ``updated_at`` is after ``since`` (Label Studio's clock), oldest id first.

        Label Studio stamps a task's ``updated_at`` whenever one of its
        annotations is created, edited or deleted through the API or the UI,
        so these are exactly the tasks an incremental sync must read.
        ``since`` is ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; ``None`` gives every task.
        Only ids are asked for: the data manager's full task fields cost ~3x
        the export serializer per task.
        """
        query: dict[str, Any] = {"ordering": ["tasks:id"]}
        if since is not None:
            query["filters"] = {"conjunction": "and", "items": [
                {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": since}]}
        out: list[int] = []
        page = 1
        while True:
            body = self.request("GET", "/api/tasks/", missing_ok=page > 1, params={
                "project": project_id, "page": page, "page_size": page_size, "include": "id",
                "resolve_uri": "false", "query": json.dumps(query)})
            if body is None:  # past the last page
                return out
            out.extend(int(t["id"]) for t in body["tasks"])
            if len(body["tasks"]) < page_size or len(out) >= body.get("total", 0):
                return out
            page += 1

    def changed_tasks(self, project_id: int, since: str | None = None, batch: int = 500) -> list[dict]:
        """The tasks :meth:`changed_task_ids` names, with their annotations (export format)."""
        ids = self.changed_task_ids(project_id, since)
        out: list[dict] = []
        for start in range(0, len(ids), batch):
            out.extend(self.export(project_id, ids[start:start + batch]))
        return out

    def last_updated(self, project_id: int) -> str | None:
        """The newest task ``updated_at`` of a project (``None`` when it has no task)."""
        query = {"ordering": ["-tasks:updated_at"]}
        body = self.request("GET", "/api/tasks/", params={
            "project": project_id, "page": 1, "page_size": 1, "resolve_uri": "false",
            "include": "id,updated_at", "query": json.dumps(query)})
        tasks = body.get("tasks") or []
        return tasks[0].get("updated_at") if tasks else None

    def annotation(self, annotation_id: int) -> dict | None:
        """One annotation, ``None`` when Label Studio has no such annotation (deleted)."""
        return self.request("GET", f"/api/annotations/{annotation_id}/", missing_ok=True)

    def local_storages(self, project_id: int) -> list[dict]:
        return self.request("GET", "/api/storages/localfiles/", params={"project": project_id}) or []

    def create_local_storage(self, project_id: int, path: str, title: str = "labelloop files") -> dict:
        """A local-files import storage: Label Studio serves files under ``path`` to the project's members."""
        return self.request("POST", "/api/storages/localfiles/", json={
            "project": project_id, "path": path, "title": title, "use_blob_urls": False})

    def create_annotation(self, task_id: int, result: list[dict], **fields: Any) -> dict:
        return self.request("POST", f"/api/tasks/{task_id}/annotations/", json={"result": result, **fields})

    def update_annotation(self, annotation_id: int, result: list[dict]) -> dict:
        return self.request("PATCH", f"/api/annotations/{annotation_id}/", json={"result": result})

    def delete_annotation(self, annotation_id: int) -> None:
        self.request("DELETE", f"/api/annotations/{annotation_id}/")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"({response.headers.get('content-type', 'no content type')} body)"
    if isinstance(body, dict):
        detail = body.get("validation_errors") or body.get("detail") or body
        return json.dumps(detail)[:300]
    return json.dumps(body)[:300]


def _session_login(url: str, email: str, password: str, timeout: float) -> httpx.Client:
    http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
    try:
        http.get("/user/login/")
        http.post("/user/login/", headers={"Referer": f"{url}/user/login/"}, data={
            "email": email, "password": password, "csrfmiddlewaretoken": http.cookies.get("csrftoken", "")})
        me = http.get("/api/current-user/whoami")
    except httpx.TransportError as exc:
        http.close()
        raise LabelStudioError(f"Label Studio at {url}: cannot log in ({type(exc).__name__}); is it running?") from None
    if me.status_code != 200:
        http.close()
        raise LabelStudioError(f"Label Studio at {url}: login as {email} failed (wrong email or password)")
    return http


def create_personal_token(url: str, email: str, password: str, *, timeout: float = 30.0) -> str:
    """Log in as a user and create their personal access token (one per user).

    Raises :class:`LabelStudioError` when the user already holds one: Label
    Studio shows a token only once, so the caller must have kept it.
    """
    http = _session_login(url, email, password, timeout)
    try:
        response = http.post("/api/token/", headers={
            "X-CSRFToken": http.cookies.get("csrftoken", ""), "Referer": f"{url}/"})
    finally:
        http.close()
    if response.status_code == 409:
        raise LabelStudioError(
            f"Label Studio at {url}: user {email} already has a personal access token; pass it "
            "(env LABELLOOP_LS_TOKEN) or revoke it under Account & Settings and retry")
    if response.status_code != 201:
        raise LabelStudioError(f"Label Studio at {url}: creating a token for {email} failed: "
                               f"HTTP {response.status_code} {_detail(response)}")
    return response.json()["token"]


def signup_with_invite(url: str, invite_path: str, email: str, password: str, *, timeout: float = 30.0) -> None:
    """Create a user who can log in, through the organisation's invite link.

    ``users.create`` of the API ignores passwords, so such users could never
    log in; the invite signup is the open-source way to make a real account.
    """
    http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
    with http:
        http.get(invite_path)
        response = http.post(invite_path, headers={"Referer": f"{url}{invite_path}"}, data={
            "email": email, "password": password, "csrfmiddlewaretoken": http.cookies.get("csrftoken", ""),
            "allow_newsletters": "false"})
        if response.status_code != 302:
            raise LabelStudioError(
                f"Label Studio at {url}: signing up {email} through the invite link failed "
                f"(HTTP {response.status_code}; the email may be taken or the password too short)")
