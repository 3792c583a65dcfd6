"""The prometheus SLI provider against a stub of Prometheus' HTTP API on 127.0.0.1.

The stub answers ``/api/v1/query`` from a table (query → answer) and records each request, so
these tests pin the provider's reading of every result shape, its auth headers and its
redaction. The real server is exercised in ``tests/integration/adapters/prometheus/``.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sluice.adapters.sli.prometheus import (
    BUILTIN_QUERIES,
    PrometheusConnection,
    PrometheusSliProvider,
    builtin_query,
    job_name,
)
from sluice.core.sli_config import SliConfig
from sluice.errors import ConfigurationError
from sluice.ports.sli import SliQuery

TOKEN = "s3cr3t-t0ken-value"
PASSWORD = "pa55-w0rd-value"
START, END = "2026-01-01T10:00:00Z", "2026-01-01T10:01:00.500Z"


@dataclass
class Stub:
    """What the stub answers and what it saw."""

    url: str = ""
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)

    def vector(self, query: str, *values: str) -> None:
        result = [{"metric": {"i": str(i)}, "value": [1767261660.5, v]} for i, v in enumerate(values)]
        self.answers[query] = (200, {"status": "success", "data": {"resultType": "vector", "result": result}})


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            state.seen.append({"path": parts.path, "params": params, "headers": dict(self.headers)})
            status, body = state.answers.get(params.get("query", ""), (200, {"status": "success", "data": {"resultType": "vector", "result": []}}))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()
    server.server_close()


def query(*indicators: str, deployment: str = "canary", **filters: str) -> SliQuery:
    return SliQuery("sockshop", "staging", "carts", indicators, START, END, deployment=deployment, filters=filters)


def provider(stub: Stub, queries: dict[str, str] | None = None, **conn: Any) -> PrometheusSliProvider:
    return PrometheusSliProvider(PrometheusConnection(stub.url, **conn), queries or {}, timeout_s=5, retries=0)


def test_instant_query_at_end_over_the_window(stub: Stub) -> None:
    """One instant query per indicator at ``end``, the window (60.5 s) rounded down to whole seconds."""
    stub.vector('sum(m{job="carts-sockshop-staging"}[60s])', "42.5")
    values = provider(stub, {"x": 'sum(m{job="$SERVICE-$PROJECT-$STAGE"}[$DURATION_SECONDS])'}).fetch(query("x"))
    assert [v.to_dict() for v in values] == [{"metric": "x", "value": 42.5, "success": True, "message": ""}]
    params = stub.seen[0]["params"]
    assert stub.seen[0]["path"] == "/api/v1/query"
    assert params["time"] == "1767261660.500" and params["timeout"] == "5000ms"


def test_builtin_queries_scope_the_deployment_under_test() -> None:
    """Built-ins select the canary's job for canary, the plain job for primary and direct."""
    assert job_name("sockshop", "staging", "carts", "canary") == "carts-sockshop-staging-canary"
    assert job_name("sockshop", "staging", "carts", "primary") == "carts-sockshop-staging"
    assert job_name("sockshop", "dev", "carts", "direct") == "carts-sockshop-dev"
    assert 'job="$SERVICE-$PROJECT-$STAGE-canary"' in (builtin_query("response_time_p95", "canary") or "")
    assert 'job="$SERVICE-$PROJECT-$STAGE",' in (builtin_query("throughput", "direct") or "")
    assert set(BUILTIN_QUERIES) == {"throughput", "error_rate", "response_time_p50", "response_time_p90", "response_time_p95"}


def test_builtin_used_when_sli_yaml_lacks_the_indicator(stub: Stub) -> None:
    """Without an sli.yaml entry the built-in PromQL is sent, rendered for the deployment."""
    expected = (
        'histogram_quantile(0.95, sum by (le) (rate(http_response_time_milliseconds_bucket'
        '{job="carts-sockshop-staging-canary",handler!~"/health|/metrics"}[60s])))'
    )
    stub.vector(expected, "250")
    [value] = provider(stub).fetch(query("response_time_p95"))
    assert value.value == 250.0 and value.success


