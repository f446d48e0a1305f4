"""Memory: peak RSS of the pipeline and of the serving processes, against plain Python and a bare process.

    python -m benchmarks.memory [--quick]

Ours: ``python -m ci pipeline --backend local --approve --force`` for both models in a fresh home, sampled
every 20 ms: the CLI process's own peak (VmHWM), the largest kernel's peak, and the peak of the whole process
tree (CLI + kernels + endpoint servers) at any instant. Then the endpoint servers it leaves running (one
process per model, after the deploy notebook's requests): their RSS and peak.
Baselines, measured in the same run: (a) the same work as plain Python in one process
(``benchmarks.pipeline --plain``), sampled the same way; for serving, the floor: one bare process that
imports numpy and xgboost and loads both boosters (what any server of these models must hold).
``--quick``: one model, ``ci run --stage gather`` against the plain gather, and an endpoint trained and
deployed from the bench process (a smoke run, not a figure).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks._common import PYTHON, Report, environment, make_project, stop_endpoints
from benchmarks.pipeline import MODELS, pipeline_command, plain_command

MB = 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one model, the gather stage only, the endpoint trained here (a smoke run)")
    parser.add_argument("--floor", nargs="+", metavar="ARTIFACT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor:
        return serving_floor(args.floor)
    models = MODELS[:1] if args.quick else MODELS
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        report = measure(Path(tmp), models, quick=args.quick)
    report.print()
    return 0


def measure(tmp: Path, models: tuple[str, ...], *, quick: bool) -> Report:
    project = make_project(tmp / "project", models)
    home, plain_home = tmp / "home", tmp / "plain-home"
    if quick:
        what = f"{models[0]}, gather stage"
        ours_command = [PYTHON, "-m", "ci", "run", models[0], "--stage", "gather", "--artifacts", str(tmp / "art")]
        plain = plain_command(models, "--until", "gather")
    else:
        what = "both models"
        ours_command = pipeline_command(tmp / "artifacts", "--force")
        plain = plain_command(models)
    report = Report(f"memory: {what}")
    try:
        print(f"memory benchmark: {' '.join(ours_command[1:4])} ({what})", flush=True)
        ours = sampled(ours_command, cwd=project, env=environment(MODELOPS_HOME=str(home)))
        if quick:
            deploy_here(home, project / models[0])
        endpoints = endpoint_processes(home, project, models)
        floor = sampled([PYTHON, "-m", "benchmarks.memory", "--floor", *[e["artifact"] for e in endpoints]],
                        cwd=tmp, env=environment())
    finally:
        stop_endpoints(home)
    try:
        print("memory benchmark: (a) plain Python", flush=True)
        plain = sampled(plain, cwd=project, env=environment(MODELOPS_HOME=str(plain_home)))
    finally:
        stop_endpoints(plain_home)

    command = "ci run --stage gather" if quick else "ci pipeline"
    report.ours(f"{command}, CLI process peak ({what})", ours["root"], "MB")
    report.ours(f"{command}, largest kernel peak", ours["largest child"], "MB")
    report.ours(f"{command}, whole process tree peak (CLI + kernels + endpoints)", ours["tree"], "MB")
    for endpoint in endpoints:
        report.ours(f"endpoint {endpoint['name']} server RSS", endpoint["rss"], "MB")
        report.ours(f"endpoint {endpoint['name']} server peak RSS", endpoint["hwm"], "MB")
    total = sum(e["rss"] for e in endpoints)
    report.ours(f"endpoint servers for {len(endpoints)} model(s), RSS summed", total, "MB")
    report.baseline("(a) plain Python, the process's peak", plain["root"], "MB")
    report.baseline("(a) plain Python, whole process tree peak (process + endpoints)", plain["tree"], "MB")
    report.baseline(f"floor: one bare process with numpy, xgboost and the {len(endpoints)} booster(s) loaded",
                    floor["root"], "MB")
    report.ratio(f"{command} tree peak / (a) plain Python tree peak", ours["tree"] / plain["tree"])
    report.ratio(f"{command} CLI process peak / (a) plain Python process peak", ours["root"] / plain["root"])
    report.ratio(f"endpoint servers (RSS summed) / floor process ({len(endpoints)} model(s))", total / floor["root"])
    return report


def sampled(command: list[str], *, cwd: Path, env: dict, every: float = 0.02) -> dict[str, float]:
    """Run a command, sampling its process tree; peaks in MB: its own, its largest descendant's, the tree's."""
    import psutil

    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    root = psutil.Process(process.pid)
    peaks = {"root": 0.0, "largest child": 0.0, "tree": 0.0}
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read()), daemon=True)
    reader.start()
    while process.poll() is None:
        try:
            children = root.children(recursive=True)
            peaks["root"] = max(peaks["root"], _hwm(root.pid))
            tree = root.memory_info().rss
        except psutil.NoSuchProcess:
            break
        for child in children:
            try:
                tree += child.memory_info().rss
                peaks["largest child"] = max(peaks["largest child"], _hwm(child.pid))
            except psutil.NoSuchProcess:
                pass
        peaks["tree"] = max(peaks["tree"], tree / MB)
        time.sleep(every)
    process.wait()
    reader.join(timeout=10)
    if process.returncode:
        text = b"".join(output).decode(errors="replace")
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{text[-3000:]}")
    return peaks


def deploy_here(home: Path, folder: Path) -> None:
    """After the gather stage only: train, register, approve and deploy in this process (the quick mode)."""
    import modelops
    from modelops.backends.local import LocalBackend

    quiet = lambda *a, **k: None  # noqa: E731
    ops = LocalBackend(home)
    config = modelops.load_model_config(folder)
    dataset = modelops.load_dataset(ops.store, config)
    training = modelops.train_model(ops, config, dataset, log=quiet)
    evaluation = modelops.evaluate_model(ops, config, dataset, training)
    package = modelops.register_model(ops, config, dataset, training, evaluation,
                                      modelops.check_quality(config, evaluation.metrics))
    ops.registry.approve(config.name, package.version, by="bench")
    modelops.deploy_package(ops, config, ops.registry.get(config.name, package.version), log=quiet)


def endpoint_processes(home: Path, project: Path, models: tuple[str, ...]) -> list[dict]:
    """The endpoint servers left running under ``home``, after a smoke request each: RSS and peak, in MB."""
    import modelops
    from ci.pipeline import smoke_invoke
    from modelops.backends.local import LocalBackend
    from modelops.release.deploy import select_package

    ops = LocalBackend(home)
    found = []
    for model in models:
        config = modelops.load_model_config(project / model)
        package = select_package(ops.registry, config, latest_approved=True)
        smoke_invoke(ops, config, "staging")  # both modes deploy to staging (the full pipeline promotes too)
        pid = ops.endpoints.status(config.deploy_environment("staging").endpoint).detail["pid"]
        found.append({"name": config.name, "rss": _rss(pid), "hwm": _hwm(pid),
                      "artifact": package.artifact_uri.removeprefix("file://")})
    return found


def serving_floor(artifacts: list[str]) -> int:
    """Hold the boosters, nothing else (xgboost without scikit-learn, as our server runs it)."""
    import numpy as np

    from modelops.serving.__main__ import hide_scikit_learn

    hide_scikit_learn()
    from modelops.training.train import unpack_model

    boosters = [unpack_model(Path(a).read_bytes(), source=a) for a in artifacts]
    for booster in boosters:
        booster.inplace_predict(np.zeros((1, booster.num_features())))
    time.sleep(0.3)  # let the sampler see this process at its peak
    print(json.dumps({"boosters": len(boosters)}))
    return 0


def _hwm(pid: int) -> float:
    return _status_field(pid, "VmHWM")


def _rss(pid: int) -> float:
    return _status_field(pid, "VmRSS")


def _status_field(pid: int, name: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
