"""Serving: our local endpoint against mlflow, a stdlib http.server and Starlette, on 127.0.0.1, idle and busy.

    python -m benchmarks.serving [--rounds 3] [--clients 4] [--seconds 1.5] [--busy 2] [--quick] [--no-mlflow]

For each model a booster is trained and registered in a throwaway home, deployed as our endpoint
(``python -m modelops.serving``: uvicorn, httptools, uvloop, the ASGI app of modelops.serving.app), and served
the same way by each baseline, every server its own process:
  - ours-router: the same endpoint through the home's SageMaker Runtime router
    (``POST /endpoints/NAME/invocations``, modelops.serving.router), what AWS clients reach; its single-row
    latency is also timed through boto3's ``invoke_endpoint`` (SigV4 signing and botocore included);
  - stdlib: ``http.server.ThreadingHTTPServer`` parsing CSV with ``np.loadtxt`` and calling ``Booster.inplace_predict``
    (the minimal reference server), its booster on 2 threads (``--server-threads``);
  - starlette: the same handler as ours (modelops.serving.protocol) as a Starlette route on the same uvicorn
    settings, which tells what a framework would cost;
  - mlflow: ``mlflow models serve --env-manager local`` of the same booster saved with ``mlflow.xgboost``
    (JSON ``{"inputs": rows}`` bodies: its CSV reader needs a header line); skipped, saying why, if it cannot start;
  - in-process: ``Booster.inplace_predict`` with no HTTP at all (the ceiling), and the same batches as CSV bodies
    parsed, predicted and rendered by modelops.serving.protocol with no HTTP (the ceiling for CSV).
Measured, interleaved by round: single-row latency p50/p99 (one client, sequential requests), rows/s for 1,
100, 1,000 and 10,000-row bodies with N concurrent keep-alive clients, and the RSS of each server process.
Then the busy machine: ``--busy`` CPU-bound processes (2 by default; each ends by itself after at most
BUSY_LIMIT seconds, and is stopped when the phase ends) spin while ours, ours-router, the stdlib server started
with one thread (stdlib-1) and with two are timed again: single-row p50/p99 over short samples interleaved
4 x rounds times, and rows/s at 1,000 and 10,000 rows.
Each server's answers are checked against in-process predictions before anything is timed.
Targets: ours ahead of mlflow and stdlib on p50 and rows/s; single-row p50 < 1 ms; batch rows/s within 2x of
in-process; busy (2 processes on 2 cores): single-row p50 <= 1 ms and p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks._common import PYTHON, ROOT, Report, approved_package, environment, median

MODELS = ("abalone_model", "churn_model")
BATCHES = (1, 100, 1000, 10_000)
MAX_BODY = 6 * 1024 * 1024  # SageMaker's payload limit, which our endpoint enforces too
THREADS = min(4, os.cpu_count() or 1)  # the reference servers' booster threads (ours chose per request until 2026)
BUSY_BATCHES = (1000, 10_000)
BUSY_SLICES = 4  # the busy phase's single-row samples come in rounds * 4 interleaved slices
BUSY_LIMIT = 1800  # seconds a busy process spins at most, even if the benchmark dies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000, help="single-row requests per latency sample")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients for throughput")
    parser.add_argument("--seconds", type=float, default=1.5, help="duration of each throughput sample")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--busy", type=int, default=2, help="CPU-bound processes in the busy phase (0: no phase)")
    parser.add_argument("--server-threads", type=int, default=THREADS, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="one model, few requests, no mlflow (a smoke run)")
    parser.add_argument("--stdlib-server", nargs=2, metavar=("ARTIFACT", "READY"), help=argparse.SUPPRESS)
    parser.add_argument("--starlette-server", nargs=2, metavar=("ARTIFACT", "READY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stdlib_server:
        return stdlib_server(*args.stdlib_server, threads=args.server_threads)
    if args.starlette_server:
        return starlette_server(*args.starlette_server)
    if args.quick:
        args.rounds, args.requests, args.seconds, args.models, args.no_mlflow = 1, 50, 0.1, ["abalone_model"], True
        args.clients = 2
    os.environ.update(environment())  # our endpoint's server process inherits this environment
    report = Report(f"serving: {', '.join(args.models)}; {args.clients} clients, {args.rounds} round(s)")
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        for model in args.models:
            measure_model(Path(tmp) / model, model, args, report)
    report.print()
    return 0


# -- the servers -----------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    pid: int
    json_body: bool = False  # mlflow takes JSON; everyone else CSV
    stop: object = None
    samples: dict = field(default_factory=dict)
    path: str = "/invocations"
    busy: dict = field(default_factory=dict)

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (user + system): what a request costs it, whatever the load."""
        import psutil

        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float:
        import psutil

        process = psutil.Process(self.pid)
        tree = [process, *process.children(recursive=True)]
        return sum(p.memory_info().rss for p in tree) / 2**20


