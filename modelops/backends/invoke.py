"""Invoking an endpoint as AWS client code does, on both backends: boto3's ``sagemaker-runtime`` ``invoke_endpoint``.

The sagemaker backend sends it to AWS; the local backend to its router (modelops.serving.router) with dummy
credentials. Either way the code a user copies from the deploy notebook is the code tested here, and the
Runtime API's errors become one ``EndpointFailed`` naming the endpoint, the container's own status and
message (``ModelError``), and the fix. botocore is imported when an error is translated, so importing this
module costs nothing on the local paths that never invoke.
"""

from __future__ import annotations

from modelops.errors import EndpointFailed


def invoke_endpoint(client, name: str, body: bytes, *, content_type: str, accept: str, fix: str,
                    inference_id: str | None = None) -> bytes:
    """``client.invoke_endpoint(EndpointName=name, Body=body, ContentType=..., Accept=...)``'s body.

    Args:
        client: a boto3 ``sagemaker-runtime`` client.
        fix: what to do when the endpoint does not exist or cannot answer (backend-specific).
        inference_id: sent as ``InferenceId`` (captured with the request; the monitor leaves such records out).

    Raises:
        EndpointFailed: the Runtime API answered with an error (its code, the container's status and message).
        botocore.exceptions.EndpointConnectionError: the Runtime API's address does not answer at all.
    """
    import botocore.exceptions

    try:
        extra = {"InferenceId": inference_id} if inference_id else {}
        response = client.invoke_endpoint(EndpointName=name, Body=body, ContentType=content_type, Accept=accept,
                                          **extra)
        return response["Body"].read()
    except botocore.exceptions.ClientError as exc:
        raise EndpointFailed(runtime_error_message(name, exc.response, fix)) from exc
    except botocore.exceptions.EndpointConnectionError:
        raise
    except botocore.exceptions.BotoCoreError as exc:
        raise EndpointFailed(f"invoking endpoint {name!r} failed: {exc}. {fix}") from exc


def runtime_error_message(name: str, response: dict, fix: str) -> str:
    """One sentence for a Runtime API error response (botocore's parsed ``exc.response``)."""
    error = response.get("Error", {})
    code, message = error.get("Code", "Error"), (error.get("Message") or "").strip()
    if code == "ModelError":
        original = str(response.get("OriginalMessage", "")).strip()
        status = response.get("OriginalStatusCode", "?")
        return f"endpoint {name!r} answered {status}: {original} (ModelError; {message})"
    if response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 413 or code == "413":
        return (f"endpoint {name!r} was sent more than one request may carry: {code}: {message} Fix: send fewer "
                f"rows per request, each body within the endpoint's payload limit (Endpoints.limits; the Runtime "
                f"API's is 6 MB).")
    if code == "ValidationError" and message.endswith("not found."):
        return f"endpoint {name!r} does not exist (ValidationError: {message}). {fix}"
    return f"endpoint {name!r} answered with an error: {code}: {message}" + ("" if "Fix:" in message else f" {fix}")
