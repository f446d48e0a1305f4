"""model.yml ``environments``: staging and production, their endpoints, production's SLO, rollout and autoscaling."""

from __future__ import annotations

from dataclasses import dataclass

from modelops.config.schema import DEFAULT_INSTANCE_COUNT, DEFAULT_INSTANCE_TYPE, INSTANCE_COUNT, INSTANCE_TYPE, given

#: The environments every model is deployed to, in the order a version goes through them: staging first (where
#: the promotion gate tests the live endpoint), then production. Their endpoints: ``<name>-staging`` and ``<name>``.
STAGING = "staging"
PRODUCTION = "production"
ENVIRONMENT_NAMES = (STAGING, PRODUCTION)
STAGING_SUFFIX = f"-{STAGING}"
#: How a production update shifts traffic (see Rollout).
ROLLOUT_STRATEGIES = ("all_at_once", "canary", "linear")
#: Single-row requests the promotion gate times for p50 and p99 (model.yml ``slo.latency_requests``).
DEFAULT_LATENCY_REQUESTS = 1000
#: The largest canary SageMaker's deployment guardrails take, in percent of the new fleet's capacity.
MAX_CANARY_PERCENT = 50

_ENVIRONMENT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "instance_type": INSTANCE_TYPE,
        "instance_count": INSTANCE_COUNT,
        # What the promotion gate holds staging to before production gets the version (production only).
        "slo": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "p50_ms": {"type": "number", "exclusiveMinimum": 0},
                "p99_ms": {"type": "number", "exclusiveMinimum": 0},
                "error_rate": {"type": "number", "minimum": 0, "maximum": 1},
                # How many single-row requests (a seeded sample of the held-out rows) p50 and p99 are taken on.
                "latency_requests": {"type": "integer", "minimum": 1},
            },
        },
        # The guarded rollout of a production update (production only; its alarms are the slo's figures).
        "rollout": {
            "type": "object",
            "additionalProperties": False,
            "required": ["strategy"],
            "properties": {
                "strategy": {"enum": list(ROLLOUT_STRATEGIES)},
                "traffic_percent": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100},
                "interval_seconds": {"type": "integer", "minimum": 0, "maximum": 3600},
                "bake_seconds": {"type": "integer", "minimum": 0, "maximum": 3600},
            },
        },
        # Production's instance bounds and scaling target (production only; see Autoscaling).
        "autoscaling": {
            "type": "object",
            "additionalProperties": False,
            "required": ["min_instances", "max_instances"],
            "properties": {
                "min_instances": {"type": "integer", "minimum": 1},
                "max_instances": {"type": "integer", "minimum": 1},
                "target_invocations_per_instance": {"type": "integer", "minimum": 1},
            },
        },
    },
}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    # Both take every key, so that a key set on the wrong one gets a sentence saying where it belongs
    # (``problems``) rather than "unknown key".
    "properties": {name: _ENVIRONMENT for name in ENVIRONMENT_NAMES},
}


@dataclass(frozen=True)
class SLO:
    """What the promotion gate requires of the staging endpoint before production gets its version.

    Latency is what a client measures per single-row request (SageMaker Runtime's InvokeEndpoint, end to end),
    on a seeded sample of ``latency_requests`` held-out rows (all of them when there are fewer); the error rate
    is the share of the gate's row answers that failed after the client's own retries (the rows of a failed
    batch, and failed single-row requests).
    """

    p50_ms: float | None = None  # None: not gated
    p99_ms: float | None = None
    error_rate: float = 0.0
    latency_requests: int = DEFAULT_LATENCY_REQUESTS

    def describe(self) -> str:
        parts = [f"{name} <= {value:g}" for name, value in (("p50_ms", self.p50_ms), ("p99_ms", self.p99_ms))
                 if value is not None]
        return ", ".join([*parts, f"error_rate <= {self.error_rate:g}"]) + (
            f" (latency on {self.latency_requests:,} single-row requests)" if parts else "")


