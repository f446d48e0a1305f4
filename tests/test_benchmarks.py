"""Each benchmark runs on a tiny size and reports ours, its baselines and the ratios: no timing is asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.paths import ROOT, SHARED_DATA

pytestmark = pytest.mark.slow  # each benchmark runs in a subprocess

RESULT = re.compile(r"^(ours|baseline|ratio): (.+?) = (skipped \(.+\)|nan|-?[0-9][0-9.,]*(?:e[-+]?\d+)?)(?: (.*))?$")


def run_benchmark(name: str, *args: str) -> list[tuple[str, str, float | None]]:
    """Run ``python -m benchmarks.<name> --quick``; its result lines as (side, label, number or None if skipped)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MODELOPS_DATA_DIR": str(SHARED_DATA)}
    env.pop("MODELOPS_HOME", None)
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--quick", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    head, title, tail = done.stdout.rpartition(f"\n== {name}")
    assert title, f"no report titled '== {name}' in:\n{done.stdout[-2000:]}"
    lines = tail.splitlines()[1:]
    assert lines[0].startswith("machine: ") and "cores" in lines[0] and "Python" in lines[0]
    results = []
    for line in lines[1:]:
        match = RESULT.match(line)
        assert match, f"not a result line: {line!r}"
        side, label, value = match.group(1), match.group(2), match.group(3)
        number = None if value.startswith("skipped") else float(value.replace(",", ""))
        results.append((side, label, number))
    sides = [side for side, _, _ in results]
    assert "ratio" in sides and sides.index("ratio") > max(i for i, s in enumerate(sides) if s != "ratio"), \
        "the ratios must come last"
    assert "ours" in sides, "no figure (or skip notice) for ours"
    for side in ("baseline", "ratio"):  # ours may be skipped, saying why; each test says when it may
        assert [n for s, _, n in results if s == side and n is not None], (side, results)
    assert all(n == n and n >= 0 for _, _, n in results if n is not None), results
    return results


def figures(results, side: str, contains: str) -> list[float]:
    return [n for s, label, n in results if s == side and contains in label and n is not None]


@pytest.mark.notebook
def test_pipeline_benchmark_measures_the_pipeline_and_both_baselines():
    results = run_benchmark("pipeline")
    assert figures(results, "ours", "cold") and figures(results, "ours", "rerun")
    assert figures(results, "baseline", "(a) plain Python") and figures(results, "baseline", "(b) papermill floor")
    assert figures(results, "ratio", "cold / (1.5 * (b) + (a))")


def test_changes_benchmark_measures_ci_changed_against_the_orb_approach():
    results = run_benchmark("changes")
    assert len(figures(results, "baseline", "orb approach")) == 2
    # This checkout has `ci changed`: ours is measured, never reported as skipped.
    assert [n for s, _, n in results if s == "ours" and n is None] == [], results
    assert figures(results, "ours", "python -m ci changed --base main --json")
    assert figures(results, "ours", "ci.changes.project_changes in-process")
    assert figures(results, "ratio", "ours / orb approach (subprocess)")
    assert figures(results, "ratio", "ours / orb approach (in-process)")


def test_changes_baseline_reads_the_mapping_ci_generates():
    from benchmarks.orb import SHARED_PATHS
    from ci.orb.mapping import SHARED_PATHS as GENERATED

    assert SHARED_PATHS == GENERATED  # both sides decide over the same mapping lines