def test_sli_yaml_overrides_builtin(stub: Stub) -> None:
    """An sli.yaml query of a built-in's name replaces the built-in."""
    stub.vector("custom", "7")
    [value] = provider(stub, {"throughput": "custom"}).fetch(query("throughput"))
    assert value.value == 7.0


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        ([], "empty result"),
        (["NaN"], "NaN"),
        (["+Inf"], "+Inf"),
        (["1", "2"], "2 series instead of one"),
        (["abc"], "not a number"),
    ],
)
def test_unusable_results_fail_the_indicator(stub: Stub, answer: list[str], fragment: str) -> None:
    """Empty, NaN, Inf, several series and non-numbers give success False saying which and why."""
    stub.vector("q", *answer)
    [value] = provider(stub, {"x": "q"}).fetch(query("x"))
    assert value.success is False and value.value is None
    assert value.message.startswith("x: ") and fragment in value.message and "q" in value.message


def test_empty_error_rate_of_a_user_query_is_not_measured(stub: Stub) -> None:
    """An empty result for a user's own ``error_rate`` query (e.g. a misspelt metric) is "could not
    measure", never a silent 0 that passes its objective."""
    [value] = provider(stub, {"error_rate": "sum(rate(http_requets_total[1m]))"}).fetch(query("error_rate"))
    assert value.success is False and value.value is None
    assert "empty result" in value.message and "or vector(0)" in value.message


def test_empty_builtin_error_rate_is_not_measured(stub: Stub) -> None:
    """The built-in error_rate reads "no errors" inside PromQL (``or vector(0)`` on the errors,
    divided by the request count); an empty answer to it is "could not measure" too."""
    [value] = provider(stub).fetch(query("error_rate"))
    assert value.success is False and "empty result" in value.message


def test_builtin_error_rate_zero_errors_reads_zero(stub: Stub) -> None:
    """With requests counted and no errors, the built-in query itself answers 0: a measured 0."""
    rendered = (builtin_query("error_rate", "canary") or "").replace("$SERVICE-$PROJECT-$STAGE", "carts-sockshop-staging")
    stub.vector(rendered.replace("$DURATION_SECONDS", "60s"), "0")
    [value] = provider(stub).fetch(query("error_rate"))
    assert value.success and value.value == 0.0


