"""The value types shared by the backends, serving, release and monitoring: frozen records, never boto3 dicts or
SQLite rows (kept apart from the interfaces in ``modelops.backends.base``, as mlflow keeps ``entities/`` apart from
``store/``)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from modelops.config import (
    DEFAULT_CAPTURE_MAX_DISK_MB,
    DEFAULT_CAPTURE_SAMPLING_PERCENTAGE,
    DEFAULT_INSTANCE_COUNT,
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_MAX_RUNTIME_SECONDS,
    SearchParameter,
)


@dataclass(frozen=True)
class Lineage:
    """Where a model package came from."""

    git_commit: str | None = None
    branch: str | None = None
    tree_hash: str | None = None  # git tree hash of the model folder as it was when trained
    dirty: bool = False  # the folder differed from the commit (uncommitted changes)
    model_folder: str | None = None
    notebook_artifact: str | None = None  # the executed train_register notebook, relative to the artifacts root
    ci_build_url: str | None = None
    library_version: str | None = None  # modelops.__version__ when trained
    library_hash: str | None = None  # sha256 of the modelops package's sources when trained (see library_hash())

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StoredObject:
    """An object written to a store."""

    uri: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ListedObject:
    """An object found by listing a store: its URI, size and when it was last written (ISO 8601, UTC)."""

    uri: str
    size: int
    modified: str


@dataclass(frozen=True)
class TrainingSpec:
    """What to train: the built-in XGBoost container version, hyperparameters and data channels."""

    model: str
    job_name: str
    container_version: str
    hyperparameters: dict[str, Any]
    train_uri: str  # the train channel: a prefix holding train.csv
    validation_uri: str
    output_uri: str  # where the job's outputs (model.tar.gz, logs) go
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = DEFAULT_INSTANCE_COUNT
    max_runtime_seconds: int = DEFAULT_MAX_RUNTIME_SECONDS


@dataclass(frozen=True)
class TrainingResult:
    """A finished training job and its model artifact."""

    job_name: str
    artifact_uri: str  # model.tar.gz holding xgboost-model
    artifact_sha256: str
    image: str
    container_version: str
    xgboost_version: str
    hyperparameters: dict[str, Any]
    eval_metric: str
    curves: dict[str, list[float]] = field(repr=False)  # per-round eval metric on train / validation
    rounds: int
    best_iteration: int | None
    duration_seconds: float
    log_uri: str | None = None

    def _repr_markdown_(self) -> str:
        curve = self.curves.get("validation") or []
        final = f"final validation {self.eval_metric} {curve[-1]:.4f}" if curve else "no per-round metrics logged"
        return (f"Training job `{self.job_name}`: {self.rounds} rounds in {self.duration_seconds:.1f} s, {final}; "
                f"artifact `{self.artifact_uri}` "
                f"(sha256 `{self.artifact_sha256[:12]}`), image `{self.image}`")


@dataclass(frozen=True)
class TuningSpec:
    """A hyperparameter search: the space, the objective on the validation split, the budget and the data.

    Each trial trains with ``static_hyperparameters`` (which hold ``num_round``, the round cap, and
    ``early_stopping_rounds``) plus one value of each searched parameter, on the train channel, and is scored by
    ``objective`` on the validation channel. Nothing else is read: the test split never reaches a tuner.
    """

    model: str
    job_name: str  # the local study, or the SageMaker tuning job (at most 32 characters)
    container_version: str
    static_hyperparameters: dict[str, Any]
    parameters: tuple[SearchParameter, ...]
    objective: str  # "validation:rmse", as the built-in container names it
    maximize: bool
    max_trials: int  # the search's total: trials already run for the same search count towards it
    max_seconds: int | None
    max_parallel: int
    seed: int
    train_uri: str
    validation_uri: str
    output_uri: str  # where trial outputs go (SageMaker: the training jobs' S3OutputPath)
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = DEFAULT_INSTANCE_COUNT
    max_runtime_seconds: int = DEFAULT_MAX_RUNTIME_SECONDS  # per training job

    @property
    def metric(self) -> str:
        return self.objective.split(":", 1)[1]

    @property
    def direction(self) -> str:
        return "Maximize" if self.maximize else "Minimize"


COMPLETE, PRUNED, FAILED = "COMPLETE", "PRUNED", "FAIL"


@dataclass(frozen=True)
class TuningTrial:
    """One configuration a search tried."""

    number: int
    state: str  # COMPLETE | PRUNED (stopped early as hopeless) | FAIL
    value: float | None  # the objective on the validation split (the last reported value of a pruned trial)
    hyperparameters: dict[str, Any]  # the searched parameters' values
    rounds: int | None = None  # boosting rounds of its best iteration, when known
    duration_seconds: float | None = None
    job_name: str | None = None  # SageMaker: the trial's training job


@dataclass(frozen=True)
class TuningResult:
    """A finished (or budget-exhausted) search: every trial of it, and the best."""

    job_name: str
    objective: str
    maximize: bool
    trials: tuple[TuningTrial, ...]
    duration_seconds: float  # spent by this call (a resumed search's earlier time is not included)
    resumed_trials: int = 0  # trials that an earlier, interrupted or smaller run of the same search had finished
    storage: str = ""  # the local study's database, or the tuning job's ARN
    parents: tuple[str, ...] = ()  # SageMaker: the earlier tuning jobs this one was warm-started from

    @property
    def best(self) -> TuningTrial | None:
        done = [t for t in self.trials if t.state == COMPLETE and t.value is not None]
        if not done:
            return None
        return (max if self.maximize else min)(done, key=lambda t: t.value)

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)


PENDING = "PendingManualApproval"


APPROVED = "Approved"


REJECTED = "Rejected"


STATUSES = (PENDING, APPROVED, REJECTED)


@dataclass(frozen=True)
class PackageVersion:
    """One registered version of a model: its artifact, metrics, lineage and approval status."""

    group: str
    version: int
    status: str
    package_id: str  # local: "local:<group>/<version>"; SageMaker: the model package ARN
    artifact_uri: str
    artifact_sha256: str
    image: str
    container_version: str
    xgboost_version: str
    hyperparameters: dict[str, Any] = field(repr=False)
    metrics: dict[str, Any] = field(repr=False)
    data_sha256: str
    dataset_id: str
    lineage: Lineage
    created_at: str
    training_job: str = ""
    description: str = ""
    status_by: str | None = None
    status_at: str | None = None
    status_note: str | None = None
    baselines: dict[str, str] = field(default_factory=dict, repr=False)  # monitoring baseline: file -> URI

    @property
    def label(self) -> str:
        return f"{self.group} v{self.version}"

    def _repr_markdown_(self) -> str:
        return (f"**{self.label}** registered as `{self.status}` (tree `{(self.lineage.tree_hash or '-')[:12]}`, "
                f"commit `{(self.lineage.git_commit or '-')[:12]}`, branch `{self.lineage.branch}`); "
                f"artifact `{self.artifact_uri}`")


IN_SERVICE = "InService"


#: The one production variant of every endpoint config this project creates (on both backends).
PRODUCTION_VARIANT = "AllTraffic"


#: A SageMaker resource name (endpoint, model, endpoint config, job): what CreateEndpoint and InvokeEndpoint accept.
SAGEMAKER_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


#: The variable AWS clients (boto3, the SageMaker SDK) read the SageMaker Runtime's address from.
RUNTIME_URL_ENV = "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"


@dataclass(frozen=True)
class DataCapture:
    """What an endpoint records of its traffic for the monitor: SageMaker's DataCaptureConfig, on both backends.

    Records go to ``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl`` in SageMaker's capture format
    (modelops.serving.capture). ``max_bytes`` bounds a local endpoint's capture folder (S3 has no bound).
    """

    destination: str  # a folder URI of the backend's store
    sampling_percentage: float = DEFAULT_CAPTURE_SAMPLING_PERCENTAGE
    capture_input: bool = True
    capture_output: bool = True
    csv_content_types: tuple[str, ...] = ("text/csv",)
    json_content_types: tuple[str, ...] = ("application/json",)
    max_bytes: int = int(DEFAULT_CAPTURE_MAX_DISK_MB * 2**20)

    def to_json(self) -> dict[str, Any]:
        return {"destination": self.destination, "sampling_percentage": self.sampling_percentage,
                "capture_input": self.capture_input, "capture_output": self.capture_output,
                "csv_content_types": list(self.csv_content_types),
                "json_content_types": list(self.json_content_types), "max_bytes": self.max_bytes}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> DataCapture:
        return cls(**{**record, "csv_content_types": tuple(record.get("csv_content_types", ("text/csv",))),
                      "json_content_types": tuple(record.get("json_content_types", ("application/json",)))})


@dataclass(frozen=True)
class ServedPackage:
    """The package an endpoint serves (enough to serve it again on rollback without the registry)."""

    version: int
    package_id: str
    artifact_uri: str
    artifact_sha256: str
    environment: dict[str, str] = field(default_factory=dict)  # the container's switches (model.yml serving)
    capture: dict[str, Any] | None = None  # DataCapture.to_json(), or None: nothing is recorded

    @classmethod
    def of(cls, package: PackageVersion, environment: dict[str, str] | None = None,
           capture: DataCapture | None = None) -> ServedPackage:
        return cls(package.version, package.package_id, package.artifact_uri, package.artifact_sha256,
                   dict(environment or {}), capture.to_json() if capture else None)


@dataclass(frozen=True)
class Deployment:
    """The result of a deploy or rollback."""

    endpoint: str
    version: int
    previous_version: int | None
    url: str | None  # InvokeEndpoint's URL (local: the router's http://127.0.0.1:PORT/endpoints/NAME/invocations)
    status: str
    changed: bool  # False when the requested version was already live
    message: str

    def _repr_markdown_(self) -> str:
        return f"**{self.endpoint}**: {self.message} (`{self.url}`)"


@dataclass(frozen=True)
class EndpointStatus:
    """What an endpoint is doing now."""

    name: str
    status: str  # InService | Creating | Updating | Failed | Down | Stopped
    version: int | None
    previous_version: int | None
    url: str | None
    started_at: str | None = None
    uptime_seconds: float | None = None
    package_id: str | None = None  # the registry's id of the package served now (what promotion copies)
    #: What tells this server, as it serves now, apart from any other under the same name: it changes when the
    #: server restarts or switches package (local: its pid, start and last load; SageMaker: the endpoint config
    #: and LastModifiedTime). None when nothing serves. What a measurement of the live endpoint is tied to.
    server_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # backend specifics: pid, port, log, endpoint config
    message: str = ""


#: InvokeEndpoint's payload limit on SageMaker (the Runtime API refuses a bigger body with HTTP 413).
INVOKE_MAX_PAYLOAD_MB = 6


@dataclass(frozen=True)
class EndpointLimits:
    """What one request to an endpoint may carry, and how many it answers at once.

    The container's ``GET /execution-parameters`` (``MaxPayloadInMB``, ``MaxConcurrentTransforms``) as the
    held-out checks use it: each request's body stays within ``max_payload_bytes``, and at most
    ``max_concurrency`` requests are in flight.
    """

    max_payload_bytes: int
    max_concurrency: int = 1

    @classmethod
    def of_execution_parameters(cls, parameters: dict) -> EndpointLimits:
        """From the container's answer to ``GET /execution-parameters`` (MB are MiB, as the container counts)."""
        return cls(int(parameters["MaxPayloadInMB"]) * 1024 ** 2,
                   max(1, int(parameters.get("MaxConcurrentTransforms") or 1)))


