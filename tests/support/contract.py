"""What the contract suites share: a fresh backend per test on each side (local on tmp_path, SageMaker on moto).

Each contract module builds its fixture with ``backend_for(request, tmp_path)`` over ``BACKENDS``, so one
suite runs against both; the SageMaker side is ``tests.support.aws.sagemaker_on_moto``.
"""

from __future__ import annotations

from tests.support.aws import sagemaker_on_moto

BACKENDS = ("local", "sagemaker")


def backend_for(request, tmp_path):
    """The backend named by ``request.param``, empty, in its own home (local) or account (moto)."""
    if request.param == "sagemaker":
        request.getfixturevalue("aws")
        return sagemaker_on_moto()
    from modelops.backends.local import LocalBackend

    return LocalBackend(tmp_path / "home")
