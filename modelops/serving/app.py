"""The inference server: an ASGI app serving one model with the SageMaker container's routes.

Routes: the container's ``GET /ping`` (200 once a model is loaded), ``POST /invocations`` (predictions, with
the request handling of modelops.serving.protocol) and ``GET /execution-parameters`` (what batch transform
asks); ours: ``GET /-/status`` (name, version, counters, warnings) and ``POST /-/load`` (swap in another model
with its container environment and data capture settings; needs the admin token). A swap loads, checks
(sha256) and warms the new model before switching one reference, so requests in flight finish on the model
they started with and none fails. Answered requests are handed to data capture (modelops.serving.capture),
which samples and queues them; its thread writes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from modelops.serving import protocol
from modelops.serving.capture import CaptureWriter
from modelops.serving.protocol import RequestError
from modelops.training import threads

log = logging.getLogger("modelops.serving")

#: SageMaker real-time endpoints accept payloads up to 6 MB.
DEFAULT_MAX_BODY = 6 * 1024 * 1024


@dataclass(frozen=True)
class LoadedModel:
    """A booster ready to serve, with the package it came from."""

    booster: object
    version: int
    package_id: str
    sha256: str
    n_features: int
    loaded_at: str
    output: protocol.Output = protocol.SCORES  # the container's switches for this model (its environment)


def load_model(artifact_uri: str, sha256: str, version: int, package_id: str) -> LoadedModel:
    """Read model.tar.gz, refuse it unless its sha256 is the registered one, load it and warm it up.

    Raises:
        RequestError: 409 with what is wrong (missing file, checksum mismatch, unreadable model).
    """
    from modelops.errors import StoreError
    from modelops.training.train import unpack_model

    parsed = urlparse(artifact_uri)
    if parsed.scheme not in ("", "file"):
        raise RequestError(409, f"the local server can only load file:// artifacts, not {artifact_uri}")
    path = Path(unquote(parsed.path) if parsed.scheme else artifact_uri)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RequestError(409, f"cannot read {path}: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise RequestError(409, f"{path} has sha256 {actual} but the registry recorded {sha256}: refusing to serve "
                                f"a changed or damaged artifact")
    try:
        booster = unpack_model(data, source=str(path))
    except StoreError as exc:
        raise RequestError(409, str(exc)) from exc
    booster.set_param({"nthread": 1})  # large batches get more for their own call (modelops.training.threads.predict)
    n_features = booster.num_features()
    booster.inplace_predict(np.zeros((1, n_features)))  # warm up before the first real request
    return LoadedModel(booster, int(version), package_id, sha256, n_features,
                       datetime.now(UTC).isoformat(timespec="seconds"))


class InferenceApp:
    """ASGI application; one instance per endpoint process."""

    def __init__(self, name: str, admin_token: str, *, max_body: int = DEFAULT_MAX_BODY):
        self.name = name
        self.model: LoadedModel | None = None
        self._token = admin_token.encode()
        self.max_body = max_body
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.counts: Counter = Counter()
        self._swap = asyncio.Lock()
        self.max_threads = threads.serve_threads()
        self.capture: CaptureWriter | None = None  # set by a load whose version captures (model.yml monitoring)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, on_shutdown=self._stop_capture)
            return
        if scope["type"] != "http":
            return
        route = (scope["method"], scope["path"])
        try:
            if route == ("POST", "/invocations"):
                await self._invocations(scope, receive, send)
            elif route in (("GET", "/ping"), ("HEAD", "/ping")):
                ok = self.model is not None
                await _respond(send, 200 if ok else 503, b"" if ok else b"no model loaded\n")
            elif route in (("GET", "/execution-parameters"), ("HEAD", "/execution-parameters")):
                await _respond(send, 200, json.dumps(execution_parameters(self.max_body)).encode(), protocol.JSON)
            elif route == ("GET", "/-/status"):
                await _respond(send, 200, json.dumps(self.status()).encode(), "application/json")
            elif route == ("POST", "/-/load"):
                await self._load(scope, receive, send)
            elif scope["path"] in ("/invocations", "/ping", "/execution-parameters", "/-/status", "/-/load"):
                await _respond(send, 405, f"method {scope['method']} not allowed on {scope['path']}\n".encode())
            else:
                await _respond(send, 404, f"no route {scope['path']}; use POST /invocations or GET /ping\n".encode())
        except RequestError as exc:
            self.counts[exc.status] += 1
            await _respond(send, exc.status, (exc.message + "\n").encode())
        except Exception:  # never let one request take the server down
            log.exception("request to %s failed", scope["path"])
            self.counts[500] += 1
            await _respond(send, 500, b"internal error; see the endpoint's log\n")

    async def _invocations(self, scope, receive, send):
        """serve.invocations' order: an empty body is a 204, then the body (415), the prediction (400), Accept (406)."""
        model = self.model  # one read: a swap during this request does not affect it
        if model is None:
            raise RequestError(503, "no model loaded yet")
        headers = _headers(scope)
        body = await _read_body(receive, headers, self.max_body)
        if not body:
            self.counts[204] += 1
            await _respond(send, 204, b"")
            return
        rows = protocol.fit(protocol.parse(body, protocol.content_type(headers.get("content-type"))), model.n_features)
        try:
            predictions = threads.predict(model.booster, rows, self.max_threads)
        except Exception as exc:  # the container answers 400 to whatever prediction raises
            raise RequestError(400, f"Unable to evaluate payload provided: {exc}") from None
        accept = protocol.accept_type(headers.get("accept"), model.output.default_accept)
        answer = protocol.render(predictions, accept, model.output)
        self.counts[200] += 1
        if self.capture is not None:  # a sampling decision and a queue put; the capture thread writes
            self.capture.offer(body, headers, answer, protocol.response_content_type(accept))
        await _respond(send, 200, answer, protocol.response_content_type(accept))

    async def _load(self, scope, receive, send):
        headers = _headers(scope)
        if not hmac.compare_digest(headers.get("x-modelops-token", "").encode(), self._token):
            raise RequestError(403, "a valid X-Modelops-Token is needed to load a model")
        try:
            request = json.loads(await _read_body(receive, headers, 64 * 1024))
            fields = [request[k] for k in ("artifact_uri", "artifact_sha256", "version", "package_id")]
            environment = _container_environment(request.get("environment"))
            capture = _capture_settings(request.get("capture"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RequestError(400, f"load needs JSON with artifact_uri, artifact_sha256, version, package_id and "
                                    f"optionally environment, a mapping of strings, and capture, data capture "
                                    f"settings to a file:// folder ({exc})") from exc
        async with self._swap:
            started = time.monotonic()
            # Loading happens off the event loop, so requests keep being served by the current model.
            model = await _in_own_thread(load_model, *fields)
            model = replace(model, output=protocol.Output.of(model.booster, environment))
            previous, self.model = self.model, model
            self._set_capture(capture)
        log.info("serving %s v%s (was %s) after %.3fs", self.name, model.version,
                 previous.version if previous else None, time.monotonic() - started)
        await _respond(send, 200, json.dumps(self.status()).encode(), "application/json")

    def status(self) -> dict:
        model = self.model
        return {"name": self.name, "pid": os.getpid(), "started_at": self.started_at,
                "version": model.version if model else None, "package_id": model.package_id if model else None,
                "sha256": model.sha256 if model else None, "n_features": model.n_features if model else None,
                "loaded_at": model.loaded_at if model else None,
                "inference_output": list(model.output.inference_output or ()) if model else None,
                "default_accept": model.output.default_accept if model else None,
                "responses": {str(k): v for k, v in sorted(self.counts.items())},
                "warnings": dict(protocol.WARNINGS),
                "capture": self.capture.status() if self.capture else None}

    def _set_capture(self, settings) -> None:
        """Capture as the loaded version says: the same writer if its settings are unchanged, else a new one."""
        current = self.capture
        if current is not None and current.settings == settings:
            return
        self.capture = CaptureWriter(self.name, settings) if settings is not None else None
        if current is not None:  # what it has queued is written by its own thread, which then ends
            threading.Thread(target=current.close, name="capture-close", daemon=True).start()

    def _stop_capture(self) -> None:
        if self.capture is not None:
            self.capture.close()


def execution_parameters(max_body: int) -> dict:
    """GET /execution-parameters as the container answers it: one worker per CPU, the payload limit in MB."""
    return {"MaxConcurrentTransforms": os.cpu_count() or 1, "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": int(max_body / 1024 ** 2)}


def _capture_settings(capture):
    """The data capture a load brings (None: capture nothing), checked before the model is loaded."""
    from modelops.entities import DataCapture
    from modelops.serving.capture import destination_folder

    if capture is None:
        return None
    settings = DataCapture.from_json(capture)
    destination_folder(settings.destination)  # ValueError for a destination this machine cannot write
    return settings


def _container_environment(environment) -> dict[str, str]:
    """The container switches a load brings (SageMaker sets them per model); without any, this process's own."""
    if environment is None:
        return dict(os.environ)
    if not isinstance(environment, dict) or not all(isinstance(v, str) for v in environment.values()):
        raise TypeError(f"environment must map names to strings, not {environment!r}")
    return environment


async def _in_own_thread(function, *args):
    """Run ``function`` in a thread that ends with it.

    Not asyncio.to_thread: xgboost's OpenMP workers belong to the thread that first predicts, and a
    pool thread that warmed a booster up and then lived on left every later request ~0.2 ms slower
    (0.65 ms instead of 0.43 ms single-row p50, benchmarks/README.md).
    """
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def run():
        try:
            result = function(*args)
        except BaseException as exc:  # handed to the awaiting request, which answers with it
            loop.call_soon_threadsafe(_settle, done, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, result, None)

    threading.Thread(target=run, name="modelops-load", daemon=True).start()
    return await done


def _settle(future, result, error) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _headers(scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in scope["headers"]:  # the first of repeated headers, as Flask's request.headers.get gives
        headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


async def _read_body(receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {int(declared):,} bytes is over the {limit:,}-byte limit; "
                                f"send fewer rows per request")
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body is over the {limit:,}-byte limit; send fewer rows per request")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"):
    headers = [(b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", content_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive, send, on_shutdown=None):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
