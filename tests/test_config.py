"""Config validation: every error names the file, the key path and the reason."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

import pytest
import yaml

from labelloop.config import LabelloopConfig, load_config
from labelloop.exceptions import ConfigError

VALID = {
    "dataset": {"name": "reviews", "modality": "text", "classes": ["neg", "pos"]},
    "sources": [{"kind": "text_file", "path": "reviews.csv", "label_field": "label"}],
    "training": {"folds": 5},
}


def write(tmp_path: Path, data, name: str = "labelloop.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def with_change(path: str, value):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return data


DELETE = object()

MALFORMED = [
    (with_change("training.folds", 1), r"labelloop\.yaml: training\.folds: must be >= 2 \(got 1\)"),
    (with_change("training.fold", 3), r"labelloop\.yaml: training\.fold: unknown key"),
    (with_change("dataset.modality", "video"), r"dataset\.modality: must be one of .*'image'.*\(got 'video'\)"),
    (with_change("dataset.classes", ["only"]), r"dataset\.classes: needs at least 2 classes \(got 1\)"),
    (with_change("dataset.classes", ["a", "b", "a"]), r"dataset\.classes: class names must be distinct \(repeated: a\)"),
    (with_change("dataset.name", "my data!"), r"dataset\.name: must be letters, digits"),
    (with_change("dataset", DELETE), r"labelloop\.yaml: dataset: required key is missing"),
    (with_change("sources", [{"kind": "ftp", "path": "x"}]), r"sources\[0\]: unknown kind 'ftp'"),
    (with_change("sources", [{"path": "x.csv"}]), r"sources\[0\]: needs a 'kind' key"),
    (with_change("sources", [{"kind": "text_file", "path": "a.csv", "colour": 1}]), r"sources\[0\]\.colour: unknown key"),
    (with_change("store", {"url": "mysql://x"}), r"store\.url: must be a sqlite:// or postgresql:// URL"),
    (with_change("schedule", {"pipeline": "every day"}), r"schedule\.pipeline: must be a 5-field cron expression"),
    (with_change("training.min_confidence", 1.5), r"training\.min_confidence: must be <= 1\.0 \(got 1\.5\)"),
    (with_change("resolution", {"precedence": ["gold", "gold"]}), r"resolution\.precedence: source kinds must be distinct \(repeated: gold\)"),
    (with_change("resolution", {"precedence": ["gold", "oracle"]}), r"resolution\.precedence\[1\]: must be one of"),
]


@pytest.mark.parametrize("data, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_configs_name_file_key_and_reason(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_invalid_yaml_names_line(tmp_path):
    path = write(tmp_path, "dataset:\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"labelloop\.yaml: line \d+, column \d+: not valid YAML"):
        load_config(path)


def test_top_level_must_be_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"top level must be a mapping of sections \(got list\)"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_several_errors_are_all_reported(tmp_path):
    data = with_change("training.folds", 0)
    data["dataset"]["modality"] = "audio"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data))
    assert "training.folds" in str(info.value) and "dataset.modality" in str(info.value)


def test_valid_config_resolves_paths_against_its_file(tmp_path):
    config = load_config(write(tmp_path, VALID))
    assert config.data_path == (tmp_path / "data").resolve()
    assert config.store_url == f"sqlite:///{(tmp_path / 'data' / 'labelloop.db').resolve()}"
    assert config.resolve_path(Path("reviews.csv")) == (tmp_path / "reviews.csv").resolve()
    assert config.resolution.precedence[0] == "gold"


def test_init_template_is_a_valid_config_listing_every_section(tmp_path):
    text = importlib.resources.files("labelloop").joinpath("templates/labelloop.yaml").read_text()
    config = load_config(write(tmp_path, text))
    written = set(yaml.safe_load(text))
    assert written == set(LabelloopConfig.model_fields) - {"config_path"}, "template must list every section"
    assert config.dataset.modality == "text"


def test_readme_config_reference_lists_every_key():
    """The README's config reference is kept in sync with the pydantic models."""
    from labelloop.configdoc import config_reference

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- config-reference:start -->")[1].split("<!-- config-reference:end -->")[0]
    assert section.strip() == config_reference().strip(), "run `python -m labelloop.configdoc --write` to refresh README"
