"""What the contract suites share: a fresh backend per test on each side (local on tmp_path, SageMaker on moto).

Each contract module builds its fixture with ``backend_for(request, tmp_path)`` over ``BACKENDS``, so one
suite runs against both. The SageMaker side reuses one boto3 session across tests: a new session loads every
service model again (0.5-0.8 s a test); clients made from a shared one take milliseconds, and each test
still gets moto's empty in-process AWS (the ``aws`` fixture).
"""

from __future__ import annotations

from functools import cache

BACKENDS = ("local", "sagemaker")
REGION = "us-east-1"


@cache
def _moto_session():
    import boto3

    return boto3.session.Session(region_name=REGION)


def moto_client(service: str):
    """A client of moto's AWS from the shared session (the ``aws`` fixture must be active)."""
    return _moto_session().client(service)


def sagemaker_on_moto(*, poll_seconds: float = 0):
    """The sagemaker backend on moto's AWS (the ``aws`` fixture must be active), its bucket created."""
    from modelops.backends.sagemaker import SageMakerBackend
    from modelops.settings import SageMakerSettings
    from tests.conftest import MOTO_BUCKET, MOTO_ROLE

    session = _moto_session()
    session.client("s3").create_bucket(Bucket=MOTO_BUCKET)
    settings = SageMakerSettings(region=REGION, role_arn=MOTO_ROLE, bucket=MOTO_BUCKET, prefix="modelops",
                                 source="tests")
    return SageMakerBackend(settings, session=session, poll_seconds=poll_seconds)


def backend_for(request, tmp_path):
    """The backend named by ``request.param``, empty, in its own home (local) or account (moto)."""
    if request.param == "sagemaker":
        request.getfixturevalue("aws")
        return sagemaker_on_moto()
    from modelops.backends.local import LocalBackend

    return LocalBackend(tmp_path / "home")
