"""A bounded soak of a local endpoint: client processes send single-row requests while it is redeployed.

    python -m tests.reliability.soak --seconds 30 --clients 2

Deploys v1, then during the soak deploys v2, v3 and rolls back once; prints requests sent, failed, p50/p99
latency and the server's resident memory before and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SoakResult:
    seconds: float
    clients: int
    sent: int
    failed: int
    failures: tuple[str, ...]
    p50_ms: float
    p99_ms: float
    rss_before_mb: float
    rss_after_mb: float
    versions_seen: int


def _client(host: str, port: int, body: bytes, seconds: float, queue, done) -> None:
    """Send requests for ``seconds``, and on until ``done`` is set: a deploy slowed by a busy machine still has
    clients to serve, so every version in the schedule is seen."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    latencies, failures, answers = [], [], set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or not done.is_set():
        started = time.perf_counter()
        try:
            connection.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200:
                failures.append(f"{response.status}: {payload[:200]!r}")
            answers.add(payload)
        except Exception as exc:  # a dropped connection counts as a failed request
            failures.append(repr(exc))
            connection = http.client.HTTPConnection(host, port, timeout=30)
        latencies.append((time.perf_counter() - started) * 1000)
    queue.put((latencies, failures, sorted(answers)))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak(served, seconds: float = 30, clients: int = 2) -> SoakResult:
    """Run the soak against ``served`` (see tests/test_endpoints_local.Served): its v1..v3 are deployed in turn."""
    from modelops.serving.protocol import to_csv

    endpoints, name = served.ops.endpoints, "abalone-model"
    quiet = lambda line: None  # noqa: E731
    endpoints.deploy(name, served.packages[0], log=quiet)
    record = served.record()
    body = to_csv(served.X[:1])
    for _ in range(200):  # warm up before measuring memory
        endpoints.invoke(name, body)
    before = rss_mb(record["pid"])
    context = multiprocessing.get_context("spawn")
    queue, done = context.Queue(), context.Event()
    workers = [context.Process(target=_client, args=(record["host"], record["port"], body, seconds, queue, done))
               for _ in range(clients)]
    for worker in workers:
        worker.start()
    start = time.monotonic()
    schedule = ((0.25, lambda: endpoints.deploy(name, served.packages[1], log=quiet)),
                (0.5, lambda: endpoints.deploy(name, served.packages[2], log=quiet)),
                (0.75, lambda: endpoints.rollback(name, log=quiet)))
    for fraction, action in schedule:
        time.sleep(max(0.0, start + seconds * fraction - time.monotonic()))
        action()
    time.sleep(0.5)  # the rolled-back version answers a few requests too
    done.set()
    results = [queue.get(timeout=seconds + 60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    latencies = np.concatenate([np.asarray(r[0]) for r in results])
    failures = tuple(f for r in results for f in r[1])
    after = rss_mb(record["pid"])
    return SoakResult(seconds, clients, len(latencies), len(failures), failures[:5],
                      float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)),
                      round(before, 1), round(after, 1), len({a for r in results for a in r[2]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    from tests.support.served import Served
    from tests.support.servers import stop_endpoints

    home = Path(tempfile.mkdtemp(prefix="soak-"))
    os.environ.setdefault("MODELOPS_DATA_DIR", str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    try:
        print(json.dumps(asdict(soak(Served(home), args.seconds, args.clients)), indent=2))
    finally:
        stop_endpoints(home)


if __name__ == "__main__":
    main()
