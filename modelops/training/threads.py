"""How many threads XGBoost gets: the CPUs this process may use, a fair share for training, and per request.

XGBoost runs each prediction and each training step as OpenMP parallel regions, and a region ends only when
every one of its threads has run. On a machine whose cores are busy, one of them waits for the scheduler, so
a parallel region costs far more than it saves (measured in benchmarks/README.md, section 5). So:

- the budget is what this process may really use: its CPU affinity, capped by its cgroup's CPU quota;
- an endpoint predicts small batches with one thread (no parallel region at all), and a batch of
  ``PARALLEL_MIN_ROWS`` or more with as many threads as there are idle CPUs right now (runnable tasks read
  from /proc/loadavg), at most its cap: a busy machine gets one thread, an idle one the parallel speed-up;
- training takes a fair share: the budget divided among the models training at once (the pipeline trains
  them in parallel), never more than the CPUs idle when it starts.

Threads never change results: the same model trained with 1 or 2 threads has the same sha256 (checked for
both models), and predictions are per row.
"""

from __future__ import annotations

import functools
import math
import os
import time
from pathlib import Path

from modelops.errors import ConfigError

#: Training threads; set explicitly, it wins over the fair share.
TRAIN_THREADS_ENV = "MODELOPS_TRAIN_THREADS"
#: The most threads an endpoint gives one prediction (default: the budget, at most ``SERVE_MAX_THREADS``).
SERVE_THREADS_ENV = "MODELOPS_SERVE_THREADS"
SERVE_MAX_THREADS = 4
#: Batches this size or larger may be predicted with more than one thread. In-process, churn (99 features) with
#: 2 threads against 1, fastest of 5 interleaved runs: 128 rows 0.41 vs 0.40 ms, 256 rows 0.47 vs 0.63, 512 rows
#: 0.62 vs 0.97, 1,000 rows 1.02 vs 1.61, 10,000 rows 7.1 vs 12.4 (benchmarks/README.md section 5).
PARALLEL_MIN_ROWS = 512


def cpu_budget() -> int:
    """The CPUs this process may use: its affinity mask, capped by its cgroup's CPU quota (whole CPUs, >= 1).

    A fractional quota is rounded down: a thread needs a whole CPU, and a second one on half a CPU is throttled.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup"),
                     proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """This process's cgroup CPU quota in CPUs (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``); None if none.

    Only the process's own cgroup is read, not its parents' (a container sees its own as the root).
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = path.strip().lstrip("/")
        if hierarchy == "0" and controllers == "":  # v2: one unified hierarchy
            for base in (root, root / "unified"):
                for folder in dict.fromkeys([base / relative, base]):
                    quota = _read(folder / "cpu.max")
                    if quota is not None:
                        limit, _, period = quota.partition(" ")
                        return None if limit == "max" else int(limit) / int(period or 100000)
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's own hierarchy
            for mount in (root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"):
                for folder in dict.fromkeys([mount / relative, mount]):
                    quota = _read(folder / "cpu.cfs_quota_us")
                    if quota is not None:
                        period = _read(folder / "cpu.cfs_period_us") or "100000"
                        return None if int(quota) <= 0 else int(quota) / int(period)
    return None


@functools.cache
def process_budget() -> int:
    """``cpu_budget()``, read once per process: serving asks for it per large batch, and it reads cgroup files."""
    return cpu_budget()


def idle_cpus(budget: int | None = None, loadavg: str = "/proc/loadavg") -> int:
    """CPUs of the budget no other task wants right now (>= 1): the budget minus runnable tasks but this one.

    The runnable count is /proc/loadavg's fourth field, an instant figure (not the load averages); reading it
    costs a few microseconds.
    """
    budget = budget or process_budget()
    try:
        descriptor = os.open(loadavg, os.O_RDONLY)
        try:
            running = int(os.read(descriptor, 128).split()[3].split(b"/")[0])
        finally:
            os.close(descriptor)
    except (OSError, ValueError, IndexError):
        return budget
    return max(1, min(budget, budget - (running - 1)))


#: How often, and how far apart, training reads the idle CPUs before it starts: the most seen counts. One reading
#: catches whatever else is runnable at that instant (the runner copying output, a sampler waking up), and the
#: choice holds for the whole training: one unlucky reading halves a long training's speed on two cores.
IDLE_READINGS, IDLE_READING_INTERVAL = 5, 0.01


def fair_share(parallel: int = 1, budget: int | None = None) -> int:
    """Threads for one of ``parallel`` trainings running at once: the budget divided, capped by the idle CPUs
    (the most of ``IDLE_READINGS`` readings: a task runnable for an instant does not count)."""
    budget = budget or cpu_budget()
    share = budget // max(1, parallel)
    idle = idle_cpus(budget)
    for _ in range(IDLE_READINGS - 1):
        if idle >= share:
            break
        time.sleep(IDLE_READING_INTERVAL)
        idle = max(idle, idle_cpus(budget))
    return max(1, min(share, idle))


def train_threads() -> int:
    """``MODELOPS_TRAIN_THREADS`` if set, else the fair share of one training.

    Raises:
        ConfigError: the variable is not a positive whole number.
    """
    configured = os.environ.get(TRAIN_THREADS_ENV)
    if configured is None or configured == "":
        return fair_share(1)
    if not configured.isdigit() or int(configured) < 1:
        raise ConfigError(f"{TRAIN_THREADS_ENV}={configured!r} is not a positive whole number. Fix: set it to the "
                          f"number of threads training may use, or unset it for a fair share of this machine.")
    return int(configured)


def serve_threads() -> int:
    """The most threads an endpoint gives one prediction: ``MODELOPS_SERVE_THREADS``, else the budget (<= 4)."""
    configured = os.environ.get(SERVE_THREADS_ENV, "")
    if configured.isdigit() and int(configured) >= 1:
        return int(configured)
    return min(SERVE_MAX_THREADS, cpu_budget())


#: How long one reading of the idle CPUs serves large batches (a read of /proc/loadavg took 30-40 us here, loaded).
IDLE_READING_SECONDS = 0.05
_idle_reading = [0.0, 1]  # [read at (monotonic), idle CPUs]


def threads_for_batch(rows: int, cap: int) -> int:
    """Threads for predicting ``rows`` rows now: one below PARALLEL_MIN_ROWS, else the idle CPUs up to ``cap``."""
    if rows < PARALLEL_MIN_ROWS or cap <= 1:
        return 1
    now = time.monotonic()
    if now - _idle_reading[0] > IDLE_READING_SECONDS:
        _idle_reading[:] = [now, idle_cpus()]
    return min(cap, _idle_reading[1])


def predict(booster, features, cap: int):
    """``booster.inplace_predict(features)`` with the threads that fit this batch and this machine now.

    The booster rests at one thread; a large batch raises it for its own call only. Not for concurrent
    use of one booster from several threads (the endpoint predicts on its event loop, one call at a time).
    """
    threads = threads_for_batch(features.shape[0], cap)
    if threads == 1:
        return booster.inplace_predict(features)
    booster.set_param({"nthread": threads})
    try:
        return booster.inplace_predict(features)
    finally:
        booster.set_param({"nthread": 1})


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
