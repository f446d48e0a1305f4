"""AWS plumbing for the sagemaker backend: clients with retries, and botocore errors translated to ours."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import UTC, datetime

import boto3
import botocore.exceptions
from botocore.config import Config

from modelops.entities import SAGEMAKER_NAME_PATTERN
from modelops.errors import ModelOpsError

#: botocore's "standard" retry mode retries throttling (ThrottlingException, SlowDown, 429) and transient
#: errors with exponential backoff and jitter. SageMaker's control plane throttles Describe* calls at a few
#: per second per account; CI polls several jobs and endpoints in parallel, hence more attempts (in all,
#: the first one included) than the default three.
MAX_ATTEMPTS = 8


def client_config(max_attempts: int = MAX_ATTEMPTS) -> Config:
    """The botocore config every client of this backend uses."""
    return Config(retries={"mode": "standard", "total_max_attempts": max_attempts}, connect_timeout=10, read_timeout=70,
                  user_agent_extra="modelops/0.1")


class Aws:
    """One boto3 session in one region, with a client per service built on first use."""

    def __init__(self, region: str, session: boto3.session.Session | None = None, max_attempts: int = MAX_ATTEMPTS):
        self.region = region
        self.session = session or boto3.session.Session(region_name=region)
        self.config = client_config(max_attempts)
        self._clients: dict[str, object] = {}

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region, config=self.config)
        return self._clients[service]

    def account_id(self) -> str:
        """The account of the credentials in use.

        Raises:
            ConfigError: no credentials (the message names the chain boto3 searched).
        """
        from modelops.errors import ConfigError

        with translated(ConfigError, "asking AWS STS who the credentials belong to"):
            return self.client("sts").get_caller_identity()["Account"]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    return ""


def describe_error(exc: BaseException) -> str:
    """``Code: message`` of a botocore error, without the operation boilerplate."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".rstrip(": ")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return ("no AWS credentials found. Fix: provide them through the standard chain (AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a web identity role as CircleCI's OIDC sets up)")
    return str(exc)


@contextmanager
def translated(error: type[ModelOpsError], what: str, fix: str = ""):
    """Turn botocore errors raised inside into ``error`` naming what was being done and AWS's own words."""
    try:
        yield
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise error(f"{what} failed: {describe_error(exc)}." + (f" Fix: {fix}" if fix else "")) from exc


def is_not_found(exc: BaseException) -> bool:
    """Whether a botocore error means "no such resource" (SageMaker says so in a ValidationException)."""
    code = error_code(exc)
    if code in ("404", "NoSuchKey", "NotFound", "ResourceNotFound", "ResourceNotFoundException", "NoSuchBucket"):
        return True
    message = getattr(exc, "response", {}).get("Error", {}).get("Message", "") if code else ""
    return code == "ValidationException" and bool(re.search(r"(?i)could not find|does not exist|not found", message))


# SageMaker resource names: letters, digits and hyphens, starting and ending with a letter or digit, <= 63.
NAME_PATTERN = SAGEMAKER_NAME_PATTERN


def timestamped_name(base: str, *tags: str, now: datetime | None = None) -> str:
    """``<base>-<tags>-<yyyymmddhhmmss>-<4 hex>``, cut to SageMaker's 63 characters by shortening ``base``."""
    import os

    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    suffix = "-".join(("", *tags, stamp, os.urandom(2).hex()))
    head = re.sub(r"[^a-zA-Z0-9-]", "-", base)[: 63 - len(suffix)].strip("-") or "m"
    name = head + suffix
    assert NAME_PATTERN.match(name), name
    return name


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
