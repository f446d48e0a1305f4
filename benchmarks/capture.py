"""Data capture's cost: our endpoint with capture on (every request) against the same endpoint with it off.

    python -m benchmarks.capture [--rounds 5] [--requests 2000] [--clients 4] [--seconds 2] [--quick]

For each model one booster is trained and registered in a throwaway home and deployed twice, as two endpoint
processes: ``<name>`` without data capture and ``<name>-capture`` capturing 100% of requests
(modelops.serving.capture: a queue put on the request path, a thread writing JSON lines). Measured, interleaved
by round (who goes first alternates): single-row latency p50/p99 (one keep-alive client, sequential requests),
the server process's CPU time per single-row request (user + system, from /proc: a cost the machine's load does
not inflate the way it inflates wall time), and rows/s of 100-row bodies with N concurrent clients. Each round's
capture is checked afterwards: every request captured, none dropped. The load average is printed with the
machine line at the end and after each round.
Target: capture on within noise of off: p99 ratio <= 1.1, CPU per request ratio <= 1.15.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import Report, environment, median
from benchmarks.serving import MODELS, Server, latency_ms, rows_per_second, trained_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capture", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000, help="single-row requests per latency sample")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients for throughput")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each throughput sample")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--quick", action="store_true", help="one model, few requests (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests, args.seconds, args.models, args.clients = 1, 50, 0.2, ["abalone_model"], 2
    os.environ.update(environment())
    report = Report(f"capture: {', '.join(args.models)}; {args.rounds} round(s), {args.requests} requests a sample")
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        for model in args.models:
            measure(Path(tmp) / model, model, args, report)
    report.print()
    return 0


def measure(folder: Path, model: str, args, report: Report) -> None:
    from modelops.entities import DataCapture
    from modelops.serving.capture import capture_uri
    from modelops.serving.protocol import to_csv

    print(f"{model}: training and registering a booster", flush=True)
    ops, config, package, X = trained_model(folder / "home", model)
    capture = DataCapture(capture_uri(ops.store, config.name), sampling_percentage=100)
    names = {"off": config.name, "on": f"{config.name}-capture"}
    servers = {}
    try:
        for side, name in names.items():
            ops.endpoints.deploy(name, package, data_capture=capture if side == "on" else None, log=lambda line: None)
            status = ops.endpoints.status(name)
            servers[side] = Server(side, status.detail["port"], status.detail["pid"])
        single = to_csv(X[:1]), {"Content-Type": "text/csv", "Accept": "text/csv"}
        batch = to_csv(np.resize(X, (100, X.shape[1]))), single[1]
        samples = {side: {"p50": [], "p99": [], "cpu_us": [], "rows": []} for side in servers}
        for round_ in range(1, args.rounds + 1):
            for side in (("off", "on") if round_ % 2 else ("on", "off")):
                server, figures = servers[side], samples[side]
                before = cpu_seconds(server.pid)
                latency = latency_ms(server, *single, args.requests)
                figures["cpu_us"].append((cpu_seconds(server.pid) - before) / args.requests * 1e6)
                figures["p50"].append(median(latency))
                figures["p99"].append(float(np.percentile(latency, 99)))
                figures["rows"].append(rows_per_second(server, *batch, 100, args.clients, args.seconds))
            print(f"  {model} round {round_}: " + "; ".join(
                f"capture {side}: p50 {samples[side]['p50'][-1]:.3f} ms, p99 {samples[side]['p99'][-1]:.3f} ms, "
                f"{samples[side]['cpu_us'][-1]:.0f} us CPU/request" for side in ("off", "on"))
                + f" (load average {os.getloadavg()[0]:.2f})", flush=True)
        captured = wait_for_capture(ops, names["on"])
    finally:
        for name in names.values():
            ops.endpoints.stop(name)
    _report(report, model, samples, captured)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (its /proc stat; psutil when installed)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def wait_for_capture(ops, name: str, timeout: float = 30) -> dict:
    """The capturing endpoint's counters once its queue is empty."""
    deadline = time.monotonic() + timeout
    while True:
        status = ops.endpoints.status(name).detail["capture"]
        if status["queued"] == 0 or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def _report(report: Report, model: str, samples: dict, captured: dict) -> None:
    figures = {side: {k: median(v) for k, v in values.items()} for side, values in samples.items()}
    on, off = figures["on"], figures["off"]
    for add, side, label in ((report.ours, on, "capture on"), (report.baseline, off, "capture off")):
        add(f"{model} {label} single-row p50", side["p50"], "ms")
        add(f"{model} {label} single-row p99", side["p99"], "ms")
        add(f"{model} {label} server CPU per single-row request", side["cpu_us"], "us")
        add(f"{model} {label} rows/s, 100-row bodies", side["rows"], "rows/s")
    report.ours(f"{model} capture on: records written", captured["captured"], "records")
    report.ours(f"{model} capture on: records dropped (queue full)", captured["dropped"], "records")
    report.ratio(f"{model} p50, capture on / off", on["p50"] / off["p50"])
    report.ratio(f"{model} p99, capture on / off", on["p99"] / off["p99"], "<= 1.1", on["p99"] / off["p99"] <= 1.1)
    report.ratio(f"{model} CPU per request, capture on / off", on["cpu_us"] / off["cpu_us"], "<= 1.15",
                 on["cpu_us"] / off["cpu_us"] <= 1.15)
    report.ratio(f"{model} rows/s at 100 rows, capture on / off", on["rows"] / off["rows"])


if __name__ == "__main__":
    sys.exit(main())
