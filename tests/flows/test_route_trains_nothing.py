"""The route stage trains nothing: it reads the model stage's stored committee outputs.

Every Python call in the process (all threads, so Prefect's task workers too)
is watched while a stage runs; a classifier's ``fit``, labelloop's trainer, a
torch optimizer step or a backward pass counts as training. The same watch on
the model stage sees training, so the check can fail.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

import pytest

pytestmark = pytest.mark.usefixtures("prefect_harness")

_FIT_NAMES = {"fit", "partial_fit", "fit_predict", "fit_transform", "fit_group"}


@contextmanager
def watch_training():
    """Collect ``(what, where)`` for every model-training call made while the block runs."""
    from sklearn.base import ClassifierMixin, RegressorMixin

    seen: list[tuple[str, str]] = []

    def profiler(frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        name, where = code.co_name, code.co_filename
        if name in _FIT_NAMES:
            owner = frame.f_locals.get("self")
            if isinstance(owner, (ClassifierMixin, RegressorMixin)) or type(owner).__name__ in ("Trainer", "KFoldCommittee"):
                seen.append((f"{type(owner).__name__}.{name}", where))
        elif "torch" in where and ((name == "backward" and "_tensor.py" in where) or (name == "step" and "optim" in where)):
            seen.append((name, where))

    sys.setprofile(profiler)
    threading.setprofile(profiler)
    try:
        yield seen
    finally:
        sys.setprofile(None)
        threading.setprofile(None)


def test_route_stage_fits_no_model_and_reads_the_stored_outputs(digits_example):
    import numpy as np

    from labelloop.config import load_config
    from labelloop.flows.importing import import_flow
    from labelloop.flows.route import route_flow
    from labelloop.flows.training import training_flow
    from labelloop.store import Store
    from labelloop.models.outputs import latest_outputs

    # The linear member keeps this test fast; the stage code is the same for every member kind.
    text = digits_example.read_text().replace("  model: cnn", "  model: logreg")
    text = text.split("  cnn: {")[0] + text.split("GaussNoise: {std_range: [0.02, 0.05]}}\n")[1]
    text += "\nselection:\n  enabled: true\n  expert_budget: 10\n  crowd_budget: 20\n\nself_training:\n  enabled: true\n"
    digits_example.write_text(text)
    import_flow(str(digits_example), "run-import")
    with watch_training() as model_calls:
        trained = training_flow(str(digits_example), "run-1")
    assert any(what.endswith(".fit") for what, _ in model_calls)  # the watch sees training where it happens
    with watch_training() as route_calls:
        routed = route_flow(str(digits_example), "run-1")
    assert route_calls == []
    assert routed["teacher"] == trained["source"] and sum(routed["queues"].values()) > 0, routed

    config = load_config(digits_example)
    store = Store(config.store_url)
    try:
        out = latest_outputs(store, "digits")
        tasks = store.tasks("digits")
        # the crowd band and the pseudo-labels come from the stored committee: its confidence decides
        pool_conf = dict(zip(out.pool_ids.tolist(), out.pool_proba.max(1).tolist()))
        crowd = tasks[tasks["queue"] == "crowd"]["item_id"].tolist()
        lo, hi = config.selection.crowd_band
        assert crowd and all(lo <= pool_conf[i] < hi for i in crowd)
        pseudo = store.labels("digits", kinds=["pseudo"])
        assert len(pseudo) and (pseudo["confidence"] >= config.self_training.min_threshold).all()
        assert all(int(np.argmax(out.pool_proba[np.flatnonzero(out.pool_ids == i)[0]])) == lab
                   for i, lab in zip(pseudo["item_id"], pseudo["label"]))
    finally:
        store.close()
