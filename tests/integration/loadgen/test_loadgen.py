"""The load generator against a real local target server (127.0.0.1, free port)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from tests.support.httptarget import Reply, TargetServer, default_handler

from sluice.loadgen import LoadProfile, LoadRequest, Mode, run_load_sync


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


def test_constant_rate_sends_the_planned_requests(target: TargetServer) -> None:
    """An open-loop run sends rate × duration requests and reports a full, consistent report."""
    report = run_load_sync(target.url, LoadProfile((LoadRequest("/"),), duration_s=1.0, rate=50))
    assert report.requests == 50 == target.requests
    assert report.errors == 0 and report.error_rate == 0.0
    assert report.statuses == {200: 50}
    for value in (report.response_time_p50, report.response_time_p90, report.response_time_p95,
                  report.response_time_p99, report.response_time_avg):
        assert value is not None and value > 0
    assert report.response_time_p50 <= report.response_time_p95 <= report.response_time_p99  # type: ignore[operator]
    start, end = datetime.fromisoformat(report.start), datetime.fromisoformat(report.end)
    assert report.start.endswith("Z") and start < end
    assert set(report.measurements()) == {
        "throughput", "error_rate", "response_time_avg", "response_time_p50", "response_time_p90",
        "response_time_p95", "response_time_p99",
    }


def test_errors_are_counted_by_status(target: TargetServer) -> None:
    """Answers of 4xx/5xx, or other than a request's expected status, count as errors."""
    profile = LoadProfile(
        (LoadRequest("/status/503", weight=1), LoadRequest("/", weight=1, expected_status=201)),
        duration_s=0.5, rate=40,
    )
    report = run_load_sync(target.url, profile, seed=1)
    assert report.requests == 20
    assert report.errors == 20 and report.error_rate == 1.0
    assert report.error_kinds.keys() <= {"status 503", "status 200"}


def test_request_mix_follows_weights(target: TargetServer) -> None:
    """Requests are drawn from the mix in proportion to their weights."""
    seen: list[str] = []

    def handler(method: str, path: str, body: bytes) -> Reply:
        seen.append(path)
        return Reply(200, b"ok")

    with TargetServer(handler) as server:
        run_load_sync(server.url, LoadProfile((LoadRequest("/a", weight=9), LoadRequest("/b", weight=1)),
                                              duration_s=1.0, rate=400), seed=7)
    share = seen.count("/a") / len(seen)
    assert 0.8 < share < 0.97


def test_latency_counts_from_the_intended_send_time() -> None:
    """When the target stalls, requests that were due during the stall report their waiting time
    too (no coordinated omission): with one connection, requests 2..7 wait behind a 300 ms answer."""
    calls = 0

    def handler(method: str, path: str, body: bytes) -> Reply:
        nonlocal calls
        calls += 1
        return Reply(200, b"ok", delay_s=0.3 if calls == 1 else 0.0)

    with TargetServer(handler) as server:
        profile = LoadProfile((LoadRequest("/"),), duration_s=0.5, rate=20, max_connections=1)
        report = run_load_sync(server.url, profile)
    assert report.requests == 10 and report.dropped == 0
    # Requests due at 50..250 ms were sent at ~300 ms: measured from their intended times they
    # took 250..50 ms, so the median is far above the target's ~1 ms service time (measured from
    # the actual send it would be ~1 ms).
    assert report.response_time_p50 is not None and report.response_time_p50 > 30


def test_virtual_users_are_closed_loop(target: TargetServer) -> None:
    """Virtual users each wait for their answer: two users against a 100 ms route send about 2 per 100 ms."""
    profile = LoadProfile((LoadRequest("/delay/100"),), duration_s=1.0, mode=Mode.VIRTUAL_USERS, vus=2)
    report = run_load_sync(target.url, profile)
    assert 4 <= report.requests <= 22  # at most 2 users × 1 s / 100 ms (+ the last in flight)
    assert report.target_rate is None
    assert report.response_time_p50 is not None and report.response_time_p50 >= 100


def test_timeouts_are_errors_with_their_waiting_time(target: TargetServer) -> None:
    """A request that outlives its timeout is an error of kind timeout, its latency at least the timeout."""
    profile = LoadProfile((LoadRequest("/delay/3000"),), duration_s=0.2, rate=10, timeout_s=0.3)
    report = run_load_sync(target.url, profile)
    assert report.requests == 2 and report.error_kinds == {"timeout": 2}
    assert report.response_time_p50 is not None and report.response_time_p50 >= 300


def test_refused_connections_are_errors_without_latency() -> None:
    """Nothing listening: every request is a connection error and no latency is reported."""
    with TargetServer() as server:
        url = server.url
    report = run_load_sync(url, LoadProfile((LoadRequest("/"),), duration_s=0.2, rate=20))
    assert report.requests == 4 and report.error_rate == 1.0
    assert report.error_kinds == {"connection": 4}
    assert report.response_time_p95 is None
    assert "response_time_p95" not in report.measurements()


def test_hard_limit_cancels_what_is_still_running(target: TargetServer) -> None:
    """The hard limit stops the run: requests still waiting are cancelled and counted as errors."""
    profile = LoadProfile((LoadRequest("/delay/5000"),), duration_s=0.3, rate=10, timeout_s=10)
    report = run_load_sync(target.url, profile, hard_limit_s=0.6)
    assert report.requests == 3
    assert report.error_kinds == {"cancelled": 3}


def test_progress_is_reported_and_ends_complete(target: TargetServer) -> None:
    """The progress callback is called during the run and last with every request finished."""
    calls: list[tuple[int, int | None]] = []
    run_load_sync(target.url, LoadProfile((LoadRequest("/"),), duration_s=0.6, rate=20),
                  on_progress=lambda done, total, _elapsed: calls.append((done, total)))
    assert len(calls) >= 2
    assert calls[-1] == (12, 12)