@dataclass(frozen=True)
class TransformSpec:
    """A table to score with a registered package, as the container's batch transform scores it (text/csv)."""

    model: str
    job_name: str
    package: PackageVersion
    input_uri: str  # a local file or s3:// object: feature rows without a header, or raw records (``encode``)
    output_uri: str  # a local file or s3:// object: one answer line per input row
    environment: dict[str, str] = field(default_factory=dict)  # the container's switches (model.yml serving)
    #: Raw records -> feature rows (a DataFrame of text cells to a float array); None: the input is feature rows.
    encode: Any = field(default=None, repr=False, compare=False)
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = DEFAULT_INSTANCE_COUNT
    max_payload_mb: int = 6  # the container's /execution-parameters, and a real-time request's limit
    chunk_bytes: int | None = None  # how much of a local table one chunk reads (None: serving.batch.CHUNK_BYTES)


@dataclass(frozen=True)
class TransformResult:
    """A finished batch scoring: where its answers are, how many rows, how long it took."""

    job_name: str
    version: int
    output_uri: str
    rows: int | None  # None where the backend does not count them (SageMaker's job does not say)
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)  # backend specifics: the job's ARN, the S3 output


#: What an event records. Approvals and rejections carry the registry status they set (APPROVED, REJECTED).
REGISTERED = "registered"


