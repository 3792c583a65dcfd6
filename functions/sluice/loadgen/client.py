"""A lean HTTP/1.1 client connection on an ``asyncio.Protocol``: one request at a time, keep-alive.

Why our own and not aiohttp or httpx: a load generator spends its core on per-request overhead,
and a general client pays for tasks, futures, header objects and cookie handling on every
request. This one encodes each request of the mix once, writes it with one ``transport.write``,
and parses the answer inside ``data_received`` (status line, ``Content-Length``, chunked or
read-to-close bodies, ``Connection: close``), calling its owner back with no task or future in
between. That is what lets one core send half of what wrk sends (``bench/loadgen.py``).

It speaks only what a load test needs: no redirects (a 3xx is an answer), no decompression (the
body is counted, not read), no cookies, no proxies. It notes one header: ``x-sluice-slot``, by
which the weighted local router says which slot (``primary``, ``canary``, ``direct``) answered,
so a load on a stage's public address can be measured per slot (``Connection.slot``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

#: A response head larger than this is refused (the connection is closed as an error).
MAX_HEAD_BYTES = 64 * 1024

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_TRAILER, _TO_EOF = range(6)
#: The router's answer header naming the slot that answered (``sluice.embedded.router``).
SLOT_HEADER = b"\r\nx-sluice-slot:"
#: A slot name longer than this is not one (a hostile or broken upstream): not attributed.
MAX_SLOT_BYTES = 16


def encode_request(method: str, target: str, host: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """The bytes of one HTTP/1.1 request (keep-alive), sent as they are on every use.

    Raises ``ValueError`` for a header name or value that would break the request line
    (CR, LF) — a hostile header must not smuggle a second request.
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    given = {name.lower() for name in headers}
    if "user-agent" not in given:
        lines.append("User-Agent: sluice-loadgen")
    if "accept" not in given:
        lines.append("Accept: */*")
    for name, value in headers.items():
        if name.lower() in ("host", "content-length", "transfer-encoding"):
            continue
        lines.append(f"{name}: {value}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError(f"request header or target contains a line break: {line!r}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def _header(lower_head: bytes, name: bytes) -> bytes:
    """The value of the first header ``name`` (given as ``b"\\r\\nname:"``, lower case), or b""."""
    at = lower_head.find(name)
    if at < 0:
        return b""
    end = lower_head.find(b"\r\n", at + 2)
    return lower_head[at + len(name): end if end >= 0 else len(lower_head)].strip()


class Owner(Protocol):
    """What a connection reports to (the load engine)."""

    def answered(self, connection: Connection, status: int) -> None:
        """A whole response arrived for the request in flight."""

    def lost(self, connection: Connection, answered_nothing: bool) -> None:
        """The connection closed or broke with a request in flight (no complete answer).
        ``answered_nothing`` is True when not a byte of the answer had arrived."""

    def closed(self, connection: Connection) -> None:
        """The connection is gone (after ``answered``/``lost``, or while idle)."""


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; ``send`` one request, hear back through the owner."""

    __slots__ = (
        "_buf", "_chunked_left", "_close_after", "_head_only", "_left", "_state", "_status",
        "busy", "gone", "intended", "owner", "request", "sent_at", "served", "slot", "transport",
    )

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.gone = False
        self.served = 0
        self.request: Any = None  # what the owner sent (opaque here)
        self.intended = 0.0
        self.sent_at = 0.0
        self.slot = b""  # the x-sluice-slot of the last answer (b"": not said)
        self._buf = bytearray()
        self._state = _HEAD
        self._status = 0
        self._left = 0
        self._chunked_left = 0
        self._close_after = False
        self._head_only = False

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes, head_only: bool) -> None:
        """Write one request; the owner hears ``answered`` or ``lost`` exactly once for it."""
        self.busy = True
        self.slot = b""
        self._head_only = head_only
        self._state = _HEAD
        self._buf.clear()
        assert self.transport is not None
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            return  # bytes nobody asked for (a server talking out of turn): ignored
        buf = self._buf
        if not buf and self._state == _HEAD:
            # The common case, a whole answer with a Content-Length in one read: no copying.
            end = data.find(b"\r\n\r\n")
            if end > 0 and self._parse_head(data[:end]):
                if self._state == _LENGTH and len(data) - end - 4 == self._left:
                    self._complete()
                    return
                if self._state != _HEAD:
                    buf += data[end + 4:]
                    data = b""
                else:
                    buf += data  # an interim 1xx answer: parse again from the start
                    del buf[: end + 4]
                    data = b""
            elif end > 0:
                self._broken()
                return
        buf += data
        while self.busy:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        self._broken()
                    return
                if not self._parse_head(bytes(buf[:end])):
                    self._broken()
                    return
                del buf[: end + 4]
            elif state == _LENGTH:
                if len(buf) < self._left:
                    self._left -= len(buf)
                    buf.clear()
                    return
                del buf[: self._left]
                self._complete()
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                try:
                    size = int(bytes(buf[:end]).split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self._broken()
                    return
                del buf[: end + 2]
                if size == 0:
                    self._state = _CHUNK_TRAILER
                else:
                    self._chunked_left = size + 2  # the chunk and its CRLF
                    self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                if len(buf) < self._chunked_left:
                    self._chunked_left -= len(buf)
                    buf.clear()
                    return
                del buf[: self._chunked_left]
                self._state = _CHUNK_SIZE
            elif state == _CHUNK_TRAILER:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                del buf[: end + 2]
                if end == 0:
                    self._complete()
            else:  # _TO_EOF: the body ends when the server closes
                buf.clear()
                return

    def eof_received(self) -> bool | None:
        if self.busy and self._state == _TO_EOF:
            self._close_after = True
            self._complete()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.gone:
            return
        self.gone = True
        if self.busy:
            self.busy = False
            self.owner.lost(self, self._state == _HEAD and not self._buf)
        self.owner.closed(self)

    # -- helpers --------------------------------------------------------------------------
    def abort(self) -> None:
        """Drop the connection now; the request in flight (if any) is not reported."""
        self.busy = False
        if not self.gone:
            self.gone = True
            if self.transport is not None:
                self.transport.abort()
            self.owner.closed(self)

    def close(self) -> None:
        if self.transport is not None and not self.gone:
            self.transport.close()

    def _parse_head(self, head: bytes) -> bool:
        """Read the status line and the headers that frame the body; False when malformed."""
        if not head.startswith(b"HTTP/1.") or len(head) < 12:
            return False
        try:
            status = int(head[9:12])
        except ValueError:
            return False
        if 100 <= status < 200:
            return True  # an interim answer: the real one follows (state stays _HEAD)
        self._status = status
        lower = head.lower()
        slot = _header(lower, SLOT_HEADER) if SLOT_HEADER in lower else b""
        self.slot = slot if len(slot) <= MAX_SLOT_BYTES else b""
        connection = _header(lower, b"\r\nconnection:") if b"\r\nconnection:" in lower else b""
        self._close_after = b"close" in connection if connection else head[7:8] == b"0"
        if self._head_only or status in (204, 304):
            self._state, self._left = _LENGTH, 0
            return True
        if b"\r\ntransfer-encoding:" in lower and b"chunked" in _header(lower, b"\r\ntransfer-encoding:"):
            self._state = _CHUNK_SIZE
            return True
        length = _header(lower, b"\r\ncontent-length:")
        if length:
            try:
                self._left = int(length)
            except ValueError:
                return False
            if self._left < 0:
                return False
            self._state = _LENGTH
            return True
        self._state = _TO_EOF
        self._close_after = True
        return True

    def _complete(self) -> None:
        self.busy = False
        self.served += 1
        self._state = _HEAD
        close = self._close_after
        if close:
            self.gone = True
            if self.transport is not None:
                self.transport.close()
        self.owner.answered(self, self._status)
        if close:
            self.owner.closed(self)

    def _broken(self) -> None:
        self.busy = False
        if not self.gone:
            self.gone = True
            if self.transport is not None:
                self.transport.abort()
            self.owner.lost(self, False)
            self.owner.closed(self)
