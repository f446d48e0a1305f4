"""Guarded rollouts of production on local endpoints, under a client's traffic through boto3.

The broken package is one a retraining really produces: its model.yml dropped a column (``data.drop:
[shell_weight]``), so it was trained, evaluated and gated on 9 features and its own test rows pass through it,
while production's clients still send the 10 they always sent. Its artifact verifies (sha256) and loads; the
container answers 400 to every client row ("the rows have 10 columns but the model has 9 features"), which
SageMaker hands the client as a ModelError (424) that boto3 does not retry.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from modelops.backends.local import LocalBackend
from modelops.backends.local.rollout import MIN_REQUESTS, CanaryFigures, Step, rollout_steps, tripped_alarm
from modelops.config import PRODUCTION, SLO, STAGING, Rollout, load_model_config
from modelops.data.datasets import fetch_data, read_split, write_dataset
from modelops.data.prepare import features_and_target, prepare_frame, read_raw, split_frame
from modelops.entities import GATE_PASSED, IN_SERVICE, ROLLED_BACK
from modelops.errors import RolloutRolledBack
from modelops.release.deploy import deploy_package
from modelops.release.history import event_for
from modelops.review.evaluation import check_quality, evaluate_model
from modelops.review.packages import register_model
from modelops.serving.protocol import to_csv
from modelops.training.train import train_model
from tests.support.paths import ROOT, SHARED_DATA
from tests.support.servers import stop_endpoints

NAME = "abalone-model"


# -- the steps and the alarms (quick) ------------------------------------------------------------------------------


def test_each_rollout_strategy_steps_up_to_full_traffic():
    assert rollout_steps(Rollout("canary", 10, 30, 60)) == (Step(10, 30), Step(100, 60))
    assert rollout_steps(Rollout("linear", 25, 5, 7)) == (Step(25, 5), Step(50, 5), Step(75, 5), Step(100, 7))
    assert rollout_steps(Rollout("linear", 40, 5, 0)) == (Step(40, 5), Step(80, 5), Step(100, 0))
    assert rollout_steps(Rollout("all_at_once", bake_seconds=9)) == (Step(100, 9),)
    assert not Rollout("all_at_once").guarded() and Rollout("all_at_once", bake_seconds=1).guarded()


def figures(canary=0, errors=0, both_failed=0, latencies=(), last_error=None) -> CanaryFigures:
    return CanaryFigures(requests=canary * 5, canary=canary, errors=errors, both_failed=both_failed,
                         latencies_ms=tuple(latencies), last_error=last_error)


def test_error_alarm_counts_only_what_the_old_version_answered():
    strict = Rollout("canary", 10, 1, 1, slo=SLO(p99_ms=500, error_rate=0))
    assert tripped_alarm(figures(canary=1, errors=1, last_error="it answered 400"), strict).startswith(
        "error rate 1/1 above the alarm's 0 (production's slo.error_rate); last: it answered 400")
    # Requests both versions failed are the client's own (a malformed row): never the new version's fault.
    assert tripped_alarm(figures(canary=50, both_failed=50), strict) is None
    lenient = Rollout("canary", 10, 1, 1, slo=SLO(error_rate=0.05))
    assert tripped_alarm(figures(canary=3, errors=1), lenient) is None  # 1 in 20 at least: 5 %, not above
    assert tripped_alarm(figures(canary=3, errors=2), lenient) is not None  # 2 in 20
    assert tripped_alarm(figures(canary=100, errors=5), lenient) is None
    assert tripped_alarm(figures(canary=100, errors=6), lenient) is not None


def test_latency_alarm_waits_for_enough_answers():
    rollout = Rollout("canary", 10, 1, 1, slo=SLO(p99_ms=50))
    slow = [200.0] * (MIN_REQUESTS - 1)
    assert tripped_alarm(figures(canary=len(slow), latencies=slow), rollout) is None
    message = tripped_alarm(figures(canary=MIN_REQUESTS, latencies=[*slow, 200.0]), rollout)
    assert message == f"p99 model latency 200.0 ms over {MIN_REQUESTS} requests above the alarm's 50 ms " \
                      f"(production's slo.p99_ms)"
    fast = [5.0] * 99 + [60.0]  # one slow answer in 100 is the p99's business only when it is above it
    assert tripped_alarm(figures(canary=100, latencies=fast), rollout) is None
    assert tripped_alarm(figures(canary=100, latencies=[5.0] * 97 + [60.0] * 3), rollout) is not None
    assert tripped_alarm(figures(canary=100, latencies=[1e6] * 100), Rollout("canary", 10, 1, 1)) is None


def test_the_local_backend_says_in_one_line_what_it_ignores():
    from modelops.backends.local.endpoints import ignored_settings
    from modelops.config import Autoscaling

    assert ignored_settings("m", 3, Autoscaling(2, 4, 1000)) == (
        "m: the local backend ignores instance_count 3 and autoscaling 2-4 instances: it runs one server process per "
        "version (SageMaker applies them)")
    assert ignored_settings("m", 1, Autoscaling(1, 2)).startswith("m: the local backend ignores autoscaling 1-2 ")


def test_the_alarms_are_productions_slo(tmp_path):
    config = model_config(tmp_path, {"strategy": "linear", "traffic_percent": 25, "interval_seconds": 5},
                          slo={"p99_ms": 250, "error_rate": 0.01})
    rollout = config.deploy_environment(PRODUCTION).rollout
    assert (rollout.alarm_p99_ms, rollout.alarm_error_rate) == (250, 0.01)


# -- a live production endpoint under a client's traffic (servers) -------------------------------------------------


def model_config(tmp_path: Path, rollout: dict, *, drop=(), slo=None, name="model"):
    """The abalone model with production's rollout (and a dropped column, an SLO) in a folder of its own."""
    raw = yaml.safe_load((ROOT / "abalone_model" / "model.yml").read_text())
    raw["environments"]["production"]["rollout"] = rollout
    if slo is not None:
        raw["environments"]["production"]["slo"] = slo
    if drop:
        raw["data"]["drop"] = list(drop)
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.yml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_model_config(folder)


