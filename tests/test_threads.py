"""Threads that fit the machine: the CPU budget (affinity, cgroup quota), idle CPUs, training's fair share, serving."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from modelops.errors import ConfigError
from modelops.training import threads


def cgroups(tmp_path, membership: str, files: dict[str, str]):
    """A fake /proc/self/cgroup and /sys/fs/cgroup holding ``files`` (paths relative to the cgroup root)."""
    proc = tmp_path / "proc-cgroup"
    proc.write_text(membership)
    root = tmp_path / "cgroup"
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root, proc


@pytest.mark.parametrize(("membership", "files", "quota"), [
    # cgroup v2: cpu.max of the process's own group, or of the root in a container's namespace
    ("0::/user.slice/job\n", {"user.slice/job/cpu.max": "150000 100000\n"}, 1.5),
    ("0::/\n", {"cpu.max": "max 100000\n"}, None),
    ("0::/\n", {"cpu.max": "50000 100000\n"}, 0.5),
    # cgroup v1: the cpu controller's hierarchy (also mounted as cpu,cpuacct)
    ("4:memory:/x\n1:cpu:/docker/abc\n", {"cpu/docker/abc/cpu.cfs_quota_us": "200000\n",
                                           "cpu/docker/abc/cpu.cfs_period_us": "100000\n"}, 2.0),
    ("3:cpu,cpuacct:/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000"}, None),
    ("1:cpu:/\n0::/\n", {}, None),  # no files: nothing known, nothing limited
])
def test_the_cgroup_quota_is_read_from_v1_and_v2(tmp_path, membership, files, quota):
    root, proc = cgroups(tmp_path, membership, files)
    assert threads.cgroup_cpu_quota(root, proc) == quota


def test_the_budget_is_the_affinity_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: None)
    assert threads.cpu_budget() == 4
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: 2.5)
    assert threads.cpu_budget() == 2  # a second and a half CPU: the half would only throttle a third thread
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: 0.5)
    assert threads.cpu_budget() == 1


def test_this_machine_budget_is_real():
    assert 1 <= threads.cpu_budget() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("running", "idle"), [(1, 2), (2, 1), (3, 1), (9, 1)])
def test_idle_cpus_count_the_other_runnable_tasks(tmp_path, running, idle):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text(f"0.50 0.40 0.30 {running}/312 4242\n")
    assert threads.idle_cpus(2, str(loadavg)) == idle  # this process itself is one of the running tasks
    assert threads.idle_cpus(2, str(tmp_path / "missing")) == 2


def test_fair_share_divides_the_budget_and_never_exceeds_the_idle_cpus(monkeypatch):
    monkeypatch.setattr(threads, "idle_cpus", lambda budget=None: budget)
    assert [threads.fair_share(n, budget=8) for n in (1, 2, 3, 8, 20)] == [8, 4, 2, 1, 1]
    monkeypatch.setattr(threads, "IDLE_READING_INTERVAL", 0)
    monkeypatch.setattr(threads, "idle_cpus", lambda budget=None: 1)  # the machine is busy right now
    assert threads.fair_share(1, budget=8) == 1


def test_a_task_runnable_for_an_instant_does_not_take_a_trainings_threads(monkeypatch):
    readings = iter([1, 1, 2, 1, 1, 1])  # another task ran during the first two readings only
    monkeypatch.setattr(threads, "IDLE_READING_INTERVAL", 0)
    monkeypatch.setattr(threads, "idle_cpus", lambda budget=None: next(readings))
    assert threads.fair_share(1, budget=2) == 2
    assert next(readings) == 1  # it stopped reading once it saw the share idle
    busy = iter([1] * threads.IDLE_READINGS)
    monkeypatch.setattr(threads, "idle_cpus", lambda budget=None: next(busy))
    assert threads.fair_share(1, budget=2) == 1  # busy throughout: one thread


def test_training_threads_come_from_the_variable_or_the_fair_share(monkeypatch):
    monkeypatch.setattr(threads, "fair_share", lambda parallel=1: 3)
    monkeypatch.delenv(threads.TRAIN_THREADS_ENV, raising=False)
    assert threads.train_threads() == 3
    monkeypatch.setenv(threads.TRAIN_THREADS_ENV, "5")
    assert threads.train_threads() == 5
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv(threads.TRAIN_THREADS_ENV, bad)
        with pytest.raises(ConfigError, match=rf"MODELOPS_TRAIN_THREADS='{bad}' is not a positive whole number.*Fix"):
            threads.train_threads()


def test_serving_uses_one_thread_below_the_threshold_and_idle_cpus_above(monkeypatch):
    monkeypatch.setattr(threads, "IDLE_READING_SECONDS", -1)  # read the machine at every call here
    monkeypatch.setattr(threads, "idle_cpus", lambda budget=None: 2)
    assert threads.threads_for_batch(1, 4) == 1
    assert threads.threads_for_batch(threads.PARALLEL_MIN_ROWS - 1, 4) == 1
    assert threads.threads_for_batch(threads.PARALLEL_MIN_ROWS, 4) == 2
    assert threads.threads_for_batch(10 * threads.PARALLEL_MIN_ROWS, 1) == 1  # the cap
    monkeypatch.setattr(threads, "idle_cpus", lambda budget=None: 1)  # two busy processes on 2 cores
    assert threads.threads_for_batch(10 * threads.PARALLEL_MIN_ROWS, 4) == 1
    monkeypatch.setenv(threads.SERVE_THREADS_ENV, "3")
    assert threads.serve_threads() == 3
    monkeypatch.setenv(threads.SERVE_THREADS_ENV, "")
    assert 1 <= threads.serve_threads() <= threads.SERVE_MAX_THREADS


def test_predict_raises_threads_for_one_large_batch_only(monkeypatch):
    import xgboost

    rng = np.random.default_rng(0)
    X = rng.random((64, 3))
    booster = xgboost.train({"nthread": 1, "max_depth": 2}, xgboost.DMatrix(X, label=X[:, 0]), num_boost_round=2)
    seen = []
    monkeypatch.setattr(threads, "IDLE_READING_SECONDS", -1)
    original = booster.set_param
    monkeypatch.setattr(booster, "set_param", lambda params: (seen.append(params["nthread"]), original(params)))
    monkeypatch.setattr(threads, "idle_cpus", lambda budget=None: 2)
    small = threads.predict(booster, X[:5], cap=2)
    assert seen == [] and np.array_equal(small, booster.inplace_predict(X[:5]))
    large = np.resize(X, (threads.PARALLEL_MIN_ROWS, 3))
    assert np.array_equal(threads.predict(booster, large, cap=2), booster.inplace_predict(large))
    assert seen == [2, 1]  # raised for the call, back to one after it
    nthread = json.loads(booster.save_config())["learner"]["generic_param"]["nthread"]
    assert nthread == "1"


def test_the_pipeline_gives_parallel_trainings_a_fair_share_unless_told(monkeypatch):
    from ci.pipeline import _training_threads

    monkeypatch.delenv(threads.TRAIN_THREADS_ENV, raising=False)
    with _training_threads(1):
        assert os.environ[threads.TRAIN_THREADS_ENV] == "1"  # what the kernels started now inherit
    assert threads.TRAIN_THREADS_ENV not in os.environ
    monkeypatch.setenv(threads.TRAIN_THREADS_ENV, "4")
    with _training_threads(1):
        assert os.environ[threads.TRAIN_THREADS_ENV] == "4"
