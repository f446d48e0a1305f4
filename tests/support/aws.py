"""AWS for the tests: moto's in-process account, and the sagemaker backend on it.

Every test that needs the sagemaker backend on moto builds it with ``sagemaker_on_moto`` (or takes the
``sagemaker`` fixture, which does). One boto3 session is shared across tests: a new session loads every service
model again (0.5-0.8 s a test), while clients made from a shared one take milliseconds; each test still gets
moto's empty account from the ``aws`` fixture, and each backend its own clients (so a Stubber or an event handler
a test puts on them goes away with it).
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import cache

REGION = "us-east-1"
MOTO_BUCKET = "modelops-test"
MOTO_ROLE = "arn:aws:iam::123456789012:role/modelops-sagemaker"
#: What moto's AWS needs in the environment: fake credentials, so no request can reach a real account.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
               "AWS_DEFAULT_REGION": REGION}


@cache
def moto_session():
    """One boto3 session for every test. moto is imported first: it adds its handlers to botocore's built-in ones,
    which a session takes when it is made, so a session cached before moto was imported would reach real AWS."""
    import boto3
    import moto  # noqa: F401

    return boto3.session.Session(region_name=REGION)


def moto_client(service: str):
    """A client of moto's AWS from the shared session (the ``aws`` fixture must be active)."""
    return moto_session().client(service)


def sagemaker_on_moto(*, poll_seconds: float = 0, **settings):
    """The sagemaker backend on moto's AWS (the ``aws`` fixture must be active), its bucket created.

    ``settings`` override the SageMakerSettings the tests use (``bucket=None``: SageMaker's default bucket).
    """
    from modelops.backends.sagemaker import SageMakerBackend
    from modelops.settings import SageMakerSettings

    values = {"region": REGION, "role_arn": MOTO_ROLE, "bucket": MOTO_BUCKET, "prefix": "modelops", "source": "tests",
              **settings}
    session = moto_session()
    if values["bucket"]:
        session.client("s3", region_name=values["region"]).create_bucket(Bucket=values["bucket"])
    return SageMakerBackend(SageMakerSettings(**values), session=session, poll_seconds=poll_seconds)


# -- standing in for an operation moto lacks: botocore event handlers on the backend's own clients ------------
#
# A ``before-call`` handler that returns (response, parsed) answers the call without sending it, so the client's
# other operations still reach moto. ``remember_params`` (on ``before-parameter-build``) keeps the request's
# parameters, as the caller passed them, in the context the ``before-call`` handler receives.


def remember_params(params, context, **kwargs):
    context["contract_params"] = dict(params)


def answer(parsed: dict, status: int = 200):
    """What a ``before-call`` handler returns to answer the call with ``parsed``."""
    from botocore.awsrequest import AWSResponse

    return AWSResponse(None, status, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": status}}


def error_answer(status: int, code: str, message: str, **fields):
    """What a ``before-call`` handler returns to make the call raise AWS's error ``code``."""
    return answer({"Error": {"Code": code, "Message": message}, **fields}, status)


# -- every AWS call the backend makes, for the least-privilege test --------------------------------------------


class CallRecorder:
    """Every call made through the sagemaker backend's own clients while ``job`` is set: (job, service, operation,
    params). Registered on the shared session's ``provide-client-params`` event, which botocore emits to every
    handler before anything answers the call (moto, a Stubber, or a ``before-call`` stand-in), so calls the test
    doubles answer are recorded too. Only clients built with the backend's config (its user agent) count: the
    stand-ins' own clients are not the backend.
    """

    def __init__(self):
        self.calls: list[tuple[str, str, str, dict]] = []
        self.job: str | None = None

    def __call__(self, params, model, context, **kwargs):
        config = context.get("client_config")
        if self.job is not None and "modelops/" in (getattr(config, "user_agent_extra", None) or ""):
            self.calls.append((self.job, model.service_model.service_name, model.name, dict(params)))


@contextmanager
def recording_calls():
    """A CallRecorder on every client the shared moto session builds while inside (set its ``job``)."""
    recorder = CallRecorder()
    events = moto_session().events
    events.register("provide-client-params", recorder, unique_id="modelops-call-recorder")
    try:
        yield recorder
    finally:
        events.unregister("provide-client-params", unique_id="modelops-call-recorder")
