"""The promotion gate and the deploy's answer check over 100,000 held-out rows, against a plain boto3 script.

    python -m benchmarks.gate [--rows 100000] [--columns 20] [--rounds 3] [--quick]

A seeded synthetic binary table (``--columns`` numeric columns, some cells missing) twice ``--rows`` long is
scaffolded as a model by ``new-model`` in a throwaway project, its split set to hold out half of it, gathered,
trained, registered, approved and deployed to staging on the local backend. Then, interleaved by round:

- ours: ``modelops.run_gate`` (the held-out split read, the artifact's offline predictions, every row through the
  staging endpoint in batches within its payload limit, several at once, every answer compared; then 1,000
  seeded single-row requests timed; the event appended), and ``modelops.verify_endpoint`` (the deploy's check);
- baseline: a plain script doing the same requests: the split read, the booster loaded from its model.tar.gz and
  predicted, the CSV body cut into batches under 6 MB by a row count from the mean row size, sent with
  boto3's ``invoke_endpoint`` in a thread pool of the endpoint's ``MaxConcurrentTransforms``, compared with
  ``numpy.array_equal``, then the same 1,000 single-row requests timed.

And once, what the gate did before batching: one request per held-out row, timed over ``--per-row`` rows and
extrapolated to ``--rows``.
Targets: ours <= 60 s at 100,000 held-out rows; ours within 1.2x of the plain script.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks._common import (
    Report,
    approved_package,
    environment,
    interleaved,
    make_project,
    median,
    stop_endpoints,
)

TARGET_SECONDS = 60.0
TARGET_RATIO = 1.2
SINGLE_ROW_REQUESTS = 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gate", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="held-out rows (the table is twice as long)")
    parser.add_argument("--columns", type=int, default=20, help="numeric feature columns")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-row", type=int, default=2000, help="rows timed one request each (the old gate)")
    parser.add_argument("--quick", action="store_true", help="2,000 held-out rows, one round (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.rounds, args.per_row = 2000, 1, 200
    os.environ.update(environment())
    report = Report(f"gate: {args.rows:,} held-out rows x {args.columns} columns; {args.rounds} round(s)")
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        home = Path(tmp) / "home"
        try:
            measure(Path(tmp), home, args, report)
        finally:
            stop_endpoints(home)
    report.print()
    return 0


def measure(root: Path, home: Path, args, report: Report) -> None:
    import modelops

    ops, config = staged_model(root, home, args.rows, args.columns)
    endpoint = config.deploy_environment("staging").endpoint
    package = ops.registry.get(config.name, 1)
    quiet = lambda *a, **k: None  # noqa: E731
    checked = {}

    def ours() -> float:
        started = time.perf_counter()
        checked["gate"] = modelops.run_gate(ops, config, by="bench", log=quiet)
        return time.perf_counter() - started

    def ours_check() -> float:
        started = time.perf_counter()
        checked["check"] = modelops.verify_endpoint(ops, config, package, "staging")
        return time.perf_counter() - started

    def baseline() -> float:
        started = time.perf_counter()
        checked["plain"] = plain_gate(ops, config, package, endpoint)
        return time.perf_counter() - started

    print(f"timing {args.rounds} round(s)", flush=True)
    samples = interleaved({"ours: gate": ours, "ours: deploy check": ours_check, "baseline: plain": baseline},
                          args.rounds)
    gate, check, plain = checked["gate"], checked["check"], checked["plain"]
    if not (gate.passed and check.identical and plain["identical"] == args.rows):
        raise SystemExit(f"a side got answers that differ: gate {gate.summary()}; plain {plain}")
    print(f"per-row: {args.per_row} rows, one request each", flush=True)
    per_row = one_request_per_row(ops, config, package, endpoint, args.per_row)

    gate_s, check_s, plain_s = (median(samples[k]) for k in ("ours: gate", "ours: deploy check", "baseline: plain"))
    report.ours(f"run_gate, {args.rows:,} held-out rows ({gate.sent}; {gate.latency_requests:,} single-row "
                f"requests)", gate_s, "s")
    report.ours(f"gate single-row p50 ({gate.latency_requests:,} requests)", gate.p50_ms, "ms")
    report.ours(f"gate single-row p99 ({gate.latency_requests:,} requests)", gate.p99_ms, "ms")
    report.ours(f"verify_endpoint (the deploy's check), {check.rows:,} rows in {check.batches} batches", check_s, "s")
    report.ours("held-out split as CSV", plain["body_bytes"] / 2 ** 20, "MiB")
    report.baseline(f"plain boto3 script, same requests ({plain['batches']} batches)", plain_s, "s")
    report.baseline(f"one request per row (the gate before), extrapolated from {args.per_row:,} rows",
                    per_row * args.rows, "s")
    report.ratio("gate / 60 s", gate_s / TARGET_SECONDS, f"<= 1 at {args.rows:,} rows", gate_s <= TARGET_SECONDS)
    report.ratio("gate / plain script", gate_s / plain_s, f"<= {TARGET_RATIO}", gate_s / plain_s <= TARGET_RATIO)
    report.ratio("one request per row / gate", per_row * args.rows / gate_s)


def staged_model(root: Path, home: Path, rows: int, columns: int):
    """A scaffolded model on a synthetic table with ``rows`` held out, trained, approved and serving on staging."""
    import yaml

    import modelops
    from ci.scaffold import new_model
    from modelops.backends.local import LocalBackend

    data = root / "data"
    data.mkdir()
    source = synthetic_table(data / "wide.csv", 2 * rows, columns)
    os.environ["MODELOPS_DATA_DIR"] = str(data)
    project = make_project(root / "project", ())
    print(f"new-model on {2 * rows:,} rows", flush=True)
    folder = new_model(project, "wide", problem="binary", source=str(source), target="label")
    raw = yaml.safe_load((folder / "model.yml").read_text())
    raw["split"].update(train=0.45, validation=0.05, test=0.5)
    (folder / "model.yml").write_text(yaml.safe_dump(raw, sort_keys=False))
    git = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", "-c", "commit.gpgsign=false"]
    import subprocess

    for args in (["add", "-A"], ["commit", "-q", "-m", "the model"]):
        subprocess.run([*git, *args], cwd=project, check=True, capture_output=True)

    quiet = lambda *a, **k: None  # noqa: E731
    ops = LocalBackend(home)
    config = modelops.load_model_config(folder)
    print("gather, train, register, deploy", flush=True)
    _, package = approved_package(ops, config)
    modelops.deploy_package(ops, config, package, env_name="staging", by="bench", log=quiet)
    return ops, config


def synthetic_table(path: Path, rows: int, columns: int, seed: int = 7) -> Path:
    """``columns`` numeric features (3% of cells empty) and a 0/1 label depending on three of them."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, columns)).round(6)
    label = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    x[rng.random(x.shape) < 0.03] = np.nan
    frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(columns)]).assign(label=label)
    frame.to_csv(path, index=False)
    return path


