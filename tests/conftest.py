"""Shared fixtures: the real data, an isolated local-backend home, a 127.0.0.1 file server, moto AWS."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_NOTEBOOKS = Path(__file__).parent / "notebooks"


def _shared_data() -> Path:
    configured = os.environ.get("MODELOPS_DATA_DIR")
    path = Path(configured).resolve() if configured else (ROOT.parent / "shared" / "data")
    if not (path / "abalone").is_dir():
        pytest.exit(f"the real datasets are not at {path}. Set MODELOPS_DATA_DIR to the folder holding "
                    f"abalone/abalone.data and churn/churn.txt (the README's test command does).", returncode=2)
    return path


SHARED_DATA = _shared_data()
# Each test home's runtime router takes any free port: the default one belongs to the developer's own home.
os.environ.setdefault("MODELOPS_RUNTIME_PORT", "0")


#: Modules whose tests each take seconds: real servers, subprocesses of the CLI or a kernel, moto end to end.
SLOW_MODULES = frozenset({
    "test_benchmarks", "test_cli_registry", "test_endpoints_local", "test_runtime_api", "test_runner",
    "test_sagemaker_backend", "test_sagemaker_notebooks", "test_sagemaker_tuner", "test_new_model",
    "test_endpoint_abuse", "test_promotion_local", "test_github", "test_capture", "test_sagemaker_scale",
})


def pytest_collection_modifyitems(items):
    """The quick tier (`pytest -m "not slow"`) leaves out what takes seconds a test: notebook runs, the modules
    above, and the sagemaker half of the contract suites (moto)."""
    for item in items:
        if item.get_closest_marker("slow"):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if (item.get_closest_marker("notebook") or item.module.__name__.rpartition(".")[2] in SLOW_MODULES
                or any(isinstance(v, str) and v == "sagemaker" for v in params.values())):
            item.add_marker(pytest.mark.slow)


def fixture_notebook(name: str) -> Path:
    """One of the tiny notebooks under tests/notebooks (works, fails, no_parameters, dies)."""
    path = FIXTURE_NOTEBOOKS / f"{name}.ipynb"
    assert path.is_file(), path
    return path


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


def stop_endpoints(home: Path) -> None:
    """Stop every endpoint server a test started under ``home`` (they run detached from the test), and its router."""
    from modelops.backends.local.endpoints import STOPPED, LocalEndpoints

    endpoints = LocalEndpoints(home)
    for status in endpoints.list():
        if status.status != STOPPED and status.detail.get("pid"):
            endpoints.stop(status.name)
    endpoints.runtime.stop()  # and the SageMaker Runtime router, even with endpoints left Down


@pytest.fixture
def offline_home(home, monkeypatch) -> Path:
    """A home with no offline data folder: sources must really be fetched."""
    monkeypatch.delenv("MODELOPS_DATA_DIR", raising=False)
    return home


class FileServer:
    """A threaded HTTP server on 127.0.0.1 serving a folder, counting the requests it answers."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(Handler, directory=str(folder)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


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

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


MOTO_BUCKET = "modelops-test"
MOTO_ROLE = "arn:aws:iam::123456789012:role/modelops-sagemaker"


def sagemaker_on_moto(*, poll_seconds: float = 0, **settings):
    """A sagemaker backend on moto (the ``aws`` fixture must be active), its bucket created."""
    import boto3

    from modelops.backends.sagemaker import SageMakerBackend
    from modelops.settings import SageMakerSettings

    values = {"region": "us-east-1", "role_arn": MOTO_ROLE, "bucket": MOTO_BUCKET, "prefix": "modelops",
              "source": "tests", **settings}
    if values["bucket"]:
        boto3.client("s3", region_name=values["region"]).create_bucket(Bucket=values["bucket"])
    return SageMakerBackend(SageMakerSettings(**values), poll_seconds=poll_seconds)


@pytest.fixture
def sagemaker(aws):
    """The sagemaker backend on moto's in-process AWS, polling without sleeping."""
    return sagemaker_on_moto()