class Production:
    """A home whose production serves v1; v2 (one column dropped; unless told not to) and a healthy next version
    passed the gate."""

    def __init__(self, tmp_path: Path, *, broken: bool = True):
        os.environ["MODELOPS_DATA_DIR"] = str(SHARED_DATA)
        self.home = tmp_path / "home"
        self.ops = LocalBackend(self.home)
        canary = {"strategy": "canary", "traffic_percent": 20, "interval_seconds": 3, "bake_seconds": 2}
        self.config = model_config(tmp_path, canary)
        broken_config = model_config(tmp_path, canary, drop=["shell_weight"], name="dropped")
        self.v1 = self.package(self.config, rounds=10)
        self.broken = self.package(broken_config, rounds=10) if broken else None
        self.healthy = self.package(self.config, rounds=20)
        deploy_package(self.ops, self.config, self.v1, env_name=PRODUCTION, log=lambda line: None)
        dataset = self.dataset(self.config)
        self.X, _ = features_and_target(read_split(self.ops.store, dataset, "test"))

    def dataset(self, config):
        raw = fetch_data(config)
        return write_dataset(self.ops.store, config, raw,
                             split_frame(prepare_frame(read_raw(raw.path, config.data), config), config.split))

    def package(self, config, rounds: int):
        """Trained, registered and approved; the promotion gate's pass recorded (tests/test_promotion*.py run it)."""
        dataset = self.dataset(config)
        hyperparameters = {**config.training.hyperparameters, "num_round": rounds}
        config = replace(config, training=replace(config.training, hyperparameters=hyperparameters))
        training = train_model(self.ops, config, dataset, log=lambda line: None)
        evaluation = evaluate_model(self.ops, config, dataset, training)
        package = register_model(self.ops, config, dataset, training, evaluation,
                                 check_quality(config, {"rmse": 0, "r2": 1}))
        package = self.ops.registry.approve(NAME, package.version, by="alice")
        self.ops.history.append(event_for(NAME, GATE_PASSED, version=package.version, env_name=STAGING,
                                          package_id=package.package_id, note="recorded by the test"))
        return package