@dataclass(frozen=True)
class Rollout:
    """How a production update shifts traffic (model.yml ``environments.production.rollout``; ``Endpoints.deploy``).

    ``all_at_once`` switches when the new version is in service; ``canary`` sends ``traffic_percent`` of the
    requests to it for ``interval_seconds``, then the rest; ``linear`` shifts ``traffic_percent`` more every
    ``interval_seconds``. Either way the new version then bakes for ``bake_seconds`` with the alarms armed, and
    a tripped alarm rolls the update back. The alarms hold the new version to production's SLO (one home for the
    figures the gate also holds staging to): locally the router's figures for the new version, on SageMaker
    CloudWatch alarms on its 5xx errors and model latency (deployment guardrails).
    """

    strategy: str = "all_at_once"
    traffic_percent: float | None = None
    interval_seconds: int = 0
    bake_seconds: int = 0
    #: What the alarms hold the new version to: production's ``slo`` (set from there, not a key of ``rollout``).
    slo: SLO | None = None

    @property
    def alarm_p99_ms(self) -> float | None:
        """The latency alarm's threshold: production's slo.p99_ms (None: no latency alarm)."""
        return self.slo.p99_ms if self.slo else None

    @property
    def alarm_error_rate(self) -> float:
        """The error alarm's threshold: production's slo.error_rate."""
        return self.slo.error_rate if self.slo else 0.0

    def guarded(self) -> bool:
        """Whether the new version is served beside the old one with alarms armed (else: switched at once)."""
        return self.strategy != "all_at_once" or self.bake_seconds > 0


@dataclass(frozen=True)
class Autoscaling:
    """Production's instance bounds and the load per instance the count is scaled to hold.

    On SageMaker: Application Auto Scaling target tracking on ``SageMakerVariantInvocationsPerInstance`` (requests
    per instance per minute); the local backend runs one process and says so.
    """

    min_instances: int
    max_instances: int
    target_invocations_per_instance: int | None = None


@dataclass(frozen=True)
class DeployEnvironment:
    """One environment a model is deployed to (model.yml ``environments.<name>``) and its endpoint's name.

    Not to be confused with a container's environment (``ServingConfig.environment``, the variables the
    endpoint's container runs with).
    """

    name: str  # staging | production
    endpoint: str  # <model>-staging | <model>
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = DEFAULT_INSTANCE_COUNT
    slo: SLO | None = None  # production only
    rollout: Rollout | None = None  # production only
    autoscaling: Autoscaling | None = None  # production only

    def describe(self) -> str:
        """The endpoint, its instances, and its autoscaling and rollout when set, in one line."""
        text = f"{self.endpoint}: {self.instance_count} x {self.instance_type}"
        if self.autoscaling:
            text += f", autoscaling {self.autoscaling.min_instances}-{self.autoscaling.max_instances}"
        if self.rollout:
            text += f", rollout {self.rollout.strategy}"
        return text


def endpoint_name(model: str, env_name: str) -> str:
    """The endpoint of ``model`` in an environment: ``<model>`` in production, ``<model>-staging`` in staging."""
    return model if env_name == PRODUCTION else f"{model}-{env_name}"


def endpoint_owner(endpoint: str) -> tuple[str, str]:
    """The model and environment an endpoint name stands for (the inverse of ``endpoint_name``).

    Unambiguous because no model name ends with ``-staging`` (model.yml refuses one).
    """
    if endpoint.endswith(STAGING_SUFFIX):
        return endpoint[: -len(STAGING_SUFFIX)], STAGING
    return endpoint, PRODUCTION


def parse(raw: dict) -> dict[str, DeployEnvironment]:
    """The environments model.yml sets, by name (``ModelConfig.deploy_environment`` supplies the others)."""
    return {env_name: _environment(raw["name"], env_name, settings)
            for env_name, settings in (raw.get("environments") or {}).items()}