def trained_model(home: Path, model: str):
    """Train, register, approve and deploy ``model`` as our endpoint; return (ops, config, package, test rows)."""
    import modelops
    from modelops.backends.local import LocalBackend
    from modelops.data.prepare import features_and_target

    ops = LocalBackend(home)
    config = modelops.load_model_config(ROOT / model)
    dataset, package = approved_package(ops, config)
    X, _ = features_and_target(modelops.read_split(ops.store, dataset, "test"))
    return ops, config, package, X


def start_ours(ops, config, package) -> Server:
    ops.endpoints.deploy(config.name, package, log=lambda line: None)
    status = ops.endpoints.status(config.name)
    return Server("ours", status.detail["port"], status.detail["pid"],
                  stop=lambda: ops.endpoints.stop(config.name))


def start_router(ops, config) -> Server:
    """The same endpoint through the home's SageMaker Runtime router (started by the deploy)."""
    url = ops.endpoints.runtime_url()
    record = json.loads((ops.endpoints.runtime.folder / "router.json").read_text())
    return Server("ours-router", int(url.rsplit(":", 1)[1]), record["pid"],
                  path=f"/endpoints/{config.name}/invocations", stop=lambda: None)  # stops with the endpoint


def start_script(name: str, flag: str, artifact: Path, folder: Path, *extra: str) -> Server:
    ready = folder / f"{name}.ready.json"
    log = open(folder / f"{name}.log", "wb")
    process = subprocess.Popen([PYTHON, "-m", "benchmarks.serving", flag, str(artifact), str(ready), *extra],
                               stdout=log, stderr=subprocess.STDOUT, env=environment(), cwd=ROOT)
    port = _wait_ready(process, ready, folder / f"{name}.log")
    return Server(name, port, process.pid, stop=lambda: _stop(process))


def start_mlflow(booster, folder: Path) -> Server:
    """``mlflow models serve`` of the booster; raises RuntimeError saying why when it does not come up."""
    model_dir = folder / "mlflow-model"
    saved = subprocess.run([PYTHON, "-c", "import sys, xgboost, mlflow.xgboost; b = xgboost.Booster(); "
                            "b.load_model(sys.argv[1]); mlflow.xgboost.save_model(b, sys.argv[2])",
                            str(folder / "booster.ubj"), str(model_dir)], capture_output=True, text=True,
                           env=environment())
    if saved.returncode:
        raise RuntimeError(f"mlflow.xgboost.save_model failed: {saved.stderr.strip().splitlines()[-1:]}")
    port = _free_port()
    mlflow = shutil.which("mlflow", path=str(Path(PYTHON).parent)) or "mlflow"
    log_path = folder / "mlflow.log"
    env = environment(MLFLOW_TRACKING_URI=str(folder))
    # mlflow starts its server as `bash -c "exec uvicorn ..."`: the environment's bin folder must be on PATH.
    env["PATH"] = os.pathsep.join([str(Path(PYTHON).parent), env.get("PATH", "")])
    process = subprocess.Popen([mlflow, "models", "serve", "-m", str(model_dir), "-h", "127.0.0.1", "-p", str(port),
                                "--env-manager", "local", "-w", "1"], stdout=open(log_path, "wb"),
                               stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow models serve exited {process.returncode}: {_tail(log_path)}")
        try:
            if _request(port, "GET", "/ping", None, {})[0] == 200:
                return Server("mlflow", port, process.pid, json_body=True, stop=lambda: _stop(process, group=True))
        except OSError:
            time.sleep(0.2)
    _stop(process, group=True)
    raise RuntimeError(f"mlflow models serve did not answer /ping within 120 s: {_tail(log_path)}")


def stdlib_server(artifact: str, ready: str, threads: int = THREADS) -> int:
    """The minimal reference: ThreadingHTTPServer, np.loadtxt, Booster.inplace_predict, one prediction a line."""
    import io
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from modelops.serving.__main__ import hide_scikit_learn

    hide_scikit_learn()  # the same start as ours, so the RSS compares the servers, not scikit-learn
    booster = _load(artifact, threads)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as every other server here
        # Headers and body go out in two writes: without TCP_NODELAY every answer waits ~40 ms for the
        # client's delayed ACK, which would measure a famous pitfall rather than the server.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def do_GET(self):
            self._answer(200 if self.path == "/ping" else 404, b"")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rows = np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2)
            predictions = booster.inplace_predict(rows)
            self._answer(200, ("\n".join(f"{v:.9g}" for v in predictions.tolist()) + "\n").encode())

        def _answer(self, status, body):
            self.send_response(status)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    Path(ready).write_text(json.dumps({"port": server.server_address[1]}))
    server.serve_forever()
    return 0


