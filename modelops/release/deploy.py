"""Deploying above any backend: which package to serve where, the switch, its event, and what the endpoint answers.

A model has two environments (``modelops.config``: staging, then production). Any approved package may go to
staging; production takes only a package whose newest promotion gate on staging passed (``modelops.release.gate``),
so ``python -m ci deploy --env production`` and ``python -m ci promote`` cannot skip the gate. Every change to an
endpoint (deploy, promotion, rollback, stop) is appended to the model's history once it has happened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from modelops.backends.base import Backend, Registry
from modelops.config import PRODUCTION, STAGING, ModelConfig, endpoint_owner
from modelops.entities import (
    APPROVED,
    DEPLOYED,
    GATE_FAILED,
    IN_SERVICE,
    PROMOTED,
    ROLLED_BACK,
    STOPPED,
    DataCapture,
    Deployment,
    EndpointStatus,
    PackageVersion,
)
from modelops.errors import EndpointFailed, NoApprovedPackage, PromotionRefused, RolloutRolledBack
from modelops.release.history import event_for, latest_gate
from modelops.review.lineage import model_lineage


def select_package(registry: Registry, config: ModelConfig, *, version: int | None = None,
                   latest_approved: bool = False) -> PackageVersion:
    """The package to deploy: the approved one trained from this model folder's git tree.

    Args:
        registry: the backend's registry.
        config: the model (its folder's tree hash is the revision's identity).
        version: deploy exactly this version (it must be approved).
        latest_approved: when no approved package matches the tree, take the newest approved one.

    Raises:
        NoApprovedPackage: nothing approved matches; the message names the revision and how to get one.
    """
    if version is not None:
        package = registry.get(config.name, int(version))
        if package.status != APPROVED:
            raise NoApprovedPackage(f"{package.label} is {package.status}, not Approved. Fix: review it and "
                                    f"`python -m ci approve {_folder(config)} --version {package.version} --by NAME`.")
        return package
    lineage = model_lineage(config.folder)
    approved = registry.versions(config.name, APPROVED)
    match = next((p for p in approved if lineage.tree_hash and p.lineage.tree_hash == lineage.tree_hash), None)
    if match is not None:
        return match
    if latest_approved and approved:
        return approved[0]
    revision = f"commit {(lineage.git_commit or 'none')[:12]}" + (" with uncommitted changes" if lineage.dirty else "")
    listing = ", ".join(f"v{p.version} (tree {(p.lineage.tree_hash or '-')[:8]})" for p in approved) or "none"
    raise NoApprovedPackage(
        f"no approved package of {config.name} matches {revision} (model folder {_folder(config)}/ tree "
        f"{(lineage.tree_hash or '-')[:12]}); approved versions: {listing}. Fix: run the branch pipeline for this "
        f"revision (`python -m ci run {_folder(config)} --stage train`), review and approve it (`python -m ci "
        f"approve {_folder(config)} --by NAME`)" + (", or pass --latest-approved to deploy the newest approved "
                                                   "version" if approved else "") + "."
    )


def deploy_package(ops: Backend, config: ModelConfig, package: PackageVersion, *, env_name: str = STAGING,
                   by: str | None = None, timeout: float = 600, log=print) -> Deployment:
    """Serve ``package`` on the model's endpoint in ``env_name``; deploying the version already live is a no-op.

    Production takes only a package that passed the promotion gate on staging. The change is recorded in the
    history (``deployed`` to staging, ``promoted`` to production) once the endpoint serves it. A production
    update with a guarded rollout (model.yml ``environments.production.rollout``) returns when the rollout has
    completed or rolled back, logging its progress.

    Args:
        ops: the backend.
        config: the model.
        package: an approved version.
        env_name: staging or production (model.yml ``environments``: the endpoint's name and instances).
        by: who deploys (default ``$CIRCLE_USERNAME`` or the user running this).
        timeout: seconds to wait for the endpoint.
        log: receives progress lines.

    Raises:
        NoApprovedPackage: the package is not approved.
        PromotionRefused: production, and the package did not pass the promotion gate (production untouched).
        EndpointFailed: the switch failed or timed out (the previous version keeps serving).
        RolloutRolledBack: production's guarded rollout tripped an alarm; the previous version serves again
            and the history has a ``rolled-back`` event with the alarm.
        HistoryError: the endpoint switched but the event could not be recorded (the message says so).
    """
    if package.status != APPROVED:
        raise NoApprovedPackage(f"{package.label} is {package.status}; only approved packages are deployed.")
    env = config.deploy_environment(env_name)
    if env_name == PRODUCTION:
        require_gate_passed(ops, config, package)
    current = ops.endpoints.status(env.endpoint)
    if current is not None and current.status == IN_SERVICE and current.version == package.version:
        message = f"v{package.version} is already live on {env.endpoint}; nothing to do"
        log(message)
        return Deployment(env.endpoint, package.version, current.previous_version, current.url, IN_SERVICE, False,
                          message)
    try:
        deployment = ops.endpoints.deploy(env.endpoint, package, instance_type=env.instance_type,
                                          instance_count=env.instance_count, timeout=timeout,
                                          environment=config.serving.environment,
                                          data_capture=data_capture(ops, config), rollout=env.rollout,
                                          autoscaling=env.autoscaling, log=log)
    except RolloutRolledBack as exc:  # the old version serves again, by the rollout's own decision: on record
        ops.history.append(event_for(config.name, ROLLED_BACK, version=exc.version, folder=config.folder,
                                     env_name=env_name, package_id=exc.package_id, by=by,
                                     note=f"{exc.endpoint}: v{exc.rolled_back}'s rollout tripped an alarm: "
                                          f"{exc.reason}"))
        raise
    before = f"before: v{deployment.previous_version}" if deployment.previous_version else "before: nothing"
    ops.history.append(event_for(config.name, PROMOTED if env_name == PRODUCTION else DEPLOYED,
                                 version=package.version, folder=config.folder, env_name=env_name,
                                 package_id=package.package_id, by=by, note=f"{env.endpoint} ({before})"))
    return deployment


def data_capture(ops: Backend, config: ModelConfig) -> DataCapture | None:
    """What the model's endpoints capture for the monitor (model.yml ``monitoring.data_capture``; None: off).

    Like the container's environment, it belongs to the version deployed: a rollback restores the previous
    version's settings, and a changed setting applies from the next version deployed.
    """
    from modelops.serving.capture import capture_uri

    settings = config.monitoring.data_capture
    if not settings.enabled:
        return None
    return DataCapture(capture_uri(ops.store, config.name), sampling_percentage=settings.sampling_percentage,
                       max_bytes=int(settings.max_disk_mb * 2**20))


def require_gate_passed(ops: Backend, config: ModelConfig, package: PackageVersion) -> None:
    """Refuse a package for production unless its newest promotion gate on staging passed.

    Raises:
        PromotionRefused: the gate never ran for it, or its newest run failed (naming when and why).
    """
    gate = latest_gate(ops.history.events(config.name), package.package_id)
    staging = f"python -m ci deploy {_folder(config)} --env staging"
    if gate is None:
        raise PromotionRefused(f"{package.label} has not been through the promotion gate on staging, so production "
                               f"does not take it (production is untouched). Fix: deploy it to staging, which runs "
                               f"the gate (`{staging}`), then promote it (`python -m ci promote {_folder(config)} "
                               f"--by NAME`).")
    if gate.action == GATE_FAILED:
        raise PromotionRefused(f"{package.label} failed the promotion gate on staging at {gate.at} ({gate.note}), so "
                               f"production does not take it (production is untouched). Fix: see the gate "
                               f"notebook of that run; once staging meets the SLO, run the gate again (`{staging}`).")


def rollback_endpoint(ops: Backend, config: ModelConfig, env_name: str, *, by: str | None = None, timeout: float = 600,
                      log=print) -> Deployment:
    """Switch ``env_name``'s endpoint back to the version it served before, and record it.

    Raises:
        EndpointFailed: no such endpoint, nothing to roll back to, or the switch failed.
    """
    env = config.deploy_environment(env_name)
    deployment = ops.endpoints.rollback(env.endpoint, timeout=timeout, log=log)
    status = ops.endpoints.status(env.endpoint)
    ops.history.append(event_for(config.name, ROLLED_BACK, version=deployment.version, folder=config.folder,
                                 env_name=env_name, package_id=status.package_id if status else None, by=by,
                                 note=f"{env.endpoint} (before: v{deployment.previous_version})"))
    return deployment


def endpoints_to_stop(ops: Backend, configs: list[ModelConfig] | None, env_name: str | None = None) -> list[str]:
    """The endpoints ``ci stop`` stops: every running one (``configs`` None), or the models' in ``env_name``, or
    in both environments those that serve (one asked for by name is stopped, or said not to exist)."""
    from modelops.config import ENVIRONMENT_NAMES

    if configs is None:
        return [e.name for e in ops.endpoints.list() if e.status != "Stopped"]
    names = []
    for config in configs:
        wanted = [config.deploy_environment(env).endpoint for env in ([env_name] if env_name else ENVIRONMENT_NAMES)]
        if not env_name:
            wanted = [name for name in wanted if (status := ops.endpoints.status(name)) is not None
                      and status.status != "Stopped"]
        names += wanted
    return names


def stop_endpoint(ops: Backend, endpoint: str, *, by: str | None = None, folder=None) -> EndpointStatus | None:
    """Stop an endpoint (``<model>`` or ``<model>-staging``) and record what it served until then.

    Args:
        folder: the model folder or project (the commit recorded is its checkout's).

    Returns:
        Its status before it stopped.

    Raises:
        EndpointFailed: no such endpoint.
    """
    before = ops.endpoints.status(endpoint)
    ops.endpoints.stop(endpoint)
    if before is not None and before.version is not None and before.status == IN_SERVICE:
        model, env_name = endpoint_owner(endpoint)
        ops.history.append(event_for(model, STOPPED, version=before.version, folder=folder, env_name=env_name,
                                     package_id=before.package_id, by=by, note=endpoint))
    return before


@dataclass(frozen=True)
class EndpointCheck:
    """The endpoint's answers for the test split against in-process predictions of the same artifact."""

    rows: int
    identical: bool
    max_abs_difference: float
    metrics: dict[str, float]  # of the endpoint's answers (identical to the artifact's float32 predictions)
    batches: int = 1  # requests the rows went in (each within the endpoint's payload limit)
    sent: str = ""  # how: batches, their size and how many at once

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"value": {"test rows sent": self.rows, "sent as": self.sent or f"{self.batches} batches",
                                       "identical to in-process": self.identical,
                                       "max |difference|": self.max_abs_difference,
                                       **{f"{k} (from endpoint)": v for k, v in self.metrics.items()}}})


