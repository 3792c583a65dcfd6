"""The load generator's HTTP/1.1 response parser, fed generated answers split at any point and hostile bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.loadgen.client import MAX_HEAD_BYTES, Connection, encode_request


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


class Owner:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def answered(self, connection: Connection, status: int) -> None:
        self.events.append(("answered", status))

    def lost(self, connection: Connection, answered_nothing: bool) -> None:
        self.events.append(("lost", answered_nothing))

    def closed(self, connection: Connection) -> None:
        self.events.append(("closed", None))


def connected(owner: Owner) -> tuple[Connection, FakeTransport]:
    connection = Connection(owner)
    transport = FakeTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    return connection, transport


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, int, bool, bool]:
    """(the bytes of one answer, its status, whether the connection must close, framed by EOF)."""
    status = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 500, 503]))
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "eof"]))
    close = draw(st.booleans())
    interim = draw(st.booleans())
    headers = [f"X-Noise-{i}: {v}" for i, v in enumerate(draw(st.lists(st.text("abc ;:=", max_size=12), max_size=3)))]
    if close:
        headers.append(draw(st.sampled_from(["Connection: close", "connection:close", "CONNECTION:  Close"])))
    no_body = status in (204, 304)
    if no_body:
        payload = b""
    elif framing == "length":
        headers.append(draw(st.sampled_from(["Content-Length", "content-length", "CONTENT-LENGTH"])) + f": {len(body)}")
        payload = body
    elif framing == "chunked":
        headers.append("Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if b > a]
        payload = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\nTrailer: x\r\n\r\n"
    else:
        payload = body
    head = f"HTTP/1.1 {status} Whatever\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    prefix = b"HTTP/1.1 100 Continue\r\n\r\n" if interim else b""
    eof = framing == "eof" and not no_body
    return prefix + head.encode() + payload, status, close or eof, eof


@given(answer=responses(), cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=6))
def test_any_answer_split_anywhere_is_heard_once(answer: tuple[bytes, int, bool, bool], cuts: list[int]) -> None:
    """However an answer is split across reads, the owner hears exactly one ``answered`` with its
    status; the connection closes exactly when the answer says so (or is framed by the close)."""
    data, status, must_close, eof = answer
    owner = Owner()
    connection, transport = connected(owner)
    connection.send(b"GET / HTTP/1.1\r\n\r\n", head_only=False)
    points = sorted({min(c, len(data)) for c in cuts})
    for a, b in zip([0, *points], [*points, len(data)], strict=True):
        if b > a:
            connection.data_received(data[a:b])
    if eof:
        assert owner.events == []
        connection.eof_received()
    assert owner.events[0] == ("answered", status)
    assert owner.events[1:] == ([("closed", None)] if must_close else [])
    assert transport.closed is must_close and not transport.aborted
    connection.connection_lost(None)  # the close arriving afterwards reports no second answer
    assert [e for e in owner.events if e[0] != "closed"] == [("answered", status)]
    assert owner.events.count(("closed", None)) == 1


@given(garbage=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=4))
def test_hostile_bytes_never_raise_and_report_at_most_once(garbage: bytes, cuts: list[int]) -> None:
    """Arbitrary bytes from a server never raise; the request is reported at most once, then the
    close reports nothing more."""
    owner = Owner()
    connection, _ = connected(owner)
    connection.send(b"GET / HTTP/1.1\r\n\r\n", head_only=False)
    points = sorted({min(c, len(garbage)) for c in cuts})
    for a, b in zip([0, *points], [*points, len(garbage)], strict=True):
        if b > a:
            connection.data_received(garbage[a:b])
    connection.connection_lost(None)
    reports = [e for e in owner.events if e[0] in ("answered", "lost")]
    assert len(reports) == 1
    assert owner.events.count(("closed", None)) == 1


def test_an_endless_head_is_refused() -> None:
    """A head that never ends is cut off past MAX_HEAD_BYTES as a broken connection."""
    owner = Owner()
    connection, transport = connected(owner)
    connection.send(b"GET / HTTP/1.1\r\n\r\n", head_only=False)
    connection.data_received(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEAD_BYTES // 6 + 1))
    assert owner.events == [("lost", False), ("closed", None)] and transport.aborted


def test_a_head_request_has_no_body() -> None:
    """The answer to HEAD ends with its head even when it announces a Content-Length."""
    owner = Owner()
    connection, _ = connected(owner)
    connection.send(b"HEAD / HTTP/1.1\r\n\r\n", head_only=True)
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n")
    assert owner.events == [("answered", 200)]


def test_a_close_before_any_byte_says_nothing_was_answered() -> None:
    """A connection that closes before answering reports the request lost with nothing answered."""
    owner = Owner()
    connection, _ = connected(owner)
    connection.send(b"GET / HTTP/1.1\r\n\r\n", head_only=False)
    connection.connection_lost(ConnectionResetError())
    assert owner.events == [("lost", True), ("closed", None)]


def test_requests_are_encoded_once_with_their_framing() -> None:
    """A request carries Host, its headers and a Content-Length for its body."""
    data = encode_request("POST", "/a?b=1", "example:8080", {"X-Key": "v"}, b"{}")
    assert data == (b"POST /a?b=1 HTTP/1.1\r\nHost: example:8080\r\nUser-Agent: sluice-loadgen\r\n"
                    b"Accept: */*\r\nX-Key: v\r\nContent-Length: 2\r\n\r\n{}")


@pytest.mark.parametrize("headers", [{"X-A": "b\r\nGET /evil HTTP/1.1"}, {"X-A\nB": "c"}])
def test_header_injection_is_refused(headers: dict[str, str]) -> None:
    """A header that would smuggle a second request is refused before anything is sent."""
    with pytest.raises(ValueError, match="line break"):
        encode_request("GET", "/", "h", headers, None)