DEPLOYED = "deployed"  # a version was deployed to staging


GATE_PASSED = "gate-passed"  # the promotion gate passed for what staging serves


GATE_FAILED = "gate-failed"


PROMOTED = "promoted"  # a version that passed the gate was deployed to production


ROLLED_BACK = "rolled-back"  # an endpoint went back to the version it served before


STOPPED = "stopped"  # an endpoint stopped serving


ACTIONS = (REGISTERED, APPROVED, REJECTED, DEPLOYED, GATE_PASSED, GATE_FAILED, PROMOTED, ROLLED_BACK, STOPPED)


#: The actions after which an environment serves the event's version.
SERVES = (DEPLOYED, PROMOTED, ROLLED_BACK)


#: The fields an event's hash covers, under the names the hash uses (``group``, not the local column ``grp``),
#: so that both backends' logs (SQLite, S3 objects) chain the same records the same way.
EVENT_FIELDS = ("group", "version", "at", "action", "by", "note", "environment", "package_id", "git_commit",
                "ci_url")


def event_hash(event: dict[str, Any], prev_hash: str | None) -> str:
    """sha256 of the event's canonical JSON (sorted keys, no spaces, UTF-8) with the previous event's hash.

    The first event of a group has ``prev_hash`` None. Changing or deleting any event changes every hash
    after it, so a broken chain shows where the history was altered.
    """
    canonical = {**{name: event.get(name) for name in EVENT_FIELDS}, "prev_hash": prev_hash}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Event:
    """One entry of a model's append-only history: who did what to which version, where and when.

    ``environment`` is the deployment environment (staging or production) for endpoint events, None for
    registry events. ``seq`` numbers a model's events 1, 2, ... in the order they were appended; ``prev_hash``
    and ``hash`` chain them (``event_hash``).
    """

    group: str
    version: int
    at: str  # ISO 8601, UTC, milliseconds
    action: str  # one of ACTIONS
    by: str | None = None
    note: str | None = None
    environment: str | None = None
    package_id: str | None = None
    git_commit: str | None = None
    ci_url: str | None = None
    prev_hash: str | None = None
    hash: str | None = None
    seq: int | None = None

    def content(self) -> dict[str, Any]:
        """The fields the hash covers."""
        return {name: getattr(self, name) for name in EVENT_FIELDS}

    def chained(self, prev_hash: str | None, seq: int) -> Event:
        """This event as appended after an event whose hash is ``prev_hash``."""
        return replace(self, prev_hash=prev_hash, hash=event_hash(self.content(), prev_hash), seq=seq)

    @property
    def intact(self) -> bool:
        """Whether the stored hash is the hash of the stored content (False: edited after it was written)."""
        return self.hash == event_hash(self.content(), self.prev_hash)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
