"""The runtime router's connections to the endpoints' servers: an HTTP/1.1 client on asyncio (httptools parses the
answers) and a pool of kept-alive connections per server, so a request to a warm endpoint opens no socket."""

from __future__ import annotations

import asyncio
from collections import deque

#: Idle keep-alive connections kept per endpoint server.
POOL_SIZE = 32
_FORWARDED = (b"content-type", b"accept", b"x-amzn-sagemaker-custom-attributes", b"x-amzn-sagemaker-inference-id")


class Upstream(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to an endpoint's server; responses parsed by httptools."""

    def __init__(self):
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.answered = False  # any byte of a response seen on this connection yet
        self._waiter: asyncio.Future | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # httptools.HttpParserError: not HTTP
            self._finish(exc=ConnectionError(f"the endpoint's server sent a malformed answer ({exc})"))
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._finish(exc=ConnectionResetError("the endpoint's server closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        keep = self.parser.should_keep_alive()
        self._finish(result=(self.parser.get_status_code(), self._headers, b"".join(self._body), keep))

    def _finish(self, result=None, exc: BaseException | None = None) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(result)

    async def request(self, head: bytes, body: bytes, timeout: float) -> tuple[int, list, bytes, bool]:
        """Send one request and wait for its whole answer (status, headers, body, keep-alive)."""
        self._headers, self._body = [], []
        self._waiter = asyncio.get_running_loop().create_future()
        self.answered = False
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)  # no copy of a big body only to join it with the head
        return await asyncio.wait_for(self._waiter, timeout)


class Pool:
    """Idle keep-alive connections per endpoint server address."""

    def __init__(self, size: int = POOL_SIZE):
        self.size = size
        self.idle: dict[tuple[str, int], deque[Upstream]] = {}

    async def send(self, host: str, port: int, head: bytes, body: bytes, timeout: float):
        """One request on an idle connection (once more on a fresh one if a reused connection was closed)."""
        idle = self.idle.setdefault((host, port), deque())
        while idle:
            connection = idle.pop()
            if connection.closed:
                continue
            try:
                return await self._use(connection, idle, head, body, timeout)
            except ConnectionResetError:
                if connection.answered:
                    raise  # the server closed it mid-answer: not a stale connection
                break  # closed while idle (keep-alive timeout) just as we sent: once more, on a new connection
        loop = asyncio.get_running_loop()
        _, connection = await asyncio.wait_for(loop.create_connection(Upstream, host, port), timeout)
        return await self._use(connection, idle, head, body, timeout)

    async def _use(self, connection: Upstream, idle: deque, head: bytes, body: bytes, timeout: float):
        try:
            status, headers, answer, keep = await connection.request(head, body, timeout)
        except BaseException:
            connection.transport.close()
            raise
        if keep and not connection.closed and len(idle) < self.size:
            idle.append(connection)
        else:
            connection.transport.close()
        return status, headers, answer

    def close(self) -> None:
        for idle in self.idle.values():
            for connection in idle:
                connection.transport.close()
        self.idle.clear()


def upstream_head(server: dict, headers, body: bytes) -> bytes:
    """The head of ``POST /invocations`` to an endpoint's server (``host`` and ``port`` of its record)."""
    return b"".join([b"POST /invocations HTTP/1.1\r\nhost: ", f"{server['host']}:{server['port']}".encode(),
                     b"\r\ncontent-length: ", str(len(body)).encode(), b"\r\n",
                     *(k + b": " + v + b"\r\n" for k, v in headers if k in _FORWARDED), b"\r\n"])
