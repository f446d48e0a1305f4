"""The SageMaker Runtime API of local endpoints, driven by AWS's own clients: boto3 and the SageMaker SDK v3.

The router's contract (headers, ModelError, ValidationError, timeouts, a dead server) is checked against a
container stand-in whose answers the test chooses; the rest against real endpoints, as a user's code would
reach them: ``boto3.client("sagemaker-runtime", endpoint_url=...)`` with dummy credentials and signed
requests, and ``sagemaker.core.resources.Endpoint(...).invoke(...)`` with AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import numpy as np
import pytest
from botocore.config import Config
from click.testing import CliRunner

from modelops.backends.local.runtime import PORT_ENV, RuntimeRouter
from modelops.errors import EndpointFailed
from modelops.serving.protocol import read_predictions, to_csv
from tests.support.paths import ROOT
from tests.support.served import NAME, Served
from tests.support.servers import stop_endpoints

pytestmark = pytest.mark.slow

ACCOUNT = "000000000000"


def runtime_client(url: str, *, retries: bool = True):
    """A real boto3 client as a user would make it; requests are SigV4-signed with these dummy credentials."""
    config = None if retries else Config(retries={"mode": "standard", "total_max_attempts": 1})
    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="eu-west-1", aws_access_key_id="x",
                        aws_secret_access_key="x", config=config)


# -- the router's contract, against a container stand-in ----------------------------------------------------------


class Container:
    """A stand-in for an endpoint's server: POST /invocations answers as the body asks."""

    def __init__(self):
        self.seen: list[dict] = []
        container = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                container.seen.append({"path": self.path, "body": body,
                                       "headers": {k.lower(): v for k, v in self.headers.items()}})
                if body.startswith(b"status:"):
                    status, _, message = body[7:].partition(b":")
                    self._answer(int(status), message, "text/plain")
                elif body == b"sleep":
                    time.sleep(3)
                    self._answer(200, b"late", "text/csv")
                elif body == b"close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                else:  # a prediction per line; custom attributes answered as a model's own code might
                    attributes = self.headers.get("X-Amzn-SageMaker-Custom-Attributes")
                    extra = {"X-Amzn-SageMaker-Custom-Attributes": f"seen={attributes}"} if attributes else {}
                    self._answer(200, b"0.5\n" * max(1, body.count(b"\n")), "text/csv; charset=utf-8", extra)

            def _answer(self, status, body, kind, extra=None):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def write_record(home: Path, name: str, **fields) -> None:
    folder = home / "endpoints" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "endpoint.json").write_text(json.dumps({"name": name, "host": "127.0.0.1", **fields}))


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_router(home: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    ready = home / "router-ready.json"
    process = subprocess.Popen([sys.executable, "-m", "modelops.serving.router", "--home", str(home), "--port", "0",
                                "--ready-file", str(ready), *extra], cwd=ROOT)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert process.poll() is None and time.monotonic() < deadline, "the router did not start"
        time.sleep(0.02)
    return process, f"http://127.0.0.1:{json.loads(ready.read_text())['port']}"


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """A router over a home whose endpoints are: fake-model (the stand-in), gone-model (stopped), dead-model."""
    home = tmp_path_factory.mktemp("router")
    container = Container()
    write_record(home, "fake-model", pid=os.getpid(), port=container.port, status="InService")
    write_record(home, "gone-model", pid=None, port=container.port, status="Stopped")
    write_record(home, "dead-model", pid=dead_pid(), port=closed_port(), status="InService")
    process, url = start_router(home, "--container-timeout", "1")
    yield container, url, home
    process.terminate()
    process.wait(timeout=10)
    container.close()


def test_invoke_endpoint_forwards_the_runtime_headers_and_answers_with_them(stand_in):
    container, url, _ = stand_in
    client = runtime_client(url)
    response = client.invoke_endpoint(EndpointName="fake-model", Body=b"1,2\n3,4\n", ContentType="text/csv",
                                      Accept="text/csv", CustomAttributes="trace=7")
    assert response["Body"].read() == b"0.5\n0.5\n"
    assert response["ContentType"] == "text/csv; charset=utf-8"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["CustomAttributes"] == "seen=trace=7"  # the container's own, passed back verbatim
    assert response["ResponseMetadata"]["RequestId"]
    sent = container.seen[-1]
    assert sent["path"] == "/invocations" and sent["body"] == b"1,2\n3,4\n"
    assert (sent["headers"]["content-type"], sent["headers"]["accept"]) == ("text/csv", "text/csv")
    assert "authorization" not in sent["headers"]  # the signature stops at the router, as at SageMaker's front end
    bare = client.invoke_endpoint(EndpointName="fake-model", Body=b"1,2\n")  # no ContentType, no Accept
    assert bare["Body"].read() == b"0.5\n" and "CustomAttributes" not in bare
    assert not {"content-type", "accept"} & set(container.seen[-1]["headers"])  # nothing invented on the way


@pytest.mark.parametrize("status", [400, 415, 500, 503])
def test_a_container_error_is_a_model_error_with_the_original_status_and_message(stand_in, status):
    _, url, _ = stand_in
    client = runtime_client(url)
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName="fake-model", Body=f"status:{status}:bad row 3".encode(),
                               ContentType="text/csv")
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == status and response["OriginalMessage"] == "bad row 3"
    kind = "client" if status < 500 else "server"
    assert response["Error"]["Message"].startswith(f'Received {kind} error ({status}) from primary with message '
                                                   f'"bad row 3". See ')
    assert response["LogStreamArn"] == f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/fake-model"


