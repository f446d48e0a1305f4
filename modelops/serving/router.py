"""The SageMaker Runtime API on this machine: one address for every local endpoint of a home, routed by name.

    python -m modelops.serving.router --home HOME [--host H] [--port N] --ready-file F

``POST /endpoints/{EndpointName}/invocations`` is InvokeEndpoint as botocore's service model for
``sagemaker-runtime`` (2017-05-13) describes it, so boto3 and the SageMaker SDK reach local endpoints with
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` (or ``endpoint_url=``) and nothing else changed:

- the request's ``Content-Type``, ``Accept`` and ``X-Amzn-SageMaker-Custom-Attributes`` go to the endpoint's
  server (``POST /invocations``) with the body; its answer comes back with its ``Content-Type``, its custom
  attributes if it set any, ``x-Amzn-Invoked-Production-Variant: AllTraffic`` and an ``x-amzn-RequestId``;
- a 4xx/5xx from the container is HTTP 424 ``ModelError`` with ``OriginalStatusCode``, ``OriginalMessage`` and
  ``LogStreamArn`` (the shape's members) and AWS's ``Received client error (415) from primary with message
  "..."`` sentence; a container that takes longer than SageMaker's 60 s is a ``ModelError`` with status 0;
- an endpoint that does not exist, or was stopped (SageMaker deletes it), is HTTP 400 ``ValidationError``
  ``Endpoint NAME of account ACCOUNT not found.``; a name SageMaker would refuse gets its pattern message;
- a body over 6 MB is HTTP 413 ``HTTP content length exceeded 6291456 bytes.`` before any endpoint sees it;
- an endpoint whose server process died is HTTP 503 ``ServiceUnavailable`` saying how to restart it.

During a guarded rollout (modelops.backends.local.rollout) the endpoint's record names a second server, the new
version's, and the share of requests it gets: each request goes there with that probability. A request the new
version fails (an error status, no answer in time, unreachable) is sent again to the old version, and the client
gets the old version's answer: clients see no failure the old version would not have given them (on SageMaker
they get the new fleet's ModelError until an alarm rolls it back; docs/rollout.md). The router counts what each
side got, the new version's failures (only those the old version answered) and its model latency, and serves
the figures at ``GET /-/rollouts/{EndpointName}`` to the deploy watching the rollout. Every answer carries
``x-modelops-version`` (the version that answered; not an AWS header).

Requests are SigV4-signed by AWS clients; the signature is **not** verified (any credentials work, as with
moto): this address is bound to 127.0.0.1 and serves what the local endpoints already serve to anyone on the
machine. The region of the signature's credential scope only goes into ``LogStreamArn``.

The router exits by itself when its home is deleted, or when no endpoint server of its home has run for
``IDLE_EXIT_SECONDS``; the local backend starts it again on the next deploy or invoke
(modelops.backends.local.runtime).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import sys
import time
import uuid
from collections import deque
from pathlib import Path

from modelops.entities import PRODUCTION_VARIANT as VARIANT
from modelops.entities import SAGEMAKER_NAME_PATTERN
from modelops.serving.processes import pid_exists
from modelops.serving.upstream import Pool, upstream_head

log = logging.getLogger("modelops.router")

#: The account local endpoints belong to in the Runtime API's messages (LocalStack's convention).
LOCAL_ACCOUNT = "000000000000"
#: InvokeEndpoint's payload limit; the runtime refuses bigger bodies itself.
MAX_BODY = 6 * 1024 * 1024
#: How long SageMaker waits for a container's answer to /invocations.
CONTAINER_TIMEOUT = 60.0
#: With no endpoint server of the home running for this long, the router exits.
IDLE_EXIT_SECONDS = 60.0
#: The newest model latencies of a rollout's new version kept for its p99 alarm.
LATENCY_WINDOW = 500

_ROUTE = re.compile(r"^/endpoints/([^/]+)/([a-z-]+)$")
_SCOPE_REGION = re.compile(r"Credential=[^/,]*/\d{8}/([a-z0-9-]+)/")


class ApiError(Exception):
    """An answer of the Runtime API other than a model's prediction (status, error code, shape members)."""

    def __init__(self, status: int, code: str | None, message: str, **members):
        super().__init__(message)
        self.status, self.code, self.message, self.members = status, code, message, members