def verify_endpoint(ops: Backend, config: ModelConfig, package: PackageVersion,
                    env_name: str = STAGING) -> EndpointCheck:
    """Send the package's held-out test rows through ``env_name``'s endpoint; compare with the artifact in-process.

    The rows go as a client's would: boto3's ``invoke_endpoint`` (``ops.endpoints.invoke``), through the
    local SageMaker Runtime router or AWS's, in batches within the endpoint's payload limit, several at once
    (``modelops.release.replay``); every row's answer is compared.

    Raises:
        EndpointFailed: a batch's predictions differ from the artifact's (it serves something else), or the
            endpoint answered a batch with an error; either names the batch and its rows.
        PayloadTooLarge: one test row alone is over the endpoint's payload limit.
    """
    from modelops.release.replay import replay_rows
    from modelops.scores import metrics_for
    from modelops.serving import protocol
    from modelops.training.train import load_artifact

    name = config.deploy_environment(env_name).endpoint
    rows = held_out_rows(ops, config, package)
    booster = load_artifact(ops.store, package.artifact_uri, package.artifact_sha256)
    output = protocol.Output.of(booster, config.serving.environment)
    replay = replay_rows(ops, name, rows, booster.inplace_predict, output, inference_id=check_inference_id(package))
    if replay.failed:
        raise EndpointFailed(f"{name} failed {len(replay.failed)} of {replay.batches} batches of "
                             f"{package.label}'s test rows ({replay.describe()}): {'; '.join(replay.errors()[:3])}. "
                             f"Fix: see why in the endpoint's log (`python -m ci endpoints` says where it is), then "
                             f"deploy again (`python -m ci deploy {_folder(config)} --env {env_name}`).")
    if replay.identical != replay.rows:
        selected = (f" under serving.inference_output {list(output.inference_output)}"
                    if output.inference_output is not None else "")
        raise EndpointFailed(f"{name}'s answers differ from {package.label}'s artifact in-process{selected} for "
                             f"{replay.rows - replay.identical:,} of {replay.rows:,} test rows: "
                             f"{'; '.join(replay.differences()[:3])}. The endpoint does not serve the reviewed model "
                             f"with its model.yml settings. Fix: deploy it again (`python -m ci deploy "
                             f"{_folder(config)} --env {env_name}`) and see `python -m ci endpoints` for what it "
                             f"serves.")
    # The answers are the artifact's own (float32-exact): the metrics come from them.
    return EndpointCheck(replay.rows, True, replay.max_abs_difference or 0.0,
                         metrics_for(config.problem_type, rows.labels, replay.predictions, config.decision_threshold),
                         replay.batches, replay.describe())


