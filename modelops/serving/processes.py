"""Background server processes of the local backend (endpoints, the runtime router): alive, stopped, their logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from modelops.errors import EndpointFailed


def pid_exists(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(pid: int, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; reaps the process when it is our child."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)  # our child: reap it
        except ChildProcessError:
            finished = 0 if pid_exists(pid) else pid
        if finished:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_ready(process: subprocess.Popen, ready: Path, *, what: str, log_path: Path, timeout: float,
               poll: float = 0.02) -> int:
    """Wait until a server process started with ``--ready-file`` writes it; the port it listens on.

    Raises:
        EndpointFailed: the process exited while starting (with its log's tail), or did not start within
            ``timeout`` seconds (then it is terminated).
    """
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            raise EndpointFailed(f"{what} exited with code {process.returncode} while starting. Log: {log_path}:\n"
                                 f"{tail(log_path)}")
        if time.monotonic() > deadline:
            terminate(process.pid)
            raise EndpointFailed(f"{what} did not start within {timeout:.0f}s. Log: {log_path}")
        time.sleep(poll)
    return json.loads(ready.read_text())["port"]
