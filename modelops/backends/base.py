"""The backend interface: a store, a trainer, a tuner, a registry and endpoints, with frozen records they return."""

from __future__ import annotations

import abc
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config import (
    DEFAULT_CAPTURE_MAX_DISK_MB,
    DEFAULT_CAPTURE_SAMPLING_PERCENTAGE,
    DEFAULT_INSTANCE_COUNT,
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_MAX_RUNTIME_SECONDS,
    SearchParameter,
)
from modelops.errors import RegistryError, StoreError
from modelops.lineage import Lineage

if TYPE_CHECKING:
    from modelops.config import Autoscaling, Rollout

_KEY_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def safe_key(*parts: str) -> str:
    """Join key parts into a store key, refusing anything that could escape the store's root.

    Raises:
        StoreError: a part is empty, is ``.``/``..``, or holds a separator or other unsafe character.
    """
    for part in parts:
        if not isinstance(part, str) or not _KEY_PART.match(part) or part in (".", ".."):
            raise StoreError(
                f"unsafe store key part {part!r} in {'/'.join(map(str, parts))!r}. Fix: use names made of "
                f"letters, digits, '.', '_' and '-' (no '/', no '..')."
            )
    return "/".join(parts)


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


class Store(abc.ABC):
    """Artifacts addressed by URI (``file://`` for the local backend, ``s3://`` for SageMaker)."""

    @abc.abstractmethod
    def uri(self, *parts: str) -> str:
        """The URI of a key under this store's root.

        Args:
            parts: key segments (model name, "datasets", ...); each is checked by ``safe_key``.

        Returns:
            A URI usable with every other method of this store.

        Raises:
            StoreError: a segment is unsafe.
        """

    @abc.abstractmethod
    def put_bytes(self, uri: str, data: bytes, *, content_type: str | None = None) -> StoredObject:
        """Write ``data`` at ``uri`` atomically (readers see the old object or the new one, never half).

        Returns:
            The stored object with its sha256.

        Raises:
            StoreError: the write failed.
        """

    @abc.abstractmethod
    def put_file(self, uri: str, path: Path, *, content_type: str | None = None) -> StoredObject:
        """Upload a local file to ``uri`` atomically.

        Returns:
            The stored object with its sha256.

        Raises:
            StoreError: the upload failed.
        """

    @abc.abstractmethod
    def get_bytes(self, uri: str) -> bytes:
        """Read a whole object.

        Raises:
            StoreError: no object at ``uri`` (the message says which), or the read failed.
        """

    @abc.abstractmethod
    def get_file(self, uri: str, path: Path) -> Path:
        """Download an object to a local file (written atomically).

        Returns:
            ``path``.

        Raises:
            StoreError: no object at ``uri``, or the download failed.
        """

    @abc.abstractmethod
    def exists(self, uri: str) -> bool:
        """Whether an object exists at ``uri``."""

    @abc.abstractmethod
    def list_objects(self, prefix: str) -> list[ListedObject]:
        """Every object under the folder ``prefix`` (a URI of this store), at any depth, sorted by URI.

        Returns:
            The objects (empty when there are none, or no such folder).

        Raises:
            StoreError: the listing failed.
        """

    def local_path(self, uri: str) -> Path | None:
        """A local file holding the object, when the store is on this machine (else None)."""
        return None


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


class Trainer(abc.ABC):
    """Runs training jobs with the SageMaker built-in XGBoost algorithm's semantics."""

    #: Whether ``TrainingSpec.instance_count`` > 1 trains on that many instances (SageMaker: distributed XGBoost on
    #: sharded train data) or is ignored (one process on this machine; ``train_model`` says so).
    distributed: bool = False

    @abc.abstractmethod
    def train(self, spec: TrainingSpec, *, log=print) -> TrainingResult:
        """Train and write ``model.tar.gz`` under ``spec.output_uri``.

        Args:
            spec: what to train.
            log: receives progress lines (job status, per-round metrics).

        Returns:
            The finished job with its artifact's URI and sha256.

        Raises:
            TrainingFailed: the job failed or was stopped (with the reason), or timed out.
            ConfigError: the hyperparameters were rejected.
        """


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


class Tuner(abc.ABC):
    """Searches hyperparameters with the built-in XGBoost algorithm's semantics, choosing on the validation split."""

    @abc.abstractmethod
    def tune(self, spec: TuningSpec, *, log=print) -> TuningResult:
        """Run the search until ``spec.max_trials`` trials in total (or ``spec.max_seconds``) are spent.

        A search run again with the same spec (same data, space, objective and static hyperparameters) continues
        where the earlier run stopped: locally from the study stored under the backend's home, on SageMaker by
        warm-starting from the earlier tuning jobs.

        Args:
            spec: what to search.
            log: receives progress lines (trials, job status).

        Returns:
            Every trial of the search, this run's and the earlier ones'.

        Raises:
            TuningFailed: the search failed or timed out (with the reason), or no trial completed.
            ConfigError: the search space was rejected.
        """


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