def not_found(name: str, account: str = LOCAL_ACCOUNT) -> ApiError:
    return ApiError(400, "ValidationError", f"Endpoint {name} of account {account} not found.")


def model_error(name: str, status: int, original: str, *, region: str, account: str, log_path: str) -> ApiError:
    """The 424 SageMaker answers when the container answered ``status`` (0: no answer in time)."""
    kind = "client" if 400 <= status < 500 else "server"
    return ApiError(
        424, "ModelError",
        f'Received {kind} error ({status}) from primary with message "{original}". See {log_path} for more '
        f"information.",
        ErrorCode=f"{kind.upper()}_ERROR_FROM_MODEL", OriginalStatusCode=status, OriginalMessage=original,
        LogStreamArn=f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{name}")


# -- the application -------------------------------------------------------------------------------------------


class Records:
    """Endpoint records (``<home>/endpoints/<name>/endpoint.json``), reread only when the file changed."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[str, tuple[tuple, dict]] = {}

    def get(self, name: str) -> dict | None:
        path = self.root / name / "endpoint.json"
        try:
            stat = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            self._cache.pop(name, None)
            return None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(name)
        if cached and cached[0] == key:
            return cached[1]
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # being replaced right now (writes are atomic, so only in a race with a delete)
        self._cache[name] = (key, record)
        return record

    def any_running(self) -> bool:
        """Whether any endpoint server of this home runs (its recorded process exists)."""
        try:
            paths = list(self.root.glob("*/endpoint.json"))
        except OSError:
            return False
        for path in paths:
            record = self.get(path.parent.name)
            if record and record.get("status") != "Stopped" and record.get("pid") and pid_exists(record["pid"]):
                return True
        return False


class RolloutFigures:
    """What the router saw of one rollout: requests per side, the new version's failures and model latency."""

    def __init__(self, rollout_id: str, version: int):
        self.id, self.version = rollout_id, version
        self.requests = 0  # every request to the endpoint since the rollout began
        self.canary = 0  # those sent to the new version
        self.errors = 0  # the new version failed them and the old version answered them
        self.both_failed = 0  # the old version failed them too: the request's own fault, not the new version's
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.last_error: str | None = None

    def blame(self, failure: str, *, old_version_answered: bool) -> None:
        """Count a request the new version failed: its error if the old version answered it, else the request's."""
        if old_version_answered:
            self.errors += 1
            self.last_error = failure
        else:
            self.both_failed += 1

    def as_json(self) -> dict:
        return {"id": self.id, "version": self.version, "requests": self.requests, "canary": self.canary,
                "errors": self.errors, "both_failed": self.both_failed, "latencies_ms": list(self.latencies_ms),
                "last_error": self.last_error}


class Router:
    """ASGI application: InvokeEndpoint for the endpoints recorded under ``home``."""

    def __init__(self, home: Path, *, account: str = LOCAL_ACCOUNT, timeout: float = CONTAINER_TIMEOUT,
                 idle_exit: float = IDLE_EXIT_SECONDS):
        self.home = Path(home)
        self.records = Records(self.home / "endpoints")
        self.account = account
        self.timeout = timeout
        self.idle_exit = idle_exit
        self.pool = Pool()
        self.rollouts: dict[str, RolloutFigures] = {}
        self.started_at = time.time()
        self.on_idle = None  # called when the router should exit (set by main: stops uvicorn)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = str(uuid.uuid4())
        try:
            await self._route(scope, receive, send, request_id)
        except ApiError as exc:
            await _error(send, exc, request_id)
        except Exception as exc:  # never let a request take the router down; answer as the service would
            log.exception("request to %s failed", scope.get("path"))
            await _error(send, ApiError(500, "InternalFailure", f"the local router failed: {exc!r}; see "
                                                                     f"{self.home / 'runtime' / 'router.log'}"),
                         request_id)

    async def _route(self, scope, receive, send, request_id: str):
        path, method = scope["path"], scope["method"]
        found = _ROUTE.match(path)
        if found and found.group(2) == "invocations" and method == "POST":
            await self._invoke(found.group(1), scope, receive, send, request_id)  # path: decoded
        elif (method, path) == ("GET", "/ping"):
            await _respond(send, 200, [], b"")
        elif (method, path) == ("GET", "/-/status"):
            status = {"home": str(self.home), "pid": os.getpid(), "started_at": self.started_at}
            await _respond(send, 200, [(b"content-type", b"application/json")], json.dumps(status).encode())
        elif method == "GET" and path.startswith("/-/rollouts/"):
            figures = self.rollouts.get(path.removeprefix("/-/rollouts/"))
            if figures is None:
                raise ApiError(404, "ResourceNotFound", f"no rollout of {path.removeprefix('/-/rollouts/')} seen")
            await _respond(send, 200, [(b"content-type", b"application/json")],
                           json.dumps(figures.as_json()).encode())
        elif found:
            operation = {"async-invocations": "InvokeEndpointAsync",
                         "invocations-response-stream": "InvokeEndpointWithResponseStream"}.get(found.group(2))
            what = f"{operation} is not available on local endpoints" if operation else f"no operation {path}"
            raise ApiError(404, "UnknownOperationException",
                                f"{what}; use InvokeEndpoint (POST /endpoints/NAME/invocations).")
        else:
            raise ApiError(404, "UnknownOperationException",
                                f"no operation {method} {path}; this is the SageMaker Runtime API of local "
                                f"endpoints: POST /endpoints/NAME/invocations.")

    async def _invoke(self, name: str, scope, receive, send, request_id: str):
        headers = scope["headers"]
        if not SAGEMAKER_NAME_PATTERN.match(name):  # in AWS's words, which quote its model's pattern
            constraint = ("Member must have length less than or equal to 63" if len(name) > 63 else
                          "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*")
            raise ApiError(400, "ValidationError", f"1 validation error detected: Value '{name}' at 'endpointName' "
                                                   f"failed to satisfy constraint: {constraint}")
        record = self.records.get(name)
        if record is None or record.get("status") not in ("InService", "Updating") or not record.get("port"):
            raise not_found(name, self.account)  # stopped: SageMaker deletes a stopped endpoint
        variant = _header(headers, b"x-amzn-sagemaker-target-variant")
        if variant is not None and variant != VARIANT.encode():
            raise ApiError(400, "ValidationError", f"Endpoint {name} has no production variant "
                                                        f"{variant.decode('latin-1')}; it has {VARIANT}.")
        body = await _read_body(receive, headers)
        version = (record.get("current") or {}).get("version")
        rollout, failure = record.get("rollout"), None
        if rollout and rollout.get("port"):
            figures = self._figures(name, rollout)
            figures.requests += 1
            if random.random() * 100 < float(rollout.get("percent", 0)):
                figures.canary += 1
                answered, failure = await self._try_new_version(rollout, headers, body, figures)
                if answered is not None:
                    await _answer(send, request_id, rollout["version"], *answered)
                    return
        status = None
        try:
            status, answer_headers, answer = await self.pool.send(
                record["host"], int(record["port"]), upstream_head(record, headers, body), body, self.timeout)
        except TimeoutError:
            raise model_error(name, 0, "Your invocation timed out while waiting for a response from container "
                                       "primary. Review the latency metrics for each container in Amazon "
                                       "CloudWatch, resolve the issue, and try again.",
                              region=_region(headers), account=self.account, log_path=self._log(name)) from None
        except OSError as exc:
            raise self._unreachable(name, record, exc) from None
        finally:
            if failure is not None:  # the new version failed this request: the old version's answer says whose fault
                figures.blame(failure, old_version_answered=status is not None and status < 400)
        if status >= 400:
            original = answer.decode("utf-8", errors="replace").strip()
            raise model_error(name, status, original, region=_region(headers), account=self.account,
                              log_path=self._log(name))
        await _answer(send, request_id, version, answer_headers, answer)

    async def _try_new_version(self, rollout: dict, headers, body: bytes, figures: RolloutFigures):
        """The new version's answer ((headers, body), None), or (None, why it failed)."""
        started = time.monotonic()
        try:
            status, answer_headers, answer = await self.pool.send(
                rollout["host"], int(rollout["port"]), upstream_head(rollout, headers, body), body, self.timeout)
        except TimeoutError:
            figures.latencies_ms.append(self.timeout * 1000)
            return None, f"no answer within {self.timeout:g} s"
        except OSError as exc:
            return None, f"its server does not answer ({exc})"
        figures.latencies_ms.append((time.monotonic() - started) * 1000)
        if status >= 400:
            return None, f"it answered {status}: {answer.decode('utf-8', errors='replace').strip()[:300]}"
        return (answer_headers, answer), None

    def _figures(self, name: str, rollout: dict) -> RolloutFigures:
        figures = self.rollouts.get(name)
        if figures is None or figures.id != rollout.get("id"):
            figures = self.rollouts[name] = RolloutFigures(rollout.get("id"), rollout.get("version"))
        return figures

    def _unreachable(self, name: str, record: dict, exc: OSError) -> ApiError:
        from modelops.config import endpoint_owner

        fresh = self.records.get(name) or record
        pid = fresh.get("pid")
        why = (f"its server process {pid} is not running" if pid and not pid_exists(pid)
               else f"its server process {pid} does not answer on port {fresh.get('port')} ({exc})")
        return ApiError(503, "ServiceUnavailable",
                             f"Endpoint {name} does not answer: {why} (log: {self._log(name)}). Fix: restart it "
                             f"with `python -m ci deploy <model folder> --env {endpoint_owner(name)[1]}`.")

    def _log(self, name: str) -> str:
        return str(self.records.root / name / "server.log")

    async def _lifespan(self, receive, send):
        watcher = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                watcher = asyncio.get_running_loop().create_task(self._watch())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if watcher is not None:
                    watcher.cancel()
                self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _watch(self):
        """Exit when the home is gone or no endpoint server of it has run for ``idle_exit`` seconds."""
        idle_since = None
        while True:
            await asyncio.sleep(min(5.0, self.idle_exit / 2))
            now = time.monotonic()
            if not self.home.is_dir():
                idle_since = now - self.idle_exit
            elif self.records.any_running():
                idle_since = None
            elif idle_since is None:
                idle_since = now
            if idle_since is not None and now - idle_since >= self.idle_exit and self.on_idle:
                log.info("no endpoint of %s is running: exiting", self.home)
                self.on_idle()
                return


async def _answer(send, request_id: str, version, answer_headers, answer: bytes) -> None:
    """A model's prediction as InvokeEndpoint returns it, with the version that answered."""
    out = [(b"x-amzn-requestid", request_id.encode()), (b"x-amzn-invoked-production-variant", VARIANT.encode()),
           (b"x-modelops-version", str(version).encode())]
    out += [(k, v) for k, v in answer_headers if k in (b"content-type", b"x-amzn-sagemaker-custom-attributes")]
    await _respond(send, 200, out, answer)


def _header(headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _region(headers) -> str:
    found = _SCOPE_REGION.search((_header(headers, b"authorization") or b"").decode("latin-1"))
    return found.group(1) if found else "us-east-1"


async def _read_body(receive, headers) -> bytes:
    declared = _header(headers, b"content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, None, f"HTTP content length exceeded {MAX_BODY} bytes.")
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, None, f"HTTP content length exceeded {MAX_BODY} bytes.")
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(send, status: int, headers: list, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def _error(send, error: ApiError, request_id: str) -> None:
    """An error as botocore's rest-json parser reads it: the code in x-amzn-ErrorType, members in the body."""
    headers = [(b"x-amzn-requestid", request_id.encode())]
    if error.code is None:  # what the runtime's front end answers for an oversized body: plain text, no code
        await _respond(send, error.status, [*headers, (b"content-type", b"text/plain")], error.message.encode())
        return
    body = json.dumps({"Message": error.message, **error.members}).encode()
    headers += [(b"x-amzn-errortype", error.code.encode()), (b"content-type", b"application/json")]
    await _respond(send, error.status, headers, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelops.serving.router")
    parser.add_argument("--home", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--container-timeout", type=float, default=CONTAINER_TIMEOUT, help=argparse.SUPPRESS)
    parser.add_argument("--idle-exit", type=float, default=IDLE_EXIT_SECONDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import uvicorn

    from modelops import atomic
    from modelops.serving.__main__ import bind

    app = Router(Path(args.home), timeout=args.container_timeout, idle_exit=args.idle_exit)
    sock = bind(args.host, args.port)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    config = uvicorn.Config(app, http="httptools", loop=loop, lifespan="on", access_log=False, log_level="warning",
                            timeout_keep_alive=60, server_header=False)
    server = uvicorn.Server(config)
    app.on_idle = lambda: setattr(server, "should_exit", True)
    atomic.write_json(args.ready_file, {"pid": os.getpid(), "host": args.host, "port": sock.getsockname()[1]})
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