@pytest.mark.parametrize("name", ["no-such-model", "gone-model"])
def test_an_unknown_or_stopped_endpoint_is_the_runtime_validation_error(stand_in, name):
    _, url, _ = stand_in
    client = runtime_client(url)
    with pytest.raises(client.exceptions.ValidationError) as caught:
        client.invoke_endpoint(EndpointName=name, Body=b"1\n", ContentType="text/csv")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert caught.value.response["Error"]["Message"] == f"Endpoint {name} of account {ACCOUNT} not found."


def test_requests_the_runtime_refuses_before_any_container(stand_in):
    container, url, _ = stand_in
    client = runtime_client(url)
    seen = len(container.seen)
    with pytest.raises(client.exceptions.ValidationError, match=r"Value 'bad_name' at 'endpointName' failed to "
                                                                 r"satisfy constraint"):
        client.invoke_endpoint(EndpointName="bad_name", Body=b"1\n")
    with pytest.raises(client.exceptions.ValidationError, match="Member must have length less than or equal to 63"):
        client.invoke_endpoint(EndpointName="m" * 64, Body=b"1\n")
    with pytest.raises(client.exceptions.ValidationError, match="has no production variant Blue"):
        client.invoke_endpoint(EndpointName="fake-model", Body=b"1\n", TargetVariant="Blue")
    with pytest.raises(client.exceptions.ClientError, match=r"\(413\).*HTTP content length exceeded 6291456 bytes"):
        client.invoke_endpoint(EndpointName="fake-model", Body=b"0" * (6 * 1024 * 1024 + 1))
    with pytest.raises(client.exceptions.ClientError, match="UnknownOperationException.*InvokeEndpointAsync is not "
                                                            "available on local endpoints"):
        client.invoke_endpoint_async(EndpointName="fake-model", InputLocation="s3://bucket/input.csv")
    assert len(container.seen) == seen
    assert client.invoke_endpoint(EndpointName="fake-model", Body=b"1\n", TargetVariant="AllTraffic")["Body"].read()


def test_a_slow_container_is_a_model_error_with_status_0(stand_in):
    _, url, _ = stand_in  # this router waits 1 s (--container-timeout 1) where SageMaker waits 60
    client = runtime_client(url)
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName="fake-model", Body=b"sleep", ContentType="text/csv")
    assert caught.value.response["OriginalStatusCode"] == 0
    assert caught.value.response["OriginalMessage"].startswith("Your invocation timed out while waiting for a "
                                                               "response from container primary.")
    assert client.invoke_endpoint(EndpointName="fake-model", Body=b"1\n")["Body"].read() == b"0.5\n"


def test_a_dead_server_is_service_unavailable_saying_how_to_restart_it(stand_in):
    _, url, home = stand_in
    client = runtime_client(url, retries=False)  # 503 is retried by botocore's default config: here, once is enough
    with pytest.raises(client.exceptions.ServiceUnavailable, match=r"Endpoint dead-model does not answer: its server "
                                                                   r"process \d+ is not running .*restart it with "
                                                                   r"`python -m ci deploy"):
        client.invoke_endpoint(EndpointName="dead-model", Body=b"1\n")
    with pytest.raises(client.exceptions.ServiceUnavailable, match="fake-model does not answer"):
        client.invoke_endpoint(EndpointName="fake-model", Body=b"close")  # dropped without an answer