def test_max_requests_bounds_the_run(target: TargetServer) -> None:
    """max_requests caps the number of requests below rate × duration."""
    report = run_load_sync(target.url, LoadProfile((LoadRequest("/"),), duration_s=1.0, rate=100, max_requests=7))
    assert report.requests == 7


def test_post_bodies_and_headers_reach_the_target() -> None:
    """A request's method, body and headers are sent as declared."""
    bodies: list[tuple[str, bytes]] = []

    def handler(method: str, path: str, body: bytes) -> Reply:
        bodies.append((method, body))
        return default_handler(method, path, body)

    with TargetServer(handler) as server:
        request = LoadRequest("/echo", method="POST", body=b'{"a":1}', headers={"Content-Type": "application/json"})
        report = run_load_sync(server.url, LoadProfile((request,), duration_s=0.1, rate=20))
    assert report.errors == 0
    assert bodies == [("POST", b'{"a":1}'), ("POST", b'{"a":1}')]


def test_invalid_profiles_and_urls_are_refused() -> None:
    """A profile without requests, or a URL without a scheme, is refused before anything is sent."""
    with pytest.raises(ValueError, match="at least one request"):
        LoadProfile((), duration_s=1)
    with pytest.raises(ValueError, match="rate"):
        LoadProfile((LoadRequest("/"),), duration_s=1, rate=0)
    with pytest.raises(ValueError, match="http://"):
        run_load_sync("127.0.0.1:80", LoadProfile((LoadRequest("/"),), duration_s=1))


def test_saturated_open_loop_stays_bounded_and_reports_dropped() -> None:
    """When every connection stays busy, due requests wait (latency from the intended time) and
    what is still unsent when sending ends is reported as dropped, not silently skipped."""
    with TargetServer() as server:
        profile = LoadProfile((LoadRequest("/delay/2000"),), duration_s=0.5, rate=40, max_connections=4, timeout_s=5)
        report = run_load_sync(server.url, profile)
    assert report.requests == 4 and report.dropped == 16
    assert report.errors == 0
    assert report.to_dict()["dropped"] == 16


def test_a_run_spread_over_processes_merges_every_measurement(target: TargetServer) -> None:
    """Two worker processes share one schedule: together they send exactly the planned requests,
    and the merged report counts each answer once (statuses, histogram, progress)."""
    calls: list[tuple[int, int | None]] = []
    profile = LoadProfile((LoadRequest("/", weight=3), LoadRequest("/status/503", weight=1)),
                          duration_s=0.5, rate=200, workers=2)
    report = run_load_sync(target.url, profile, seed=3,
                           on_progress=lambda done, total, _elapsed: calls.append((done, total)))
    assert report.workers == 2
    assert report.requests == 100 == target.requests and report.dropped == 0
    assert sum(report.statuses.values()) == 100 and set(report.statuses) == {200, 503}
    assert report.errors == report.statuses[503] == report.error_kinds["status 503"]
    assert sum(count for _, count in report.latency_histogram_us) == 100  # every latency, merged once
    assert calls[-1] == (100, 100)


class _RawServer:
    """A 127.0.0.1 server answering each request with ``reply`` and then, if ``close``, closing;
    with ``one_per_connection`` it answers one request per connection and drops the connection
    (unanswered) when a second request arrives on it."""

    def __init__(self, reply: bytes, close: bool, one_per_connection: bool = False) -> None:
        import socket
        import threading

        self.reply, self.close, self.accepted = reply, close, 0
        self.one_per_connection = one_per_connection
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.talk, args=(conn,), daemon=True).start()

    def talk(self, conn: object) -> None:
        import socket

        assert isinstance(conn, socket.socket)
        with conn:
            data, answered = b"", False
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
                while b"\r\n\r\n" in data:
                    _, data = data.split(b"\r\n\r\n", 1)
                    if self.one_per_connection and answered:
                        return
                    conn.sendall(self.reply)
                    answered = True
                    if self.close:
                        return

    def stop(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\n\r\nbody until the close",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
])
def test_answers_framed_by_a_close_or_chunks_are_counted(reply: bytes) -> None:
    """Answers that close the connection, end at the close, or come in chunks are each one answer."""
    server = _RawServer(reply, close=b"Connection: close" in reply or b"HTTP/1.0" in reply)
    try:
        report = run_load_sync(server.url, LoadProfile((LoadRequest("/"),), duration_s=0.5, rate=40,
                                                       mode=Mode.CONSTANT_ARRIVAL_RATE))
    finally:
        server.stop()
    assert report.requests == 20 and report.errors == 0 and report.statuses == {200: 20}


def test_a_kept_alive_connection_closed_by_the_server_is_not_an_error() -> None:
    """A server that drops a kept-alive connection when the next request arrives on it, unanswered
    (as servers do with connections they had timed out): the request is sent again on a new
    connection, not counted as an error."""
    server = _RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close=False, one_per_connection=True)
    try:
        report = run_load_sync(server.url, LoadProfile((LoadRequest("/"),), duration_s=0.5, rate=20))
    finally:
        server.stop()
    assert report.requests == 10 and report.errors == 0 and report.statuses == {200: 10}
    assert server.accepted >= 10


def test_virtual_users_stop_at_max_requests(target: TargetServer) -> None:
    """max_requests caps a closed loop too: users stop once that many requests were sent."""
    profile = LoadProfile((LoadRequest("/"),), duration_s=5.0, mode=Mode.VIRTUAL_USERS, vus=3, max_requests=7)
    report = run_load_sync(target.url, profile)
    assert report.requests == 7 == target.requests
