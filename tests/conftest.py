"""Shared fixtures: the real data, an isolated local-backend home, a 127.0.0.1 file server, moto AWS.

Helpers that are not fixtures live in ``tests/support/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.aws import CREDENTIALS, sagemaker_on_moto
from tests.support.paths import SHARED_DATA
from tests.support.servers import FileServer, stop_endpoints

# Each test home's runtime router takes any free port: the default one belongs to the developer's own home.
os.environ.setdefault("MODELOPS_RUNTIME_PORT", "0")


def pytest_collection_modifyitems(items):
    """The quick tier (`pytest -m "not slow"`) leaves out what takes seconds a test. Modules of such tests say so
    themselves (``pytestmark = pytest.mark.slow``); here, what no module can say for itself: notebook runs, and
    the sagemaker half of the contract suites (moto), whose local half is quick."""
    for item in items:
        if item.get_closest_marker("slow"):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.get_closest_marker("notebook") or any(isinstance(v, str) and v == "sagemaker"
                                                      for v in params.values()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty local-backend home; the real data is reachable through MODELOPS_DATA_DIR."""
    home = tmp_path / "home"
    monkeypatch.setenv("MODELOPS_HOME", str(home))
    monkeypatch.setenv("MODELOPS_DATA_DIR", str(SHARED_DATA))
    monkeypatch.delenv("MODELOPS_BACKEND", raising=False)
    yield home
    stop_endpoints(home)


@pytest.fixture
def offline_home(home, monkeypatch) -> Path:
    """A home with no offline data folder: sources must really be fetched."""
    monkeypatch.delenv("MODELOPS_DATA_DIR", raising=False)
    return home


@pytest.fixture
def file_server(tmp_path):
    """Serves a copy of the real abalone file (and whatever a test adds to ``server.folder``)."""
    folder = tmp_path / "served"
    folder.mkdir()
    shutil.copy(SHARED_DATA / "abalone" / "abalone.data", folder / "abalone.data")
    with FileServer(folder) as server:
        yield server


@pytest.fixture
def aws(monkeypatch):
    """moto's in-process AWS with fake credentials (no request leaves the machine)."""
    from moto import mock_aws

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def sagemaker(aws):
    """The sagemaker backend on moto's in-process AWS, polling without sleeping."""
    return sagemaker_on_moto()
