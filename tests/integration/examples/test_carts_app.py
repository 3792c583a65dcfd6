"""The example carts service, run as a real process on a free 127.0.0.1 port."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.carts import run_carts

APP = Path(__file__).resolve().parents[3] / "examples" / "sockshop" / "carts" / "app.py"

pytestmark = pytest.mark.slow

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(*args: str) -> Iterator[str]:
    with run_carts(*args) as url:
        yield url


@pytest.fixture
def fast() -> Iterator[str]:
    yield from _start("--app-version", "0.10.1")


@pytest.fixture
def slow() -> Iterator[str]:
    yield from _start("--app-version", "0.10.2", "--delay-ms", "1000")


def parse_exposition(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples of a Prometheus text exposition; fails on any line that is not valid."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}, line
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a valid sample line: {line!r}"
        name, labels, value = match.groups()
        base = re.sub(r"_(bucket|sum|count|total)$", "", name)
        assert name in types or base in types or f"{base}_total" in types, f"sample {name} has no # TYPE"
        samples[(name, frozenset(_LABEL.findall(labels or "")))] = float(value)
    return samples


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def test_health_version_and_info_page(fast: str) -> None:
    """/health, /version and the info page answer with the running version."""
    assert httpx.get(fast + "/health").json()["status"] == "UP"
    assert httpx.get(fast + "/version").json() == {"service": "carts", "version": "0.10.1"}
    page = httpx.get(fast + "/")
    assert page.headers["content-type"].startswith("text/html")
    assert "0.10.1" in page.text


def test_cart_items_round_trip(fast: str) -> None:
    """Items posted to a cart are listed by GET, other carts stay empty, bad bodies are 400."""
    assert httpx.get(fast + "/carts/7/items").json() == []
    created = httpx.post(fast + "/carts/7/items", json={"itemId": "sock", "quantity": 2})
    assert created.status_code == 201
    assert created.json()["itemId"] == "sock"
    assert [i["itemId"] for i in httpx.get(fast + "/carts/7/items").json()] == ["sock"]
    assert httpx.get(fast + "/carts/8/items").json() == []
    assert httpx.post(fast + "/carts/7/items", content=b"not json").status_code == 400
    assert httpx.delete(fast + "/carts/7").status_code == 202
    assert httpx.get(fast + "/carts/7/items").json() == []
    assert httpx.get(fast + "/nowhere").status_code == 404


def test_metrics_exposition_counts_requests_by_method_handler_status(fast: str) -> None:
    """/metrics is valid exposition with a request counter and a cumulative ms histogram per route."""
    for _ in range(3):
        httpx.get(fast + "/carts/1/items")
    httpx.post(fast + "/carts/1/items", json={"itemId": "x"})
    httpx.get(fast + "/nowhere")
    samples = parse_exposition(httpx.get(fast + "/metrics").text)
    get_items = _labels(method="GET", handler="/carts/{id}/items", status="200")
    assert samples[("http_requests_total", get_items)] == 3
    assert samples[("http_requests_total", _labels(method="POST", handler="/carts/{id}/items", status="201"))] == 1
    assert samples[("http_requests_total", _labels(method="GET", handler="unknown", status="404"))] == 1
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == "http_response_time_milliseconds_bucket" and labels - {("le", dict(labels)["le"])} == get_items
    )
    assert [le for le, _ in buckets] == [5, 10, 25, 50, 100, 250, 500, 750, 1000, 1500, 2000, 5000, float("inf")]
    counts = [value for _, value in buckets]
    assert counts == sorted(counts), "histogram buckets must be cumulative"
    assert counts[-1] == samples[("http_response_time_milliseconds_count", get_items)] == 3
    assert samples[("http_response_time_milliseconds_sum", get_items)] > 0


def test_delayed_build_answers_late_but_health_and_metrics_are_not_delayed(slow: str) -> None:
    """With --delay-ms 1000 each request takes at least 1 s by the app's own histogram; /health and /metrics are exempt."""
    assert httpx.get(slow + "/version", timeout=10).json()["version"] == "0.10.2"
    assert httpx.get(slow + "/carts/1/items", timeout=10).status_code == 200
    samples = parse_exposition(httpx.get(slow + "/metrics", timeout=10).text)
    version = _labels(method="GET", handler="/version", status="200")
    items = _labels(method="GET", handler="/carts/{id}/items", status="200")
    assert samples[("http_response_time_milliseconds_sum", version)] >= 1000
    assert samples[("http_response_time_milliseconds_sum", items)] >= 1000
    assert samples[("http_response_time_milliseconds_bucket", version | {("le", "750")})] == 0
    health = _labels(method="GET", handler="/health", status="200")
    health_count = samples[("http_response_time_milliseconds_count", health)]
    assert health_count >= 1
    assert samples[("http_response_time_milliseconds_bucket", health | {("le", "1000")})] == health_count