def starlette_server(artifact: str, ready: str) -> int:
    """Our handler (modelops.serving.protocol) as a Starlette route, on the uvicorn settings ours uses."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from modelops.serving import protocol
    from modelops.serving.__main__ import bind, hide_scikit_learn

    hide_scikit_learn()
    booster = _load(artifact)
    n_features = booster.num_features()

    async def invocations(request):
        kind = protocol.content_type(request.headers.get("content-type"))
        rows = protocol.fit(protocol.parse(await request.body(), kind), n_features)
        answer = protocol.accept_type(request.headers.get("accept"))
        return Response(protocol.render(booster.inplace_predict(rows), answer),
                        media_type=protocol.response_content_type(answer))

    async def ping(request):
        return Response(b"")

    app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping)])
    sock = bind("127.0.0.1", 0)
    Path(ready).write_text(json.dumps({"port": sock.getsockname()[1]}))
    config = uvicorn.Config(app, http="httptools", loop="uvloop", access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _load(artifact: str, threads: int = THREADS):
    from modelops.training.train import unpack_model

    booster = unpack_model(Path(artifact).read_bytes(), source=artifact)
    booster.set_param({"nthread": threads})
    return booster


# -- the load generator ---------------------------------------------------------------------------------------


def body_for(server: Server, rows: np.ndarray) -> tuple[bytes, dict]:
    from modelops.serving.protocol import to_csv

    if server.json_body:
        return json.dumps({"inputs": rows.tolist()}).encode(), {"Content-Type": "application/json"}
    return to_csv(rows), {"Content-Type": "text/csv", "Accept": "text/csv"}


def predictions_from(server: Server, answer: bytes) -> np.ndarray:
    from modelops.serving.protocol import read_predictions

    if server.json_body:
        found = json.loads(answer)
        found = found["predictions"] if isinstance(found, dict) else found
        return np.asarray(found, dtype=np.float64).ravel()
    return read_predictions(answer)


def latency_ms(server: Server, body: bytes, headers: dict, requests: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        connection.request("POST", server.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        samples.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise RuntimeError(f"{server.name} answered {response.status}")
    connection.close()
    return samples


def boto3_latency_ms(server: Server, name: str, body: bytes, requests: int) -> list[float]:
    """Single rows through boto3's invoke_endpoint, as AWS client code sends them (SigV4-signed)."""
    import boto3

    client = boto3.client("sagemaker-runtime", endpoint_url=f"http://127.0.0.1:{server.port}", region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    client.invoke_endpoint(EndpointName=name, Body=body, ContentType="text/csv")["Body"].read()  # connects
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        client.invoke_endpoint(EndpointName=name, Body=body, ContentType="text/csv")["Body"].read()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def busy_processes(count: int) -> list[subprocess.Popen]:
    """``count`` CPU-bound processes; each stops by itself after BUSY_LIMIT seconds if nobody stops it first."""
    code = f"import time\nend = time.monotonic() + {BUSY_LIMIT}\nwhile time.monotonic() < end:\n    pass\n"
    return [subprocess.Popen([PYTHON, "-c", code]) for _ in range(count)]


def rows_per_second(server: Server, body: bytes, headers: dict, rows: int, clients: int, seconds: float) -> float:
    """N keep-alive clients posting the same body for ``seconds``; rows answered per second."""
    done = [0] * clients
    failures: list[str] = []
    start = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        start.wait()
        while time.perf_counter() < deadline:
            connection.request("POST", server.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(str(response.status))
                return
            done[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"{server.name} answered {failures[0]}")
    return sum(done) * rows / elapsed


def in_process(booster, batches: dict[int, np.ndarray], requests: int, seconds: float) -> dict:
    """The ceiling: inplace_predict with no HTTP, single-row latency and rows/s per batch size.

    Also ("csv", size): the same rows as a CSV body parsed, predicted and answered by our protocol
    module in this process, one call after another: what a request costs with no HTTP and no client.
    """
    from modelops.serving import protocol
    single = batches[1]
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        booster.inplace_predict(single)
        samples.append((time.perf_counter() - started) * 1000)
    result = {"p50": median(samples), "p99": float(np.percentile(samples, 99))}
    for size, rows in batches.items():
        count, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            booster.inplace_predict(rows)
            count += 1
        result[size] = count * size / (time.perf_counter() - began)
    for size, rows in batches.items():
        body, n_features = protocol.to_csv(rows), rows.shape[1]
        count, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            protocol.render(booster.inplace_predict(protocol.fit(protocol.parse_csv(body), n_features)), protocol.CSV)
            count += 1
        result["csv", size] = count * size / (time.perf_counter() - began)
    return result


# -- one model, every server ------------------------------------------------------------------------------------


def measure_model(folder: Path, model: str, args, report: Report) -> None:
    from modelops.training.train import load_artifact

    folder.mkdir(parents=True)
    print(f"{model}: training and registering a booster", flush=True)
    ops, config, package, X = trained_model(folder / "home", model)
    booster = load_artifact(ops.store, package.artifact_uri, package.artifact_sha256)
    booster.set_param({"nthread": THREADS})
    booster.save_model(str(folder / "booster.ubj"))
    artifact = Path(package.artifact_uri.removeprefix("file://"))
    batches = {size: np.resize(X, (size, X.shape[1])) for size in BATCHES}
    expected = {size: booster.inplace_predict(rows) for size, rows in batches.items()}

    servers: list[Server] = []
    skipped: dict[str, str] = {}
    try:
        servers.append(start_ours(ops, config, package))
        servers.append(start_router(ops, config))
        servers.append(start_script("stdlib", "--stdlib-server", artifact, folder))
        servers.append(start_script("starlette", "--starlette-server", artifact, folder))
        if args.no_mlflow:
            skipped["mlflow"] = "--no-mlflow" if not args.quick else "--quick"
        else:
            try:
                servers.append(start_mlflow(booster, folder))
            except (RuntimeError, OSError) as exc:
                skipped["mlflow"] = str(exc)[:300]
                print(f"{model}: mlflow skipped: {exc}", flush=True)
        bodies = {}
        for server in servers:
            for size, rows in batches.items():
                body, headers = body_for(server, rows)
                if len(body) > MAX_BODY:
                    continue  # over SageMaker's payload limit: not a request a client could send
                bodies[server.name, size] = body, headers
                status, answer = _request(server.port, "POST", server.path, body, headers)
                got = predictions_from(server, answer) if status == 200 else None
                if got is None or not np.allclose(got, expected[size], rtol=1e-5, atol=1e-6):
                    raise RuntimeError(f"{server.name} answered {status} with predictions that differ from "
                                       f"in-process ones for {size} rows")
        ceiling = []
        for round_ in range(1, args.rounds + 1):
            shift = (round_ - 1) % len(servers)  # rotate who goes first, so no server always follows the same one
            for server in servers[shift:] + servers[:shift]:
                samples = server.samples
                body, headers = bodies[server.name, 1]
                cpu = server.cpu_seconds()
                single = latency_ms(server, body, headers, args.requests)
                samples.setdefault("cpu", []).append((server.cpu_seconds() - cpu) / args.requests * 1000)
                samples.setdefault("p50", []).append(median(single))
                samples.setdefault("p99", []).append(float(np.percentile(single, 99)))
                for size in BATCHES:
                    if (server.name, size) in bodies:
                        body, headers = bodies[server.name, size]
                        samples.setdefault(size, []).append(
                            rows_per_second(server, body, headers, size, args.clients, args.seconds))
                samples.setdefault("rss", []).append(server.rss_mb())
                if server.name == "ours-router":
                    through = boto3_latency_ms(server, config.name, bodies[server.name, 1][0], args.requests)
                    samples.setdefault("boto3 p50", []).append(median(through))
                    samples.setdefault("boto3 p99", []).append(float(np.percentile(through, 99)))
                print(f"  {model} round {round_}: {server.name:<11} p50 {samples['p50'][-1]:.3f} ms, "
                      + ", ".join(f"{s:,} rows {samples[s][-1]:,.0f}/s" for s in BATCHES if s in samples),
                      flush=True)
            ceiling.append(in_process(booster, batches, args.requests, args.seconds))
        busy = measure_busy(model, servers, bodies, artifact, folder, args) if args.busy else None
    finally:
        for server in servers:
            server.stop()
    _report(report, model, servers, skipped, ceiling, args, busy)


def measure_busy(model: str, servers: list[Server], bodies: dict, artifact: Path, folder: Path, args) -> dict:
    """The busy phase: ``args.busy`` CPU-bound processes spin while ours, the router and stdlib are timed again.

    Returns the phase's facts (busy processes, load average at its end); figures go to each ``Server.busy``.
    """
    one = start_script("stdlib-1", "--stdlib-server", artifact, folder, "--server-threads", "1")
    timed = [s for s in servers if s.name in ("ours", "ours-router", "stdlib")] + [one]
    bodies.update({("stdlib-1", size): bodies["stdlib", size] for size in BUSY_BATCHES + (1,)})
    spinning = busy_processes(args.busy)
    try:
        time.sleep(1)  # let the scheduler spread them
        # Short latency samples, many times interleaved: on a shared machine the load comes in bursts, and
        # every server should meet them alike. p50 and p99 are over all of a server's samples.
        for round_ in range(1, BUSY_SLICES * args.rounds + 1):
            shift = (round_ - 1) % len(timed)
            for server in timed[shift:] + timed[:shift]:
                body, headers = bodies[server.name, 1]
                single = latency_ms(server, body, headers, max(25, args.requests // BUSY_SLICES))
                server.busy.setdefault("samples", []).extend(single)
        for round_ in range(1, args.rounds + 1):
            shift = (round_ - 1) % len(timed)
            for server in timed[shift:] + timed[:shift]:
                for size in BUSY_BATCHES:
                    if (server.name, size) in bodies:
                        body, headers = bodies[server.name, size]
                        server.busy.setdefault(size, []).append(
                            rows_per_second(server, body, headers, size, args.clients, args.seconds))
        for server in timed:
            samples = server.busy.pop("samples")
            server.busy["p50"], server.busy["p99"] = [median(samples)], [float(np.percentile(samples, 99))]
            print(f"  {model} busy: {server.name:<11} p50 {server.busy['p50'][0]:.3f} ms, "
                  f"p99 {server.busy['p99'][0]:.3f} ms over {len(samples)} requests", flush=True)
        load = os.getloadavg()[0]
    finally:
        for process in spinning:
            process.kill()
            process.wait()
        one.stop()
    servers.append(one)
    return {"processes": args.busy, "load": load}


def _report(report: Report, model: str, servers: list[Server], skipped: dict, ceiling: list[dict], args,
            busy: dict | None = None) -> None:
    by_name = {s.name: {k: median(v) for k, v in s.samples.items()} for s in servers if s.samples}
    ours = by_name["ours"]
    inproc = {k: median([c[k] for c in ceiling]) for k in ceiling[0]}
    clients = f"{args.clients} clients"
    for name, figures in by_name.items():
        add = report.ours if name.startswith("ours") else report.baseline
        add(f"{model} {name} single-row p50", figures["p50"], "ms")
        add(f"{model} {name} single-row p99", figures["p99"], "ms")
        add(f"{model} {name} server CPU per single-row request", figures["cpu"], "ms")
        if "boto3 p50" in figures:
            add(f"{model} {name} boto3 invoke_endpoint single-row p50", figures["boto3 p50"], "ms")
            add(f"{model} {name} boto3 invoke_endpoint single-row p99", figures["boto3 p99"], "ms")
        for size in BATCHES:
            if size in figures:
                add(f"{model} {name} rows/s, {size:,}-row bodies, {clients}", figures[size], "rows/s")
        add(f"{model} {name} server RSS", figures["rss"], "MB")
    busy_by_name = {s.name: {k: median(v) for k, v in s.busy.items()} for s in servers if s.busy}
    if busy:
        report.baseline(f"{model} busy phase: CPU-bound processes", busy["processes"], "processes")
        report.baseline(f"{model} busy phase: load average at its end", busy["load"], "(1 min)")
    for name, figures in busy_by_name.items():
        add = report.ours if name.startswith("ours") else report.baseline
        add(f"{model} {name} busy single-row p50", figures["p50"], "ms")
        add(f"{model} {name} busy single-row p99", figures["p99"], "ms")
        for size in BUSY_BATCHES:
            if size in figures:
                add(f"{model} {name} busy rows/s, {size:,}-row bodies, {clients}", figures[size], "rows/s")
    for name, why in skipped.items():
        report.skipped("baseline", f"{model} {name}", why)
    report.baseline(f"{model} in-process inplace_predict single-row p50", inproc["p50"], "ms")
    for size in BATCHES:
        report.baseline(f"{model} in-process inplace_predict rows/s, {size:,}-row batches", inproc[size], "rows/s")
    for size in BATCHES:
        report.baseline(f"{model} in-process CSV parse + predict + render rows/s, {size:,}-row bodies",
                        inproc["csv", size], "rows/s")
    report.ratio(f"{model} ours single-row p50 / 1 ms", ours["p50"], "< 1", ours["p50"] < 1)
    router = by_name.get("ours-router")
    if router:  # what the hop to the SageMaker Runtime address adds
        report.ratio(f"{model} single-row p50, ours-router / ours", router["p50"] / ours["p50"])
        report.ratio(f"{model} single-row p99, ours-router / ours", router["p99"] / ours["p99"])
        report.ratio(f"{model} CPU per single-row request, router process / endpoint process",
                     router["cpu"] / ours["cpu"])
    for name in ("ours", "ours-router"):
        figures = busy_by_name.get(name)
        if figures:
            report.ratio(f"{model} {name} busy single-row p50 / 1 ms", figures["p50"], "<= 1", figures["p50"] <= 1)
            report.ratio(f"{model} {name} busy single-row p99 / 10 ms", figures["p99"] / 10, "<= 1",
                         figures["p99"] <= 10)
    for name in ("stdlib-1", "stdlib"):
        if name in busy_by_name and "ours" in busy_by_name:
            report.ratio(f"{model} busy single-row p50, {name} / ours", busy_by_name[name]["p50"] /
                         busy_by_name["ours"]["p50"])
    for name, figures in by_name.items():
        if name.startswith("ours"):
            continue
        beat = name in ("stdlib", "mlflow")  # the targets; starlette is there to price a framework
        target = "> 1" if beat else ""
        report.ratio(f"{model} p50 latency, {name} / ours", figures["p50"] / ours["p50"], target,
                     figures["p50"] > ours["p50"])
        for size in BATCHES:
            if size in figures and size in ours:
                report.ratio(f"{model} rows/s at {size:,} rows, ours / {name}", ours[size] / figures[size], target,
                             ours[size] > figures[size])
        report.ratio(f"{model} server RSS, ours / {name}", ours["rss"] / figures["rss"])
    for size in BATCHES[1:]:
        if size in ours:
            report.ratio(f"{model} rows/s at {size:,} rows, in-process / ours", inproc[size] / ours[size], "<= 2",
                         inproc[size] / ours[size] <= 2)
    for size in BATCHES:
        if size in ours:  # what HTTP and the server add to handling the same CSV body in-process
            report.ratio(f"{model} rows/s at {size:,} rows, in-process CSV / ours", inproc["csv", size] / ours[size])


# -- plumbing -------------------------------------------------------------------------------------------------


def _request(port: int, method: str, path: str, body, headers: dict) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _wait_ready(process: subprocess.Popen, ready: Path, log: Path, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}: {_tail(log)}")
        if ready.exists():
            try:
                return json.loads(ready.read_text())["port"]
            except ValueError:
                pass
        time.sleep(0.02)
    _stop(process)
    raise RuntimeError(f"server did not start within {timeout:.0f} s: {_tail(log)}")


def _stop(process: subprocess.Popen, group: bool = False) -> None:
    import signal

    try:
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        process.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    sys.exit(main())