class Client(threading.Thread):
    """Invokes production one row at a time through boto3 with its standard retries, until stopped."""

    def __init__(self, ops: LocalBackend, rows, *, extra_column: bool = False):
        super().__init__(daemon=True)
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
        self.runtime = session.client("sagemaker-runtime", endpoint_url=ops.endpoints.runtime.ensure(),
                                      config=Config(retries={"mode": "standard"}))  # 3 attempts, AWS's default
        self.bodies = [to_csv([*row, 0.0] if extra_column else row) for row in rows]
        self.pause = 0.02 if extra_column else 0
        self.answers: list[tuple[float, str]] = []  # (when, the version that answered)
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self):
        i = 0
        while not self.stopping.is_set():
            try:
                answer = self.runtime.invoke_endpoint(EndpointName=NAME, Body=self.bodies[i % len(self.bodies)],
                                                      ContentType="text/csv")
                answer["Body"].read()
                self.answers.append((time.monotonic(), answer["ResponseMetadata"]["HTTPHeaders"]["x-modelops-version"]))
            except Exception as exc:  # whatever reaches the caller after boto3's retries is a failed request
                self.failures.append(repr(exc))
            i += 1
            time.sleep(self.pause)

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)


@pytest.fixture
def production(tmp_path):
    production = Production(tmp_path)
    yield production
    stop_endpoints(production.home)


