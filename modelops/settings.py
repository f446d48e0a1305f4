"""Where things live: the local backend's home, the download cache, the offline data folder, AWS settings."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from modelops.errors import ConfigError

#: The library's version (pyproject.toml's), recorded in every package's lineage.
LIBRARY_VERSION = "0.1.0"
HOME_ENV = "MODELOPS_HOME"
DATA_DIR_ENV = "MODELOPS_DATA_DIR"
BACKEND_ENV = "MODELOPS_BACKEND"
#: The file that makes a folder a model folder (defined here, not in modelops.config, so that finding model
#: folders does not import the config machinery).
MODEL_CONFIG_FILE = "model.yml"
DEFAULT_BACKEND = "local"


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding a ``.git``; else ``start`` itself."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def modelops_home() -> Path:
    """The local backend's state folder: ``$MODELOPS_HOME``, else ``.modelops/`` at the project root."""
    configured = os.environ.get(HOME_ENV)
    return Path(configured).expanduser().resolve() if configured else project_root() / ".modelops"


def cache_dir() -> Path:
    """Downloads cached by content hash, inside the home so one folder holds all local state."""
    return modelops_home() / "cache"


def data_dir() -> Path | None:
    """``$MODELOPS_DATA_DIR``: a folder searched for a source's file name before anything is downloaded."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured).expanduser().resolve() if configured else None


def backend_name(name: str | None = None) -> str:
    """The backend to use: the explicit name, else ``$MODELOPS_BACKEND``, else ``local``."""
    return name or os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND


# -- the sagemaker backend -------------------------------------------------------------------------------------

ROLE_ENV = "SAGEMAKER_EXECUTION_ROLE_ARN"
BUCKET_ENV = "MODELOPS_S3_BUCKET"
PREFIX_ENV = "MODELOPS_S3_PREFIX"
SAGEMAKER_CONFIG_ENV = "MODELOPS_SAGEMAKER_CONFIG"
SAGEMAKER_CONFIG_FILE = "sagemaker.yml"

DEFAULT_PREFIX = "modelops"

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]*$")


@dataclass(frozen=True)
class SageMakerSettings:
    """The account-side settings of the sagemaker backend (never papermill parameters; no credentials here)."""

    region: str
    role_arn: str
    bucket: str | None  # None: the SageMaker default bucket, sagemaker-<region>-<account id>
    prefix: str
    source: str  # where the settings came from, for error messages


def sagemaker_settings(config_file: Path | None = None) -> SageMakerSettings:
    """The sagemaker backend's region, execution role, bucket and prefix.

    Each comes from the environment (``AWS_REGION``/``AWS_DEFAULT_REGION``, ``SAGEMAKER_EXECUTION_ROLE_ARN``,
    ``MODELOPS_S3_BUCKET``, ``MODELOPS_S3_PREFIX``), else from the YAML file ``$MODELOPS_SAGEMAKER_CONFIG``
    (default ``sagemaker.yml`` at the project root, if present; keys ``region``, ``role_arn``, ``bucket``,
    ``prefix``), else (region only) from the AWS profile. Credentials are never read here: boto3 finds them
    in its standard chain (environment, profile, CircleCI's OIDC web identity).

    Raises:
        ConfigError: no region or role, or a malformed value (before any AWS resource is created).
    """
    path = config_file or Path(os.environ.get(SAGEMAKER_CONFIG_ENV) or project_root() / SAGEMAKER_CONFIG_FILE)
    file_values = _read_settings_file(path, required=bool(config_file or os.environ.get(SAGEMAKER_CONFIG_ENV)))
    source = f"the environment or {path}" if file_values else "the environment"

    def pick(env: str, key: str) -> str | None:
        value = os.environ.get(env) or file_values.get(key)
        return str(value).strip() if value else None

    region = os.environ.get("AWS_REGION") or pick("AWS_DEFAULT_REGION", "region") or _profile_region()
    role = pick(ROLE_ENV, "role_arn")
    bucket = pick(BUCKET_ENV, "bucket")
    prefix = (pick(PREFIX_ENV, "prefix") or DEFAULT_PREFIX).strip("/")
    problems = []
    if not region:
        problems.append("no AWS region. Fix: export AWS_REGION=us-east-1 (or set region: in "
                        f"{SAGEMAKER_CONFIG_FILE})")
    elif not _REGION.match(region):
        problems.append(f"region {region!r} is not an AWS region name (like us-east-1)")
    if not role:
        problems.append(f"no SageMaker execution role. Fix: export {ROLE_ENV}=arn:aws:iam::ACCOUNT:role/NAME (or set "
                        f"role_arn: in {SAGEMAKER_CONFIG_FILE}); it is the role training jobs and endpoints run as")
    elif not _ROLE_ARN.match(role):
        problems.append(f"{ROLE_ENV} {role!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
    if bucket and not _BUCKET.match(bucket):
        problems.append(f"bucket {bucket!r} is not a valid S3 bucket name")
    if not _PREFIX.match(prefix) or ".." in prefix.split("/"):
        problems.append(f"prefix {prefix!r} is not a usable S3 key prefix (letters, digits, '.', '_', '-', '/')")
    if problems:
        raise ConfigError(f"the sagemaker backend is not configured ({source}): " + "; ".join(problems) + ".")
    return SageMakerSettings(region=region, role_arn=role, bucket=bucket, prefix=prefix, source=source)


def _read_settings_file(path: Path, *, required: bool) -> dict:
    import yaml

    if not path.is_file():
        if required:
            raise ConfigError(f"{SAGEMAKER_CONFIG_ENV} names {path}, which does not exist. Fix: correct the path.")
        return {}
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    allowed = {"region", "role_arn", "bucket", "prefix"}
    if not isinstance(values, dict) or set(values) - allowed:
        raise ConfigError(f"{path} may hold only the keys {sorted(allowed)} (credentials never go in a file here: "
                          f"use the AWS credential chain).")
    return values


def _profile_region() -> str | None:
    """The region of the active AWS profile (~/.aws/config), if boto3 is installed and one is set."""
    try:
        import boto3
    except ModuleNotFoundError:
        return None
    return boto3.session.Session().region_name
