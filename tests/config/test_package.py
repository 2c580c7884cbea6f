"""The config package: one module per section, one shared validator, the store's label kinds, a complete public API."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import labelloop.config as config
from labelloop.config import CostConfig, LabelloopConfig, ResolutionConfig, parse_config
from labelloop.exceptions import ConfigError
from labelloop.store.kinds import DEFAULT_PRECEDENCE, LABEL_KINDS, SOURCE_KINDS

PACKAGE = Path(config.__file__).parent
BASE = {"dataset": {"name": "d", "modality": "text", "classes": ["a", "b"]}}
SITE = {"name": "s", "start_urls": ["http://h.test/"], "terms": "ok"}
LF = {"name": "kw", "kind": "keyword", "class": "a", "keywords": ["x"]}


def test_public_api_is_complete_and_doctests_pass() -> None:
    for name in config.__all__:
        assert hasattr(config, name), name
    for info in pkgutil.iter_modules(config.__path__):
        module = importlib.import_module(f"labelloop.config.{info.name}")
        failures, _ = doctest.testmod(module)
        assert failures == 0, info.name
        for name in getattr(module, "__all__", []):
            assert hasattr(module, name), f"{info.name}.{name}"


def test_every_section_has_its_own_module_and_is_exported() -> None:
    for key, field in LabelloopConfig.model_fields.items():
        if field.exclude or key == "data_dir":
            continue
        models = [a for a in getattr(field.annotation, "__args__", ()) if isinstance(a, type)] or [field.annotation]
        module = models[0].__module__
        if key == "sources":  # list[Annotated[Union[...]]]: the union's members live in sources.py
            module = "labelloop.config.sources"
        assert module == f"labelloop.config.{key}", (key, module)
        if isinstance(field.annotation, type):
            assert field.annotation.__name__ in config.__all__, key


def _repeats_checked_by_hand(tree: ast.AST) -> list[int]:
    """Lines that count names to find repeats (`names.count(n) > 1`, `n in seen or seen.add(n)`)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("count", "add"):
            lines.append(node.lineno)
    return lines


def test_the_duplicate_check_is_written_once() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "base.py":
            continue
        assert not _repeats_checked_by_hand(ast.parse(path.read_text())), f"{path.name}: use base.distinct"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dataset": {**BASE["dataset"], "classes": ["a", "b", "a", "b"]}}, r"dataset\.classes: class names must be distinct \(repeated: a, b\)"),
        ({"resolution": {"precedence": ["crowd", "gold", "crowd"]}}, r"resolution\.precedence: source kinds must be distinct \(repeated: crowd\)"),
        ({"weak": {"lfs": [LF, LF]}}, r"weak\.lfs: LF names must be distinct \(repeated: kw\)"),
        ({"crowd": {"bots": [{"name": "b1"}, {"name": "b2"}, {"name": "b1"}]}}, r"crowd\.bots: bot names must be distinct \(repeated: b1\)"),
        ({"collect": {"sites": [SITE, SITE]}}, r"collect\.sites: site names must be distinct \(repeated: s\)"),
        ({"sources": [{"kind": "arrays", "path": "x.npz"}, {"kind": "text_file", "path": "y.csv", "name": "x.npz"}]},
         r"sources: source names must be distinct \(repeated: x\.npz\)"),
    ],
)
def test_every_repeated_name_gets_the_same_message_naming_file_and_field(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^t\.yaml: {message}$"):
        parse_config({**BASE, **data}, source="t.yaml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"crowd": {"bots": [{"name": "a b"}]}}, r"crowd\.bots\[0\]\.name: must be letters, digits, '_', '\.' or '-' \(got 'a b'\)"),
        ({"weak": {"lfs": [{**LF, "name": "k w"}]}}, r"weak\.lfs\[0\]\.name: must be letters, digits"),
        ({"collect": {"sites": [{**SITE, "name": "s/1"}]}}, r"collect\.sites\[0\]\.name: must be letters, digits"),
        ({"schedule": {"stages": {"a b": "* * * * *"}}}, r"schedule\.stages: a b: must be letters, digits"),
        ({"store": {"url": "mysql://x"}}, r"store\.url: must be a sqlite:// or postgresql:// URL \(got 'mysql://x'\)"),
        ({"schedule": {"prefect_database_url": "sqlite:///p.db"}}, r"schedule\.prefect_database_url: must be a sqlite\+aiosqlite://"),
        ({"collect": {"sites": [{**SITE, "follow": {"deny": ["ok", "(x"]}}]}}, r"collect\.sites\[0\]\.follow\.deny: not a valid regex"),
    ],
)
def test_shared_checks_name_file_and_field(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^t\.yaml: {message}"):
        parse_config({**BASE, **data}, source="t.yaml")


def test_the_store_owns_the_label_kinds_and_the_default_precedence() -> None:
    assert ResolutionConfig().precedence == list(DEFAULT_PRECEDENCE)
    assert ResolutionConfig(precedence=list(SOURCE_KINDS)).precedence == list(SOURCE_KINDS)
    with pytest.raises(ConfigError, match=r"resolution\.precedence\[0\]: must be one of .*'model' \(got 'annotator'\)"):
        parse_config({**BASE, "resolution": {"precedence": ["annotator"]}})
    # Every kind a label row can hold has a cost.
    assert set(CostConfig.model_fields) - {"unit"} == set(LABEL_KINDS)
    # No module of the config spells the kinds out again.
    for path in sorted(PACKAGE.glob("*.py")):
        assert '"expert", "crowd"' not in path.read_text(), path.name


def test_store_imports_nothing_from_config_and_config_stays_light() -> None:
    code = (
        "import sys; import labelloop.store.store, labelloop.store.resolve, labelloop.store.kinds; "
        "assert not any(m.startswith('labelloop.config') for m in sys.modules), 'store imported the config'; "
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    # The config needs the kinds, not the store's database code: importing it loads neither SQLAlchemy nor pandas.
    code = "import sys, labelloop.config; print(sorted(m for m in ('pandas', 'sqlalchemy', 'labelloop.store.store') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "[]", (done.stdout, done.stderr)


def test_class_index_names_the_known_classes() -> None:
    loaded = parse_config(BASE)
    assert loaded.class_index("b") == 1
    with pytest.raises(ValueError, match=r"unknown class 'c'; expected one of \['a', 'b'\]"):
        loaded.class_index("c")
