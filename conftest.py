"""The docstring examples of the ``labelloop`` package are tests: plain ``pytest`` (``make test``) runs them.

Every module under ``labelloop/`` is collected as a doctest module, except the two that are not
plain modules: ``__main__`` (running it is the CLI) and ``migrations/`` (Alembic scripts that
need a migration context). Importing a module starts nothing and downloads nothing; the test
``tests/test_imports.py`` holds every module to that.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from _pytest.doctest import DoctestModule

PACKAGE = Path(__file__).resolve().parent / "labelloop"
NOT_MODULES = (PACKAGE / "__main__.py", PACKAGE / "migrations")


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix != ".py" or PACKAGE not in file_path.parents:
        return None
    if parent.config.option.doctestmodules:  # `--doctest-modules` given: pytest's own plugin collects them
        return None
    if any(file_path == skip or skip in file_path.parents for skip in NOT_MODULES):
        return None
    if "PREFECT_HOME" not in os.environ:  # importing Prefect makes its home: never the user's ~/.prefect
        os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="labelloop-doctest-prefect-")
    return DoctestModule.from_parent(parent, path=file_path)