class Registry(abc.ABC):
    """Model package groups holding numbered versions with an approval status.

    Implementations store and fetch; the approval rules (what may change to what) live here, once.
    """

    @abc.abstractmethod
    def register(self, group: str, *, training: TrainingResult, metrics: dict[str, Any], data_sha256: str,
                 dataset_id: str, lineage: Lineage, description: str = "",
                 report: dict[str, Any] | None = None, baselines: dict[str, str] | None = None) -> PackageVersion:
        """Register a new version (status PendingManualApproval), creating the group if needed.

        Args:
            group: the model name.
            training: the training job whose artifact this version packages.
            metrics: test metrics (and the baseline's).
            data_sha256: sha256 of the raw data trained on.
            dataset_id: the gathered dataset's id.
            lineage: git commit, branch, model-folder tree hash, notebook artifact.
            description: free text.
            report: the full evaluation report (SageMaker uploads it as the package's ModelMetrics).
            baselines: the monitoring baseline's files (``modelops.baseline``: ``data_statistics`` -> URI, ...);
                SageMaker records them as the package's DriftCheckBaselines.

        Returns:
            The new version; versions number 1, 2, ... without gaps even under concurrent registration.

        Raises:
            RegistryError: the registration could not be stored.
        """

    @abc.abstractmethod
    def get(self, group: str, version: int) -> PackageVersion:
        """One version.

        Raises:
            RegistryError: no such group or version (the message lists what exists).
        """

    @abc.abstractmethod
    def versions(self, group: str, status: str | None = None) -> list[PackageVersion]:
        """The group's versions, newest first, optionally only those with ``status`` (empty if no group)."""

    @abc.abstractmethod
    def _set_status(self, package: PackageVersion, status: str, *, by: str, note: str | None, expected: str,
                    git_commit: str | None = None, ci_url: str | None = None) -> PackageVersion:
        """Store a status change, only if the stored status is still ``expected`` (else RegistryError), and append
        it to the history with the commit and CI job it was made from."""

    def approve(self, group: str, version: int, *, by: str, note: str | None = None,
                git_commit: str | None = None) -> PackageVersion:
        """Approve a pending version, recording who, when and why (and in the history: from which commit and, in
        CircleCI, which job: ``$CIRCLE_SHA1``, ``$CIRCLE_BUILD_URL``).

        Raises:
            RegistryError: no such version, or it was rejected (a rejected version is never revived).
        """
        package = self.get(group, version)
        if package.status == APPROVED:
            return package
        if package.status == REJECTED:
            raise RegistryError(
                f"{package.label} was rejected by {package.status_by} at {package.status_at}"
                f"{f' ({package.status_note})' if package.status_note else ''} and cannot be approved. "
                f"Fix: train and register a new version."
            )
        return self._set_status(package, APPROVED, by=_who(by), note=note, expected=package.status,
                                **_provenance(git_commit))

    def reject(self, group: str, version: int, *, by: str, note: str | None = None,
               git_commit: str | None = None) -> PackageVersion:
        """Reject a version (pending, or approved but not wanted any more), recording who, when and why.

        Raises:
            RegistryError: no such version.
        """
        package = self.get(group, version)
        if package.status == REJECTED:
            return package
        return self._set_status(package, REJECTED, by=_who(by), note=note, expected=package.status,
                                **_provenance(git_commit))

    def latest(self, group: str, status: str | None = None) -> PackageVersion | None:
        found = self.versions(group, status)
        return found[0] if found else None


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
    detail: dict[str, Any] = field(default_factory=dict)  # backend specifics: pid, port, log, endpoint config
    message: str = ""


