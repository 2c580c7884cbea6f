"""The layers import downwards only: cli -> flows -> tasks -> library (studio, labeling, store, ...).

Checked on the import statements themselves (every one, also those inside a
function, which run late and would hide a cycle from an import test), and by
importing in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "labelloop"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py")) if folder else sorted(PACKAGE.rglob("*.py"))


def _offenders(files: list[Path], forbidden: str) -> list[str]:
    return [f"{p.relative_to(PACKAGE.parent)} imports {name}" for p in files for name in sorted(_imports(p))
            if name == forbidden or name.startswith(forbidden + ".")]


def test_importing_the_studio_package_does_not_import_the_cli():
    code = ("import importlib, pkgutil, sys, labelloop.studio\n"
            "assert 'labelloop.cli' not in sys.modules\n"
            "for m in pkgutil.iter_modules(labelloop.studio.__path__, 'labelloop.studio.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(sorted(n for n in sys.modules if n == 'labelloop.cli' or n.startswith('labelloop.flows')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip() == "[]"


def test_only_the_command_line_imports_the_cli():
    allowed = {PACKAGE / "cli.py", PACKAGE / "__main__.py"}
    assert _offenders([p for p in _modules("") if p not in allowed], "labelloop.cli") == []


@pytest.mark.parametrize("folder", ["tasks", "studio", "labeling", "models", "scrape", "sources", "store"])
def test_tasks_and_the_library_never_import_flows(folder):
    assert _offenders(_modules(folder), "labelloop.flows") == []


@pytest.mark.parametrize("folder", ["labeling", "models", "scrape", "sources", "store", "studio"])
def test_the_library_never_imports_prefect(folder):
    assert _offenders(_modules(folder), "prefect") == []
