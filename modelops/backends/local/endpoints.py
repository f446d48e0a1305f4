"""Local endpoints: one background inference server per endpoint, recorded under the local backend's home.

Each endpoint has a folder ``<home>/endpoints/<name>/`` with ``endpoint.json`` (pid, port, url, the package
served now and the one before, written atomically, readable only by its owner because it holds the admin
token) and ``server.log``. Deploys and rollbacks of one endpoint are serialised by a lock file. The container's
environment switches (model.yml ``serving``) travel with each load, as on SageMaker they belong to the model, so a
rollback brings back the previous version's.

Clients reach every endpoint of a home through one address speaking the SageMaker Runtime API (the router,
modelops.backends.local.runtime), and so does ``invoke``: boto3's ``invoke_endpoint``, as on SageMaker.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from modelops import atomic
from modelops.backends.base import (
    IN_SERVICE,
    DataCapture,
    Deployment,
    Endpoints,
    EndpointStatus,
    PackageVersion,
    ServedPackage,
    safe_key,
    unapplied_settings,
)
from modelops.backends.local.processes import pid_exists, tail, terminate
from modelops.backends.local.runtime import RuntimeRouter
from modelops.errors import EndpointFailed
from modelops.serving.container import DEFAULT_ACCEPT_ENV, INFERENCE_OUTPUT_ENV

DOWN = "Down"
STOPPED = "Stopped"


class LocalEndpoints(Endpoints):
    """Inference servers on this machine, bound to ``host`` (127.0.0.1 unless told otherwise)."""

    def __init__(self, home: Path, *, host: str | None = None):
        self.root = Path(home) / "endpoints"
        self.host = host or os.environ.get("MODELOPS_ENDPOINT_HOST", "127.0.0.1")
        self.runtime = RuntimeRouter(Path(home), self.host)
        self._client = None
        self._client_lock = threading.Lock()

    # -- the interface -------------------------------------------------------------------------------------

    def deploy(self, name: str, package: PackageVersion, *, instance_type: str = "ml.m5.large",
               instance_count: int = 1, timeout: float = 600, environment: dict[str, str] | None = None,
               data_capture: DataCapture | None = None, rollout=None, autoscaling=None,
               log=print) -> Deployment:
        for line in unapplied_settings(name, rollout, autoscaling):
            log(line)
        with self._locked(name):
            return self._switch(name, ServedPackage.of(package, environment, data_capture), timeout=timeout,
                                log=log, action="deploy")

    def rollback(self, name: str, *, timeout: float = 600, log=print) -> Deployment:
        with self._locked(name):
            record = self._read(name)
            if record is None:
                raise EndpointFailed(f"there is no endpoint {name!r} to roll back. Fix: deploy it first.")
            if not record.get("previous"):
                raise EndpointFailed(f"endpoint {name!r} has no previous version to roll back to (it serves "
                                     f"v{record['current']['version']}, its first deployed version).")
            return self._switch(name, ServedPackage(**record["previous"]), timeout=timeout, log=log,
                                action="rollback")

    def status(self, name: str) -> EndpointStatus | None:
        record = self._read(name)
        if record is None:
            return None
        alive = self._alive(record)
        state = IN_SERVICE if alive else (STOPPED if record.get("status") == STOPPED else DOWN)
        message = ""
        if state == DOWN:
            from modelops.config import endpoint_owner

            env = f"--env {endpoint_owner(name)[1]}"
            message = (f"the server process {record.get('pid')} is not running (log: {self._log(name)}). Fix: "
                       f"restart it with `python -m ci deploy <model folder> {env}` (or `python -m ci rollback "
                       f"<model folder> {env}`).")
        uptime = None
        if alive and record.get("started_at"):
            uptime = (datetime.now(UTC) - datetime.fromisoformat(record["started_at"])).total_seconds()
        return EndpointStatus(
            name=name,
            status=state,
            version=(record.get("current") or {}).get("version"),
            previous_version=(record.get("previous") or {}).get("version"),
            url=self._runtime_url(name, self.runtime.recorded_url()),
            started_at=record.get("started_at"),
            uptime_seconds=uptime,
            package_id=(record.get("current") or {}).get("package_id"),
            detail={"pid": record.get("pid") if alive else None, "port": record.get("port"),
                    "container_url": f"{record['url']}/invocations" if record.get("url") else None,
                    "log": str(self._log(name)), "responses": alive.get("responses") if alive else None,
                    "capture": alive.get("capture") if alive else None},
            message=message,
        )

    def list(self) -> list[EndpointStatus]:
        names = sorted(p.parent.name for p in self.root.glob("*/endpoint.json")) if self.root.is_dir() else []
        return [s for s in (self.status(n) for n in names) if s is not None]

    def invoke(self, name: str, body: bytes, *, content_type: str = "text/csv", accept: str = "text/csv",
               inference_id: str | None = None) -> bytes:
        import botocore.exceptions

        from modelops.backends.invoke import invoke_endpoint

        fix = "Fix: deploy it (`python -m ci deploy <model folder>`); `python -m ci endpoints` lists what runs."
        for attempt in (1, 2):
            try:
                return invoke_endpoint(self._runtime_client(fresh=attempt == 2), name, body,
                                       content_type=content_type, accept=accept, fix=fix,
                                       inference_id=inference_id)
            except botocore.exceptions.EndpointConnectionError as exc:
                if attempt == 2:  # the router was just (re)started and still does not answer
                    raise EndpointFailed(f"the local SageMaker Runtime at {self.runtime.recorded_url()} does not "
                                         f"answer ({exc}). Log: {self.runtime.log_path}") from exc

    def runtime_url(self) -> str | None:
        """The router's address, started if any endpoint is in service (else the recorded one, if any)."""
        if any(s.status == IN_SERVICE for s in self.list()):
            return self.runtime.ensure()
        return self.runtime.running_url()

    def stop(self, name: str) -> None:
        with self._locked(name):
            record = self._read(name)
            if record is None:
                raise EndpointFailed(f"there is no endpoint {name!r}. Fix: see `python -m ci endpoints`.")
            if self._alive(record):
                terminate(record["pid"])
            record.update(status=STOPPED, pid=None)
            self._write(name, record)
        # Nothing left to route to: stop the router too (decided under its lock, so a deploy running now in
        # another process either is seen here or starts it again).
        self.runtime.stop(unless=lambda: any(s.status == IN_SERVICE for s in self.list()))

    # -- how -----------------------------------------------------------------------------------------------

    def _switch(self, name: str, target: ServedPackage, *, timeout: float, log, action: str) -> Deployment:
        record = self._read(name) or {"name": name}
        running = self._alive(record)
        current = record.get("current") if running else None
        if not running:
            log(f"{name}: starting a local inference server")
            record = self._start(name, record, timeout=timeout)
        log(f"{name}: loading v{target.version} ({target.artifact_uri})")
        try:
            status, answer = self._request(record, "POST", "/-/load", json.dumps(asdict(target)).encode(),
                                           {"Content-Type": "application/json",
                                            "X-Modelops-Token": record["token"]}, timeout=timeout)
        except OSError as exc:
            status, answer = 0, str(exc).encode()
        if status != 200:
            reason = answer.decode(errors="replace").strip()
            if current:
                raise EndpointFailed(f"{action} of {name} to v{target.version} failed: {reason}. v{current['version']} "
                                     f"keeps serving (log: {self._log(name)}).")
            if not running:
                terminate(record["pid"])
                record.update(status=STOPPED, pid=None)
                self._write(name, record)
            raise EndpointFailed(f"{action} of {name} to v{target.version} failed: {reason}. Nothing is serving on "
                                 f"{name} (log: {self._log(name)}).")
        previous = record.get("current")
        if previous and previous["version"] == target.version:
            previous = record.get("previous")
        record.update(status=IN_SERVICE, current=asdict(target), previous=previous,
                      updated_at=datetime.now(UTC).isoformat(timespec="seconds"))
        self._write(name, record)
        try:
            url = self._runtime_url(name, self.runtime.ensure())
        except EndpointFailed as exc:
            raise EndpointFailed(f"{name} serves v{target.version} at {record['url']}/invocations, but {exc}") from exc
        was = f"v{current['version']}" if current else "nothing"
        message = f"{name} serves v{target.version} (before: {was})"
        log(message)
        return Deployment(name, target.version, previous["version"] if previous else None, url, IN_SERVICE, True,
                          message)

    def _start(self, name: str, record: dict, *, timeout: float) -> dict:
        folder = self.root / safe_key(name)
        folder.mkdir(parents=True, exist_ok=True)
        ready = folder / "ready.json"
        ready.unlink(missing_ok=True)
        token = secrets.token_hex(16)
        with open(self._log(name), "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "modelops.serving", "--name", name, "--host", self.host,
                 "--port", str(record.get("port") or 0), "--ready-file", str(ready)],
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=folder,
                env=_server_environment(token), start_new_session=True,
            )
        deadline = time.monotonic() + min(timeout, 120)
        while not ready.exists():
            if process.poll() is not None:
                raise EndpointFailed(f"the inference server for {name} exited with code {process.returncode} while "
                                     f"starting. Log: {self._log(name)}:\n{tail(self._log(name))}")
            if time.monotonic() > deadline:
                terminate(process.pid)
                raise EndpointFailed(f"the inference server for {name} did not start within {timeout:.0f}s. "
                                     f"Log: {self._log(name)}")
            time.sleep(0.02)
        port = json.loads(ready.read_text())["port"]
        host = f"[{self.host}]" if ":" in self.host else self.host
        record = {**record, "name": name, "pid": process.pid, "host": self.host, "port": port, "token": token,
                  "url": f"http://{host}:{port}", "status": "Creating",
                  "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
        self._write(name, record)
        return record

    def _alive(self, record: dict) -> dict | None:
        """The server's status if its process runs and answers as this endpoint (pids get reused)."""
        pid = record.get("pid")
        if not pid or record.get("status") == STOPPED or not pid_exists(pid):
            return None
        try:
            status, answer = self._request(record, "GET", "/-/status", timeout=2)
            info = json.loads(answer) if status == 200 else {}
        except (OSError, ValueError):
            return None
        return info if info.get("name") == record["name"] and info.get("pid") == pid else None

    def _request(self, record: dict, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                 *, timeout: float = 30) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(record["host"], record["port"], timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def _runtime_client(self, *, fresh: bool = False):
        """A boto3 sagemaker-runtime client for the router, with dummy credentials (never the user's)."""
        with self._client_lock:
            if self._client is None or fresh:
                import boto3
                from botocore.config import Config

                # No retries: the router answers at once, and an unreachable router is restarted by invoke.
                config = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5,
                                read_timeout=70, user_agent_extra="modelops/0.1")
                session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",
                                                region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
                self._client = session.client("sagemaker-runtime", endpoint_url=self.runtime.ensure(),
                                              config=config)
            return self._client

    @staticmethod
    def _runtime_url(name: str, base: str | None) -> str | None:
        return f"{base}/endpoints/{name}/invocations" if base else None

    def _read(self, name: str) -> dict | None:
        try:
            return json.loads((self.root / safe_key(name) / "endpoint.json").read_text())
        except FileNotFoundError:
            return None

    def _write(self, name: str, record: dict) -> None:
        path = self.root / safe_key(name) / "endpoint.json"
        atomic.write_json(path, record)
        os.chmod(path, 0o600)

    def _log(self, name: str) -> Path:
        return self.root / safe_key(name) / "server.log"

    @contextmanager
    def _locked(self, name: str):
        folder = self.root / safe_key(name)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _server_environment(token: str) -> dict[str, str]:
    """The server's environment: ours, less the container switches (each load brings the model's own)."""
    inherited = {k: v for k, v in os.environ.items() if k not in (INFERENCE_OUTPUT_ENV, DEFAULT_ACCEPT_ENV)}
    return {**inherited, "MODELOPS_ADMIN_TOKEN": token}
