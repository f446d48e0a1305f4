"""Kernels for the runner: the kernel manager it starts them with, and the next notebook's kernel started early.

A kernel takes a second or so to boot (a Python process importing ipykernel). While one notebook of a stage
runs, the runner starts the kernel of the next one (``KernelsAhead``) and hands it to papermill when that
notebook starts (``execute_notebook(..., km=...)`` through the ``prestarted`` engine registered here). A kernel
started early is used only for a notebook that would have got the same one: the same kernel spec, working
folder and environment variables; otherwise it is shut down and papermill starts its own, as it always did.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

KERNEL_NAME = "modelops"

#: "0" turns off starting kernels early (every notebook then starts its own when it starts).
PRESTART_ENV = "MODELOPS_PRESTART_KERNELS"

#: What nbclient passes a kernel it starts itself: IPython's history in memory, not in a SQLite file that
#: kernels running side by side would contend for.
HISTORY_ARGUMENT = "--HistoryManager.hist_file=:memory:"


@lru_cache(maxsize=1)
def kernel_manager_class():
    """A kernel manager that encrypts kernel traffic (CurveZMQ) when the kernelspec supports it, as ours does."""
    import zmq
    from jupyter_client.manager import AsyncKernelManager

    class QuietShutdownKernelManager(AsyncKernelManager):
        """jupyter_client sends SIGINT before every shutdown request. A finished notebook's kernel is idle, and
        the signal only makes it log "ERROR | KeyboardInterrupt caught in kernel" into a successful run's output.
        A kernel still busy (a timed-out cell) does not answer the shutdown request and is killed after
        ``shutdown_wait_time`` instead."""

        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    if not zmq.has("curve") or "transport_encryption" not in AsyncKernelManager.class_trait_names():
        return QuietShutdownKernelManager

    class EncryptedKernelManager(QuietShutdownKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport_encryption = "auto"

    return EncryptedKernelManager


@dataclass
class _Started:
    manager: object  # the kernel manager (its kernel running)
    cwd: str
    environment: dict[str, str]  # os.environ when it started: what the kernel inherited


class KernelsAhead:
    """At most one kernel started ahead of the notebook that will use it; a context manager that shuts down
    whatever was started and not taken (a failed notebook, an interrupt, a next notebook that was reused)."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = os.environ.get(PRESTART_ENV, "1") != "0" if enabled is None else enabled
        self._ahead: _Started | None = None

    def start(self, cwd: Path) -> None:
        """Start a kernel for a notebook that will run in ``cwd`` (replacing one started before and not taken)."""
        if not self.enabled:
            return
        self.discard()
        from jupyter_core.utils import run_sync

        manager = kernel_manager_class()(kernel_name=KERNEL_NAME)
        environment = dict(os.environ)
        try:
            run_sync(manager.start_kernel)(cwd=str(cwd), extra_arguments=[HISTORY_ARGUMENT])
        except Exception as exc:  # the notebook will start its own and report what goes wrong then
            log.debug("starting a kernel ahead failed: %s", exc)
            _shut_down(manager)
            return
        self._ahead = _Started(manager, str(cwd), environment)

    def take(self, cwd: Path):
        """The kernel started ahead if it is what a notebook running in ``cwd`` now would start, else None."""
        started, self._ahead = self._ahead, None
        if started is None:
            return None
        from jupyter_core.utils import run_sync

        if started.cwd == str(cwd) and started.environment == dict(os.environ) and run_sync(
                started.manager.is_alive)():
            return started.manager
        _shut_down(started.manager)
        return None

    def release(self, manager) -> None:
        """Make sure a kernel taken from here is down once its notebook ran (papermill may fail before using it)."""
        from jupyter_core.utils import run_sync

        try:
            alive = run_sync(manager.is_alive)()
        except Exception:  # nbclient already shut it down and dropped its process
            alive = False
        if alive:
            _shut_down(manager)

    def discard(self) -> None:
        started, self._ahead = self._ahead, None
        if started is not None:
            _shut_down(started.manager)

    def __enter__(self) -> KernelsAhead:
        return self

    def __exit__(self, *exc_info) -> None:
        self.discard()


def _shut_down(manager) -> None:
    from jupyter_core.utils import run_sync

    async def stop() -> None:
        try:
            if await manager.is_alive():
                await manager.shutdown_kernel(now=True)  # idle and never used: nothing to lose
        finally:
            await manager.cleanup_resources()

    try:
        run_sync(stop)()
    except Exception as exc:  # already gone
        log.debug("shutting down a kernel started ahead: %s", exc)


def prestarted_engine() -> str:
    """The name of papermill's engine that runs a notebook on a kernel started ahead (``km=``), registered once."""
    return _register_engine()


@lru_cache(maxsize=1)
def _register_engine() -> str:
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines

    class Client(PapermillNotebookClient):
        """nbclient leaves a kernel it did not start running, and its client's channels open; this one was started
        for this notebook alone, so the client shuts both down at the end, as it does a kernel it started."""

        def setup_kernel(self, **kwargs):
            return super().setup_kernel(cleanup_kc=True, **kwargs)

    class PrestartedEngine(NBClientEngine):
        """papermill's nbclient engine, with the client above."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kwargs.pop("input_path", None)
            kwargs.pop("startup_timeout", None)
            timeout = kwargs.pop("timeout", None)
            return Client(nb_man, timeout=execution_timeout or timeout, startup_timeout=start_timeout,
                          kernel_name=kernel_name, log=logging.getLogger("papermill"), log_output=log_output,
                          stdout_file=stdout_file, stderr_file=stderr_file, **kwargs).execute()

    papermill_engines.register("prestarted", PrestartedEngine)
    return "prestarted"