def test_serving_benchmark_measures_ours_and_the_reference_servers():
    results = run_benchmark("serving")
    for side, name in (("ours", "ours"), ("baseline", "stdlib"), ("baseline", "starlette")):
        assert figures(results, side, f"{name} single-row p50"), name
        assert len(figures(results, side, f"{name} rows/s")) == 4, name  # 1, 100, 1,000 and 10,000 rows
        assert figures(results, side, f"{name} server RSS"), name
    assert figures(results, "baseline", "in-process inplace_predict")
    assert figures(results, "ratio", "stdlib / ours") and figures(results, "ratio", "in-process / ours")
    assert figures(results, "ours", "ours-router single-row p50") and figures(results, "ratio", "ours-router / ours")
    assert figures(results, "ours", "ours-router boto3 invoke_endpoint single-row p50")
    for side, name in (("ours", "ours"), ("ours", "ours-router"), ("baseline", "stdlib-1"), ("baseline", "stdlib")):
        assert figures(results, side, f"{name} busy single-row p99"), name  # the busy phase, 2 processes
    assert figures(results, "baseline", "busy phase: load average")
    assert figures(results, "ratio", "ours busy single-row p99 / 10 ms")


@pytest.mark.slow
def test_capture_benchmark_measures_an_endpoint_with_capture_on_and_off():
    results = run_benchmark("capture")
    for side, name in (("ours", "capture on"), ("baseline", "capture off")):
        for measure in ("single-row p50", "single-row p99", "server CPU per single-row request", "rows/s"):
            assert figures(results, side, f"{name} {measure}"), (name, measure)
    assert figures(results, "ours", "records written")[0] > 0
    assert figures(results, "ours", "records dropped") == [0]
    assert figures(results, "ratio", "p99, capture on / off") and figures(results, "ratio", "CPU per request")


@pytest.mark.notebook
def test_memory_benchmark_measures_the_cli_kernels_and_endpoint():
    results = run_benchmark("memory")
    assert figures(results, "ours", "CLI process peak") and figures(results, "ours", "largest kernel peak")
    assert figures(results, "ours", "server RSS") and figures(results, "baseline", "plain Python")
    assert figures(results, "baseline", "floor") and figures(results, "ratio", "endpoint servers")


def test_bootstrap_benchmark_measures_ours_against_a_loop_over_resamples():
    results = run_benchmark("bootstrap")
    for problem in ("regression", "binary"):
        assert figures(results, "ours", f"{problem},") and figures(results, "baseline", f"{problem} loop")
        assert figures(results, "ratio", f"{problem} loop / ours")


@pytest.mark.slow
def test_gate_benchmark_measures_the_gate_the_deploy_check_and_a_plain_script():
    results = run_benchmark("gate")
    assert figures(results, "ours", "run_gate, 2,000 held-out rows") and figures(results, "ours", "verify_endpoint")
    assert figures(results, "baseline", "plain boto3 script") and figures(results, "baseline", "one request per row")
    assert figures(results, "ratio", "gate / 60 s") and figures(results, "ratio", "gate / plain script")


def test_transform_benchmark_measures_ours_against_a_plain_script_and_memory_at_two_sizes():
    results = run_benchmark("transform")
    assert figures(results, "ours", "local transform, seconds") and figures(results, "baseline", "pyarrow read")
    assert len(figures(results, "ours", "peak RSS")) == 2 and figures(results, "baseline", "peak RSS")
    assert figures(results, "ratio", "ours / plain, seconds") and figures(results, "ratio", "ours' peak RSS at")


@pytest.mark.notebook
def test_scale_benchmark_measures_every_stage_ours_and_plain_seconds_and_memory():
    results = run_benchmark("scale")
    for stage in ("new-model", "gather_data", "train_register", "review", "deploy staging", "gate", "promote",
                  "transform", "monitor"):
        for side in ("ours", "baseline"):
            assert figures(results, side, f"{stage} at binary at 3,000, seconds"), (side, stage)
        assert figures(results, "baseline", f"{stage} at binary at 3,000, peak RSS"), stage
        assert figures(results, "ratio", f"{stage} at 3000 binary, ours / (plain + 3 s notebook floor)"), stage
        # review and gate run in one command with train_register and deploy: that command's peak is theirs.
        own_peak = stage not in ("review", "gate")
        assert bool(figures(results, "ours", f"{stage} at binary at 3,000, peak RSS")) == own_peak, stage
        assert bool(figures(results, "ratio", f"{stage} at 3000 binary, ours / plain peak RSS")) == own_peak, stage