def server_processes(home: Path) -> list[int]:
    """The pids of the inference servers started for endpoints under ``home``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and b"modelops.serving" in command and any(str(home).encode() in c for c in command):
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_a_broken_package_is_rolled_back_and_a_healthy_one_completes(production):
    before = production.ops.endpoints.status(NAME)
    assert (before.version, before.status) == (1, IN_SERVICE)
    lines: list[tuple[float, str]] = []

    def log(line):
        lines.append((time.monotonic(), line))

    client = Client(production.ops, production.X)
    client.start()
    try:
        time.sleep(0.5)
        started = time.monotonic()
        with pytest.raises(RolloutRolledBack, match=r"rolled back after .* at 20% of the traffic: error rate "
                                                    r"\d+/\d+ above the alarm's 0 .* the rows have 10 columns but "
                                                    r"the model has 9 features"):
            deploy_package(production.ops, production.config, production.broken, env_name=PRODUCTION, log=log)
        rolled_back = time.monotonic()
        figures = router_figures(production)
        time.sleep(0.5)
        after = production.ops.endpoints.status(NAME)
        sent_during_broken = len([t for t, _ in client.answers if started <= t <= rolled_back])
        answered_after_rollback = {v for t, v in client.answers if t > rolled_back + 0.2}
        shifted = next(t for t, line in lines if line.startswith(f"{NAME}: 20% of requests to v2"))

        assert client.failures == []
        assert (after.version, after.status, after.detail["pid"], after.started_at) == \
               (1, IN_SERVICE, before.detail["pid"], before.started_at)  # the old process was never touched
        assert answered_after_rollback == {"1"}
        assert server_processes(production.home) == [before.detail["pid"]]  # v2's server is gone
        events = production.ops.history.events(NAME)
        rollback = events[-1]
        assert (rollback.action, rollback.version, rollback.environment, rollback.package_id) == \
               (ROLLED_BACK, 1, PRODUCTION, production.v1.package_id)
        assert rollback.note.startswith(f"{NAME}: v2's rollout tripped an alarm: error rate ")
        assert figures["version"] == 2 and figures["errors"] >= 1 and figures["both_failed"] == 0
        assert figures["canary"] == figures["errors"]  # every row v2 got it failed, and v1 answered it instead
        print(f"\nbroken: {figures['requests']} requests during the rollout, {figures['canary']} "
              f"({figures['canary'] / figures['requests']:.0%}) routed to v2, {figures['errors']} failed there and "
              f"were answered by v1; the client saw {len(client.failures)} failures; rolled back "
              f"{rolled_back - shifted:.2f}s after 20% shifted ({sent_during_broken} answers in the whole deploy)")

        # A healthy version goes the same way and completes, while another client sends rows of 11 values, which
        # both versions refuse: the client gets the old version's ModelError, and the new version no blame.
        lines.clear()
        malformed = Client(production.ops, production.X, extra_column=True)
        malformed.start()
        started = time.monotonic()
        try:
            done = deploy_package(production.ops, production.config, production.healthy, env_name=PRODUCTION,
                                  log=log)
        finally:
            malformed.stop()
        finished = time.monotonic()
        time.sleep(0.5)
    finally:
        client.stop()
    assert malformed.answers == [] and len(malformed.failures) > 5
    assert all("ModelError" in failure and "the rows have 11 columns" in failure for failure in malformed.failures)
    assert (done.version, done.previous_version) == (3, 1)
    assert client.failures == []
    during = [v for t, v in client.answers if started <= t <= finished]
    assert {"1", "3"} <= set(during)
    assert {v for t, v in client.answers if t > finished + 0.2} == {"3"}
    status = production.ops.endpoints.status(NAME)
    assert (status.version, status.previous_version, status.status) == (3, 1, IN_SERVICE)
    assert server_processes(production.home) == [status.detail["pid"]] != [before.detail["pid"]]
    assert production.ops.history.events(NAME)[-1].action == "promoted"
    steps = [line for _, line in lines if "step done" in line]
    assert len(steps) == 2 and all("0 failed" in line for line in steps)
    figures = router_figures(production)
    assert figures["version"] == 3 and figures["errors"] == 0 and figures["canary"] > 0
    assert figures["both_failed"] >= 1  # the bake sends every request to v3 first
    print(f"healthy: {len(during)} answers during the deploy, {during.count('3')} by v3, "
          f"{len(client.failures)} failures; " + " | ".join(steps))


def router_figures(production) -> dict:
    """The router's figures of the endpoint's last rollout."""
    url = f"{production.ops.endpoints.runtime.running_url()}/-/rollouts/{NAME}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


@pytest.mark.slow
def test_a_slow_new_version_trips_the_latency_alarm_of_a_linear_rollout(tmp_path):
    """Under an SLO no server meets (p99 of 0.001 ms), the latency alarm trips once v2 has answered enough."""
    production = Production(tmp_path, broken=False)
    try:
        strict = model_config(tmp_path, {"strategy": "linear", "traffic_percent": 50, "interval_seconds": 30,
                                         "bake_seconds": 30}, slo={"p99_ms": 0.001, "error_rate": 0}, name="strict")
        client = Client(production.ops, production.X)
        client.start()
        lines = []
        try:
            with pytest.raises(RolloutRolledBack, match=rf"linear rollout of {NAME} to v2 was rolled back after .* at "
                                                        rf"50% of the traffic: p99 model latency [0-9.]+ ms over \d+ "
                                                        r"requests above the alarm's 0.001 ms"):
                deploy_package(production.ops, strict, production.healthy, env_name=PRODUCTION, log=lines.append)
        finally:
            client.stop()
        assert client.failures == [] and len(client.answers) > MIN_REQUESTS
        assert lines[0] == (f"{NAME}: linear rollout of v2 beside v1: 50% for 30s, then 100% for 30s; alarms: error "
                            f"rate > 0, p99 model latency > 0.001 ms")
        status = production.ops.endpoints.status(NAME)
        assert (status.version, status.status) == (1, IN_SERVICE)
        assert production.ops.history.events(NAME)[-1].note.startswith(f"{NAME}: v2's rollout tripped an alarm: p99 ")

        # Interrupted (Ctrl-C) while the new version has its share: all the traffic back to v1, its server gone.
        def interrupt(line):
            if "% of requests to v2" in line:
                assert production.ops.endpoints.status(NAME).status == "Updating"
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            deploy_package(production.ops, production.config, production.healthy, env_name=PRODUCTION,
                           log=interrupt)
        status = production.ops.endpoints.status(NAME)
        assert (status.version, status.status, status.detail["rollout"]) == (1, IN_SERVICE, None)
        assert server_processes(production.home) == [status.detail["pid"]]
    finally:
        stop_endpoints(production.home)
