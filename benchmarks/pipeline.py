"""Pipeline wall time: ``python -m ci pipeline`` cold and rerun-unchanged, against plain Python and bare papermill.

    python -m benchmarks.pipeline [--repeats 3] [--quick]

Ours: the whole local pipeline for both models (gather, train_register, review, approve, deploy to staging, the
promotion gate, promote to production, smoke request: 6 notebooks per model) in a fresh home (cold, ``--force``),
then the same command again with nothing changed (rerun).
Baselines, measured in the same run, interleaved with ours:
  (a) the same work as plain Python functions in one process (no notebooks), the models in parallel threads;
  (b) the floor of bare papermill: as many trivial notebooks as the pipeline runs, in the same parallel
      layout, that only import the libraries the model notebooks use.
Targets: cold <= 1.25 * (b); rerun <= 3 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks._common import PYTHON, Report, environment, interleaved, make_project, median, stop_endpoints, timed
from ci.kernels import PRESTART_ENV

MODELS = ("abalone_model", "churn_model")
NOTEBOOKS_PER_MODEL = 6  # gather_data, train_register, review, deploy-staging, gate, deploy-production
NOTEBOOKS_BEFORE_DEPLOY = 3

#: What the model notebooks import between them; the floor notebook imports exactly this and does nothing else.
FLOOR_IMPORTS = ("import numpy, pandas, xgboost, scrapbook, matplotlib.figure\n"
                 "import modelops\nfrom modelops import plots")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="one model, no deploy, one round (a smoke run, not a figure)")
    parser.add_argument("--no-deploy", action="store_true", help="stop after approval, as `ci pipeline --no-deploy`")
    parser.add_argument("--until", choices=("gather", "approve", "deploy"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--plain", nargs="+", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--floor", nargs=2, type=int, metavar=("NOTEBOOKS", "PARALLEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain:
        return plain_python(args.plain, until=args.until or ("approve" if args.no_deploy else "deploy"))
    if args.floor:
        return papermill_floor(*args.floor)
    models = MODELS[:1] if args.quick else MODELS
    repeats = 1 if args.quick else args.repeats
    deploy = not (args.no_deploy or args.quick)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        report = measure(Path(tmp), models, repeats, deploy=deploy)
    report.print()
    return 0


def measure(tmp: Path, models: tuple[str, ...], repeats: int, *, deploy: bool = True) -> Report:
    project = make_project(tmp / "project", models)
    notebooks = (NOTEBOOKS_PER_MODEL if deploy else NOTEBOOKS_BEFORE_DEPLOY) * len(models)
    stages = [] if deploy else ["--no-deploy"]
    counter = iter(range(10_000))
    rerun_samples: list[float] = []
    executed: dict[str, list[int]] = {"cold": [], "rerun": []}
    breakdown: list[dict[str, float]] = []

    def cold(prestart: bool = True) -> float:
        run = tmp / f"run-{next(counter)}"
        env = environment(MODELOPS_HOME=str(run / "home"), **({} if prestart else {PRESTART_ENV: "0"}))
        command = pipeline_command(run / "artifacts", *stages)
        try:
            seconds, _ = timed([*command, "--force"], cwd=project, env=env)
            if prestart:
                executed["cold"].append(_executed(run / "artifacts"))
                breakdown.append(_durations(run / "artifacts"))
                rerun, _ = timed(command, cwd=project, env=env)
                rerun_samples.append(rerun)
                executed["rerun"].append(_executed(run / "artifacts"))  # the log keeps each notebook's latest run
        finally:
            stop_endpoints(run / "home")
            shutil.rmtree(run, ignore_errors=True)
        return seconds

    def plain() -> float:
        run = tmp / f"run-{next(counter)}"
        env = environment(MODELOPS_HOME=str(run / "home"))
        try:
            seconds, _ = timed(plain_command(models, *stages), cwd=project, env=env)
        finally:
            stop_endpoints(run / "home")
            shutil.rmtree(run, ignore_errors=True)
        return seconds

    def floor() -> float:
        return timed([PYTHON, "-m", "benchmarks.pipeline", "--floor", str(notebooks), str(len(models))],
                     cwd=tmp, env=environment())[0]

    print(f"pipeline benchmark: {', '.join(models)}; {repeats} round(s), each: cold + rerun, cold with no kernel "
          f"started ahead, plain Python, papermill floor", flush=True)
    samples = interleaved({"ci pipeline cold (+ rerun)": cold, "cold, no kernel started ahead": lambda: cold(False),
                           "(a) plain Python": plain, "(b) papermill floor": floor}, repeats,
                          log=lambda line: print(line, flush=True))
    cold_s = median(samples["ci pipeline cold (+ rerun)"])
    serial_s = median(samples["cold, no kernel started ahead"])
    rerun_s = median(rerun_samples)
    plain_s, floor_s = median(samples["(a) plain Python"]), median(samples["(b) papermill floor"])
    what = ("both models" if len(models) == 2 else ", ".join(models)) + ("" if deploy else ", no deploy")
    n = f"median of {repeats}"
    report = Report(f"pipeline: {what}, {notebooks} notebooks")
    print("\nwhere the cold run's time goes (median seconds inside papermill per notebook, both models summed):")
    for name in ("gather_data", "train_register", "review", "deploy", "gate")[:notebooks // len(models)]:
        print(f"  {name:<15} {median([b.get(name, 0.0) for b in breakdown]):6.2f} s")
    print(f"  notebooks executed: cold {executed['cold']}, rerun {executed['rerun']} (rerun should be 0)")
    report.ours(f"ci pipeline cold, {what} ({n})", cold_s, "s")
    report.ours(f"ci pipeline cold, no kernel started ahead ({PRESTART_ENV}=0) ({n})", serial_s, "s")
    report.ours(f"ci pipeline rerun, nothing changed ({n})", rerun_s, "s")
    report.baseline(f"(a) plain Python functions, one process ({n})", plain_s, "s")
    report.baseline(f"(b) papermill floor, {notebooks} trivial notebooks ({n})", floor_s, "s")
    budget = 1.5 * floor_s + plain_s
    report.ratio("cold / (b) papermill floor", cold_s / floor_s, "<= 1.25", cold_s <= 1.25 * floor_s)
    report.ratio("cold / cold with no kernel started ahead", cold_s / serial_s, "< 1", cold_s < serial_s)
    report.ratio("cold / (1.5 * (b) + (a))", cold_s / budget, "<= 1", cold_s <= budget)
    report.ratio("rerun / 3 s", rerun_s / 3, "<= 1", rerun_s <= 3)
    report.ratio("cold / (a) plain Python", cold_s / plain_s)
    return report


def pipeline_command(artifacts: Path, *options: str) -> list[str]:
    """The pipeline as a user runs it (cold with --force; a rerun without)."""
    return [PYTHON, "-m", "ci", "pipeline", "--backend", "local", "--approve", "--artifacts", str(artifacts), *options]


def plain_command(models, *options: str) -> list[str]:
    """Baseline (a) as a command: the same work as plain Python in one process (options: --no-deploy,
    --until gather)."""
    return [PYTHON, "-m", "benchmarks.pipeline", "--plain", *models, *options]


def _runs(artifacts: Path) -> list[dict]:
    return json.loads((artifacts / "runs.json").read_text())["runs"]


def _executed(artifacts: Path) -> int:
    return sum(1 for run in _runs(artifacts) if run["status"] == "passed")


def _durations(artifacts: Path) -> dict[str, float]:
    totals: dict[str, float] = {}
    for run in _runs(artifacts):
        totals[run["notebook"]] = totals.get(run["notebook"], 0.0) + run["duration"]
    return totals


# -- baseline (a): the same work as plain Python, no notebooks -----------------------------------------------


def plain_python(models: list[str], *, until: str = "deploy") -> int:
    """Gather, train, evaluate, register, review, approve, deploy, gate, promote and smoke-test each model in this
    process."""
    with ThreadPoolExecutor(len(models)) as pool:
        for line in pool.map(lambda model: _plain_model(model, until), models):
            print(line)
    return 0


def _plain_model(folder: str, until: str) -> str:
    import modelops
    from ci.pipeline import smoke_invoke
    from modelops import plots

    quiet = lambda *args, **kwargs: None  # noqa: E731
    config = modelops.load_model_config(folder)
    ops = modelops.get_backend("local")
    # gather_data
    raw = modelops.fetch_data(config, None)
    frame = modelops.prepare_frame(modelops.read_raw(raw.path, config.data), config)
    frame.describe()
    splits = modelops.split_frame(frame, config.split, seed=None)
    dataset = modelops.write_dataset(ops.store, config, raw, splits, seed=None, output=None)
    figures = [plots.target_distribution(splits, config.problem_type, config.data.target),
               plots.target_correlation(frame)]
    if until == "gather":
        _render(figures)
        return f"{folder}: dataset {dataset.dataset_id}"
    # train_register
    data = modelops.load_dataset(ops.store, config, dataset.manifest_uri)  # as the runner passes it
    training = modelops.train_model(ops, config, data, log=quiet)
    figures.append(plots.validation_curve(training))
    evaluation = modelops.evaluate_model(ops, config, data, training)
    figures += plots.evaluation_figures(evaluation).values()
    gates = modelops.check_quality(config, evaluation.metrics)
    package = modelops.register_model(ops, config, data, training, evaluation, gates)
    # review (the review notebook's call: both artifacts on the test rows, the paired bootstrap), approve
    verdict = modelops.review_model(ops, config, version=package.version)
    figures.append(plots.review_metrics(verdict))
    ops.registry.approve(config.name, package.version, by="bench", note=verdict.line)
    if until == "approve":
        _render(figures)
        return f"{folder}: v{package.version} {verdict.verdict}"
    # deploy to staging, the promotion gate, deploy to production: what the three notebooks call
    approved = modelops.select_package(ops.registry, config)
    checks = []
    for env_name in ("staging", "production"):
        modelops.deploy_package(ops, config, approved, env_name=env_name, log=quiet)
        checks.append(modelops.verify_endpoint(ops, config, approved, env_name))
        latency = modelops.measure_latency(ops, config, approved, env_name=env_name)
        figures.append(plots.latency(latency))
        if env_name == "staging":
            gate = modelops.run_gate(ops, config, log=quiet)
            figures.append(plots.gate_latency(gate))
            modelops.check_gate(gate)
    _render(figures)
    prediction = smoke_invoke(ops, config, "production")
    if not all(check.identical for check in checks):
        raise SystemExit(f"{folder}: endpoint answers differ from in-process predictions")
    return f"{folder}: v{package.version} {verdict.verdict}, smoke prediction {prediction}"


def _render(figures) -> None:
    """The notebooks render every figure to PNG; so does the baseline."""
    for figure in figures:
        figure.savefig(_Sink(), format="png", dpi=100)


class _Sink:
    def write(self, data):
        return len(data)


# -- baseline (b): bare papermill, trivial notebooks ---------------------------------------------------------


def papermill_floor(notebooks: int, parallel: int) -> int:
    """Execute ``notebooks`` trivial notebooks with papermill, ``parallel`` sequences at once, as the pipeline does."""
    import nbformat
    import papermill

    from ci.runner import KERNEL_NAME

    folder = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": KERNEL_NAME, "language": "python"}
    parameters = nbformat.v4.new_code_cell('backend = "local"')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(FLOOR_IMPORTS)]
    source = folder / "floor.ipynb"
    nbformat.write(notebook, source)

    def sequence(index: int) -> None:
        for step in range(index, notebooks, parallel):
            papermill.execute_notebook(str(source), str(folder / f"out-{step}.ipynb"), kernel_name=KERNEL_NAME,
                                       parameters={"backend": "local"}, progress_bar=False, log_output=False)

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(sequence, range(parallel)))
    print(f"{notebooks} trivial notebooks in {time.perf_counter() - started:.2f} s")
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
