"""One stage on its own, as a deployment runs it: a store run record around ``<stage>_flow``.

Stage flows take ``(config_path, run_id)``; a scheduled stage has no pipeline
turn to get a run id from, so this flow opens one (kind ``stage:<name>``) and
closes it with the stage's summary, as the pipeline does for a turn.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

from prefect import flow

from labelloop.config import load_config
from labelloop.exceptions import ConfigError
from labelloop.runtime import open_stage

__all__ = ["run_stage", "stage_callable", "stage_available"]

# Stages whose module or function does not follow `labelloop/flows/<stage>.py:<stage>_flow`
# (the pipeline's `model` stage is the k-fold committee of labelloop/flows/training.py).
_SPECIAL = {"import": ("importing", "import_flow"), "model": ("training", "training_flow")}


def _where(stage: str) -> tuple[str, str]:
    module, attr = _SPECIAL.get(stage, (stage, f"{stage}_flow"))
    return f"labelloop.flows.{module}", attr


def stage_available(stage: str) -> bool:
    """True when this checkout has the stage's module."""
    module, _ = _where(stage)
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def stage_callable(stage: str) -> Callable[..., dict]:
    """The stage's flow; a ConfigError naming the stage when there is none."""
    module_name, attr = _where(stage)
    if not stage_available(stage):
        raise ConfigError(f"stage {stage!r}: no module {module_name} in this checkout")
    module = importlib.import_module(module_name)
    if not hasattr(module, attr):
        raise ConfigError(f"stage {stage!r}: {module_name} has no flow {attr}()")
    return getattr(module, attr)


@flow(name="stage", flow_run_name="{stage}", log_prints=True)
def run_stage(config_path: str, stage: str) -> dict[str, Any]:
    """Run one stage of the loop outside a pipeline turn."""
    config = load_config(config_path)  # fail on a bad config before anything runs
    stage_flow = stage_callable(stage)
    _, store = open_stage(config_path)
    run_id = store.start_run(f"stage:{stage}", config.dataset.name, {"config": str(config_path), "stage": stage})
    try:
        summary = stage_flow(config_path, run_id)
    except BaseException:
        store.finish_run(run_id, "failed", {})
        store.close()
        raise
    from labelloop.flows.pipeline import _jsonable

    store.finish_run(run_id, "completed", {stage: _jsonable(summary)})
    store.close()
    return {"run_id": run_id, stage: summary}
