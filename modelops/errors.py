"""The project's own errors: one root class, one small subclass per kind of failure."""

from __future__ import annotations


class ModelOpsError(Exception):
    """Root of every error this project raises on purpose; the CLI prints these as one line."""

    #: Exit status the CLI uses for this kind of error (documented in the README).
    exit_code = 1


class ConfigError(ModelOpsError):
    """A model config (model.yml) or a setting is missing, malformed or inconsistent."""

    exit_code = 2


class DataSourceError(ModelOpsError):
    """A data source could not be read: unreachable, wrong checksum, unsupported scheme."""


class DataError(ModelOpsError):
    """The data itself does not fit the model config: missing column, non-numeric values, one class."""


class FeaturesError(DataError):
    """A model folder's features.py failed to load, raised, or returned a table that cannot be used."""


class StoreError(ModelOpsError):
    """An artifact could not be written to or read from the backend's store."""


class TrainingFailed(ModelOpsError):
    """A training run failed (the message carries the reason, e.g. SageMaker's FailureReason)."""


class TransformFailed(ModelOpsError):
    """A batch transform job failed or timed out (the message carries SageMaker's FailureReason)."""


class ProcessingFailed(ModelOpsError):
    """A SageMaker Processing or Model Monitor job failed or timed out (the message carries its FailureReason)."""


class TuningFailed(ModelOpsError):
    """A hyperparameter search failed or was stopped (the message carries the reason)."""


class QualityGateFailed(ModelOpsError):
    """A metric missed the threshold set in the model config; nothing was registered."""

    exit_code = 3


class ConstraintViolated(ModelOpsError):
    """Live traffic broke a monitoring constraint (schema, completeness, drift, a quality gate on live labels)."""

    exit_code = 7


class RegistryError(ModelOpsError):
    """A model registry operation was refused (unknown version, invalid transition)."""


class NoApprovedPackage(RegistryError):
    """No approved package matches the revision being deployed."""

    exit_code = 4


class EndpointFailed(ModelOpsError):
    """An endpoint could not be created, updated, reached or brought into service."""

    exit_code = 5


class PayloadTooLarge(EndpointFailed):
    """One row is bigger than a single request to the endpoint may carry, so no batching can send it."""


class RolloutRolledBack(EndpointFailed):
    """A guarded rollout tripped an alarm and the endpoint went back to the version it served before."""

    def __init__(self, message: str, *, endpoint: str, version: int, package_id: str | None, rolled_back: int,
                 reason: str):
        super().__init__(message)
        self.endpoint = endpoint
        self.version = version  # what serves again
        self.package_id = package_id
        self.rolled_back = rolled_back  # the version taken out
        self.reason = reason  # the alarm, in words


class PromotionGateFailed(ModelOpsError):
    """The staging endpoint missed the promotion gate (answers, latency or errors against the SLOs)."""

    exit_code = 9


class PromotionRefused(ModelOpsError):
    """Nothing may be promoted: staging serves nothing, or a package that is not approved or did not pass the gate."""

    exit_code = 4


class HistoryError(ModelOpsError):
    """The event history could not be read or written."""


class HistoryTampered(HistoryError):
    """The event history's hash chain is broken: an event was edited, deleted or reordered."""

    exit_code = 8


class NotebookFailed(ModelOpsError):
    """A notebook run failed; the executed copy (with the failing cell) is in the artifacts."""

    exit_code = 6

    def __init__(self, message: str, *, cause: str | None = None):
        super().__init__(message)
        self.cause = cause  # the name of the error the notebook raised (e.g. "QualityGateFailed"), if any
        # When the notebook raised one of our own errors, exit with that error's code (e.g. 3 for a failed
        # quality gate), so CI can tell a bad model from a broken notebook.
        known = globals().get(cause or "")
        if isinstance(known, type) and issubclass(known, ModelOpsError) and known is not NotebookFailed:
            self.exit_code = known.exit_code


class ChangeDetectionError(ModelOpsError):
    """Git could not tell which model folders changed (bad revision, not a repository)."""


class BackendUnavailable(ModelOpsError):
    """A backend was asked for by an unknown name or lacks its optional dependencies."""
