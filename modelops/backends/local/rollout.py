"""A guarded rollout on local endpoints: the traffic steps, the alarms, and the figures they are judged on.

The new version runs in a server process of its own beside the old one (a broken artifact, a model that eats
memory or blocks its event loop cannot take the old version down with it); the runtime router
(modelops.serving.router) sends each step's share of the requests to it and counts what happened. The deploy
watches those figures and rolls back when an alarm trips, as SageMaker's deployment guardrails do on CloudWatch
alarms (docs/rollout.md says where the two differ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelops.config import Rollout

#: An alarm judges a rate or a p99 once the new version has answered this many requests (one failure trips an
#: error-rate alarm of 0 at once): a p99 of three requests says nothing, and a rate of 1 in 2 is not 50 %.
MIN_REQUESTS = 20
#: How often the deploy asks the router for the figures while a step runs.
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Step:
    """One traffic step: ``percent`` of the requests to the new version for ``seconds`` (alarms armed)."""

    percent: float
    seconds: int


def rollout_steps(rollout: Rollout) -> tuple[Step, ...]:
    """The steps of a rollout, SageMaker's traffic routing in order, the last one (100 %) being the bake.

    canary: ``traffic_percent`` for ``interval_seconds``; linear: ``traffic_percent`` more every
    ``interval_seconds`` until all; all_at_once: straight to all. Then all the traffic for ``bake_seconds``
    (SageMaker's TerminationWaitInSeconds), while the old version still runs and an alarm can bring it back.
    """
    steps = []
    if rollout.strategy == "canary":
        steps.append(Step(float(rollout.traffic_percent), rollout.interval_seconds))
    elif rollout.strategy == "linear":
        share = float(rollout.traffic_percent)
        percent = share
        while percent < 100 - 1e-9:
            steps.append(Step(round(percent, 6), rollout.interval_seconds))
            percent += share
    return (*steps, Step(100.0, rollout.bake_seconds))


@dataclass(frozen=True)
class CanaryFigures:
    """What the router counted since the rollout began (its ``GET /-/rollouts/NAME``)."""

    requests: int  # every request to the endpoint
    canary: int  # those sent to the new version
    errors: int  # the new version failed them, the old version answered them
    both_failed: int  # both versions failed them (the request's fault)
    latencies_ms: tuple[float, ...]  # the new version's model latency, newest last
    last_error: str | None

    @classmethod
    def from_json(cls, data: dict) -> CanaryFigures:
        return cls(int(data["requests"]), int(data["canary"]), int(data["errors"]), int(data["both_failed"]),
                   tuple(float(v) for v in data["latencies_ms"]), data.get("last_error"))

    @property
    def error_rate(self) -> float:
        """The new version's failures over its requests, counted as if it had had at least MIN_REQUESTS."""
        return self.errors / max(self.canary - self.both_failed, MIN_REQUESTS)

    @property
    def p99_ms(self) -> float | None:
        return float(np.percentile(self.latencies_ms, 99)) if self.latencies_ms else None

    def since(self, earlier: CanaryFigures | None) -> CanaryFigures:
        """The counts since ``earlier`` (a step's own); the latencies stay the newest ones."""
        if earlier is None:
            return self
        return CanaryFigures(self.requests - earlier.requests, self.canary - earlier.canary,
                             self.errors - earlier.errors, self.both_failed - earlier.both_failed,
                             self.latencies_ms, self.last_error)

    def describe(self) -> str:
        share = self.canary / self.requests if self.requests else 0.0
        p99 = f", p99 model latency {self.p99_ms:.1f} ms" if self.p99_ms is not None else ""
        return (f"{self.canary} of {self.requests} requests ({share:.0%}) to the new version, {self.errors} "
                f"failed{p99}")


def tripped_alarm(figures: CanaryFigures, rollout: Rollout) -> str | None:
    """The alarm the figures set off, in words (None: none).

    Error rate: over every request the new version got (each one's fault established by the old version's answer
    to it). Latency: the p99 of its newest answers (modelops.serving.router.LATENCY_WINDOW), once it has
    MIN_REQUESTS of them.
    """
    if figures.errors and figures.error_rate > rollout.alarm_error_rate:
        return (f"error rate {figures.errors}/{figures.canary - figures.both_failed} above the alarm's "
                f"{rollout.alarm_error_rate:g} (production's slo.error_rate); last: {figures.last_error}")
    if rollout.alarm_p99_ms is not None and len(figures.latencies_ms) >= MIN_REQUESTS \
            and figures.p99_ms > rollout.alarm_p99_ms:
        return (f"p99 model latency {figures.p99_ms:.1f} ms over {len(figures.latencies_ms)} requests above the "
                f"alarm's {rollout.alarm_p99_ms:g} ms (production's slo.p99_ms)")
    return None
