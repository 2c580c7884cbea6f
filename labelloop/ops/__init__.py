"""Operations: local services (`labelloop up/down/status`), deployments, task runners.

Nothing here runs inside a flow; the CLI calls it. Servers run as detached
processes whose ids are kept in ``<data_dir>/ops/state.json`` so every command
(even from another shell) finds and stops exactly what ``up`` started.
"""

from labelloop.ops.deploy import deploy, render_prefect_yaml
from labelloop.ops.prefect_server import PrefectServer
from labelloop.ops.services import ServiceState, down, status, up
from labelloop.ops.worker import PrefectWorker

__all__ = [
    "PrefectServer",
    "PrefectWorker",
    "ServiceState",
    "up",
    "down",
    "status",
    "deploy",
    "render_prefect_yaml",
]
