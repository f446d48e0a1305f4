"""Facts about the SageMaker XGBoost container 3.2-0's serving protocol, in one place (no heavy imports).

Read from ``aws/sagemaker-xgboost-container`` at commit cb8df91 (master, June 2026), whose serving code last
changed in 7eefe63 (#478, the XGBoost 3.2.0 / Python 3.12 upgrade that builds 3.2-0): a single-model
endpoint runs ``algorithm_mode/serve.py`` (Flask under gunicorn) with ``algorithm_mode/serve_utils.py``,
``encoder.py``, ``data_utils.py`` and ``recordio_protobuf.py``. docs/container-parity.md compares them with ours.
"""

from __future__ import annotations

#: The container's environment switches (constants/sm_env_constants.py), settable from model.yml's ``serving``.
INFERENCE_OUTPUT_ENV = "SAGEMAKER_INFERENCE_OUTPUT"
DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"

CSV = "text/csv"
LIBSVM = "text/libsvm"
RECORDIO = "application/x-recordio-protobuf"
JSON = "application/json"
JSONLINES = "application/jsonlines"

#: Request formats by media type (data_utils.get_content_type: the bare names are accepted too).
CONTENT_TYPES = {"csv": CSV, "text/csv": CSV, "libsvm": LIBSVM, "text/libsvm": LIBSVM, "text/x-libsvm": LIBSVM,
                 "recordio-protobuf": RECORDIO, "application/x-recordio-protobuf": RECORDIO}
#: Known to get_content_type but refused by parse_content_data for inference (415).
UNSERVED_CONTENT_TYPES = ("parquet", "application/x-parquet")

#: serve.py SUPPORTED_ACCEPTS, in its order (its 406 message lists them so).
ACCEPTS = (JSON, JSONLINES, RECORDIO, CSV)
#: Answers the container can only give with SAGEMAKER_INFERENCE_OUTPUT set (without it, a 500).
SELECTABLE_ONLY_ACCEPTS = (JSONLINES, RECORDIO)

#: serve_utils.VALID_OBJECTIVES: the SAGEMAKER_INFERENCE_OUTPUT keys each objective answers (others give NaN).
_CLASSIFICATION = ("predicted_label", "labels", "probability", "probabilities", "raw_score", "raw_scores")
OUTPUT_KEYS = {
    "reg:squarederror": ("predicted_score",),
    "reg:logistic": ("predicted_score",),
    "reg:gamma": ("predicted_score",),
    "reg:absoluteerror": ("predicted_score",),
    "reg:tweedie": ("predicted_score",),
    "binary:logistic": _CLASSIFICATION,
    "binary:logitraw": ("predicted_label", "labels", "raw_score", "raw_scores"),
    "binary:hinge": ("predicted_label", "labels", "raw_score", "raw_scores"),
    "multi:softmax": ("predicted_label", "labels", "raw_score", "raw_scores"),
    "multi:softprob": _CLASSIFICATION,
}
#: serve_utils.ALL_VALID_SELECT_KEYS, in its order.
ALL_OUTPUT_KEYS = (*_CLASSIFICATION, "predicted_score")


def environment(inference_output: tuple[str, ...] = (), default_accept: str | None = None) -> dict[str, str]:
    """The container's environment for these switches (what CreateModel's ``Environment`` and the local server get).

    An empty mapping means the container's defaults: scores only, CSV when the request has no Accept.
    """
    env = {}
    if inference_output:
        env[INFERENCE_OUTPUT_ENV] = ",".join(inference_output)
    if default_accept:
        env[DEFAULT_ACCEPT_ENV] = default_accept
    return env
