"""The backend interface: a store, a trainer, a tuner, a registry, endpoints and a history; the records they return
are in ``modelops.entities``."""

from __future__ import annotations

import abc
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config import DEFAULT_INSTANCE_COUNT, DEFAULT_INSTANCE_TYPE
from modelops.entities import (
    APPROVED,
    INVOKE_MAX_PAYLOAD_MB,
    REJECTED,
    DataCapture,
    Deployment,
    EndpointLimits,
    EndpointStatus,
    Event,
    Lineage,
    ListedObject,
    PackageVersion,
    StoredObject,
    TrainingResult,
    TrainingSpec,
    TransformResult,
    TransformSpec,
    TuningResult,
    TuningSpec,
)
from modelops.errors import ConfigError, RegistryError, StoreError

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


class Tuner(abc.ABC):
    """Searches hyperparameters with the built-in XGBoost algorithm's semantics, choosing on the validation split."""

    @staticmethod
    def check_space(spec: TuningSpec) -> None:
        """Refuse a search space no tuner can search, before anything starts (both tuners call it first).

        Raises:
            ConfigError: a range whose low is not below its high, a log range from 0 or below, no values.
        """
        problems = [problem for parameter in spec.parameters
                    for problem in parameter.problems(f"tuning.parameters.{parameter.name}")]
        if problems:
            raise ConfigError(f"{spec.job_name}: the search space is rejected: " + "; ".join(problems))

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
            baselines: the monitoring baseline's files (``modelops.monitoring.baseline``:
                ``data_statistics`` -> URI, ...); SageMaker records them as the package's DriftCheckBaselines.

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

    def limits(self, name: str) -> EndpointLimits:
        """How much one request to the endpoint may carry and how many it answers at once.

        The default is what the SageMaker Runtime API allows any endpoint: 6 MB a request, one at a time.

        Raises:
            EndpointFailed: the endpoint cannot say (locally: its server does not answer).
        """
        return EndpointLimits(INVOKE_MAX_PAYLOAD_MB * 1024 ** 2, 1)

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


class Transformer(abc.ABC):
    """Scores a whole table with a registered package, answering each row as the container answers text/csv."""

    @abc.abstractmethod
    def transform(self, spec: TransformSpec, *, log=print) -> TransformResult:
        """Score every row of ``spec.input_uri`` and write the answers, one line per row in input order, to
        ``spec.output_uri``, which holds all of them or is left as it was (never half-written).

        Locally the rows are read, scored by the container's protocol code in-process and written chunk by chunk
        (bounded memory, no endpoint); on SageMaker a batch transform job runs the package's container over them.

        Args:
            spec: the package, the table and where its answers go; ``spec.encode`` turns raw records into rows.
            log: receives progress lines (chunks, the job's status).

        Returns:
            Where the answers are, and how many rows and seconds it took.

        Raises:
            DataError: a row cannot be scored (naming its line and the fix); nothing is written.
            TransformFailed: the batch transform job failed or timed out (with its FailureReason).
            StoreError: the input cannot be read or the output cannot be written.
        """


class History(abc.ABC):
    """A model's append-only event log, chained by hash (local: the registry's SQLite; SageMaker: S3 objects).

    The registry appends its own events (registered, approved, rejected); endpoint events are appended above
    the backends, by ``modelops.release.deploy`` and ``modelops.release.gate``, after the change they record succeeded.
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
    def transformer(self) -> Transformer:
        """This backend's batch scoring (built on first use)."""

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
