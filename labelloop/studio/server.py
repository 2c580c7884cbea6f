"""Label Studio server lifecycle: its own venv, a data dir under labelloop's, stop by PID.

Label Studio pins packages that break Prefect, so it runs from its own virtual
environment (``.venv-ls``, made by ``scripts/setup.sh``) as a subprocess bound
to 127.0.0.1. Layout under ``<data_dir>/studio``::

    ls/                 LABEL_STUDIO_BASE_DATA_DIR (SQLite database, media)
    server.json         pid, port and url of the running server (for `labelloop down`)
    server.log          the server's own output (never holds tokens or passwords)
    credentials.json    admin email, password and personal token, mode 0600

Item files are served by Label Studio itself, not inlined into tasks: local
files serving is on with ``LOCAL_FILES_DOCUMENT_ROOT`` = the data dir (the
parent of ``studio/``), and each project gets a local-files import storage on
``<data_dir>/files`` (:func:`labelloop.studio.projects.ensure_file_storage`), so
a task holds ``/data/local-files/?d=files/ab/<hash>.png`` and Label Studio
serves the file only to logged-in members of a project whose storage covers it.

Secrets come from the environment first (``LABELLOOP_LS_USERNAME``,
``LABELLOOP_LS_PASSWORD``, ``LABELLOOP_LS_TOKEN``); flows may also pass values
read from a Prefect Secret block. Otherwise a password is generated once and
kept in ``credentials.json``; nothing secret is written anywhere else.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from labelloop.exceptions import ServiceError
from labelloop.ops.webhooks import STUDIO_WEBHOOK_ENV
from labelloop.process import free_port, is_alive, start_process, stop_pid, url_ok
from labelloop.studio.client import StudioClient, create_personal_token

__all__ = ["StudioServer", "Credentials", "find_label_studio", "load_credentials"]

# Variables Label Studio reads under their plain names too; a stray `PORT` or
# `USER_TOKEN` in the caller's shell would silently change the server.
_STRIP = ("HOST", "PORT", "USERNAME", "PASSWORD", "USER_TOKEN", "DEBUG", "LOG_LEVEL")


def find_label_studio(venv: str | Path | None = None) -> Path:
    """The ``label-studio`` executable: ``venv``, env ``LABELLOOP_LS_VENV``, or ``.venv-ls`` of the checkout."""
    candidates = []
    if venv:
        candidates.append(Path(venv))
    if os.environ.get("LABELLOOP_LS_VENV"):
        candidates.append(Path(os.environ["LABELLOOP_LS_VENV"]))
    candidates.append(Path(__file__).resolve().parents[2] / ".venv-ls")
    candidates.append(Path(sys.prefix).parent / ".venv-ls")
    for root in candidates:
        exe = root / "bin" / "label-studio"
        if exe.is_file():
            return exe
    tried = ", ".join(str(c / "bin" / "label-studio") for c in candidates)
    raise ServiceError(f"label-studio executable not found (tried {tried}); run scripts/setup.sh "
                       "or set LABELLOOP_LS_VENV to its virtual environment")


@dataclass
class Credentials:
    """The admin account; ``repr`` hides the secrets."""

    email: str
    password: str
    token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(email={self.email!r}, password=***, token={'***' if self.token else None})"


def load_credentials(studio_dir: Path) -> Credentials:
    """Admin credentials: environment first, then ``credentials.json``, else new ones (saved 0600)."""
    path = studio_dir / "credentials.json"
    saved: dict = {}
    if path.is_file():
        saved = json.loads(path.read_text())
    creds = Credentials(
        email=os.environ.get("LABELLOOP_LS_USERNAME") or saved.get("email") or "admin@labelloop.example.org",
        password=os.environ.get("LABELLOOP_LS_PASSWORD") or saved.get("password") or secrets.token_urlsafe(18),
        token=os.environ.get("LABELLOOP_LS_TOKEN") or saved.get("token"),
    )
    if not saved:
        save_credentials(studio_dir, creds)
    return creds


def save_credentials(studio_dir: Path, creds: Credentials) -> None:
    studio_dir.mkdir(parents=True, exist_ok=True)
    path = studio_dir / "credentials.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"email": creds.email, "password": creds.password, "token": creds.token}, fh)
    os.chmod(path, 0o600)


class StudioServer:
    """One Label Studio process on 127.0.0.1.

    Parameters
    ----------
    studio_dir : path
        ``<data_dir>/studio``; created if missing.
    port : int, optional
        Port to bind; default a free one picked now (Label Studio silently moves
        to the next port when the asked one is busy, so a known-free one is picked).
    venv : path, optional
        Label Studio's virtual environment.
    credentials : Credentials, optional
        Admin account; default :func:`load_credentials`.
    startup_timeout : float, default=300
        Seconds to wait for ``/health`` (a fresh data dir migrates for ~20 s
        on an idle machine, minutes on a busy one).
    """

    def __init__(self, studio_dir: str | Path, *, port: int | None = None, venv: str | Path | None = None,
                 credentials: Credentials | None = None, startup_timeout: float = 300.0):
        self.studio_dir = Path(studio_dir)
        self.port = port
        self.venv = venv
        self.credentials = credentials
        self.startup_timeout = startup_timeout
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def files_root(self) -> Path:
        """``LOCAL_FILES_DOCUMENT_ROOT``: the labelloop data dir that holds ``studio/`` and ``files/``."""
        return self.studio_dir.resolve().parent

    @property
    def log_path(self) -> Path:
        return self.studio_dir / "server.log"

    def _env(self) -> dict[str, str]:
        creds = self.credentials
        env = {k: v for k, v in os.environ.items() if k not in _STRIP and not k.startswith("LABELLOOP_LS_")}
        env.update({
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.studio_dir / "ls"),
            "LABEL_STUDIO_USERNAME": creds.email,
            "LABEL_STUDIO_PASSWORD": creds.password,
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            # item files by URL from the data dir (tasks stay small); only storages under it are served
            "LOCAL_FILES_SERVING_ENABLED": "true",
            "LOCAL_FILES_DOCUMENT_ROOT": str(self.files_root),
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
        })
        env.update(STUDIO_WEBHOOK_ENV)  # webhooks may reach the receiver on 127.0.0.1 (other private ranges stay banned)
        return env

    def start(self) -> "StudioServer":
        """Start the server and wait until it is healthy; the admin token is made on first start."""
        exe = find_label_studio(self.venv)
        self.studio_dir.mkdir(parents=True, exist_ok=True)
        if self.credentials is None:
            self.credentials = load_credentials(self.studio_dir)
        if self.port is None:
            self.port = free_port()
        cmd = [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port)]
        process = start_process(f"Label Studio on {self.url}", cmd, env=self._env(), log=self.log_path,
                                cwd=self.studio_dir)
        self.pid = process.pid
        (self.studio_dir / "server.json").write_text(json.dumps({"pid": self.pid, "port": self.port, "url": self.url}))
        try:
            process.wait_ready(lambda: url_ok(f"{self.url}/health"), self.startup_timeout, interval=0.25)
            if not self.credentials.token:
                self.credentials.token = create_personal_token(self.url, self.credentials.email, self.credentials.password)
                save_credentials(self.studio_dir, self.credentials)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, **kwargs) -> StudioClient:
        """A client logged in as the admin."""
        return StudioClient(self.url, self.credentials.token, **kwargs)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server's process group by PID (SIGKILL after ``timeout``)."""
        if self.pid is None:
            return
        stop_pid(self.pid, timeout)
        self.pid = None
        (self.studio_dir / "server.json").unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL at once (tests: a server that dies mid-sync)."""
        if self.pid is not None:
            stop_pid(self.pid, sig=signal.SIGKILL)
            self.pid = None

    def __enter__(self) -> "StudioServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def copy_data(template: Path, studio_dir: Path) -> None:
        """Copy a migrated template (``ls/`` + ``credentials.json``) so a start takes ~2 s, not ~20."""
        shutil.copytree(template / "ls", studio_dir / "ls")
        shutil.copy2(template / "credentials.json", studio_dir / "credentials.json")

    @classmethod
    def running(cls, studio_dir: str | Path) -> "StudioServer | None":
        """The server a previous `labelloop up` left running, from ``server.json``."""
        studio_dir = Path(studio_dir)
        info_path = studio_dir / "server.json"
        if not info_path.is_file():
            return None
        info = json.loads(info_path.read_text())
        if not is_alive(info["pid"]):
            info_path.unlink(missing_ok=True)
            return None
        server = cls(studio_dir, port=info["port"])
        server.pid = info["pid"]
        server.credentials = load_credentials(studio_dir)
        return server

