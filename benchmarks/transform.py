"""Batch scoring: the local transform against a plain pyarrow + xgboost script over the same CSV, time and memory.

    python -m benchmarks.transform [--rows N] [--rounds R] [--quick]

A seeded synthetic table (20 numeric features, 5% of cells missing; no header, as an endpoint takes rows) of N rows
(default 1,000,000) is written at run time, and a binary:logistic model (100 trees of depth 6) is trained on
50,000 rows of the same distribution. Ours: the local backend's transformer (``LocalTransformer.transform``, what
``ci transform`` runs once it knows the package): chunks through the endpoint's protocol code, the answers written
atomically. Baseline, same run, same file: ``pyarrow.csv.read_csv`` of the whole table, ``inplace_predict``,
``pyarrow.csv.write_csv`` of the scores. Each side runs in its own process, interleaved round by round; the time
is the work after imports (model load, read, predict, write), the peak RSS the process's (``ru_maxrss``). Ours
also runs on a quarter of the rows: its peak RSS should not grow with the table (both sizes are many chunks: over
the first few, the allocator's pools are still growing to their steady size).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import PYTHON, Report, environment, interleaved, median

FEATURES = 20
MB = 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transform", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the table (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="20,000 rows, one round (a smoke run)")
    parser.add_argument("--side", choices=["ours", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs=3, metavar=("TABLE", "MODEL", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        return run_side(args.side, *map(Path, args.paths))
    rows, rounds = (20_000, 1) if args.quick else (args.rows, args.rounds)
    with tempfile.TemporaryDirectory(prefix="bench-transform-") as tmp:
        report = measure(Path(tmp), rows, rounds)
    report.print()
    return 0


def measure(tmp: Path, rows: int, rounds: int) -> Report:
    small_rows = max(rows // 4, 1)
    print(f"writing {rows:,} + {small_rows:,} rows and training the model ...", file=sys.stderr)
    table, small, model = tmp / "table.csv", tmp / "small.csv", tmp / "model.tar.gz"
    write_table(table, rows, seed=1)
    write_table(small, small_rows, seed=2)
    train_model(model)
    results: dict[str, list[dict]] = {"ours": [], "plain": [], "ours, a quarter of the rows": []}
    sides = {"ours": ("ours", table), "plain": ("plain", table), "ours, a quarter of the rows": ("ours", small)}

    def runner(name):
        side, source = sides[name]

        def run() -> float:
            command = [PYTHON, "-m", "benchmarks.transform", "--side", side, "--paths", str(source), str(model),
                       str(tmp / f"{side}.out")]
            done = subprocess.run(command, env=environment(), capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{name} exited {done.returncode}: {done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if result["rows"] != (rows if source == table else small_rows):
                raise RuntimeError(f"{name} wrote {result['rows']} answers for {source.name}")
            results[name].append(result)
            return result["seconds"]
        return run

    samples = interleaved({name: runner(name) for name in sides}, rounds, log=lambda line: print(line, file=sys.stderr))
    size = table.stat().st_size / MB
    report = Report(f"transform: {rows:,} rows x {FEATURES} features ({size:,.0f} MB CSV), median of {rounds}")
    ours = report.ours("local transform, seconds", median(samples["ours"]), "s")
    ours_rss = report.ours("local transform, peak RSS", median([r["peak_mb"] for r in results["ours"]]), "MB")
    small_rss = report.ours(f"local transform on {small_rows:,} rows, peak RSS",
                            median([r["peak_mb"] for r in results["ours, a quarter of the rows"]]), "MB")
    plain = report.baseline("pyarrow read + inplace_predict + pyarrow write, seconds", median(samples["plain"]), "s")
    plain_rss = report.baseline("plain script, peak RSS", median([r["peak_mb"] for r in results["plain"]]), "MB")
    report.ours("local transform, rows per second", rows / ours, "rows/s")
    report.ratio("ours / plain, seconds", ours / plain, "<= 1.5", ours / plain <= 1.5)
    report.ratio(f"ours' peak RSS at {rows:,} / at {small_rows:,} rows", ours_rss / small_rss, "<= 1.1",
                 ours_rss / small_rss <= 1.1)
    report.ratio("ours / plain, peak RSS", ours_rss / plain_rss)
    return report


def write_table(path: Path, rows: int, *, seed: int) -> None:
    """Feature rows without a header, an empty cell for a missing value, written in slices (bounded memory)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    rng = np.random.default_rng(seed)
    names = [f"f{j}" for j in range(FEATURES)]
    with pa_csv.CSVWriter(path, pa.schema([(n, pa.float64()) for n in names]),
                          write_options=pa_csv.WriteOptions(include_header=False, quoting_style="none")) as writer:
        for start in range(0, rows, 200_000):
            values = np.round(rng.normal(size=(min(200_000, rows - start), FEATURES)), 4)
            missing = rng.random(values.shape) < 0.05
            writer.write_table(pa.table([pa.array(values[:, j], mask=missing[:, j]) for j in range(FEATURES)],
                                        names=names))


def train_model(path: Path) -> None:
    import numpy as np
    import xgboost

    from modelops.training.train import pack_model

    rng = np.random.default_rng(3)
    X = rng.normal(size=(50_000, FEATURES))
    y = (X[:, 0] + X[:, 1] * X[:, 2] - X[:, 3] + rng.normal(scale=0.5, size=len(X)) > 0).astype(float)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "nthread": 1},
                            xgboost.DMatrix(X, y), num_boost_round=100)
    path.write_bytes(pack_model(booster))


def run_side(side: str, table: Path, model: Path, output: Path) -> int:
    """One side in this process: print {"seconds", "rows", "peak_mb"} as the last line."""
    import pyarrow.csv  # noqa: F401  both sides' libraries are imported before the clock starts
    import xgboost  # noqa: F401

    if side == "ours":
        import hashlib

        from modelops.backends.local.store import LocalStore
        from modelops.backends.local.transformer import LocalTransformer
        from modelops.entities import Lineage, PackageVersion, TransformSpec
        from modelops.serving import batch  # noqa: F401

        started = time.perf_counter()
        package = PackageVersion("bench", 1, "Approved", "local:bench/1", model.as_uri(),
                                 hashlib.sha256(model.read_bytes()).hexdigest(), "local", "3.2-0", "3.2", {}, {}, "",
                                 "", Lineage(), "")
        spec = TransformSpec("bench", "bench-v1", package, str(table), str(output))
        rows = LocalTransformer(LocalStore(model.parent / "store")).transform(spec, log=lambda line: None).rows
    else:
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        from modelops.training.train import unpack_model

        started = time.perf_counter()
        booster = unpack_model(model.read_bytes())
        frame = pa_csv.read_csv(table, read_options=pa_csv.ReadOptions(autogenerate_column_names=True))
        features = frame.to_pandas().to_numpy()
        scores = booster.inplace_predict(features)
        pa_csv.write_csv(pa.table({"score": scores}), output, pa_csv.WriteOptions(include_header=False))
        rows = len(scores)
    seconds = time.perf_counter() - started
    peak_mb = peak_rss() / MB
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mb": peak_mb}))
    return 0


def peak_rss() -> float:
    """This process's peak RSS in bytes: VmHWM (ru_maxrss would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    sys.exit(main())
