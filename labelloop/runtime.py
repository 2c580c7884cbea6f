"""Process environment for Prefect, set before Prefect is first imported.

Prefect reads its settings from the environment; the defaults share
``~/.prefect`` between every process of the user and phone home, so labelloop
points ``PREFECT_HOME`` into its data dir and turns analytics off.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labelloop.config import LabelloopConfig
    from labelloop.store import Store

__all__ = ["prepare_prefect_env", "open_stage"]

_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def prepare_prefect_env(data_dir: Path | None = None) -> None:
    """Set Prefect's environment unless the user already did."""
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    if "PREFECT_HOME" not in os.environ:
        home = (data_dir or Path.cwd() / "data") / ".prefect"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home.resolve())


def open_stage(config_path: str | Path) -> tuple["LabelloopConfig", "Store"]:
    """Load and validate the config, open the store and bring its schema up to date.

    What every stage flow and every task that gets a config path starts with;
    it lives here, below both, so tasks never import flows.
    """
    from labelloop.config import load_config
    from labelloop.store import Store

    config = load_config(config_path)
    config.data_path.mkdir(parents=True, exist_ok=True)
    return config, Store(config.store_url).create()
