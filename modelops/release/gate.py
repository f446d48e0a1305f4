"""The promotion gate: what staging serves, tested live before production may take it.

Unlike a check that the endpoint is ``InService`` (what the SageMaker MLOps templates' staging test does), the
gate replays every held-out test row of the served package through the staging endpoint as a client would
(``Endpoints.invoke``: boto3's SageMaker Runtime ``invoke_endpoint`` on AWS), in batches within the endpoint's
payload limit, several at once (``modelops.release.replay``), then times a seeded sample of single-row
requests, and requires:

- every answer identical to the artifact's own prediction for that row, computed offline (float32-exact; with
  ``serving.inference_output``, line for line what the container writes for it);
- the p50 and p99 of the single-row requests' latency, and the share of row answers that failed (the rows of
  failed batches, and failed single-row requests), within production's SLO (model.yml
  ``environments.production.slo``, whose ``latency_requests`` is the sample's size).

Its outcome is an event in the model's history (``gate-passed``/``gate-failed`` for the package on staging),
which is what production deploys check (``modelops.release.deploy.require_gate_passed``): a package that failed, or
never ran, the gate is refused before production is touched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from modelops.backends.base import Backend
from modelops.config import PRODUCTION, SLO, STAGING, ModelConfig
from modelops.entities import APPROVED, GATE_FAILED, GATE_PASSED, IN_SERVICE, PackageVersion
from modelops.errors import EndpointFailed, PromotionGateFailed, PromotionRefused
from modelops.records import GateRecord
from modelops.release.history import event_for

#: Error messages kept on the result (the count is complete; the first few say what went wrong).
KEPT_ERRORS = 5
#: The seed of the latency sample: the same rows are timed on every run of the gate.
LATENCY_SEED = 0


def staged_package(ops: Backend, config: ModelConfig) -> PackageVersion:
    """The package the staging endpoint serves now, as the registry knows it: what a promotion copies.

    Raises:
        PromotionRefused: staging serves nothing, serves a package the registry does not hold, or one that is not
            (or no longer) approved.
    """
    name = config.deploy_environment(STAGING).endpoint
    folder = config.folder.name if config.folder else "MODEL_DIR"
    status = ops.endpoints.status(name)
    if status is None or status.version is None or status.status != IN_SERVICE:
        state = "does not exist" if status is None else f"is {status.status}"
        raise PromotionRefused(f"the staging endpoint {name} {state}, so there is nothing to promote. Fix: deploy the "
                               f"approved version to staging (`python -m ci deploy {folder} --env staging`).")
    package = ops.registry.get(config.name, status.version)
    if status.package_id and status.package_id != package.package_id:
        raise PromotionRefused(f"{name} serves package {status.package_id}, but the registry's {package.label} is "
                               f"{package.package_id}: staging serves something the registry does not hold. Fix: "
                               f"deploy an approved version to staging (`python -m ci deploy {folder} --env "
                               f"staging`).")
    if package.status != APPROVED:
        why = f" by {package.status_by} at {package.status_at}" if package.status_by else ""
        raise PromotionRefused(f"{name} serves {package.label}, which is {package.status}{why}; only an approved "
                               f"package is promoted. Fix: deploy an approved version to staging (`python -m ci "
                               f"deploy {folder} --env staging`).")
    return package


@dataclass(frozen=True)
class GateResult:
    """The gate's measurements for one package on staging, and the SLO it was held to."""

    model: str
    endpoint: str
    package: PackageVersion
    slo: SLO
    rows: int
    identical: int
    latencies_ms: tuple[float, ...]  # of the single-row requests that were answered
    errors: tuple[str, ...]  # the first KEPT_ERRORS messages, each naming its batch or request
    error_count: int  # row answers that failed: the rows of failed batches, and failed single-row requests
    max_abs_difference: float | None
    production_version: int | None
    requests_failed: int = 0  # of error_count, the single-row requests
    latency_requests: int = 0  # single-row requests sent (the latency sample)
    batches: int = 0  # requests the held-out rows went in
    sent: str = ""  # how: batches, their size and how many at once
    differences: tuple[str, ...] = ()  # the batches whose answers differ, with their first differing rows
    server_id: str | None = None  # the staging server measured (EndpointStatus.server_id): what the figures hold for

    @property
    def error_rate(self) -> float:
        answers = self.rows + self.latency_requests
        return self.error_count / answers if answers else 0.0

    @property
    def p50_ms(self) -> float | None:
        return float(np.percentile(self.latencies_ms, 50)) if self.latencies_ms else None

    @property
    def p99_ms(self) -> float | None:
        return float(np.percentile(self.latencies_ms, 99)) if self.latencies_ms else None

    @property
    def failures(self) -> list[str]:
        """What failed, one sentence each (empty: the gate passed)."""
        failed = []
        if self.rows == 0:
            failed.append("no test rows to replay")
        answered = self.answered
        if self.identical < answered:
            failed.append(f"{answered - self.identical} of {answered} answers differ from the artifact's offline "
                          f"predictions (max |difference| {self.max_abs_difference:.3g})"
                          + (f": {self.differences[0]}" if self.differences else ""))
        if self.error_rate > self.slo.error_rate:
            answers = f"{self.rows + self.latency_requests} {'row answers' if self.latency_requests else 'requests'}"
            failed.append(f"error rate {self.error_rate:.2%} ({self.error_count} of {answers}) above the SLO's "
                          f"{self.slo.error_rate:.2%}" + (f": {self.errors[0]}" if self.errors else ""))
        for label, value, bound in (("p50", self.p50_ms, self.slo.p50_ms), ("p99", self.p99_ms, self.slo.p99_ms)):
            if bound is not None and (value is None or value > bound):
                shown = "unmeasured" if value is None else f"{value:.1f} ms"
                failed.append(f"{label} latency {shown} above the SLO's {bound:g} ms")
        return failed

    @property
    def answered(self) -> int:
        """Held-out rows whose batch the endpoint answered (each compared with the artifact)."""
        return self.rows - (self.error_count - self.requests_failed)

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """One line: the figures, then what failed (what the history's event and the report say)."""
        figures = (f"{self.identical}/{self.rows} rows identical, p50 {_ms(self.p50_ms)}, p99 {_ms(self.p99_ms)}, "
                   f"{self.error_count} errors")
        return figures if self.passed else f"{figures}; FAILED: {'; '.join(self.failures)}"

    def table(self) -> pd.DataFrame:
        """Each figure beside what it must be, and whether it is (what the gate notebook shows)."""
        answered = self.answered
        rows = [
            ("answers identical to the artifact offline", f"{self.identical} of {answered}", "all",
             self.identical == answered and self.rows > 0),
            ("error rate", f"{self.error_rate:.2%} ({self.error_count} of {self.rows + self.latency_requests})",
             f"<= {self.slo.error_rate:.2%}", self.error_rate <= self.slo.error_rate),
            ("p50 latency", _ms(self.p50_ms), _bound(self.slo.p50_ms),
             self.slo.p50_ms is None or (self.p50_ms is not None and self.p50_ms <= self.slo.p50_ms)),
            ("p99 latency", _ms(self.p99_ms), _bound(self.slo.p99_ms),
             self.slo.p99_ms is None or (self.p99_ms is not None and self.p99_ms <= self.slo.p99_ms)),
        ]
        table = pd.DataFrame(rows, columns=["check", "measured", "required", "passed"]).set_index("check")
        if self.batches:  # how the figures were taken, beside them
            table.loc["held-out rows sent as"] = [self.sent, "", None]
            table.loc["latency measured on"] = [f"{self.latency_requests:,} single-row requests (seeded sample)",
                                                f"{self.slo.latency_requests:,} or every row", None]
        return table

    @property
    def record(self) -> GateRecord:
        """What the gate notebook hands on: the figures against production's SLO, and the verdict."""
        return GateRecord(
            gate_passed=self.passed, staging_version=self.package.version, staging_package_id=self.package.package_id,
            rows_replayed=self.rows, rows_identical=self.identical, errors=self.error_count,
            gate_error_rate=round(self.error_rate, 6), gate_p50_ms=_round(self.p50_ms), gate_p99_ms=_round(self.p99_ms),
            max_abs_difference=self.max_abs_difference, slo_p50_ms=self.slo.p50_ms, slo_p99_ms=self.slo.p99_ms,
            slo_error_rate=self.slo.error_rate, gate_failures=tuple(self.failures),
            production_version=self.production_version, batches=self.batches or None,
            latency_requests=self.latency_requests or None, staging_server=self.server_id)

    def _repr_markdown_(self) -> str:
        verdict = "**passed**" if self.passed else "**FAILED**"
        return f"Promotion gate {verdict} for {self.package.label} on `{self.endpoint}`: {self.summary()}"


