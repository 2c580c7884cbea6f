"""Rendering deploy/prefect.yaml from a config, the schedule section, the turn summary, sign-off (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from labelloop.config import load_config, parse_config
from labelloop.exceptions import ConfigError, ServiceError
from labelloop.ops.deploy import render_prefect_yaml, template_path
from labelloop.ops.services import project_dir

BASE = {"dataset": {"name": "digits", "modality": "image", "classes": ["a", "b"]}}


def _config(tmp_path: Path, schedule: dict) -> object:
    path = tmp_path / "labelloop.yaml"
    path.write_text(yaml.safe_dump({**BASE, "schedule": schedule}))
    return load_config(path)


def test_template_is_a_prefect_project_file_without_git():
    spec = yaml.safe_load(template_path().read_text())
    assert spec["pull"] == [{"prefect.deployments.steps.set_working_directory":
                             {"directory": "{{ $LABELLOOP_PROJECT_DIR }}"}}]
    names = [d["name"] for d in spec["deployments"]]
    assert names[0] == "pipeline" and {"collect", "crowd", "model", "report"} <= set(names)
    assert all(d["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"} for d in spec["deployments"])


def test_render_fills_names_crons_pool_and_skips_missing_stages(tmp_path):
    config = _config(tmp_path, {"pipeline": "0 2 * * *", "stages": {"model": "*/10 * * * *"},
                                "timezone": "Europe/Paris", "work_pool": "team"})
    spec, result = render_prefect_yaml(config)
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert by_name["digits-pipeline"]["schedules"] == [{"cron": "0 2 * * *", "timezone": "Europe/Paris", "active": True}]
    assert by_name["digits-model"]["schedules"][0]["cron"] == "*/10 * * * *"
    assert by_name["digits-report"]["schedules"] == []
    assert {d["work_pool"]["name"] for d in spec["deployments"]} == {"team"}
    assert all(d["parameters"]["config_path"] == str(config.config_path) for d in spec["deployments"])
    assert all("dataset:digits" in d["tags"] for d in spec["deployments"])
    assert spec["pull"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(project_dir())
    for stage, why in result.skipped.items():
        assert f"digits-{stage}" not in by_name and why == f"labelloop/flows/{stage}.py is not in this checkout"
    assert result.schedules == {"digits-pipeline": "0 2 * * *", "digits-model": "*/10 * * * *"}


def test_a_cron_for_an_unknown_stage_is_refused(tmp_path):
    config = _config(tmp_path, {"stages": {"colect": "0 * * * *"}})
    with pytest.raises(ConfigError, match=r"schedule.stages: no deployment for colect in prefect.yaml \(expected one of"):
        render_prefect_yaml(config)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"pipeline": "0 2 * *"}, r"schedule.pipeline: must be a 5-field cron expression \(got '0 2 \* \*'\)"),
        ({"stages": {"collect": "hourly"}}, r"schedule.stages: collect: must be a 5-field cron expression \(got 'hourly'\)"),
        ({"timezone": "Mars/Olympus"}, r"schedule.timezone: must be an IANA time zone .* \(got 'Mars/Olympus'\)"),
        ({"signoff_timeout_s": 1}, r"schedule.signoff_timeout_s: must be >= 10 \(got 1\)"),
        ({"prefect_database_url": "postgresql://x/y"}, r"schedule.prefect_database_url: must be a sqlite\+aiosqlite:// or postgresql\+asyncpg:// URL"),
    ],
)
def test_schedule_section_is_validated(schedule, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**BASE, "schedule": schedule}, "labelloop.yaml")


def test_deploy_without_a_server_says_to_run_up(tmp_path):
    from labelloop.ops import deploy

    config = _config(tmp_path, {})
    with pytest.raises(ServiceError, match=r"no Prefect server runs for .*labelloop.yaml: run `labelloop up` first"):
        deploy(config)


def test_run_stage_names_a_missing_stage():
    from labelloop.flows.scheduled import stage_callable

    with pytest.raises(ConfigError, match=r"stage 'nosuch': no module labelloop.flows.nosuch in this checkout"):
        stage_callable("nosuch")
    assert stage_callable("import").name == "import"
    assert stage_callable("model").fn.__name__ == "training_flow"  # the pipeline's `model` stage


def test_turn_summary_counts_bought_labels_costs_and_gain(tmp_path):
    from labelloop.ops.summary import learning_curve_png, summary_markdown, turn_summary
    from labelloop.store import ItemIn, LabelIn, Store

    config = parse_config({**BASE, "costs": {"expert": 2.0, "crowd": 0.5}}, "x.yaml")
    store = Store(f"sqlite:///{tmp_path / 's.db'}").create()
    ids = store.add_items("digits", [ItemIn(modality="image", payload=bytes([i])) for i in range(6)]).ids
    first = store.start_run("pipeline", "digits")
    store.add_labels([LabelIn(ids[0], 0, "gold", "import", run_id=first)])
    s1 = turn_summary(store, config, first, {"model": {"accuracy": 0.70}})
    store.finish_run(first, "completed", {"summary": s1})
    second = store.start_run("pipeline", "digits")
    store.add_labels([LabelIn(ids[1], 1, "expert", "ann", run_id=second), LabelIn(ids[2], 0, "expert", "ann", run_id=second)]
                     + [LabelIn(ids[3], 1, "crowd", f"w{k}", run_id=second) for k in range(4)]
                     + [LabelIn(ids[4], -1, "crowd", "w0", run_id=second)])  # a retraction is not bought
    s2 = turn_summary(store, config, second, {"model": {"accuracy": 0.75}})
    store.close()
    assert (s1["turn"], s1["accuracy_gained_points"], s1["cost_per_point"]) == (1, None, None)
    assert s2["turn"] == 2 and s2["labels_bought"] == 6 and s2["cost"] == pytest.approx(2 * 2.0 + 4 * 0.5)
    assert s2["accuracy_gained_points"] == pytest.approx(5.0)
    assert s2["cost_per_point"] == pytest.approx(6.0 / 5.0)
    assert s2["accuracy_source"] == "k-fold accuracy"
    text = summary_markdown("digits", s2)
    assert "| accuracy gained since last turn | +5.00 points |" in text and "| cost per accuracy point | 1.20 $ |" in text
    png = learning_curve_png([s1, s2], "curve")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_signoff_is_off_by_default_and_does_not_pause():
    from labelloop.flows.signoff import request_signoff

    result = request_signoff(parse_config(BASE, "x.yaml"), "pseudo-labels", "details")
    assert (result.approved, result.asked) == (True, False)

def test_studio_is_required_before_anything_starts(tmp_path):
    import importlib.util

    from labelloop.ops import up
    from labelloop.ops.services import state_path

    config = _config(tmp_path, {})
    if importlib.util.find_spec("labelloop.studio") is None:
        with pytest.raises(ServiceError, match=r"Label Studio: labelloop.studio.server is not in this checkout .*--no-studio"):
            up(config, studio=True)
        assert not state_path(config).exists()  # no Prefect server was started on the way
    else:
        from labelloop.ops.services import require_studio

        assert hasattr(require_studio(), "StudioServer")


def test_signoff_pauses_until_an_expert_answers(prefect_harness):
    import threading
    import time as _time

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run
    from prefect.runtime import flow_run

    from labelloop.flows.signoff import request_signoff

    config = parse_config({**BASE, "schedule": {"signoff": True, "signoff_timeout_s": 120}}, "x.yaml")
    run_ids: list = []

    @flow
    def needs_signoff():
        run_ids.append(flow_run.id)
        return request_signoff(config, "pseudo-labels", "412 pseudo-labels from teacher `abc`", poll_interval_s=1)

    def expert():
        deadline = _time.monotonic() + 90
        while _time.monotonic() < deadline:
            if run_ids:
                with get_client(sync_client=True) as client:
                    if client.read_flow_run(run_ids[0]).state.is_paused():
                        resume_flow_run(run_ids[0], run_input={"approve": False, "comment": "teacher overfits"})
                        return
            _time.sleep(0.5)

    answering = threading.Thread(target=expert, daemon=True)
    answering.start()
    result = needs_signoff()
    answering.join(timeout=5)
    assert (result.approved, result.comment, result.asked) == (False, "teacher overfits", True)
