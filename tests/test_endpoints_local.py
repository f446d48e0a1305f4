"""Local endpoints as real server processes on 127.0.0.1: protocol, swaps under load, failures, rollback."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from modelops.backends.local import LocalBackend
from modelops.entities import APPROVED
from modelops.errors import EndpointFailed, NoApprovedPackage
from modelops.release.deploy import deploy_package, select_package, verify_endpoint
from modelops.serving.protocol import read_predictions, to_csv
from tests.support.served import CONFIG, NAME, Served, request
from tests.support.servers import stop_endpoints

pytestmark = pytest.mark.slow  # real endpoint servers

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("served")
    served = Served(home)
    yield served
    stop_endpoints(home)


@pytest.fixture
def live(served):
    """The endpoint serving v1, whatever earlier tests did."""
    served.ops.endpoints.deploy(NAME, served.packages[0], log=lambda line: None)
    return served


def test_an_endpoint_answers_the_containers_protocol_over_http(live):
    X = live.X
    assert request(live, "GET", "/ping")[0] == 200
    status, kind, body = request(live, "POST", "/invocations", to_csv(X[:1]), {"Content-Type": "text/csv"})
    assert (status, kind) == (200, "text/csv; charset=utf-8") and len(read_predictions(body)) == 1
    status, _, body = request(live, "POST", "/invocations", to_csv(X), {"Content-Type": "text/csv"})
    expected = live.packages[0]
    assert status == 200 and len(read_predictions(body)) == len(X)
    libsvm = "".join(" ".join(f"{j}:{v!r}" for j, v in enumerate(row)) + "\n" for row in X[:3].tolist()).encode()
    status, _, body_libsvm = request(live, "POST", "/invocations", libsvm, {"Content-Type": "text/libsvm"})
    assert status == 200 and np.array_equal(read_predictions(body_libsvm), read_predictions(body)[:3])
    status, kind, body = request(live, "POST", "/invocations", to_csv(X[:2]),
                                 {"Content-Type": "text/csv", "Accept": "application/json"})
    assert kind == "application/json" and len(json.loads(body)["predictions"]) == 2
    # As the container does: JSON lines only with SAGEMAKER_INFERENCE_OUTPUT (tests/test_container_parity.py)
    status, kind, body = request(live, "POST", "/invocations", to_csv(X[:2]),
                                 {"Content-Type": "text/csv", "Accept": "application/jsonlines"})
    assert status == 500 and b"SAGEMAKER_INFERENCE_OUTPUT" in body
    assert expected.version == 1


@pytest.mark.parametrize(("body", "headers", "status", "message"), [
    (b"1," * 10 + b"1\n", {"Content-Type": "text/csv"}, 400, b"the rows have 11 columns but the model has 10 features"),
    (b"0.4," * 9 + b"x\n", {"Content-Type": "text/csv"}, 415, b"row 1, column 10: 'x' is not a number"),
    # A batch: its errors name the row and column too.
    (b"0.4," * 9 + b"1\n" + (b"0.4," * 9 + b"1\n") * 98 + b"0.4," * 9 + b"x\n", {"Content-Type": "text/csv"}, 415,
     b"row 100, column 10: 'x' is not a number"),
    (b"1\n", {"Content-Type": "application/x-parquet"}, 415, b"unsupported Content-Type"),
    (b"0.4," * 9 + b"1\n", {"Content-Type": "text/csv", "Accept": "text/html"}, 406,
     b"Accept type text/html is not supported"),
    (b"", {"Content-Type": "text/csv"}, 204, b""),
    (b"0," * (7 * 1024 * 1024 // 2), {"Content-Type": "text/csv"}, 413, b"over the 6,291,456-byte limit"),
])
def test_bad_requests_get_a_status_and_a_message_and_the_server_stays_up(live, body, headers, status, message):
    got, _, answer = request(live, "POST", "/invocations", body, headers)
    assert got == status and message in answer
    assert request(live, "GET", "/ping")[0] == 200


def test_unknown_routes_wrong_methods_and_untokened_loads_are_refused(live):
    assert request(live, "GET", "/nope")[0] == 404
    assert request(live, "GET", "/invocations")[0] == 405
    assert request(live, "POST", "/-/load", b"{}")[0] == 403  # no admin token
    assert request(live, "POST", "/-/load", b"{}", {"X-Modelops-Token": "guess"})[0] == 403


def test_binds_loopback_only(live):
    port = live.record()["port"]
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = [line.split()[1] for line in listening if line.split()[3] == "0A"]  # state LISTEN
    assert f"0100007F:{port:04X}" in local


def test_swap_under_concurrent_load_fails_no_request(live):
    body = to_csv(live.X[:5])
    stop, failures, answers, sent = threading.Event(), [], set(), [0]

    def client():
        connection = http.client.HTTPConnection(live.record()["host"], live.record()["port"], timeout=30)
        while not stop.is_set() and sent[0] < 50_000:
            try:
                connection.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
                response = connection.getresponse()
                payload = response.read()
                sent[0] += 1
                if response.status != 200:
                    failures.append((response.status, payload))
                answers.add(payload)
            except Exception as exc:  # a dropped connection is a failed request too
                failures.append(repr(exc))
                connection = http.client.HTTPConnection(live.record()["host"], live.record()["port"], timeout=30)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    quiet = lambda line: None  # noqa: E731
    live.ops.endpoints.deploy(NAME, live.packages[1], log=quiet)
    live.ops.endpoints.deploy(NAME, live.packages[2], log=quiet)
    live.ops.endpoints.rollback(NAME, log=quiet)
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert sent[0] > 20  # a load, not a throughput target (benchmarks/serving.py measures that)
    assert len(answers) == 3  # every version answered some requests: v1, v2, v3 (v2 again after rollback)
    status = live.ops.endpoints.status(NAME)
    assert (status.version, status.previous_version) == (2, 3)


def test_rollback_swaps_current_and_previous(live):
    quiet = lambda line: None  # noqa: E731
    live.ops.endpoints.deploy(NAME, live.packages[1], log=quiet)
    back = live.ops.endpoints.rollback(NAME, log=quiet)
    assert (back.version, back.previous_version) == (1, 2)
    forward = live.ops.endpoints.rollback(NAME, log=quiet)
    assert (forward.version, forward.previous_version) == (2, 1)


def test_damaged_artifact_is_refused_and_the_previous_version_keeps_serving(served, tmp_path):
    served.ops.endpoints.deploy(NAME, served.packages[0], log=lambda line: None)
    damaged = served.register(40)
    path = served.ops.store.path(damaged.artifact_uri)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(EndpointFailed, match=r"sha256 .* but the registry recorded .* v1 keeps serving"):
        served.ops.endpoints.deploy(NAME, damaged, log=lambda line: None)
    assert served.ops.endpoints.status(NAME).version == 1
    assert len(read_predictions(served.ops.endpoints.invoke(NAME, to_csv(served.X[:3])))) == 3


def test_a_killed_server_is_reported_down_and_deploy_restarts_it(served):
    served.ops.endpoints.deploy(NAME, served.packages[0], log=lambda line: None)
    record = served.record()
    os.kill(record["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while served.ops.endpoints.status(NAME).status != "Down" and time.monotonic() < deadline:
        time.sleep(0.05)
    status = served.ops.endpoints.status(NAME)
    assert status.status == "Down" and "python -m ci deploy" in status.message
    with pytest.raises(EndpointFailed, match=r"does not answer.*restart it with `python -m ci deploy"):
        served.ops.endpoints.invoke(NAME, to_csv(served.X[:1]))
    again = served.ops.endpoints.deploy(NAME, served.packages[0], log=lambda line: None)
    assert again.status == "InService" and served.record()["port"] == record["port"]  # same port as before
    assert len(read_predictions(served.ops.endpoints.invoke(NAME, to_csv(served.X[:1])))) == 1


def test_package_selection_and_the_already_live_no_op(served):
    registry = served.ops.registry
    newest = served.register(15)
    assert registry.latest(NAME, APPROVED) == newest
    assert select_package(registry, CONFIG) == newest  # every package here was trained from this folder's tree
    assert select_package(registry, CONFIG, version=1).version == 1
    pending = served.register(5, approve=False)
    with pytest.raises(NoApprovedPackage, match=rf"v{pending.version} is PendingManualApproval, not Approved"):
        select_package(registry, CONFIG, version=pending.version)
    deployed = deploy_package(served.ops, CONFIG, newest, log=lambda line: None)
    again = deploy_package(served.ops, CONFIG, newest, log=lambda line: None)
    assert deployed.version == again.version and not again.changed and "already live" in again.message
    check = verify_endpoint(served.ops, CONFIG, newest)
    assert check.identical and check.rows == len(served.X) and check.metrics["rmse"] > 0


def test_verify_endpoint_reads_the_selected_inference_output(served):
    from dataclasses import replace

    from modelops.config import ServingConfig

    config = replace(CONFIG, serving=ServingConfig(("predicted_score",), "application/json"))
    package = served.packages[0]
    served.ops.endpoints.deploy(NAME, package, environment=config.serving.environment, log=lambda line: None)
    try:
        answer = served.ops.endpoints.invoke(NAME, to_csv(served.X[:2]))
        assert not answer.endswith(b"\n")  # the container's selectable CSV: no final line break
        check = verify_endpoint(served.ops, config, package, "production")  # NAME is the production endpoint
        assert check.identical and check.rows == len(served.X) and check.metrics["rmse"] > 0
    finally:
        served.ops.endpoints.deploy(NAME, package, log=lambda line: None)


def test_a_revision_without_an_approved_package_is_not_deployed(home, tmp_path):
    from modelops.backends.local.registry import LocalRegistry
    from modelops.entities import Lineage
    from tests.support.registry import training

    registry = LocalRegistry(tmp_path / "registry.db")
    with pytest.raises(NoApprovedPackage, match=r"no approved package of abalone-model matches commit .*approved "
                                                r"versions: none.*stage train.*ci approve"):
        select_package(registry, CONFIG)
    registry.register(NAME, training=training(), metrics={}, data_sha256="d", dataset_id="x",
                      lineage=Lineage(tree_hash="0" * 40))
    registry.approve(NAME, 1, by="test")
    with pytest.raises(NoApprovedPackage, match=r"v1 \(tree 00000000\).*--latest-approved"):
        select_package(registry, CONFIG)
    assert select_package(registry, CONFIG, latest_approved=True).version == 1


def test_rollback_needs_a_previous_version(home):
    ops = LocalBackend()
    with pytest.raises(EndpointFailed, match="no endpoint 'abalone-model' to roll back"):
        ops.endpoints.rollback(NAME)
    with pytest.raises(EndpointFailed, match="no endpoint 'abalone-model'"):
        ops.endpoints.stop(NAME)


def test_an_endpoint_says_its_limits_as_the_container_does_and_a_stopped_one_cannot(live, tmp_path):
    from modelops.entities import EndpointLimits

    limits = live.ops.endpoints.limits(NAME)
    assert limits == EndpointLimits(6 * 1024 * 1024, os.cpu_count() or 1)
    with pytest.raises(EndpointFailed, match=r"endpoint 'nothing-here' is not running.*Fix: deploy it"):
        live.ops.endpoints.limits("nothing-here")


def test_a_body_over_the_limit_is_refused_with_a_fix_that_says_to_send_fewer_rows(live):
    too_big = to_csv(np.resize(live.X, (130_000, live.X.shape[1])))
    assert len(too_big) > 6 * 1024 * 1024
    with pytest.raises(EndpointFailed, match=r"HTTP content length exceeded 6291456 bytes.*Fix: send fewer rows per "
                                             r"request") as raised:
        live.ops.endpoints.invoke(NAME, too_big)
    assert "deploy it" not in str(raised.value)


def test_the_answer_check_names_the_batch_and_rows_that_differ_and_says_to_deploy_again(live):
    other = live.register(3)  # another booster: the endpoint still serves v1
    rows = len(live.X)
    with pytest.raises(EndpointFailed, match=rf"{NAME}'s answers differ from {NAME} v{other.version}'s artifact "
                                             rf"in-process for [\d,]+ of {rows} test rows: batch 0 \(rows "
                                             rf"0-{rows - 1}\): [\d,]+ of {rows} rows differ, e\.g\. rows \d.*Fix: "
                                             rf"deploy it again \(`python -m ci deploy abalone_model --env "
                                             rf"production`\)"):
        verify_endpoint(live.ops, CONFIG, other, "production")  # NAME is the production endpoint
