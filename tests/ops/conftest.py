"""Fixtures of the operations tests: a project on disk, the `labelloop` command, Prefect clients.

The environment defaults are repeated here (setdefault) so these tests also
run when the shared tests/conftest.py is not on the path yet.
"""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="labelloop-ops-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

@pytest.fixture(scope="module")
def ops_prefect():
    """A Prefect API for in-process flow runs (temporary database), one per module."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
