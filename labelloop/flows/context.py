"""Opening the config and the store at the start of a stage."""

from __future__ import annotations

from pathlib import Path

from labelloop.config import LabelloopConfig, load_config
from labelloop.store import Store

__all__ = ["open_stage"]


def open_stage(config_path: str | Path) -> tuple[LabelloopConfig, Store]:
    """Load and validate the config, open the store and bring its schema up to date."""
    config = load_config(config_path)
    config.data_path.mkdir(parents=True, exist_ok=True)
    return config, Store(config.store_url).create()