def test_no_request_makes_the_router_fail(stand_in):
    _, url, _ = stand_in
    port = int(url.rsplit(":", 1)[1])
    cases = [("GET", "/", None, {}), ("GET", "/endpoints/fake-model/invocations", None, {}),
             ("POST", "/endpoints//invocations", b"1", {}), ("POST", "/endpoints/%ff%fe/invocations", b"1", {}),
             ("POST", "/endpoints/fake-model/invocations", b"1\n", {"Content-Length": "x"}),
             ("PUT", "/endpoints/fake-model/invocations/extra", b"", {})]
    for method, path, body, headers in cases:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            assert 400 <= response.status < 500, (method, path, response.status, answer)
        finally:
            connection.close()
    status = json.loads(_get(port, "/-/status"))
    assert status["pid"] > 0


def test_concurrent_clients_share_the_router(stand_in):
    _, url, _ = stand_in
    client = runtime_client(url)  # boto3 clients are thread-safe
    results, errors = [], []

    def send(index: int) -> None:
        try:
            for _ in range(25):
                body = b"1\n" * (index + 1)
                answer = client.invoke_endpoint(EndpointName="fake-model", Body=body)["Body"].read()
                results.append(answer == b"0.5\n" * (index + 1))
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(repr(exc))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(results) == 200 and all(results)


# -- the router's life ----------------------------------------------------------------------------------------------


def test_the_router_takes_its_port_falls_back_keeps_it_and_restarts(tmp_path, monkeypatch):
    home = tmp_path / "home"
    wanted = closed_port()
    monkeypatch.setenv(PORT_ENV, str(wanted))
    runtime = RuntimeRouter(home)
    try:
        url = runtime.ensure()
        assert url == f"http://127.0.0.1:{wanted}" and runtime.ensure() == url  # started once
        record = json.loads((home / "runtime" / "router.json").read_text())
        os.kill(record["pid"], 9)
        assert runtime.running_url() is None
        assert runtime.ensure() == url  # restarted on the port it had
        assert runtime.stop() and runtime.running_url() is None and not runtime.stop()
        with socket.socket() as taken:  # someone else holds the port now: any free one, recorded
            taken.bind(("127.0.0.1", wanted))
            taken.listen()
            other = runtime.ensure()
            assert other != url and runtime.recorded_url() == other
    finally:
        runtime.stop()


def test_the_router_exits_when_no_endpoint_runs_or_its_home_is_gone(tmp_path):
    idle, _ = start_router(tmp_path, "--idle-exit", "1")
    idle.wait(timeout=20)  # nothing runs under this home: it exits by itself
    home = tmp_path / "home"
    write_record(home, "fake-model", pid=os.getpid(), port=closed_port(), status="InService")
    busy, _ = start_router(home, "--idle-exit", "1")
    time.sleep(2)
    assert busy.poll() is None  # an endpoint server of its home runs (this process stands in for it)
    shutil.rmtree(home)
    busy.wait(timeout=20)


# -- real endpoints ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("runtime-served")
    served = Served(home)
    served.ops.endpoints.deploy(NAME, served.packages[0], log=lambda line: None)
    yield served
    stop_endpoints(home)


def test_boto3_gets_what_the_container_answers(served):
    endpoints = served.ops.endpoints
    status = endpoints.status(NAME)
    base = endpoints.runtime_url()
    assert status.url == f"{base}/endpoints/{NAME}/invocations"
    body = to_csv(served.X[:5])
    host, port = status.detail["container_url"].removeprefix("http://").split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("POST", "/invocations", body, {"Content-Type": "text/csv", "Accept": "application/json"})
    direct = connection.getresponse().read()
    connection.close()
    client = runtime_client(base)
    response = client.invoke_endpoint(EndpointName=NAME, Body=body, ContentType="text/csv", Accept="application/json")
    assert response["Body"].read() == direct and response["ContentType"] == "application/json"
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName=NAME, Body=b"1,2,3,4,5,6,7,8,9,10,11,12\n", ContentType="text/csv")
    assert caught.value.response["OriginalStatusCode"] == 400
    assert "the rows have 12 columns but the model has 10 features" in caught.value.response["OriginalMessage"]


