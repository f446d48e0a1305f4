"""Servers a test starts: a file server on 127.0.0.1, and the clean-up of a home's endpoint servers."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path


def stop_endpoints(home: Path) -> None:
    """Stop every endpoint server a test started under ``home`` (they run detached from the test), and its router."""
    from modelops.backends.local.endpoints import STOPPED, LocalEndpoints

    endpoints = LocalEndpoints(home)
    for status in endpoints.list():
        if status.status != STOPPED and status.detail.get("pid"):
            endpoints.stop(status.name)
    endpoints.runtime.stop()  # and the SageMaker Runtime router, even with endpoints left Down


class FileServer:
    """A threaded HTTP server on 127.0.0.1 serving a folder, counting the requests it answers."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(Handler, directory=str(folder)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