def served_encoding(ops: Backend, config: ModelConfig, env_name: str = PRODUCTION):
    """The feature encoding of the version ``env_name``'s endpoint serves (recorded with its training dataset).

    Raises:
        EndpointFailed: the endpoint was never deployed.
        StoreError: that dataset records no encoding (gathered by an older version).
    """
    from modelops.data.datasets import package_dataset

    name = config.deploy_environment(env_name).endpoint
    status = ops.endpoints.status(name)
    if status is None or status.version is None:
        how = (f"promote staging's version (`python -m ci promote {_folder(config)} --by NAME`)"
               if env_name == PRODUCTION else f"deploy it (`python -m ci deploy {_folder(config)} --env {env_name}`)")
        raise EndpointFailed(f"endpoint {name!r} serves no version. Fix: {how}.")
    return package_dataset(ops.store, config, ops.registry.get(config.name, status.version)).feature_encoding


def encode_request(ops: Backend, config: ModelConfig, raw_frame: pd.DataFrame, *, unseen: str = "error",
                   env_name: str = PRODUCTION) -> bytes:
    """Raw records as the CSV request body ``env_name``'s version expects (modelops.encode_rows, then to_csv)."""
    from modelops.data.prepare import encode_rows
    from modelops.serving.protocol import to_csv

    encoding = served_encoding(ops, config, env_name)
    return to_csv(encode_rows(config, raw_frame, encoding, unseen=unseen).to_numpy())