def plain_gate(ops, config, package, endpoint: str) -> dict:
    """What a plain script does for the same check: boto3, a thread pool, numpy; no modelops on the request path."""
    import io
    import tarfile
    from urllib.parse import urlparse

    import boto3
    import xgboost
    from botocore.config import Config

    from modelops.data.datasets import package_dataset, read_split

    test = read_split(ops.store, package_dataset(ops.store, config, package), "test")
    X = test.to_numpy(dtype=np.float64)[:, 1:]  # the prepared split: target first
    with tarfile.open(fileobj=io.BytesIO(Path(urlparse(package.artifact_uri).path).read_bytes())) as tar:
        booster = xgboost.Booster()
        booster.load_model(bytearray(tar.extractfile("xgboost-model").read()))
    expected = booster.inplace_predict(X).astype(np.float32)
    lines = ["".join(",".join("" if v != v else repr(v) for v in row) + "\n") for row in X.tolist()]
    body_bytes = sum(map(len, lines))
    per_batch = max(1, int(0.9 * 6 * 2 ** 20 / (body_bytes / len(lines))))  # rows a 6 MB body holds, with room
    batches = [slice(i, i + per_batch) for i in range(0, len(lines), per_batch)]
    client = boto3.client("sagemaker-runtime", endpoint_url=ops.endpoints.runtime_url(), region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local",
                          config=Config(retries={"total_max_attempts": 1}, read_timeout=70))

    def send(rows: slice) -> np.ndarray:
        body = "".join(lines[rows]).encode()
        answer = client.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="text/csv")["Body"].read()
        return np.array(answer.decode().split(), dtype=np.float64)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        answered = np.concatenate(list(pool.map(send, batches)))
    identical = int(np.sum(answered.astype(np.float32) == expected))
    sample = np.sort(np.random.default_rng(0).choice(len(X), size=min(SINGLE_ROW_REQUESTS, len(X)), replace=False))
    latencies = []
    for i in sample:
        started = time.perf_counter()
        client.invoke_endpoint(EndpointName=endpoint, Body=lines[i].encode(), ContentType="text/csv")["Body"].read()
        latencies.append((time.perf_counter() - started) * 1000)
    return {"identical": identical, "batches": len(batches), "body_bytes": body_bytes,
            "p99_ms": float(np.percentile(latencies, 99))}


def one_request_per_row(ops, config, package, endpoint: str, rows: int) -> float:
    """Seconds per held-out row when each goes in a request of its own (the gate before batching)."""
    from modelops.data.prepare import features_and_target
    from modelops.release.deploy import held_out_split
    from modelops.serving.protocol import to_csv

    X, _ = features_and_target(held_out_split(ops, config, package))
    started = time.perf_counter()
    for row in X[:rows]:
        ops.endpoints.invoke(endpoint, to_csv(row))
    return (time.perf_counter() - started) / min(rows, len(X))


if __name__ == "__main__":
    sys.exit(main())
