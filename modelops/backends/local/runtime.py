"""The local SageMaker Runtime address: one router process per home (modelops.serving.router), found by its record.

``<home>/runtime/router.json`` holds the router's pid, port and URL; ``router.log`` its log. The router is
started on the first deploy (and again by an invoke or ``ci endpoints`` when it is not running), listens on
``DEFAULT_PORT`` unless taken or ``MODELOPS_RUNTIME_PORT`` says otherwise (0: any free port), keeps its port
when restarted, and is stopped with the last endpoint of its home (``ci stop``); it also exits by itself a
minute after no endpoint server of its home runs. Starting and stopping are serialised by a lock file, so
parallel deploys start one router.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from modelops import atomic
from modelops.serving.processes import pid_exists, terminate, wait_ready

PORT_ENV = "MODELOPS_RUNTIME_PORT"
#: The router's port unless it is taken (then any free one, recorded) or MODELOPS_RUNTIME_PORT is set.
DEFAULT_PORT = 8281


class RuntimeRouter:
    """The router process of one home, bound to ``host``."""

    def __init__(self, home: Path, host: str = "127.0.0.1"):
        self.home = Path(home)
        self.folder = self.home / "runtime"
        self.host = host

    @property
    def log_path(self) -> Path:
        return self.folder / "router.log"

    def recorded_url(self) -> str | None:
        """The router's address as last recorded (running or not)."""
        record = self._read()
        return record.get("url") if record else None

    def running_url(self) -> str | None:
        """The router's address if it runs and answers as this home's router."""
        record = self._read()
        return record["url"] if record and self._alive(record) else None

    def ensure(self, *, timeout: float = 30) -> str:
        """The running router's address, starting it first if needed.

        Raises:
            EndpointFailed: it did not start (with its log).
        """
        with self._locked():  # always: a stop in another process decides under the same lock
            record = self._read() or {}
            if self._alive(record):
                return record["url"]
            return self._start(record, timeout)["url"]

    def stop(self, *, unless=None) -> bool:
        """Stop the router if it runs, unless ``unless()`` (asked under the lock) is true; True if it stopped."""
        with self._locked():
            record = self._read()
            if not record or not self._alive(record) or (unless is not None and unless()):
                return False
            terminate(record["pid"])
            return True

    # -- how -----------------------------------------------------------------------------------------------

    def _start(self, record: dict, timeout: float) -> dict:
        self.folder.mkdir(parents=True, exist_ok=True)
        ready = self.folder / "ready.json"
        ready.unlink(missing_ok=True)
        port = record.get("port") or int(os.environ.get(PORT_ENV, DEFAULT_PORT))
        with open(self.log_path, "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "modelops.serving.router", "--home", str(self.home), "--host", self.host,
                 "--port", str(port), "--ready-file", str(ready)],
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.folder,
                start_new_session=True)
        port = wait_ready(process, ready, what="the local SageMaker Runtime router", log_path=self.log_path,
                          timeout=timeout, poll=0.01)
        host = f"[{self.host}]" if ":" in self.host else self.host
        record = {"pid": process.pid, "host": self.host, "port": port, "url": f"http://{host}:{port}",
                  "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
        atomic.write_json(self.folder / "router.json", record)
        return record

    def _alive(self, record: dict) -> bool:
        """Whether the recorded process runs and answers as this home's router (pids and ports get reused)."""
        pid = record.get("pid")
        if not pid or not pid_exists(pid):
            return False
        connection = http.client.HTTPConnection(record["host"], record["port"], timeout=2)
        try:
            connection.request("GET", "/-/status")
            response = connection.getresponse()
            status = json.loads(response.read()) if response.status == 200 else {}
        except (OSError, ValueError, http.client.HTTPException):
            return False
        finally:
            connection.close()
        return status.get("pid") == pid and status.get("home") == str(self.home)

    def _read(self) -> dict | None:
        try:
            return json.loads((self.folder / "router.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _locked(self):
        return atomic.locked(self.folder / ".lock")
