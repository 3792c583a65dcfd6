"""The weighted local router's proxy, against real upstream servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.support.httptarget import Reply, TargetServer

from sluice.embedded.router import BadRequest, Router, body_framing, parse_request_head


class RouterThread:
    """A Router on its own event loop in a thread; ``call`` runs a coroutine function on it."""

    def __init__(self, runtime: Path, upstream_timeout_s: float = 10.0) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.router: Router = self.call(lambda: _make(runtime, upstream_timeout_s))
        self.call(self.router.start)

    def call(self, factory: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return await factory()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def stage(self, upstreams: dict[str, str | None], weight: int | None = None, key: str = "p/s/svc") -> str:
        stage = self.call(lambda: self.router.update(key, upstreams, weight))
        return str(stage.url)

    def stop(self) -> None:
        self.call(self.router.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


async def _make(runtime: Path, upstream_timeout_s: float) -> Router:
    return Router(runtime, upstream_timeout_s)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[RouterThread]:
    running = RouterThread(tmp_path / "runtime")
    yield running
    running.stop()


class RawUpstream:
    """An upstream that records each request head and body and answers with ``reply(n)``;
    ``close_after`` closes the connection after each answer without saying so."""

    def __init__(self, reply: Callable[[int], bytes], close_after: bool = False) -> None:
        self.reply, self.close_after = reply, close_after
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, data = data.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                while len(data) < length:
                    data += conn.recv(65536)
                self.heads.append(head)
                self.bodies.append(data[:length])
                data = data[length:]
                conn.sendall(self.reply(len(self.heads)))
                if self.close_after:
                    return

    def stop(self) -> None:
        self.sock.close()


def ok(body: bytes = b"ok", extra: bytes = b"") -> Callable[[int], bytes]:
    return lambda _n: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_a_request_reaches_the_upstream_as_sent_with_forwarding_headers(router: RouterThread) -> None:
    """Method, path, query, body and end-to-end headers reach the upstream; hop-by-hop headers do
    not; the upstream gets its own Host and X-Forwarded-For/-Host; the answer names its slot."""
    upstream = RawUpstream(ok(b"hello", b"Keep-Alive: timeout=5\r\nX-Up: 1\r\n"))
    try:
        url = router.stage({"direct": upstream.url})
        response = httpx.post(url + "/a/b?c=d&e=%20", content=b'{"x":1}',
                              headers={"X-Mine": "v", "Connection": "keep-alive, X-Drop", "X-Drop": "gone",
                                       "Proxy-Authorization": "secret"})
    finally:
        upstream.stop()
    assert response.status_code == 200 and response.text == "hello"
    assert response.headers["x-sluice-slot"] == "direct" and response.headers["x-up"] == "1"
    assert "keep-alive" not in response.headers
    head = upstream.heads[0].decode()
    lines = head.split("\r\n")
    assert lines[0] == "POST /a/b?c=d&e=%20 HTTP/1.1"
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["host"] == upstream.url.removeprefix("http://")
    assert headers["x-mine"] == "v" and headers["content-length"] == "7"
    assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-forwarded-host"] == url.removeprefix("http://")
    assert "x-drop" not in headers and "proxy-authorization" not in headers and "connection" not in headers
    assert upstream.bodies == [b'{"x":1}']


def test_weights_split_requests_smoothly(router: RouterThread) -> None:
    """At 30 % the canary gets exactly 30 of 100 requests; at 0 none, at 100 all."""
    with TargetServer(lambda m, p, b: Reply(200, b"primary")) as primary, \
            TargetServer(lambda m, p, b: Reply(200, b"canary")) as canary:
        for weight, expected in ((30, 30), (0, 0), (100, 100)):
            url = router.stage({"primary": primary.url, "canary": canary.url}, weight)
            with httpx.Client() as client:
                answers = [client.get(url + "/").text for _ in range(100)]
            assert answers.count("canary") == expected


def test_no_upstream_is_503_and_refused_upstreams_are_502(router: RouterThread) -> None:
    """A stage without deployments answers 503; when its only upstream refuses, 502."""
    url = router.stage({}, key="p/s/empty")
    response = httpx.get(url + "/")
    assert response.status_code == 503 and "no deployment" in response.json()["error"]
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{spare.getsockname()[1]}"
    url = router.stage({"direct": dead}, key="p/s/dead")
    response = httpx.get(url + "/")
    assert response.status_code == 502 and "no upstream accepted" in response.json()["error"]


def test_a_refused_upstream_is_retried_on_the_other(router: RouterThread) -> None:
    """Every request picked for an upstream that refuses connections is answered by the other."""
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{spare.getsockname()[1]}"
    with TargetServer() as primary:
        url = router.stage({"primary": primary.url, "canary": dead}, 50)
        with httpx.Client() as client:
            statuses = [client.get(url + "/").status_code for _ in range(20)]
    assert statuses == [200] * 20


def test_chunked_answers_pass_through_and_the_connection_is_reused(router: RouterThread) -> None:
    """A chunked answer arrives whole, and the next request goes over the same upstream connection."""
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=1\r\ndefg\r\n0\r\nT: 1\r\n\r\n"
    upstream = RawUpstream(lambda _n: chunked)
    try:
        url = router.stage({"direct": upstream.url})
        with httpx.Client() as client:
            texts = [client.get(url + "/").text for _ in range(3)]
    finally:
        upstream.stop()
    assert texts == ["abcdefg"] * 3
    assert upstream.connections == 1


def test_an_upstream_closing_kept_alive_connections_is_not_an_error(router: RouterThread) -> None:
    """An upstream that closes each connection after answering (without saying so): every
    request still gets its answer, on a new connection when the old one is gone."""
    upstream = RawUpstream(ok(), close_after=True)
    try:
        url = router.stage({"direct": upstream.url})
        with httpx.Client() as client:
            statuses = [client.get(url + "/").status_code for _ in range(10)]
    finally:
        upstream.stop()
    assert statuses == [200] * 10


def test_pipelined_requests_are_answered_in_order(router: RouterThread) -> None:
    """Several requests written at once on one connection are answered one after the other, in order."""
    with TargetServer() as upstream:
        url = router.stage({"direct": upstream.url})
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
                         b"GET /status/404 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"201", b"200", b"404"]
    assert b"\r\n\r\nbody" in data


def test_a_chunked_request_body_is_sent_on_with_its_length(router: RouterThread) -> None:
    """A request body sent in chunks reaches the upstream whole, with a Content-Length."""
    upstream = RawUpstream(ok())
    try:
        url = router.stage({"direct": upstream.url})
        response = httpx.post(url + "/", content=iter([b"ab", b"cd", b"e"]))
    finally:
        upstream.stop()
    assert response.status_code == 200
    assert upstream.bodies == [b"abcde"]
    assert b"Content-Length: 5" in upstream.heads[0] and b"chunked" not in upstream.heads[0].lower()


def test_an_upstream_that_does_not_answer_in_time_is_504(tmp_path: Path) -> None:
    """A request whose upstream stays silent past the timeout is answered 504."""
    running = RouterThread(tmp_path / "runtime", upstream_timeout_s=0.3)
    try:
        with TargetServer() as upstream:
            url = running.stage({"direct": upstream.url})
            response = httpx.get(url + "/delay/3000", timeout=10)
    finally:
        running.stop()
    assert response.status_code == 504 and "did not answer" in response.json()["error"]


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"GET http://elsewhere/ HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\n X-Folded: value\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nX: " + b"y" * 70_000 + b"\r\n\r\n", 431),
])
def test_ambiguous_or_malformed_requests_are_refused_and_the_connection_closed(
    router: RouterThread, request_bytes: bytes, status: int
) -> None:
    """Requests that could smuggle a second request, or that are malformed, get a 4xx/5xx naming
    the problem and the connection is closed; nothing reaches the upstream."""
    upstream = RawUpstream(ok())
    try:
        url = router.stage({"direct": upstream.url})
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as conn:
            conn.sendall(request_bytes)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
    finally:
        upstream.stop()
    assert data.startswith(b"HTTP/1.1 %d " % status) and b"Connection: close" in data
    assert upstream.heads == []


@given(st.binary(max_size=300))
def test_the_request_parser_never_fails_other_than_with_bad_request(head: bytes) -> None:
    """Any bytes as a request head are parsed or refused with BadRequest (an HTTP status), never
    another exception."""
    try:
        _, _, _, headers = parse_request_head(head)
        body_framing(headers)
    except BadRequest as err:
        assert 400 <= err.status < 600