@dataclass(frozen=True)
class Latency:
    """Single-row call latency and batch throughput through the endpoint, as AWS client code sees them.

    Measured through ``ops.endpoints.invoke``: boto3's ``invoke_endpoint`` on both backends, so the
    figures include botocore's request signing (~0.5-1 ms a call) and, locally, the router's hop.
    """

    calls: int
    p50_ms: float
    p99_ms: float
    batch_rows: int
    rows_per_second: float
    samples_ms: tuple[float, ...]

    def scraps(self) -> dict[str, float]:
        return {"p50_latency_ms": round(self.p50_ms, 3), "p99_latency_ms": round(self.p99_ms, 3),
                "rows_per_second": round(self.rows_per_second, 1), "batch_rows": self.batch_rows}


def measure_latency(ops: Backend, config: ModelConfig, package: PackageVersion, *, calls: int = 200,
                    batch_rows: int = 10_000, env_name: str = STAGING) -> Latency:
    """Time ``calls`` single-row requests, then one batch of ``batch_rows`` (test rows repeated), on ``env_name``.

    Raises:
        EndpointFailed: a request failed (the container's status and message, from the Runtime's ModelError).
    """
    rows = held_out_rows(ops, config, package)
    if not len(rows):
        raise EndpointFailed(f"{package.label}'s held-out test split has no rows to time requests with. Fix: gather "
                             f"the data again (`python -m ci run {_folder(config)} --stage gather`).")
    bodies = [rows.body(i % len(rows), i % len(rows) + 1) for i in range(calls)]
    endpoint, marked = config.deploy_environment(env_name).endpoint, check_inference_id(package)

    def invoke(body):
        return ops.endpoints.invoke(endpoint, body, inference_id=marked)

    invoke(bodies[0])  # the first call creates the boto3 client and opens its connection
    samples = []
    for body in bodies:
        started = time.perf_counter()
        invoke(body)
        samples.append((time.perf_counter() - started) * 1000)
    row_bytes = sum(map(len, bodies)) / len(bodies)
    # Within the endpoint's payload limit, with room for rows longer than the sample's mean.
    batch_rows = min(batch_rows, int(0.8 * ops.endpoints.limits(endpoint).max_payload_bytes / row_bytes))
    whole, rest = divmod(batch_rows, len(rows))  # the test rows repeated, as many as the batch takes
    batch = rows.body(0, len(rows)) * whole + rows.body(0, rest)
    started = time.perf_counter()
    invoke(batch)
    elapsed = time.perf_counter() - started
    return Latency(calls, float(np.percentile(samples, 50)), float(np.percentile(samples, 99)), batch_rows,
                   batch_rows / elapsed, tuple(samples))


#: The InferenceId the deploy's own checks carry (then ``v<version>``): data capture records it, and the
#: monitor leaves those records out, since test rows replayed thousands of times are not clients' traffic.
CHECK_INFERENCE_ID = "modelops-deploy-check-"


def check_inference_id(package: PackageVersion) -> str:
    return f"{CHECK_INFERENCE_ID}v{package.version}"


def held_out_split(ops: Backend, config: ModelConfig, package: PackageVersion) -> pd.DataFrame:
    """The held-out test split of the dataset ``package`` was trained on."""
    from modelops.data.datasets import package_dataset, read_split

    return read_split(ops.store, package_dataset(ops.store, config, package), "test")


def held_out_rows(ops: Backend, config: ModelConfig, package: PackageVersion):
    """The held-out test split of the dataset ``package`` was trained on, as its stored CSV lines (``CsvRows``:
    each row's features as stored, and the targets): what the checks send, without a round trip through numbers."""
    from modelops.data.datasets import package_dataset
    from modelops.release.replay import CsvRows

    uri = package_dataset(ops.store, config, package).files["test"].uri
    return CsvRows.of_split(ops.store.get_bytes(uri), uri)


def _folder(config: ModelConfig) -> str:
    return config.folder.name if config.folder else "MODEL_DIR"