def test_scalar_result_is_read(stub: Stub) -> None:
    """A scalar result (``[time, "value"]``) is read too."""
    stub.answers["s"] = (200, {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3.25"]}})
    [value] = provider(stub, {"x": "s"}).fetch(query("x"))
    assert value.value == 3.25


def test_api_errors_are_explained(stub: Stub) -> None:
    """A 400 bad_data and a 503 timeout from the API are reported with Prometheus' own reason."""
    stub.answers["bad"] = (400, {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unexpected"})
    stub.answers["slow"] = (503, {"status": "error", "errorType": "timeout", "error": "query timed out in query execution"})
    bad, slow = provider(stub, {"a": "bad", "b": "slow"}).fetch(query("a", "b"))
    assert not bad.success and "invalid (bad_data)" in bad.message and "parse error: unexpected" in bad.message
    assert not slow.success and "timed out" in slow.message


def test_unknown_indicator_names_the_builtins(stub: Stub) -> None:
    """An indicator with no query anywhere fails, listing the built-ins; the others still answer."""
    stub.vector("q", "1")
    nope, ok = provider(stub, {"ok": "q"}).fetch(query("nope", "ok"))
    assert not nope.success and "not in sli.yaml and not a built-in" in nope.message and "response_time_p95" in nope.message
    assert ok.success


def test_message_names_the_sli_yaml_level(stub: Stub) -> None:
    """A failing sli.yaml query's message says which level it came from."""
    config = SliConfig({"x": "q"}, {"x": "stage"})
    [value] = PrometheusSliProvider(PrometheusConnection(stub.url), config, retries=0).fetch(query("x"))
    assert "sli.yaml, stage level" in value.message


def test_hostile_filter_is_escaped_in_the_query_sent(stub: Stub) -> None:
    """A filter value that tries to close the string is sent escaped, inside its string."""
    provider(stub, {"x": 'sum(m{h="$handler"})'}).fetch(query("x", handler='"}) or vector(1) #'))
    assert stub.seen[0]["params"]["query"] == 'sum(m{h="\\"}) or vector(1) #"})'


def test_hostile_filter_outside_strings_is_rejected_without_a_request(stub: Stub) -> None:
    """A value that would change the query's shape fails its indicator and is never sent."""
    [value] = provider(stub, {"x": "sum by ($by) (m)"}).fetch(query("x", by="le) (m) or vector(1"))
    assert not value.success and "outside a string" in value.message
    assert stub.seen == []


def test_hostile_event_names_fail_every_indicator(stub: Stub) -> None:
    """A malformed service name (from the event) fails every indicator before any request."""
    bad = SliQuery("sockshop", "staging", 'carts"}', ("a", "b"), START, END)
    values = provider(stub, {"a": "q", "b": "q"}).fetch(bad)
    assert [v.success for v in values] == [False, False] and "service" in values[0].message
    assert stub.seen == []


@pytest.mark.parametrize(("start", "end"), [("yesterday", END), (START, "2026-01-01T09:00:00Z"), ("2026-01-01T10:00:00", END)])
def test_bad_window_fails_every_indicator(stub: Stub, start: str, end: str) -> None:
    """An unparseable, zone-less or reversed window fails each indicator with the reason."""
    values = provider(stub, {"a": "q"}).fetch(SliQuery("sockshop", "staging", "carts", ("a",), start, end))
    assert not values[0].success and "cannot be built" in values[0].message


def test_bearer_token_is_sent_and_never_shown(stub: Stub, caplog: pytest.LogCaptureFixture) -> None:
    """The bearer token reaches the server but no message, log line or repr."""
    caplog.set_level(logging.DEBUG)
    stub.answers["q"] = (400, {"status": "error", "errorType": "bad_data", "error": f"echo {TOKEN}"})
    p = provider(stub, {"x": "q", "y": "missing"}, bearer_token=TOKEN)
    values = p.fetch(query("x", "y"))
    assert stub.seen[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert all(not v.success for v in values)
    shown = " ".join(v.message for v in values) + caplog.text + repr(p) + repr(p.connection)
    assert TOKEN not in shown and "***" in shown


def test_basic_auth_is_sent_and_never_shown(stub: Stub, caplog: pytest.LogCaptureFixture) -> None:
    """Basic auth reaches the server; neither the password nor the encoded header is shown."""
    caplog.set_level(logging.DEBUG)
    header = base64.b64encode(f"me:{PASSWORD}".encode()).decode()
    stub.answers["q"] = (401, {"status": "error", "errorType": "unauthorized", "error": f"bad {header} {PASSWORD}"})
    [value] = provider(stub, {"x": "q"}, username="me", password=PASSWORD).fetch(query("x"))
    assert stub.seen[0]["headers"]["Authorization"] == f"Basic {header}"
    assert "rejected the credentials (HTTP 401)" in value.message
    shown = value.message + caplog.text
    assert PASSWORD not in shown and header not in shown


def test_connection_record_parsing() -> None:
    """The Secret-like record gives url, token or basic auth and TLS verification."""
    conn = PrometheusConnection.from_record({"url": "https://prom:9090/", "token": TOKEN, "insecure_skip_tls_verify": "true"})
    assert conn.url == "https://prom:9090" and conn.bearer_token == TOKEN and conn.verify_tls is False
    assert PrometheusConnection.from_record(None, default_url="http://127.0.0.1:9090").url == "http://127.0.0.1:9090"
    assert TOKEN not in repr(conn)


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ({"url": "http://p", "tokn": TOKEN}, "unknown key(s) tokn"),
        ({"url": "ftp://p"}, "expected http(s)"),
        ({"url": f"http://me:{PASSWORD}@p"}, "must not contain credentials"),
        ({"url": "http://p", "token": TOKEN, "user": "me", "password": PASSWORD}, "not both"),
        ({"url": "http://p", "insecure_skip_tls_verify": "maybe"}, "true or false"),
        ({}, "no url"),
    ],
)
def test_connection_record_errors_never_show_secrets(record: dict[str, str], fragment: str) -> None:
    """Invalid records are ConfigurationErrors naming the problem, never a secret's value."""
    with pytest.raises(ConfigurationError) as err:
        PrometheusConnection.from_record(record)
    assert fragment in str(err.value)
    assert TOKEN not in str(err.value) and PASSWORD not in str(err.value)


def test_unreachable_server_fails_each_indicator_once() -> None:
    """A refused connection fails every indicator with "unreachable", without raising."""
    p = PrometheusSliProvider(PrometheusConnection("http://127.0.0.1:9"), {"a": "q", "b": "q"}, timeout_s=2, retries=0)
    values = p.fetch(query("a", "b"))
    assert [v.success for v in values] == [False, False]
    assert all("unreachable" in v.message for v in values)
