"""The local endpoint answers as the SageMaker XGBoost container 3.2-0 does: one test per row of
docs/container-parity.md, over real HTTP to a server process on 127.0.0.1.

The models are boosters trained here on random data (regression, binary:logistic, multi:softprob with 3
classes), served by one local endpoint; each test loads the one it needs with the container environment it
needs, as a deploy does.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from modelops.backends.local.endpoints import LocalEndpoints
from modelops.entities import APPROVED, Lineage, PackageVersion
from modelops.serving import protocol, recordio
from modelops.training.train import pack_model
from tests.support.served import server_request
from tests.support.servers import stop_endpoints

pytestmark = pytest.mark.slow

NAME = "parity"
N_FEATURES = 4
OBJECTIVES = {"regression": {"objective": "reg:squarederror"}, "binary": {"objective": "binary:logistic"},
              "multiclass": {"objective": "multi:softprob", "num_class": 3}}
ROWS = np.array([[0.5, -1.25, 2.0, 0.0], [-0.3, 0.8, -1.5, 1.0], [1.7, 0.2, 0.4, -2.2]])


class Served:
    """One local endpoint and a package per kind of model; ``serve`` loads one with a container environment."""

    def __init__(self, home: Path):
        import xgboost

        self.endpoints = LocalEndpoints(home)
        self.boosters, self.packages = {}, {}
        rng = np.random.default_rng(15)
        X = rng.normal(size=(400, N_FEATURES))
        labels = {"regression": X[:, 0] * 3 + X[:, 1], "binary": (X[:, 0] + X[:, 2] > 0).astype(float),
                  "multiclass": (X[:, 0] > 0).astype(float) + (X[:, 1] > 0.5)}
        for version, (kind, params) in enumerate(OBJECTIVES.items(), 1):
            booster = xgboost.train({**params, "max_depth": 3}, xgboost.DMatrix(X, label=labels[kind]), 8)
            artifact = home / f"{kind}.tar.gz"
            artifact.write_bytes(pack_model(booster))
            self.boosters[kind] = booster
            self.packages[kind] = package(version, artifact)
        self.serving = None

    def serve(self, kind: str, **environment: str) -> None:
        if self.serving != (kind, environment):
            self.endpoints.deploy(NAME, self.packages[kind], environment=environment, log=lambda line: None)
            self.serving = (kind, environment)

    def expected(self, kind: str, rows: np.ndarray = ROWS) -> np.ndarray:
        return self.boosters[kind].inplace_predict(rows)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        return server_request(self.endpoints._read(NAME), method, path, body, headers)

    def invoke(self, body: bytes, content_type: str | None = "text/csv", accept: str | None = None):
        headers = {"Content-Type": content_type} if content_type is not None else {}
        if accept is not None:
            headers["Accept"] = accept
        return self.request("POST", "/invocations", body, headers)

    def status(self) -> dict:
        return json.loads(self.request("GET", "/-/status")[2])

    def log(self) -> str:
        return (self.endpoints.root / NAME / "server.log").read_text()


def package(version: int, artifact: Path) -> PackageVersion:
    import hashlib

    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    return PackageVersion(
        group=NAME, version=version, status=APPROVED, package_id=f"local:{NAME}/{version}",
        artifact_uri=artifact.as_uri(), artifact_sha256=digest, image="local", container_version="3.2-0",
        xgboost_version="3.2.0", hyperparameters={}, metrics={}, data_sha256="", dataset_id="", lineage=Lineage(),
        created_at="")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("parity")
    served = Served(home)
    yield served
    stop_endpoints(home)


@pytest.fixture
def regression(served):
    served.serve("regression")
    return served


def container_csv(predictions) -> bytes:
    """What sagemaker_containers' array_to_csv writes for preds.tolist(): csv.writer over a numpy array."""
    array = np.array(np.asarray(predictions).tolist())
    stream = io.StringIO()
    csv.writer(stream, lineterminator="\n").writerows(array.reshape(len(array), -1))
    return stream.getvalue().encode()


# -- Accept ------------------------------------------------------------------------------------------------------


