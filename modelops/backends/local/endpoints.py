"""Local endpoints: one background inference server per endpoint, recorded under the local backend's home.

Each endpoint has a folder ``<home>/endpoints/<name>/`` with ``endpoint.json`` (pid, port, url, the package
served now and the one before, written atomically, readable only by its owner because it holds the admin
token) and ``server.log``. Deploys and rollbacks of one endpoint are serialised by a lock file. The container's
environment switches (model.yml ``serving``) travel with each load, as on SageMaker they belong to the model, so a
rollback brings back the previous version's.

Clients reach every endpoint of a home through one address speaking the SageMaker Runtime API (the router,
modelops.backends.local.runtime), and so does ``invoke``: boto3's ``invoke_endpoint``, as on SageMaker.

A production update with a guarded rollout (model.yml ``environments.production.rollout``: canary, linear, or
all_at_once with a bake) starts the new version in a second server process beside the old one; the record's
``rollout`` tells the router what share of the requests to send it, step by step, and the deploy watches the
router's figures against the alarms (modelops.backends.local.rollout). An alarm takes the new process out and
raises RolloutRolledBack; otherwise, after the bake, the new process becomes the endpoint's and the old one stops.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from modelops import atomic
from modelops.backends.base import Endpoints, safe_key
from modelops.backends.local.rollout import POLL_SECONDS, CanaryFigures, rollout_steps, tripped_alarm
from modelops.backends.local.runtime import RuntimeRouter
from modelops.config import DEFAULT_INSTANCE_COUNT, DEFAULT_INSTANCE_TYPE
from modelops.container import DEFAULT_ACCEPT_ENV, INFERENCE_OUTPUT_ENV
from modelops.entities import (
    IN_SERVICE,
    INVOKE_MAX_PAYLOAD_MB,
    DataCapture,
    Deployment,
    EndpointLimits,
    EndpointStatus,
    PackageVersion,
    ServedPackage,
)
from modelops.errors import EndpointFailed, RolloutRolledBack
from modelops.serving.processes import pid_exists, terminate, wait_ready

DOWN = "Down"
STOPPED = "Stopped"
UPDATING = "Updating"
#: After the new version takes all the traffic, the old process gets this long to finish what it is answering.
DRAIN_SECONDS = 0.5


class LocalEndpoints(Endpoints):
    """Inference servers on this machine, bound to ``host`` (127.0.0.1 unless told otherwise)."""

    def __init__(self, home: Path, *, host: str | None = None):
        self.root = Path(home) / "endpoints"
        self.host = host or os.environ.get("MODELOPS_ENDPOINT_HOST", "127.0.0.1")
        self.runtime = RuntimeRouter(Path(home), self.host)
        self._client = None
        self._client_lock = threading.Lock()

    # -- the interface -------------------------------------------------------------------------------------

    def deploy(self, name: str, package: PackageVersion, *, instance_type: str = DEFAULT_INSTANCE_TYPE,
               instance_count: int = DEFAULT_INSTANCE_COUNT, timeout: float = 600,
               environment: dict[str, str] | None = None,
               data_capture: DataCapture | None = None, rollout=None, autoscaling=None,
               log=print) -> Deployment:
        if instance_count > 1 or autoscaling is not None:
            log(ignored_settings(name, instance_count, autoscaling))
        target = ServedPackage.of(package, environment, data_capture)
        with self._locked(name):
            record = self._without_stale_rollout(name)
            if rollout is not None and rollout.guarded():
                if record and record.get("current") and self._alive(record):
                    return self._roll_out(name, record, target, rollout, timeout=timeout, log=log)
                log(f"{name}: nothing serves yet, so the {rollout.strategy} rollout has no old version to guard: "
                    f"v{target.version} takes all the traffic when in service")
            return self._switch(name, target, timeout=timeout, log=log, action="deploy")

    def rollback(self, name: str, *, timeout: float = 600, log=print) -> Deployment:
        with self._locked(name):
            record = self._without_stale_rollout(name)
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
        rollout = record.get("rollout") if alive else None
        rollout = rollout if rollout and pid_exists(rollout["pid"]) else None  # else a dead deploy's, cleaned up next
        state = (UPDATING if rollout else IN_SERVICE) if alive else (STOPPED if record.get("status") == STOPPED
                                                                      else DOWN)
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
            # A load is stamped to the microsecond, so two switches within a second still tell the servers apart.
            server_id=(f"pid {record['pid']} started {record.get('started_at')} loaded {record.get('updated_at')}"
                       if alive else None),
            detail={"pid": record.get("pid") if alive else None, "port": record.get("port"),
                    "container_url": f"{record['url']}/invocations" if record.get("url") else None,
                    "log": str(self._log(name)), "responses": alive.get("responses") if alive else None,
                    "capture": alive.get("capture") if alive else None,
                    "rollout": {"version": rollout["version"], "percent": rollout["percent"]} if rollout else None},
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

    def limits(self, name: str) -> EndpointLimits:
        """The server's own ``GET /execution-parameters``, within the router's limit (the Runtime API's 6 MB)."""
        record = self._read(name)
        if record is None or not self._alive(record):
            raise EndpointFailed(f"endpoint {name!r} is not running, so it cannot say what a request may carry. "
                                 f"Fix: deploy it (`python -m ci deploy <model folder>`); `python -m ci endpoints` "
                                 f"lists what runs.")
        try:
            status, answer = self._request(record, "GET", "/execution-parameters", timeout=5)
            limits = EndpointLimits.of_execution_parameters(json.loads(answer)) if status == 200 else None
        except (OSError, ValueError, KeyError) as exc:
            raise EndpointFailed(f"endpoint {name!r} did not answer GET /execution-parameters ({exc}). Log: "
                                 f"{self._log(name)}") from exc
        if limits is None:
            raise EndpointFailed(f"endpoint {name!r} answered GET /execution-parameters with {status}. Log: "
                                 f"{self._log(name)}")
        return EndpointLimits(min(limits.max_payload_bytes, INVOKE_MAX_PAYLOAD_MB * 1024 ** 2), limits.max_concurrency)

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
            if record.get("rollout"):  # stopped in the middle of a rollout (by another process)
                terminate(record.pop("rollout")["pid"])
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
        reason = self._load(record, target, timeout=timeout)
        if reason is not None:
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
                      updated_at=datetime.now(UTC).isoformat(timespec="microseconds"))
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

    def _load(self, server: dict, target: ServedPackage, *, timeout: float) -> str | None:
        """Have ``server`` load (check, warm) ``target``; None when it serves it, else the reason it does not."""
        try:
            status, answer = self._request(server, "POST", "/-/load", json.dumps(asdict(target)).encode(),
                                           {"Content-Type": "application/json",
                                            "X-Modelops-Token": server["token"]}, timeout=timeout)
        except OSError as exc:
            status, answer = 0, str(exc).encode()
        return None if status == 200 else answer.decode(errors="replace").strip()

    def _roll_out(self, name: str, record: dict, target: ServedPackage, rollout, *, timeout: float,
                  log) -> Deployment:
        """The new version beside the old one, step by step with the alarms armed; rolled back when one trips."""
        old = record["current"]
        steps = rollout_steps(rollout)
        alarms = [f"error rate > {rollout.alarm_error_rate:g}"]
        if rollout.alarm_p99_ms is not None:
            alarms.append(f"p99 model latency > {rollout.alarm_p99_ms:g} ms")
        log(f"{name}: {rollout.strategy} rollout of v{target.version} beside v{old['version']}: "
            + ", then ".join(f"{s.percent:g}% for {s.seconds}s" for s in steps) + f"; alarms: {', '.join(alarms)}")
        router = self.runtime.ensure()
        log(f"{name}: starting v{target.version}'s server beside v{old['version']}'s, loading {target.artifact_uri}")
        try:
            server = self._spawn(name, port=0, ready_file="ready-rollout.json", timeout=timeout)
        except EndpointFailed as exc:
            raise EndpointFailed(f"{exc} v{old['version']} keeps serving all the traffic.") from exc
        rollout_id = secrets.token_hex(8)
        done = False
        try:
            reason = self._load(server, target, timeout=timeout)
            if reason is not None:
                raise EndpointFailed(f"deploy of {name} to v{target.version} failed: {reason}. v{old['version']} "
                                     f"keeps serving (log: {self._log(name)}).")
            started, before = time.monotonic(), None
            for step in steps:
                record.update(status=UPDATING, rollout={"id": rollout_id, "version": target.version,
                                                        "package_id": target.package_id, "percent": step.percent,
                                                        **server})
                self._write(name, record)
                log(f"{name}: {step.percent:g}% of requests to v{target.version} for {step.seconds}s"
                    + (" (the bake)" if step.percent == 100 else ""))
                alarm, figures = self._watch(name, router, rollout_id, server, step.seconds, rollout)
                seen = figures.describe() if figures else "no requests so far"
                if alarm is not None:
                    self._take_out(name, record, server)
                    done = True
                    elapsed = time.monotonic() - started
                    log(f"{name}: alarm: {alarm}. Rolled back after {elapsed:.1f}s: v{old['version']} serves all "
                        f"the traffic, v{target.version}'s server stopped ({seen})")
                    raise RolloutRolledBack(
                        f"the {rollout.strategy} rollout of {name} to v{target.version} was rolled back after "
                        f"{elapsed:.1f}s at {step.percent:g}% of the traffic: {alarm}. v{old['version']} serves all "
                        f"the traffic again ({seen}; log: {self._log(name)}). Fix: find why v{target.version} "
                        f"fails there (the endpoint's log, the requests it got), then deploy a fixed version.",
                        endpoint=name, version=old["version"], package_id=old.get("package_id"),
                        rolled_back=target.version, reason=alarm)
                log(f"{name}: {step.percent:g}% step done: {figures.since(before).describe() if figures else seen}")
                before = figures or before
            old_pid = record["pid"]
            record.pop("rollout", None)
            record.update(server, status=IN_SERVICE, current=asdict(target), previous=old,
                          updated_at=datetime.now(UTC).isoformat(timespec="microseconds"))
            self._write(name, record)
            done = True
        finally:
            if not done:  # an error or an interrupt on the way: the old version takes all the traffic back
                self._take_out(name, record, server)
        try:
            time.sleep(DRAIN_SECONDS)  # the router reads the record per request; what the old one answers now ends
        finally:
            terminate(old_pid)
        message = f"{name} serves v{target.version} (before: v{old['version']}) after a {rollout.strategy} rollout"
        log(message)
        return Deployment(name, target.version, old["version"], self._runtime_url(name, router), IN_SERVICE, True,
                          message)

    def _watch(self, name: str, router: str, rollout_id: str, server: dict, seconds: float, rollout):
        """Poll the router's figures for ``seconds``: (the alarm that tripped or None, the figures last seen)."""
        deadline = time.monotonic() + seconds
        figures = None
        while True:
            figures = self._figures(router, name, rollout_id) or figures
            alarm = tripped_alarm(figures, rollout) if figures else None
            if alarm is None and not pid_exists(server["pid"]):
                alarm = f"the new version's server process {server['pid']} exited (log: {self._log(name)})"
            if alarm is not None or time.monotonic() >= deadline:
                return alarm, figures
            time.sleep(POLL_SECONDS)

    def _figures(self, router: str, name: str, rollout_id: str) -> CanaryFigures | None:
        """What the router counted of this rollout (None: no request yet, or the router does not answer)."""
        address = urlparse(router)
        try:
            status, answer = self._request({"host": address.hostname, "port": address.port}, "GET",
                                           f"/-/rollouts/{name}", timeout=5)
            data = json.loads(answer) if status == 200 else {}
        except (OSError, ValueError):
            return None
        return CanaryFigures.from_json(data) if data.get("id") == rollout_id else None

    def _take_out(self, name: str, record: dict, server: dict) -> None:
        """All the traffic back to the version the record serves; the rollout's server stopped."""
        record.pop("rollout", None)
        record.update(status=IN_SERVICE)
        self._write(name, record)
        terminate(server["pid"])

    def _without_stale_rollout(self, name: str) -> dict | None:
        """The record, rid of a rollout whose deploy died (called under the lock, so none is under way)."""
        record = self._read(name)
        if record and record.get("rollout"):
            stale = record.pop("rollout")
            if record.get("status") == UPDATING:
                record["status"] = IN_SERVICE
            self._write(name, record)
            if pid_exists(stale["pid"]):
                terminate(stale["pid"])
        return record

    def _start(self, name: str, record: dict, *, timeout: float) -> dict:
        server = self._spawn(name, port=record.get("port") or 0, ready_file="ready.json", timeout=timeout)
        record = {**record, "name": name, **server, "status": "Creating"}
        self._write(name, record)
        return record

    def _spawn(self, name: str, *, port: int, ready_file: str, timeout: float) -> dict:
        """Start a server process for ``name`` (no model loaded yet); its pid, host, port, token, url, start."""
        folder = self.root / safe_key(name)
        folder.mkdir(parents=True, exist_ok=True)
        ready = folder / ready_file
        ready.unlink(missing_ok=True)
        token = secrets.token_hex(16)
        with open(self._log(name), "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "modelops.serving", "--name", name, "--host", self.host,
                 "--port", str(port), "--ready-file", str(ready)],
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=folder,
                env=_server_environment(token), start_new_session=True,
            )
        port = wait_ready(process, ready, what=f"the inference server for {name}", log_path=self._log(name),
                          timeout=min(timeout, 120))
        host = f"[{self.host}]" if ":" in self.host else self.host
        return {"pid": process.pid, "host": self.host, "port": port, "token": token, "url": f"http://{host}:{port}",
                "started_at": datetime.now(UTC).isoformat(timespec="seconds")}

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

    def _locked(self, name: str):
        return atomic.locked(self.root / safe_key(name) / ".lock")


def ignored_settings(name: str, instance_count: int, autoscaling) -> str:
    """The one line a local deploy logs about production's scale settings, which it does not apply."""
    ignored = [f"instance_count {instance_count}"] if instance_count > 1 else []
    if autoscaling is not None:
        ignored.append(f"autoscaling {autoscaling.min_instances}-{autoscaling.max_instances} instances")
    return (f"{name}: the local backend ignores {' and '.join(ignored)}: it runs one server process per version "
            f"(SageMaker applies them)")


def _server_environment(token: str) -> dict[str, str]:
    """The server's environment: ours, less the container switches (each load brings the model's own)."""
    inherited = {k: v for k, v in os.environ.items() if k not in (INFERENCE_OUTPUT_ENV, DEFAULT_ACCEPT_ENV)}
    return {**inherited, "MODELOPS_ADMIN_TOKEN": token}