def run_gate(ops: Backend, config: ModelConfig, *, by: str | None = None, log=print) -> GateResult:
    """Replay the held-out test rows through the staging endpoint and hold it to the SLO; record the outcome.

    Args:
        ops: the backend (its endpoints' ``invoke`` is the SageMaker Runtime API's ``invoke_endpoint``).
        config: the model (its production SLO and container environment).
        by: who ran the gate (recorded; default ``$CIRCLE_USERNAME`` or the user running this).
        log: receives progress lines.

    Returns:
        The measurements; ``passed`` says whether production may take the package (``check_gate`` raises if not).

    Raises:
        PromotionRefused: staging serves nothing promotable (see ``staged_package``).
        PayloadTooLarge: one held-out row alone is over the endpoint's payload limit.
        EndpointFailed: the endpoint cannot say its limits (locally: its server does not answer).
    """
    from modelops.release.deploy import held_out_rows
    from modelops.release.replay import replay_rows
    from modelops.serving import protocol
    from modelops.training.train import load_artifact

    package = staged_package(ops, config)
    endpoint = config.deploy_environment(STAGING).endpoint
    server = ops.endpoints.status(endpoint)
    rows = held_out_rows(ops, config, package)
    booster = load_artifact(ops.store, package.artifact_uri, package.artifact_sha256)
    output = protocol.Output.of(booster, config.serving.environment)
    limits = ops.endpoints.limits(endpoint)
    log(f"{endpoint}: replaying {len(rows):,} test rows of {package.label} in batches of <= "
        f"{limits.max_payload_bytes:,} bytes, {limits.max_concurrency} at once")
    replay = replay_rows(ops, endpoint, rows, booster.inplace_predict, output, limits=limits)
    sample = latency_sample(len(rows), config.slo.latency_requests)
    log(f"{endpoint}: timing {len(sample):,} single-row requests")
    latencies, request_errors = time_single_rows(ops, endpoint, [rows.body(i, i + 1) for i in sample.tolist()])
    errors = [*replay.errors(), *request_errors][:KEPT_ERRORS]
    production = ops.endpoints.status(config.deploy_environment(PRODUCTION).endpoint)
    measured = server.server_id if server is not None and server.version == package.version else None
    result = GateResult(config.name, endpoint, package, config.slo, len(rows), replay.identical, tuple(latencies),
                        tuple(errors), replay.failed_rows + len(request_errors), replay.max_abs_difference,
                        production.version if production is not None and production.status == IN_SERVICE else None,
                        requests_failed=len(request_errors), latency_requests=len(sample), batches=replay.batches,
                        sent=replay.describe(), differences=tuple(replay.differences()[:KEPT_ERRORS]),
                        server_id=measured)
    ops.history.append(event_for(config.name, GATE_PASSED if result.passed else GATE_FAILED,
                                 version=package.version, folder=config.folder, env_name=STAGING,
                                 package_id=package.package_id, by=by, note=result.summary()))
    log(f"{endpoint}: promotion gate {'passed' if result.passed else 'FAILED'}: {result.summary()}")
    return result


