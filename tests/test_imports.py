"""Importing any labelloop module has no side effects: doctest collection imports all of them.

Each module is imported in a fresh interpreter with the network refused, a fresh home and working
directory: no server may start (no child process, no thread), nothing may be downloaded or
written (the only new folder is Prefect's own ``PREFECT_HOME``, which labelloop always sets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import importlib, json, os, pathlib, socket, threading

def refuse(*args, **kwargs):
    raise OSError(f"network used while importing: {args}")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = refuse
import labelloop

root = pathlib.Path(labelloop.__file__).parent
names = sorted(".".join(("labelloop", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
               for p in root.rglob("*.py") if "migrations" not in p.parts and p.name != "__main__.py")
for name in names:
    importlib.import_module(name)
children = []
for entry in os.listdir("/proc"):
    try:
        fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split() if entry.isdigit() else None
    except OSError:
        continue
    if fields and int(fields[1]) == os.getpid():
        children.append(int(entry))
print(json.dumps({"modules": names, "threads": [t.name for t in threading.enumerate()], "children": children}))
"""


def test_importing_every_module_starts_nothing_downloads_nothing_writes_nothing(tmp_path):
    home, cwd, prefect_home = tmp_path / "home", tmp_path / "cwd", tmp_path / "prefect-home"
    home.mkdir()
    cwd.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "LABELLOOP_"))}
    env.update(HOME=str(home), PREFECT_HOME=str(prefect_home), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report["modules"]) > 80 and {"labelloop.process", "labelloop.studio.server", "labelloop.models.embed", "labelloop.ops.webhooks",
            "labelloop.flows.pipeline"} <= set(report["modules"])
    assert report["children"] == [] and report["threads"] == ["MainThread"]
    assert list(home.rglob("*")) == [] and list(cwd.rglob("*")) == []
    assert [p for p in prefect_home.rglob("*") if p.is_file()] == []