def test_jsonlines_answers_need_inference_output(served):
    served.serve("binary")
    status, _, body = served.invoke(protocol.to_csv(ROWS), accept="application/jsonlines")
    assert status == 500 and b"SAGEMAKER_INFERENCE_OUTPUT" in body and b"Fix:" in body
    served.serve("binary", SAGEMAKER_INFERENCE_OUTPUT="probability")
    status, kind, body = served.invoke(protocol.to_csv(ROWS), accept="application/jsonlines")
    assert (status, kind) == (200, "application/jsonlines")
    assert [json.loads(line)["probability"] for line in body.splitlines()] == served.expected("binary").tolist()


@pytest.mark.parametrize("accept", ["application/json, text/csv", "text/*", "application/*", "text/html"])
def test_accept_lists_and_patterns_are_406(regression, accept):
    status, _, body = regression.invoke(protocol.to_csv(ROWS), accept=accept)
    assert status == 406 and b"Accept type" in body and b"Fix:" in body


def test_any_and_q_values_do_not_negotiate(regression):
    assert regression.invoke(protocol.to_csv(ROWS), accept="*/*")[1] == "text/csv; charset=utf-8"
    status, kind, body = regression.invoke(protocol.to_csv(ROWS), accept="application/json;q=0")
    assert (status, kind) == (200, "application/json") and len(json.loads(body)["predictions"]) == 3


# -- Content-Type and bodies -------------------------------------------------------------------------------------


def test_csv_label_size_must_be_1(regression):
    assert regression.invoke(protocol.to_csv(ROWS), "text/csv;label_size=2")[0] == 415
    assert regression.invoke(protocol.to_csv(ROWS), "text/csv; label_size=1")[0] == 200


def test_no_content_type_reads_libsvm(regression):
    status, _, body = regression.invoke(protocol.to_csv(ROWS), content_type=None)
    assert status == 415 and b"read as libsvm" in body
    libsvm = "".join(" ".join(f"{j}:{v!r}" for j, v in enumerate(row)) + "\n" for row in ROWS.tolist()).encode()
    status, _, body = regression.invoke(libsvm, content_type=None)
    assert status == 200 and np.array_equal(protocol.read_predictions(body), regression.expected("regression"))


def test_an_empty_body_is_204_but_a_line_break_is_415(regression):
    assert regression.invoke(b"")[:1] == (204,)
    assert regression.invoke(b"", content_type="application/x-parquet", accept="text/html")[0] == 204
    status, _, body = regression.invoke(b"\n")
    assert status == 415 and b"Could not determine delimiter" in body


@pytest.mark.parametrize(("body", "message"), [
    (b"f1,f2,f3,f4\n0.5,1,2,3\n", b"row 1, column 1: 'f1' is not a number"),
    (b"0.5,1,x,3\n", b"row 1, column 3: 'x' is not a number"),
    (b"0.5,1,2,3\n0.5,1,2\n", b"row 2 has 3 values but row 1 has 4"),
])
def test_header_rows_text_and_ragged_rows_are_415(regression, body, message):
    status, _, answer = regression.invoke(body)
    assert status == 415 and message in answer


def test_a_short_row_is_predicted_with_its_last_feature_missing_and_logged(regression):
    before = regression.status()["warnings"].get("short_rows", 0)
    status, _, body = regression.invoke(protocol.to_csv(ROWS[:, :3]))
    padded = np.column_stack([ROWS[:, :3], np.full(3, np.nan)])
    assert status == 200 and np.array_equal(protocol.read_predictions(body), regression.expected("regression", padded))
    assert regression.status()["warnings"]["short_rows"] == before + 1
    assert re.search(r"WARNING .*rows of 3 values for a model of 4 features: predicted with the last 1 feature",
                     regression.log())
    status, _, body = regression.invoke(protocol.to_csv(np.ones((1, 5))))
    assert status == 400 and b"Unable to evaluate payload provided: the rows have 5 columns" in body


@pytest.mark.parametrize("delimiter", [b";", b"\t"])
def test_the_delimiter_is_sniffed(regression, delimiter):
    status, _, body = regression.invoke(protocol.to_csv(ROWS).replace(b",", delimiter))
    assert status == 200 and np.array_equal(protocol.read_predictions(body), regression.expected("regression"))


