"""The review's paired bootstrap: ours (every resample at once from a weights matrix) against a plain loop.

    python -m benchmarks.bootstrap [--rows 500] [--resamples 2000] [--rounds 5] [--quick]

Two models' predictions on the same rows, both problem types (abalone-sized regression, 418 rows; churn-sized
binary, 500 rows; ``--rows`` sets the binary size):
  - ours: ``modelops.review.bootstrap.paired_bootstrap`` (every metric of the problem type, both models, all resamples);
  - baseline: the same resamples drawn as row indices, and for each one ``modelops.review.evaluation``'s metric
    functions on the drawn rows of each model (what one writes first: a Python loop over resamples).
Both must give the same intervals (asserted). Target: ours under a second for 2,000 resamples on 2 shared cores
(the review runs it once per model and stage).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks._common import Report, interleaved, median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bootstrap", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="200 resamples, 1 round (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.resamples, args.rounds = 200, 1
    report = Report("bootstrap")
    for problem, rows in (("regression", 418), ("binary", args.rows)):
        y, ours_prediction, theirs_prediction = _data(problem, rows)
        runs = {"ours": lambda: _ours(problem, y, ours_prediction, theirs_prediction, args.resamples),
                "loop": lambda: _loop(problem, y, ours_prediction, theirs_prediction, args.resamples)}
        _check_same(problem, y, ours_prediction, theirs_prediction, min(args.resamples, 300))
        samples = interleaved(runs, args.rounds)
        ours, loop = median(samples["ours"]), median(samples["loop"])
        report.ours(f"{problem}, {rows} rows x {args.resamples} resamples", ours, "s")
        report.baseline(f"{problem} loop over resamples", loop, "s")
        report.ratio(f"{problem} loop / ours", loop / ours)
        report.ratio(f"{problem} ours / 1 s", ours, "< 1", ours < 1)
    report.print()
    return 0


def _data(problem: str, rows: int):
    rng = np.random.default_rng(0)
    if problem == "regression":
        y = rng.normal(10, 3.3, rows)
        return y, y + rng.normal(0, 2.1, rows), y + rng.normal(0, 2.2, rows)
    y = (rng.random(rows) < 0.5).astype(float)
    score = np.clip(0.4 * y + 0.6 * rng.random(rows), 0, 1)
    return y, score, np.clip(score + rng.normal(0, 0.05, rows), 0, 1)


def _ours(problem, y, a, b, resamples) -> float:
    from modelops.review.bootstrap import paired_bootstrap

    started = time.perf_counter()
    paired_bootstrap(problem, y, a, b, resamples=resamples, seed=1)
    return time.perf_counter() - started


def _loop_intervals(problem, y, a, b, resamples) -> dict[str, tuple[float, float]]:
    from modelops.metrics import metric
    from modelops.review.bootstrap import resample_weights
    from modelops.scores import metrics_for

    weights = resample_weights(len(y), resamples, 1).astype(int)
    gains: dict[str, list[float]] = {}
    for row in weights:
        drawn = np.repeat(np.arange(len(y)), row)
        ours, theirs = metrics_for(problem, y[drawn], a[drawn]), metrics_for(problem, y[drawn], b[drawn])
        for name in ours:
            gains.setdefault(name, []).append(metric(name).improvement(ours[name], theirs[name]))
    return {name: tuple(np.percentile(values, [2.5, 97.5])) for name, values in gains.items()}


def _loop(problem, y, a, b, resamples) -> float:
    started = time.perf_counter()
    _loop_intervals(problem, y, a, b, resamples)
    return time.perf_counter() - started


def _check_same(problem, y, a, b, resamples) -> None:
    from modelops.review.bootstrap import paired_bootstrap

    vectorised = paired_bootstrap(problem, y, a, b, resamples=resamples, seed=1).intervals
    looped = _loop_intervals(problem, y, a, b, resamples)
    for name, (low, high) in looped.items():
        assert np.allclose(vectorised[name].ci95, (low, high), rtol=1e-9, atol=1e-12), (name, vectorised[name], low)


if __name__ == "__main__":
    raise SystemExit(main())