def latency_sample(rows: int, size: int, seed: int = LATENCY_SEED) -> np.ndarray:
    """Which held-out rows the single-row requests send: ``size`` of them drawn with ``seed``, in row order
    (every row when there are fewer)."""
    if rows <= size:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=size, replace=False))


def time_single_rows(ops: Backend, endpoint: str, bodies) -> tuple[list[float], list[str]]:
    """Send each body (one row's CSV line, or a feature row) alone, one after the other; the answered requests'
    latencies (ms), and the failures' messages.

    Sequential, so that each figure is one client's request on an otherwise idle endpoint.
    """
    from modelops.serving import protocol

    latencies, errors = [], []
    for body in bodies:
        body = body if isinstance(body, bytes) else protocol.to_csv(body)
        started = time.perf_counter()
        try:
            ops.endpoints.invoke(endpoint, body)
        except EndpointFailed as exc:
            errors.append(f"a single-row request: {exc}")
            continue
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, errors


def check_gate(result: GateResult) -> None:
    """Raise when the gate failed, with a report naming what failed; production is not touched either way.

    Raises:
        PromotionGateFailed: naming each failure, what production serves, and the fix.
    """
    if result.passed:
        return
    production = f"v{result.production_version}" if result.production_version else "nothing"
    raise PromotionGateFailed(
        f"{result.model}: the promotion gate failed for {result.package.label} on {result.endpoint}: "
        f"{'; '.join(result.failures)}. Production is untouched (it serves {production}). Fix: answers that differ "
        f"mean staging does not serve the reviewed artifact (deploy it again); latency or errors above the SLO: "
        f"look at the endpoint's log and instances (model.yml environments.staging), or, if the SLO itself is wrong, "
        f"change environments.production.slo (a model.yml change is a new version to train and approve)."
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _bound(value: float | None) -> str:
    return "not gated" if value is None else f"<= {value:g} ms"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