def test_csv_answers_are_written_as_the_container_writes_them(regression):
    status, kind, body = regression.invoke(protocol.to_csv(ROWS))
    assert (status, kind) == (200, "text/csv; charset=utf-8")
    expected = regression.expected("regression")
    assert body == container_csv(expected) == "".join(f"{float(p)!r}\n" for p in expected).encode()
    many = np.random.default_rng(1).normal(size=(2000, N_FEATURES))
    status, _, body = regression.invoke(protocol.to_csv(many))  # pyarrow formats this one
    assert status == 200 and body == container_csv(regression.expected("regression", many))


def test_one_based_libsvm_is_shifted_and_logged(regression):
    one_based = "".join(" ".join(f"{j + 1}:{v!r}" for j, v in enumerate(row)) + "\n" for row in ROWS.tolist())
    status, _, body = regression.invoke(("16 " + one_based).encode(), "text/libsvm")
    assert status == 200 and np.array_equal(protocol.read_predictions(body), regression.expected("regression"))
    assert "read as 1-based and shifted down by one" in regression.log()


# -- SAGEMAKER_INFERENCE_OUTPUT and SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT --------------------------------------------


def test_inference_output_for_a_binary_model(served):
    served.serve("binary", SAGEMAKER_INFERENCE_OUTPUT="predicted_label,probability")
    probability = served.expected("binary").tolist()
    labels = [int(p > 0.5) for p in probability]
    status, kind, body = served.invoke(protocol.to_csv(ROWS), accept="application/json")
    assert (status, kind) == (200, "application/json")
    assert json.loads(body) == {"predictions": [{"predicted_label": label, "probability": p}
                                                for label, p in zip(labels, probability)]}
    status, kind, body = served.invoke(protocol.to_csv(ROWS))
    assert (status, kind) == (200, "text/csv; charset=utf-8")
    assert body == "\n".join(f"{label},{p!r}" for label, p in zip(labels, probability)).encode()
    assert served.status()["inference_output"] == ["predicted_label", "probability"]


def test_inference_output_for_a_regression_model(served):
    served.serve("regression", SAGEMAKER_INFERENCE_OUTPUT="predicted_score, predicted_label")
    status, _, body = served.invoke(protocol.to_csv(ROWS[:1]), accept="application/json")
    [row] = json.loads(body)["predictions"]
    assert row["predicted_score"] == served.expected("regression")[0].item() and np.isnan(row["predicted_label"])


def test_default_accept_answers_requests_without_accept(served):
    served.serve("regression", SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="application/json")
    for accept in (None, "*/*"):
        status, kind, body = served.invoke(protocol.to_csv(ROWS), accept=accept)
        assert (status, kind) == (200, "application/json") and len(json.loads(body)["predictions"]) == 3
    assert served.invoke(protocol.to_csv(ROWS), accept="text/csv")[1] == "text/csv; charset=utf-8"


def test_multiclass_answers_have_the_containers_shapes(served):
    served.serve("multiclass")
    expected = served.expected("multiclass")
    assert expected.shape == (3, 3)
    status, _, body = served.invoke(protocol.to_csv(ROWS))
    assert status == 200 and body == container_csv(expected)
    assert np.array_equal(protocol.read_predictions(body), expected)
    status, _, body = served.invoke(protocol.to_csv(ROWS), accept="application/json")
    assert json.loads(body) == {"predictions": [{"score": row} for row in expected.tolist()]}
    assert served.invoke(protocol.to_csv(ROWS), accept="application/jsonlines")[0] == 500
    served.serve("multiclass", SAGEMAKER_INFERENCE_OUTPUT="predicted_label,probability,probabilities,labels")
    rows = [{"predicted_label": int(np.argmax(p)), "labels": [0, 1, 2], "probability": float(max(p)),
             "probabilities": p.tolist()} for p in expected]
    assert json.loads(served.invoke(protocol.to_csv(ROWS), accept="application/json")[2]) == {"predictions": rows}
    lines = served.invoke(protocol.to_csv(ROWS), accept="application/jsonlines")[2].splitlines()
    assert [json.loads(line) for line in lines] == rows
    status, _, body = served.invoke(protocol.to_csv(ROWS), accept="text/csv")
    assert body.split(b"\n")[0] == (f'{rows[0]["predicted_label"]},{rows[0]["probability"]!r},'
                                    f'"{rows[0]["probabilities"]}","[0, 1, 2]"').encode()


