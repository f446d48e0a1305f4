"""What the benchmarks share: the machine line, interleaved repeats, a throwaway project, the report format.

Every script ends with result lines in one format, ``ours:``/``baseline:`` figures first and ``ratio:`` lines
last, so a person reads them and tests/test_benchmarks.py parses them::

    ours: cold pipeline, both models = 18.9 s
    baseline: (a) plain Python, one process = 4.1 s
    ratio: cold / (1.5 * (b) + (a)) = 0.71 (target <= 1: met)
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def machine() -> str:
    """Date, cores, CPU model and Python: the line every report starts with."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({model}), Python "
            f"{platform.python_version()}, load average {load:.2f}")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def interleaved(runs: dict, repeats: int, *, log=print) -> dict[str, list[float]]:
    """Call each ``name -> function() -> seconds`` in turn, ``repeats`` rounds: noise hits every side alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(1, repeats + 1):
        for name, run in runs.items():
            seconds = run()
            samples[name].append(seconds)
            log(f"  round {round_}/{repeats}: {name} {seconds:.3f} s")
    return samples


def timed(command: list[str], *, cwd: Path, env: dict, check: bool = True) -> tuple[float, str]:
    """Wall seconds of a subprocess (interpreter start included, as a user would wait for it), and its output."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                           f"{done.stderr[-3000:]}")
    return seconds, done.stdout + done.stderr


def environment(**extra: str) -> dict[str, str]:
    """This checkout first on the path (the kernel inherits it), plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # Absolute: the scripts run commands in a copy of the project in a temp folder, where a relative data folder
    # (README's ``../shared/data``) would name nothing and the data would be downloaded instead.
    data = env.get("MODELOPS_DATA_DIR") or str(ROOT.parent / "shared" / "data")
    env["MODELOPS_DATA_DIR"] = str(Path(data).expanduser().resolve())
    env.pop("MODELOPS_BACKEND", None)
    env.setdefault("MODELOPS_RUNTIME_PORT", "0")  # a throwaway home's router leaves the default port alone
    env.update(extra)
    return env


def make_project(path: Path, models: tuple[str, ...]) -> Path:
    """A committed copy of the project's model folders and shared notebooks (lineage needs a git tree)."""
    path.mkdir(parents=True)
    for model in models:
        shutil.copytree(ROOT / model, path / model, ignore=shutil.ignore_patterns(".ipynb_checkpoints",
                                                                                   "__pycache__"))
    shutil.copytree(ROOT / "notebooks", path / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(ROOT / ".gitignore", path / ".gitignore")
    git = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "benchmark project"]):
        subprocess.run([*git, *args], cwd=path, check=True, capture_output=True)
    return path


def stop_endpoints(home: Path) -> None:
    """Stop the endpoint servers a run left behind under ``home`` (the pipeline keeps them serving), and the router."""
    from modelops.backends.local.endpoints import STOPPED, LocalEndpoints

    endpoints = LocalEndpoints(home)
    for status in endpoints.list():
        if status.status != STOPPED and status.detail.get("pid"):
            endpoints.stop(status.name)
    endpoints.runtime.stop()


def figure(value: float) -> str:
    if value != value:
        return "nan"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


class Report:
    """Result lines: ours and the baselines as measured, then the ratios, printed last."""

    def __init__(self, title: str):
        self.title = title
        self.figures: list[str] = []
        self.ratios: list[str] = []

    def ours(self, label: str, value: float, unit: str) -> float:
        self.figures.append(f"ours: {label} = {figure(value)} {unit}")
        return value

    def baseline(self, label: str, value: float, unit: str) -> float:
        self.figures.append(f"baseline: {label} = {figure(value)} {unit}")
        return value

    def skipped(self, side: str, label: str, why: str) -> None:
        self.figures.append(f"{side}: {label} = skipped ({why})")

    def ratio(self, label: str, value: float, target: str = "", met: bool | None = None) -> float:
        note = f" (target {target}: {'met' if met else 'NOT met'})" if target else ""
        self.ratios.append(f"ratio: {label} = {figure(value)}{note}")
        return value

    def print(self, out=sys.stdout) -> None:
        print(f"\n== {self.title} ==", file=out)
        print(f"machine: {machine()}", file=out)
        for line in self.figures + self.ratios:
            print(line, file=out)
        out.flush()


def approved_package(ops, config):
    """Gather, train, evaluate, register and approve ``config``'s model in-process: (its dataset, the package)."""
    import modelops

    quiet = lambda *a, **k: None  # noqa: E731
    fetched = modelops.fetch_data(config)
    splits = modelops.split_frame(modelops.prepare_frame(modelops.read_raw(fetched.path, config.data), config),
                                  config.split)
    dataset = modelops.write_dataset(ops.store, config, fetched, splits)
    training = modelops.train_model(ops, config, dataset, log=quiet)
    evaluation = modelops.evaluate_model(ops, config, dataset, training)
    package = modelops.register_model(ops, config, dataset, training, evaluation,
                                      modelops.check_quality(config, evaluation.metrics))
    return dataset, ops.registry.approve(config.name, package.version, by="bench")