def test_the_backend_invokes_through_boto3_and_says_what_the_container_said(served):
    endpoints = served.ops.endpoints
    assert len(read_predictions(endpoints.invoke(NAME, to_csv(served.X[:3])))) == 3
    with pytest.raises(EndpointFailed, match=r"endpoint 'abalone-model' answered 400: .*the rows have 12 columns but "
                                             r"the model has 10 features.*ModelError"):
        endpoints.invoke(NAME, b"1,2,3,4,5,6,7,8,9,10,11,12\n")
    with pytest.raises(EndpointFailed, match=r"endpoint 'nothing-here' does not exist \(ValidationError: Endpoint "
                                             r"nothing-here of account 000000000000 not found.\). Fix: deploy it"):
        endpoints.invoke("nothing-here", b"1\n")


def test_the_router_listens_on_loopback_only(served):
    port = int(served.ops.endpoints.runtime_url().rsplit(":", 1)[1])
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = [line.split()[1] for line in listening if line.split()[3] == "0A"]  # state LISTEN
    assert f"0100007F:{port:04X}" in local and f"00000000:{port:04X}" not in local


def test_a_killed_router_is_started_again_by_the_next_invoke(served):
    runtime = served.ops.endpoints.runtime
    before = runtime.running_url()
    record = json.loads((runtime.folder / "router.json").read_text())
    os.kill(record["pid"], 9)
    time.sleep(0.2)
    assert len(read_predictions(served.ops.endpoints.invoke(NAME, to_csv(served.X[:1])))) == 1
    assert runtime.running_url() == before  # the same address: exported variables stay right


def test_ci_endpoints_prints_the_variable_to_export(served, monkeypatch):
    from ci.cli import main

    monkeypatch.setenv("MODELOPS_HOME", str(served.ops.home))
    result = CliRunner().invoke(main, ["endpoints"])
    assert result.exit_code == 0, result.output
    url = served.ops.endpoints.runtime.running_url()
    assert f"export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={url}\n" in result.output
    assert f"{url}/endpoints/{NAME}/invocations" in result.output


def test_the_sagemaker_sdk_v3_reaches_the_endpoint_through_the_exported_variable(served, tmp_path):
    script = tmp_path / "client.py"
    script.write_text(
        "import json, sys\n"
        "from sagemaker.core.resources import Endpoint\n"
        "endpoint = Endpoint(endpoint_name=sys.argv[1])\n"
        "answer = endpoint.invoke(body=sys.stdin.buffer.read(), content_type='text/csv', accept='text/csv')\n"
        "out = {'body': answer.body.read().decode(), 'variant': answer.invoked_production_variant}\n"
        "try:\n"
        "    endpoint.invoke(body=b'1,2,3,4,5,6,7,8,9,10,11,12\\n', content_type='text/csv')\n"
        "except Exception as exc:\n"
        "    out['error'] = [type(exc).__name__, exc.response['OriginalStatusCode']]\n"
        "print(json.dumps(out))\n")
    env = {**os.environ, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": served.ops.endpoints.runtime_url(),
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("AWS_PROFILE", None)
    done = subprocess.run([sys.executable, str(script), NAME], input=to_csv(served.X[:2]), capture_output=True,
                          env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    out = json.loads(done.stdout.decode().strip().splitlines()[-1])
    expected = read_predictions(served.ops.endpoints.invoke(NAME, to_csv(served.X[:2])))
    assert np.array_equal(read_predictions(out["body"].encode()), expected)
    assert out["variant"] == "AllTraffic" and out["error"] == ["ModelError", 400]


def test_stopping_the_last_endpoint_stops_the_router(served):
    endpoints = served.ops.endpoints
    assert endpoints.runtime.running_url()
    endpoints.stop(NAME)
    assert endpoints.runtime.running_url() is None
    with pytest.raises(EndpointFailed, match="does not exist"):  # a stopped endpoint is a deleted one, as on AWS
        endpoints.invoke(NAME, to_csv(served.X[:1]))
    again = endpoints.deploy(NAME, served.packages[0], log=lambda line: None)
    assert again.url == f"{endpoints.runtime.running_url()}/endpoints/{NAME}/invocations"


def _get(port: int, path: str) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().read()
    finally:
        connection.close()
