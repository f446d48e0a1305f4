"""Local endpoints: one background inference server per endpoint, recorded under the local backend's home.

Each endpoint has a folder ``<home>/endpoints/<name>/`` with ``endpoint.json`` (pid, port, url, the package
served now and the one before, written atomically, readable only by its owner because it holds the admin
token) and ``server.log``. Deploys and rollbacks of one endpoint are serialised by a lock file. The container's
environment switches (model.yml ``serving``) travel with each load, as on SageMaker they belong to the model, so a
rollback brings back the previous version's.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import secrets
import signal
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
    Deployment,
    Endpoints,
    EndpointStatus,
    PackageVersion,
    ServedPackage,
    safe_key,
    unapplied_settings,
)
from modelops.errors import EndpointFailed
from modelops.serving.container import DEFAULT_ACCEPT_ENV, INFERENCE_OUTPUT_ENV

DOWN = "Down"
STOPPED = "Stopped"


class LocalEndpoints(Endpoints):
    """Inference servers on this machine, bound to ``host`` (127.0.0.1 unless told otherwise)."""

    def __init__(self, home: Path, *, host: str | None = None):
        self.root = Path(home) / "endpoints"
        self.host = host or os.environ.get("MODELOPS_ENDPOINT_HOST", "127.0.0.1")
        self._connections = threading.local()

    # -- the interface -------------------------------------------------------------------------------------

    def deploy(self, name: str, package: PackageVersion, *, instance_type: str = "ml.m5.large",
               instance_count: int = 1, timeout: float = 600, environment: dict[str, str] | None = None,
               rollout=None, autoscaling=None, log=print) -> Deployment:
        for line in unapplied_settings(name, rollout, autoscaling):
            log(line)
        with self._locked(name):
            return self._switch(name, ServedPackage.of(package, environment), timeout=timeout, log=log,
                                action="deploy")

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
            message = (f"the server process {record.get('pid')} is not running (log: {self._log(name)}). Fix: "
                       f"restart it with `python -m ci deploy <model folder>` (or `python -m ci rollback`).")
        uptime = None
        if alive and record.get("started_at"):
            uptime = (datetime.now(UTC) - datetime.fromisoformat(record["started_at"])).total_seconds()
        return EndpointStatus(
            name=name,
            status=state,
            version=(record.get("current") or {}).get("version"),
            previous_version=(record.get("previous") or {}).get("version"),
            url=f"{record['url']}/invocations" if record.get("url") else None,
            started_at=record.get("started_at"),
            uptime_seconds=uptime,
            package_id=(record.get("current") or {}).get("package_id"),
            detail={"pid": record.get("pid") if alive else None, "port": record.get("port"),
                    "log": str(self._log(name)), "responses": alive.get("responses") if alive else None},
            message=message,
        )

    def list(self) -> list[EndpointStatus]:
        names = sorted(p.parent.name for p in self.root.glob("*/endpoint.json")) if self.root.is_dir() else []
        return [s for s in (self.status(n) for n in names) if s is not None]

    def invoke(self, name: str, body: bytes, *, content_type: str = "text/csv", accept: str = "text/csv") -> bytes:
        record = self._read(name)
        if record is None or record.get("status") == STOPPED or not record.get("port"):
            raise EndpointFailed(f"endpoint {name!r} is not running. Fix: deploy it (`python -m ci deploy "
                                 f"<model folder>`).")
        try:
            status, answer = self._request(record, "POST", "/invocations", body,
                                           {"Content-Type": content_type, "Accept": accept}, reuse=True)
        except OSError as exc:
            raise EndpointFailed(f"endpoint {name!r} at {record['url']} does not answer ({exc}); its server process "
                                 f"{record.get('pid')} is down (log: {self._log(name)}). Fix: restart it with "
                                 f"`python -m ci deploy <model folder>`.") from exc
        if status >= 400:
            raise EndpointFailed(f"endpoint {name!r} answered {status}: {answer.decode(errors='replace').strip()}")
        return answer

    def stop(self, name: str) -> None:
        with self._locked(name):
            record = self._read(name)
            if record is None:
                raise EndpointFailed(f"there is no endpoint {name!r}. Fix: see `python -m ci endpoints`.")
            if self._alive(record):
                _terminate(record["pid"])
            record.update(status=STOPPED, pid=None)
            self._write(name, record)

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
                _terminate(record["pid"])
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
        was = f"v{current['version']}" if current else "nothing"
        message = f"{name} serves v{target.version} (before: {was})"
        log(message)
        return Deployment(name, target.version, previous["version"] if previous else None,
                          f"{record['url']}/invocations", IN_SERVICE, True, message)

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
                                     f"starting. Log: {self._log(name)}:\n{_tail(self._log(name))}")
            if time.monotonic() > deadline:
                _terminate(process.pid)
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
        if not pid or record.get("status") == STOPPED or not _pid_exists(pid):
            return None
        try:
            status, answer = self._request(record, "GET", "/-/status", timeout=2)
            info = json.loads(answer) if status == 200 else {}
        except (OSError, ValueError):
            return None
        return info if info.get("name") == record["name"] and info.get("pid") == pid else None

    def _request(self, record: dict, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                 *, timeout: float = 30, reuse: bool = False) -> tuple[int, bytes]:
        if not reuse:
            connection = http.client.HTTPConnection(record["host"], record["port"], timeout=timeout)
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                return response.status, response.read()
            finally:
                connection.close()
        # invoke() keeps one connection per thread and endpoint: the cost of a TCP handshake per
        # request would dominate single-row latency.
        key = (record["host"], record["port"])
        pool = self._connections.__dict__.setdefault("pool", {})
        for attempt in (1, 2):
            connection = pool.get(key) or http.client.HTTPConnection(*key, timeout=timeout)
            pool[key] = connection
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                pool.pop(key, None)
                if attempt == 2:
                    raise

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


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pid: int, grace: float = 10) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)  # our child: reap it
        except ChildProcessError:
            finished = 0 if _pid_exists(pid) else pid
        if finished:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
