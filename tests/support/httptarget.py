"""A small, fast HTTP/1.1 target server for load-generator tests and benchmarks.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies, pipelining) to be a cheap
target: on one core it answers tens of thousands of requests per second, so a benchmark
measures the client, not the server. It always binds 127.0.0.1.

Routes of the default handler:

- ``GET /health`` → 200 ``ok``; ``GET /`` → 200 ``hello``
- ``/status/<code>`` → that status
- ``/delay/<ms>`` → 200 after ``ms`` milliseconds
- ``POST /echo`` → 200 with the request body
- anything else → 404

Use :class:`TargetServer` in a test (it runs its own event loop in a thread), or run
``python -m tests.support.httptarget --port N`` as a separate process (benchmarks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Reply:
    """What the target answers: status, body, and how long to wait before answering."""

    status: int = 200
    body: bytes = b""
    delay_s: float = 0.0
    content_type: str = "text/plain"


Handler = Callable[[str, str, bytes], Reply]

#: Listen backlog: a burst of new connections must not overflow it (a dropped SYN is retried
#: after 1 s, which a load test would report as a 1 s latency that the target never caused).
BACKLOG = 4096


def default_handler(method: str, path: str, body: bytes) -> Reply:
    """The default routes (see the module docstring)."""
    if path in ("/", ""):
        return Reply(200, b"hello")
    if path == "/health":
        return Reply(200, b"ok")
    if path.startswith("/status/"):
        try:
            return Reply(int(path.rsplit("/", 1)[1]), b"status")
        except ValueError:
            return Reply(400, b"bad status")
    if path.startswith("/delay/"):
        try:
            return Reply(200, b"late", delay_s=float(path.rsplit("/", 1)[1]) / 1000.0)
        except ValueError:
            return Reply(400, b"bad delay")
    if path == "/echo" and method == "POST":
        return Reply(200, body)
    return Reply(404, b"not found")


def _encode(reply: Reply) -> bytes:
    head = (
        f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}\r\n"
        f"Content-Type: {reply.content_type}\r\nContent-Length: {len(reply.body)}\r\n\r\n"
    )
    return head.encode("latin-1") + reply.body


class _Protocol(asyncio.Protocol):
    def __init__(self, handler: Handler, counter: list[int]) -> None:
        self._handler = handler
        self._counter = counter
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._pending: list[Awaitable[None]] = []
        self._ordered: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) < 2:
                self._send(Reply(400, b"bad request line"))
                self._buffer = b""
                return
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip() or "0")
            if len(self._buffer) < end + 4 + length:
                return
            body = self._buffer[end + 4 : end + 4 + length]
            self._buffer = self._buffer[end + 4 + length :]
            self._counter[0] += 1
            reply = self._handler(parts[0], parts[1].split("?", 1)[0], body)
            if reply.delay_s > 0 or self._ordered is not None:
                self._delayed(reply)
            else:
                self._send(reply)

    def _delayed(self, reply: Reply) -> None:
        # Keep responses in request order on one connection (HTTP/1.1 pipelining).
        previous = self._ordered
        loop = asyncio.get_running_loop()

        async def answer() -> None:
            if previous is not None:
                await previous
            if reply.delay_s > 0:
                await asyncio.sleep(reply.delay_s)
            self._send(reply)

        task = loop.create_task(answer())
        self._ordered = task

        def clear(done: asyncio.Future[None]) -> None:
            if self._ordered is done:
                self._ordered = None

        task.add_done_callback(clear)

    def _send(self, reply: Reply) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_encode(reply))


class TargetServer:
    """The target server on 127.0.0.1 in a background thread; a context manager.

    ``url`` is the base URL once started; ``requests`` counts requests answered so far.
    """

    def __init__(self, handler: Handler = default_handler, port: int = 0) -> None:
        self._handler = handler
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._counter = [0]
        self.url = ""

    @property
    def requests(self) -> int:
        return self._counter[0]

    def start(self, timeout_s: float = 10.0) -> TargetServer:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                loop.create_server(
                    lambda: _Protocol(self._handler, self._counter), "127.0.0.1", self._port, backlog=BACKLOG
                )
            )
            sock = self._server.sockets[0]
            self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="sluice-httptarget", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise TimeoutError(f"target server did not start within {timeout_s} s")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def shutdown() -> None:
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout_s)
        loop.close()
        self._loop = None

    def __enter__(self) -> TargetServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the target server in the foreground (for benchmarks); prints its URL."""
    parser = argparse.ArgumentParser(description="fast local HTTP target")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        counter = [0]
        server = await loop.create_server(
            lambda: _Protocol(default_handler, counter), "127.0.0.1", args.port, backlog=BACKLOG
        )
        print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