def _environment(model: str, env_name: str, raw: dict) -> DeployEnvironment:
    slo = SLO(**raw["slo"]) if raw.get("slo") else None
    return DeployEnvironment(**{
        **given(raw, DeployEnvironment), "name": env_name, "endpoint": endpoint_name(model, env_name), "slo": slo,
        "rollout": Rollout(**raw["rollout"], slo=slo) if raw.get("rollout") else None,
        "autoscaling": Autoscaling(**raw["autoscaling"]) if raw.get("autoscaling") else None})


def problems(raw: dict) -> list[str]:
    """Keys set on the wrong environment, and bounds that contradict each other."""
    environments = raw.get("environments") or {}
    problems = []
    staging = environments.get(STAGING) or {}
    if "slo" in staging:
        problems.append("key 'environments.staging.slo': the promotion gate holds staging to production's SLOs, so "
                        "they are set once. Fix: move it to environments.production.slo")
    for key in ("rollout", "autoscaling"):
        if key in staging:
            problems.append(f"key 'environments.staging.{key}': staging is replaced at once on a fixed instance "
                            f"count; {key} applies to production. Fix: move it to environments.production.{key}")
    production = environments.get(PRODUCTION) or {}
    slo = production.get("slo") or {}
    if "p50_ms" in slo and "p99_ms" in slo and slo["p50_ms"] > slo["p99_ms"]:
        problems.append(f"key 'environments.production.slo' has p50_ms {slo['p50_ms']:g} above p99_ms "
                        f"{slo['p99_ms']:g}, which no endpoint can meet. Fix: swap or correct them")
    return problems + _autoscaling_problems(production) + _rollout_problems(production.get("rollout") or {})


def _autoscaling_problems(production: dict) -> list[str]:
    scaling = production.get("autoscaling") or {}
    if not scaling:
        return []
    problems = []
    low, high = scaling["min_instances"], scaling["max_instances"]
    count = production.get("instance_count", DeployEnvironment.instance_count)
    if low > high:
        problems.append(f"key 'environments.production.autoscaling' has min_instances {low} above max_instances "
                        f"{high}. Fix: swap or correct them")
    elif not low <= count <= high:
        problems.append(f"key 'environments.production.instance_count' is {count}, outside autoscaling's "
                        f"{low}-{high}: the endpoint would start where it may not stay. Fix: set it within them")
    if "target_invocations_per_instance" not in scaling:
        problems.append("key 'environments.production.autoscaling.target_invocations_per_instance' is missing: "
                        "without a target nothing moves the instance count between the bounds. Fix: add e.g. "
                        "target_invocations_per_instance: 1000 (requests per instance per minute)")
    return problems


def _rollout_problems(rollout: dict) -> list[str]:
    problems = []
    percent = rollout.get("traffic_percent")
    if percent is not None and percent != int(percent):
        problems.append(f"key 'environments.production.rollout.traffic_percent' is {percent:g}: SageMaker sizes "
                        f"traffic steps in whole percents of capacity. Fix: use a whole number, e.g. "
                        f"{max(1, round(percent))}")
    if rollout.get("strategy") == "canary" and percent is not None and percent > MAX_CANARY_PERCENT:
        problems.append(f"key 'environments.production.rollout.traffic_percent' is {percent:g}, but a canary is at "
                        f"most {MAX_CANARY_PERCENT}% of the new fleet (SageMaker's limit). Fix: lower it, or use "
                        f"strategy linear")
    if rollout.get("strategy") in ("canary", "linear") and "traffic_percent" not in rollout:
        problems.append(f"key 'environments.production.rollout.traffic_percent' is missing: a {rollout['strategy']} "
                        f"rollout shifts that share of the traffic at a time. Fix: add e.g. traffic_percent: 10")
    if rollout.get("strategy") == "all_at_once" and "traffic_percent" in rollout:
        problems.append("key 'environments.production.rollout.traffic_percent' is set, but an all_at_once rollout "
                        "shifts all traffic at once. Fix: remove it, or use strategy canary or linear")
    return problems