class Endpoints(abc.ABC):
    """Real-time endpoints speaking the SageMaker XGBoost container's protocol."""

    @abc.abstractmethod
    def deploy(self, name: str, package: PackageVersion, *, instance_type: str = DEFAULT_INSTANCE_TYPE,
               instance_count: int = DEFAULT_INSTANCE_COUNT, timeout: float = 600,
               environment: dict[str, str] | None = None,
               data_capture: DataCapture | None = None, rollout: Rollout | None = None,
               autoscaling: Autoscaling | None = None, log=print) -> Deployment:
        """Create the endpoint serving ``package``, or switch an existing one to it, and wait until in service.

        The caller has already checked that ``package`` is approved (and, for production, that it passed the
        promotion gate). The artifact's sha256 is checked against ``package.artifact_sha256`` before it is
        served. ``environment`` is the container's (SAGEMAKER_INFERENCE_OUTPUT,
        SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: ``ServingConfig.environment``), not the deployment environment
        (staging/production, which only chooses ``name`` and the settings passed here); it belongs to this
        version, so a rollback brings back the previous version's. So does ``data_capture`` (None: nothing is
        captured), as on SageMaker it is part of the version's endpoint config. ``rollout`` and ``autoscaling`` are the
        production environment's (model.yml ``environments.production``; None elsewhere): how an update shifts
        traffic, and the instance bounds.

        Returns:
            The deployment; its ``previous_version`` is what served before.

        Raises:
            EndpointFailed: the endpoint failed or timed out; the message says what serves now (the previous
                version, when there was one) and where the evidence is (log, FailureReason).
        """

    @abc.abstractmethod
    def rollback(self, name: str, *, timeout: float = 600, log=print) -> Deployment:
        """Switch the endpoint back to the version it served before the last deploy.

        Raises:
            EndpointFailed: no such endpoint, nothing to roll back to, or the switch failed.
        """

    @abc.abstractmethod
    def status(self, name: str) -> EndpointStatus | None:
        """The endpoint's current status (None if this project never created it)."""

    @abc.abstractmethod
    def list(self) -> list[EndpointStatus]:
        """Every endpoint this project created, by name."""

    @abc.abstractmethod
    def invoke(self, name: str, body: bytes, *, content_type: str = "text/csv", accept: str = "text/csv",
               inference_id: str | None = None) -> bytes:
        """Send one request to the endpoint and return the response body.

        ``inference_id`` is InvokeEndpoint's InferenceId: data capture records it as ``eventMetadata.inferenceId``
        (the deploy's own checks send one, so the monitor can tell them from clients' traffic).

        Raises:
            EndpointFailed: the endpoint is down (with how to restart it) or answered with an error (its
                status and message).
        """

    def runtime_url(self) -> str | None:
        """Where AWS clients send SageMaker Runtime calls, when it is not AWS's own address (else None).

        What ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` must say for boto3 and the SageMaker SDK to reach these
        endpoints. The sagemaker backend answers None: clients use AWS's regional address.

        Raises:
            EndpointFailed: the local address could not be started.
        """
        return None

    @abc.abstractmethod
    def stop(self, name: str) -> None:
        """Stop serving and remove what this project created for the endpoint (and nothing else).

        Raises:
            EndpointFailed: no such endpoint.
        """


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


class History(abc.ABC):
    """A model's append-only event log, chained by hash (local: the registry's SQLite; SageMaker: S3 objects).

    The registry appends its own events (registered, approved, rejected); endpoint events are appended above
    the backends, by ``modelops.deploy`` and ``modelops.promotion``, after the change they record succeeded.
    """

    @abc.abstractmethod
    def append(self, event: Event) -> Event:
        """Chain ``event`` after the group's newest one and store it; concurrent appends never fork the chain.

        Returns:
            The stored event, with ``seq``, ``prev_hash`` and ``hash``.

        Raises:
            HistoryError: it could not be stored (nothing was stored).
        """

    @abc.abstractmethod
    def events(self, group: str) -> list[Event]:
        """The group's events as stored, in the order they were appended (empty for a group without any).

        Raises:
            HistoryError: the log could not be read.
        """

    @abc.abstractmethod
    def head(self, group: str) -> tuple[int, str] | None:
        """The (seq, hash) the backend recorded for the group's newest event, apart from the events themselves.

        What detects deleted newest events, which leave no gap behind them.
        """


def unapplied_settings(name: str, rollout: Rollout | None, autoscaling: Autoscaling | None) -> list[str]:
    """What a deploy says it does not apply of the production settings it was given (for a backend that does not
    apply them; the sagemaker backend applies both, see docs/scaling.md)."""
    lines = []
    if rollout is not None and rollout.strategy != "all_at_once":
        lines.append(f"{name}: model.yml's rollout ({rollout.strategy}) is not applied yet: the endpoint switches "
                     f"all at once when the new version is in service")
    if autoscaling is not None:
        lines.append(f"{name}: model.yml's autoscaling ({autoscaling.min_instances}-{autoscaling.max_instances} "
                     f"instances) is not registered yet: the endpoint keeps its instance count")
    return lines


class Backend(abc.ABC):
    """One backend: a store, a trainer, a registry and endpoints, chosen by name (see ``get_backend``)."""

    name: str = ""

    def __init__(self, store: Store):
        self.store = store

    @property
    @abc.abstractmethod
    def trainer(self) -> Trainer:
        """This backend's trainer (built on first use)."""

    @property
    @abc.abstractmethod
    def tuner(self) -> Tuner:
        """This backend's hyperparameter tuner (built on first use)."""

    @property
    @abc.abstractmethod
    def registry(self) -> Registry:
        """This backend's model registry (built on first use)."""

    @property
    @abc.abstractmethod
    def endpoints(self) -> Endpoints:
        """This backend's endpoints (built on first use)."""

    @property
    @abc.abstractmethod
    def history(self) -> History:
        """This backend's event history (built on first use)."""

    @abc.abstractmethod
    def image_uri(self, container_version: str) -> str:
        """The SageMaker built-in XGBoost image for a container version (what packages record and serve)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} store={self.store.uri()!r}>"


def _provenance(git_commit: str | None) -> dict[str, str | None]:
    """The commit and CI job a decision was made from: the caller's checkout, else CircleCI's."""
    import os

    return {"git_commit": git_commit or os.environ.get("CIRCLE_SHA1"), "ci_url": os.environ.get("CIRCLE_BUILD_URL")}


def _who(by: str) -> str:
    by = (by or "").strip()
    if not by:
        raise RegistryError("an approval or rejection needs the name of who made it. Fix: pass --by NAME.")
    return by
