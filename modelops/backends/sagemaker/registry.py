"""SageMaker model registry: model package groups and versioned packages, lineage in their metadata."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from modelops.backends.base import History, Registry
from modelops.backends.sagemaker.aws import error_code, is_not_found, now_iso, translated
from modelops.backends.sagemaker.store import S3Store
from modelops.entities import PENDING, REGISTERED, Event, Lineage, PackageVersion, TrainingResult
from modelops.errors import RegistryError

# CustomerMetadataProperties: at most 50 entries, keys up to 128 and values 1-256 characters.
MAX_PROPERTIES = 50
MAX_VALUE = 256
_LINEAGE = "lineage:"
_METRIC = "metric:"
_HYPERPARAMETER = "hyperparameter:"
_STATUS_BY = "status:by"
_STATUS_AT = "status:at"
_BASELINE = "baseline:"
#: The baseline parts DriftCheckBaselines has a place for; the prediction baseline goes in metadata properties.
_DRIFT_CHECK_BASELINES = {"data": "ModelDataQuality", "quality": "ModelQuality"}


class SageMakerRegistry(Registry):
    """Versions are SageMaker's own ModelPackageVersion numbers (1, 2, ... assigned by SageMaker per group).

    What SageMaker has a field for goes there (approval status and description, the inference specification,
    ModelMetrics); the rest (sha256s, dataset, lineage, metrics, hyperparameters, who decided and when) goes
    in CustomerMetadataProperties, one property per value so the console shows them.
    """

    def __init__(self, sagemaker_client, store: S3Store, history: History):
        self.sagemaker = sagemaker_client
        self.store = store
        self.history = history  # registrations and decisions are appended to it, as the local registry does

    def register(self, group: str, *, training: TrainingResult, metrics: dict[str, Any], data_sha256: str,
                 dataset_id: str, lineage: Lineage, description: str = "",
                 report: dict[str, Any] | None = None, baselines: dict[str, str] | None = None) -> PackageVersion:
        properties = _properties(training, metrics, data_sha256, dataset_id, lineage, baselines or {})
        self._ensure_group(group)
        request = {
            "ModelPackageGroupName": group,
            "ModelPackageDescription": description[:1024],
            "ModelApprovalStatus": PENDING,
            "InferenceSpecification": {
                "Containers": [{"Image": training.image, "ModelDataUrl": training.artifact_uri,
                                "Framework": "XGBOOST", "FrameworkVersion": training.xgboost_version}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            "CustomerMetadataProperties": properties,
            "Tags": [{"Key": "modelops:model", "Value": group}],
        }
        if report is not None:
            stored = self.store.put_bytes(self.store.uri(group, "evaluation", training.job_name, "report.json"),
                                          json.dumps(report, indent=2, sort_keys=True, default=str).encode(),
                                          content_type="application/json")
            request["ModelMetrics"] = {"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                                       "S3Uri": stored.uri}}}
        if baselines:
            request["DriftCheckBaselines"] = {
                section: {file.capitalize(): {"ContentType": "application/json", "S3Uri": baselines[f"{part}_{file}"]}
                          for file in ("statistics", "constraints")}
                for part, section in _DRIFT_CHECK_BASELINES.items()}
        with translated(RegistryError, f"registering a new version of {group}"):
            arn = self.sagemaker.create_model_package(**request)["ModelPackageArn"]
        package = self._describe(arn)
        self.history.append(Event(group, package.version, now_iso(), REGISTERED, by=lineage.branch,
                                  note=training.job_name, package_id=arn, git_commit=lineage.git_commit,
                                  ci_url=lineage.ci_build_url))
        return package

    def get(self, group: str, version: int) -> PackageVersion:
        summaries = self._summaries(group)
        match = next((s for s in summaries if s["ModelPackageVersion"] == int(version)), None)
        if match is None:
            existing = sorted(s["ModelPackageVersion"] for s in summaries)
            listing = f"its versions are {existing}" if existing else "it has no versions yet"
            raise RegistryError(f"{group} has no version {version} ({listing}). Fix: pick an existing version "
                                f"(`python -m ci registry MODEL_DIR`).")
        return self._describe(match["ModelPackageArn"])

    def versions(self, group: str, status: str | None = None) -> list[PackageVersion]:
        packages = [self._describe(s["ModelPackageArn"]) for s in self._summaries(group, status)]
        return sorted(packages, key=lambda p: p.version, reverse=True)

    def _set_status(self, package: PackageVersion, status: str, *, by: str, note: str | None, expected: str,
                    git_commit: str | None = None, ci_url: str | None = None) -> PackageVersion:
        with translated(RegistryError, f"reading {package.label}"):
            current = self.sagemaker.describe_model_package(ModelPackageName=package.package_id)
        # SageMaker has no conditional update: this check narrows the race with another reviewer, it cannot
        # close it. The last decision wins, and both are recorded by CloudTrail.
        if current["ModelApprovalStatus"] != expected:
            raise RegistryError(f"{package.label} changed status while this command ran (now "
                                f"{current['ModelApprovalStatus']}). Fix: look at `python -m ci registry` and try "
                                f"again.")
        # The whole property map is sent: AWS merges it into the stored one, moto replaces it; both end equal.
        now = now_iso()
        properties = {**current.get("CustomerMetadataProperties", {}), _STATUS_BY: _value(_STATUS_BY, by),
                      _STATUS_AT: now}
        with translated(RegistryError, f"setting {package.label} to {status}"):
            self.sagemaker.update_model_package(ModelPackageArn=package.package_id, ModelApprovalStatus=status,
                                                ApprovalDescription=(note or "")[:1024],
                                                CustomerMetadataProperties=properties)
        self.history.append(Event(package.group, package.version, now, status, by=by, note=note,
                                  package_id=package.package_id, git_commit=git_commit, ci_url=ci_url))
        return self._describe(package.package_id)

    def _ensure_group(self, group: str) -> None:
        try:
            self.sagemaker.describe_model_package_group(ModelPackageGroupName=group)
            return
        except Exception as exc:
            if not is_not_found(exc):
                raise RegistryError(f"reading model package group {group} failed: {exc}") from exc
        try:
            self.sagemaker.create_model_package_group(
                ModelPackageGroupName=group, ModelPackageGroupDescription=f"modelops model {group}",
                Tags=[{"Key": "modelops:model", "Value": group}])
        except Exception as exc:
            # Two registrations may race to create the group; the loser finds it exists, which is fine.
            if error_code(exc) not in ("ValidationException", "ConflictException") or "exist" not in str(exc):
                raise RegistryError(f"creating model package group {group} failed: {exc}") from exc

    def _summaries(self, group: str, status: str | None = None) -> list[dict]:
        query = {"ModelPackageGroupName": group, "ModelPackageType": "Versioned", "SortBy": "CreationTime",
                 "SortOrder": "Descending"}
        if status:
            query["ModelApprovalStatus"] = status
        summaries = []
        try:
            for page in self.sagemaker.get_paginator("list_model_packages").paginate(**query):
                summaries += page["ModelPackageSummaryList"]
        except Exception as exc:
            if is_not_found(exc):
                return []
            raise RegistryError(f"listing the versions of {group} failed: {exc}") from exc
        return summaries

    def _describe(self, arn: str) -> PackageVersion:
        with translated(RegistryError, f"reading model package {arn}"):
            return _package(self.sagemaker.describe_model_package(ModelPackageName=arn))


def _properties(training: TrainingResult, metrics: dict[str, Any], data_sha256: str, dataset_id: str,
                lineage: Lineage, baselines: dict[str, str]) -> dict[str, str]:
    values: dict[str, Any] = {
        "artifact_sha256": training.artifact_sha256,
        "data_sha256": data_sha256,
        "dataset_id": dataset_id,
        "training_job": training.job_name,
        "container_version": training.container_version,
        "xgboost_version": training.xgboost_version,
        **{f"{_LINEAGE}{k}": json.dumps(v) for k, v in lineage.to_json().items() if v is not None},
        **{f"{_METRIC}{k}": json.dumps(v) for k, v in metrics.items()},
        **{f"{_HYPERPARAMETER}{k}": json.dumps(v) for k, v in training.hyperparameters.items()},
        **{f"{_BASELINE}{k}": v for k, v in baselines.items() if k.split("_")[0] not in _DRIFT_CHECK_BASELINES},
    }
    properties = {key: _value(key, value) for key, value in values.items() if value != ""}
    if len(properties) > MAX_PROPERTIES - 2:  # two are kept for the approval decision
        raise RegistryError(f"this version would need {len(properties)} metadata properties, more than SageMaker's "
                            f"{MAX_PROPERTIES - 2} left for it. Fix: report fewer metrics or hyperparameters.")
    return properties


def _value(key: str, value: Any) -> str:
    text = str(value)
    if not 1 <= len(text) <= MAX_VALUE:
        raise RegistryError(f"the registry property {key!r} is {len(text)} characters long; SageMaker allows 1-"
                            f"{MAX_VALUE}. Fix: shorten it.")
    return text


def _package(described: dict) -> PackageVersion:
    properties = described.get("CustomerMetadataProperties") or {}
    container = described["InferenceSpecification"]["Containers"][0]

    def prefixed(prefix: str) -> dict[str, Any]:
        return {k[len(prefix):]: json.loads(v) for k, v in properties.items() if k.startswith(prefix)}

    created = described.get("CreationTime")
    return PackageVersion(
        group=described["ModelPackageGroupName"],
        version=int(described["ModelPackageVersion"]),
        status=described["ModelApprovalStatus"],
        package_id=described["ModelPackageArn"],
        artifact_uri=container["ModelDataUrl"],
        artifact_sha256=properties.get("artifact_sha256", ""),
        image=container["Image"],
        container_version=properties.get("container_version", ""),
        xgboost_version=properties.get("xgboost_version", container.get("FrameworkVersion", "")),
        hyperparameters=prefixed(_HYPERPARAMETER),
        metrics=prefixed(_METRIC),
        data_sha256=properties.get("data_sha256", ""),
        dataset_id=properties.get("dataset_id", ""),
        lineage=Lineage(**prefixed(_LINEAGE)),
        created_at=created.isoformat(timespec="milliseconds") if isinstance(created, datetime) else str(created),
        training_job=properties.get("training_job", ""),
        description=described.get("ModelPackageDescription", ""),
        status_by=properties.get(_STATUS_BY),
        status_at=properties.get(_STATUS_AT),
        status_note=described.get("ApprovalDescription") or None,
        baselines=_baselines(described),
    )


def _baselines(described: dict) -> dict[str, str]:
    """The baseline files of a package: DriftCheckBaselines, and the prediction baseline's metadata properties."""
    found = {k[len(_BASELINE):]: v for k, v in (described.get("CustomerMetadataProperties") or {}).items()
             if k.startswith(_BASELINE)}
    drift = described.get("DriftCheckBaselines") or {}
    for part, section in _DRIFT_CHECK_BASELINES.items():
        for file in ("statistics", "constraints"):
            uri = (drift.get(section) or {}).get(file.capitalize(), {}).get("S3Uri")
            if uri:
                found[f"{part}_{file}"] = uri
    return found
