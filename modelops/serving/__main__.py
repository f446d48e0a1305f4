"""Run one endpoint's inference server: ``python -m modelops.serving --name NAME [--port N] --ready-file F``.

Started in the background by the local backend's endpoints; the admin token comes from the environment
(``MODELOPS_ADMIN_TOKEN``), never the command line, where other users could read it.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys

from modelops import atomic


def bind(host: str, port: int) -> socket.socket:
    """Listen on ``port``, or on any free port when it is 0 or taken (a restarted endpoint keeps its port)."""
    for candidate in dict.fromkeys([port, 0]):
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE and candidate:
                continue
            raise
        sock.listen(2048)
        return sock
    raise OSError(errno.EADDRINUSE, f"no port to bind on {host}")


def hide_scikit_learn() -> None:
    """Keep xgboost from importing scikit-learn into the server.

    xgboost imports scikit-learn whenever it is installed (the sagemaker SDK brings it), for estimator
    wrappers a server never uses, at a cost in start-up time and memory per endpoint (benchmarks/README.md,
    section 8). With ``sklearn`` set to None in sys.modules, xgboost's own ImportError fallback
    applies. Only this process is affected, never a notebook kernel.
    """
    sys.modules.setdefault("sklearn", None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelops.serving")
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--max-body", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = os.environ.pop("MODELOPS_ADMIN_TOKEN", "")
    if not token:
        print("MODELOPS_ADMIN_TOKEN is not set", file=sys.stderr)
        return 2

    import uvicorn

    hide_scikit_learn()
    # pyarrow parses large CSV bodies (protocol.ARROW_MIN_BYTES). Its default pool, mimalloc, kept ~90 MB
    # after 10,000-row churn bodies; the system allocator keeps ~35 MB at the same speed (benchmarks/README.md).
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    from modelops.serving.app import DEFAULT_MAX_BODY, InferenceApp

    app = InferenceApp(args.name, token, max_body=args.max_body or DEFAULT_MAX_BODY)
    sock = bind(args.host, args.port)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    config = uvicorn.Config(app, http="httptools", loop=loop, lifespan="on", access_log=False, log_level="warning",
                            timeout_keep_alive=60)
    atomic.write_json(args.ready_file, {"pid": os.getpid(), "host": args.host, "port": sock.getsockname()[1]})
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