# -- RecordIO-protobuf, execution parameters, order of checks ------------------------------------------------------


def test_recordio_protobuf_in_and_out(served):
    served.serve("binary")
    status, _, body = served.invoke(protocol.to_recordio(ROWS), "application/x-recordio-protobuf")
    assert status == 200 and np.array_equal(protocol.read_predictions(body), served.expected("binary"))
    assert served.invoke(protocol.to_csv(ROWS), accept="application/x-recordio-protobuf")[0] == 500
    served.serve("binary", SAGEMAKER_INFERENCE_OUTPUT="predicted_label,probability")
    status, kind, body = served.invoke(protocol.to_recordio(ROWS.astype(np.float32)), "application/x-recordio-protobuf",
                                       accept="application/x-recordio-protobuf")
    assert (status, kind) == (200, "application/x-recordio-protobuf")
    expected = served.expected("binary", ROWS.astype(np.float32))
    assert [(r["predicted_label"].tolist(), r["probability"].tolist()) for r in recordio.read_records(body, 2)] == [
        ([float(p > 0.5)], [p]) for p in expected.tolist()]


def test_execution_parameters(regression):
    status, kind, body = regression.request("GET", "/execution-parameters")
    assert (status, kind) == (200, "application/json")
    assert json.loads(body) == {"MaxConcurrentTransforms": os.cpu_count(), "BatchStrategy": "MULTI_RECORD",
                                "MaxPayloadInMB": 6}
    assert regression.request("HEAD", "/ping")[0] == 200
    assert regression.request("HEAD", "/execution-parameters")[:2] == (200, "application/json")
    assert regression.request("POST", "/execution-parameters")[0] == 405


def test_the_body_is_checked_before_accept(regression):
    assert regression.invoke(b"f1,f2\n1,2\n", accept="text/html")[0] == 415
    assert regression.invoke(protocol.to_csv(np.ones((1, 5))), accept="text/html")[0] == 400
    assert regression.invoke(protocol.to_csv(ROWS), accept="text/html")[0] == 406


# -- the switches belong to a version ------------------------------------------------------------------------------


def test_container_switches_travel_with_each_version(served, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", "raw_score")  # a stray shell variable never reaches the server
    served.endpoints.stop(NAME)
    served.serving = None
    served.serve("regression")
    assert served.status()["inference_output"] == []
    served.serve("binary", SAGEMAKER_INFERENCE_OUTPUT="probability")
    served.endpoints.rollback(NAME, log=lambda line: None)  # back to the regression model, without its switches
    assert served.status()["inference_output"] == [] and served.status()["version"] == 1
    served.endpoints.rollback(NAME, log=lambda line: None)  # forward again: the binary model with its own
    assert (served.status()["version"], served.status()["inference_output"]) == (2, ["probability"])
    served.serving = ("binary", {"SAGEMAKER_INFERENCE_OUTPUT": "probability"})


def test_deploy_package_takes_the_switches_from_model_yml(served, tmp_path):
    import yaml

    from modelops.backends.local import LocalBackend
    from modelops.config import parse_model_config
    from modelops.release.deploy import deploy_package
    from tests.support.paths import ROOT

    raw = yaml.safe_load((ROOT / "churn_model" / "model.yml").read_text())
    raw["name"], raw["serving"] = NAME, {"inference_output": ["predicted_label", "probability"]}
    ops = LocalBackend(tmp_path / "home")
    try:
        deployed = deploy_package(ops, parse_model_config(raw), served.packages["binary"], log=lambda line: None)
        assert deployed.endpoint == f"{NAME}-staging"
        body = ops.endpoints.invoke(deployed.endpoint, protocol.to_csv(ROWS))
    finally:
        stop_endpoints(tmp_path / "home")
    probability = served.expected("binary").tolist()
    assert body == "\n".join(f"{int(p > 0.5)},{p!r}" for p in probability).encode()
