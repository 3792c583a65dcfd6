"""The dynatrace SLI provider against a fake tenant (a real local HTTP server built from the
documented Metrics API v2 shapes; no Dynatrace is reachable from here)."""

from __future__ import annotations

import logging
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.fake_dynatrace import FakeDynatrace

from sluice.adapters.secrets.memory import MemorySecrets
from sluice.adapters.sli.dynatrace import DynatraceSliProvider, connection_record, secret_name
from sluice.adapters.sli.dynatrace.query import escape_value, parse_query, render_selector
from sluice.adapters.state.memory import MemoryStore
from sluice.compose import sli_provider
from sluice.config import Settings
from sluice.core.deployment import Slot
from sluice.core.events import Event, GetSli
from sluice.core.sli_config import SliConfig
from sluice.errors import ConfigurationError, ValidationError
from sluice.ports.sli import SliQuery
from sluice.services.records import Records
from sluice.services.sli import SliService
from sluice.services.sli_config import store_connection

START, END = "2026-12-01T10:00:00+00:00", "2026-12-01T10:10:00+00:00"
P95 = 'builtin:service.response.time:merge("dt.entity.service"):percentile(95)'
ENTITY = "type(SERVICE),tag(keptn_project:$PROJECT),tag(keptn_stage:$STAGE),tag(keptn_service:$SERVICE),tag(keptn_deployment:$DEPLOYMENT)"
ENTITY_CARTS = "type(SERVICE),tag(keptn_project:sockshop),tag(keptn_stage:staging),tag(keptn_service:carts),tag(keptn_deployment:canary)"
QUERIES = SliConfig({
    "response_time_p95": f"MV2;MicroSecond;metricSelector={P95}&entitySelector={ENTITY}",
    "throughput": "metricSelector=builtin:service.requestCount.total:merge(\"dt.entity.service\"):sum&entitySelector=tag(keptn_service:$SERVICE)",
    "failures": "metricSelector=builtin:service.errors.total.rate:avg&entitySelector=tag(team:$team)",
})


def _query(*names: str, **filters: str) -> SliQuery:
    return SliQuery("sockshop", "staging", "carts", names, START, END, "canary", filters)


@pytest.fixture
def fake():  # type: ignore[no-untyped-def]
    with FakeDynatrace() as server:
        yield server


def _provider(fake: FakeDynatrace, token: str = "", timeout_s: float = 10.0) -> DynatraceSliProvider:
    return DynatraceSliProvider(fake.url, token or fake.token, QUERIES, timeout_s=timeout_s)


def test_measures_with_the_documented_request(fake, caplog) -> None:  # type: ignore[no-untyped-def]
    """One value: selectors with placeholders filled, the window in ms, resolution Inf, the
    Api-Token header; MV2;MicroSecond gives milliseconds; the token is never logged."""
    caplog.set_level(logging.DEBUG)
    fake.series[(P95, ENTITY_CARTS)] = [[245000.0]]
    [value] = _provider(fake).fetch(_query("response_time_p95"))
    assert value.success and value.value == pytest.approx(245.0)
    [request] = fake.requests
    assert request["params"] == {"metricSelector": P95, "entitySelector": ENTITY_CARTS, "from": "1796119200000",
                                 "to": "1796119800000", "resolution": "Inf"}
    assert request["headers"]["authorization"] == f"Api-Token {fake.token}"
    assert fake.token not in caplog.text


def test_paging_follows_next_page_key(fake) -> None:  # type: ignore[no-untyped-def]
    """Series spread over pages are all read; later pages send nextPageKey alone."""
    fake.page_size = 1
    selector = 'builtin:service.requestCount.total:merge("dt.entity.service"):sum'
    fake.series[(selector, "tag(keptn_service:carts)")] = [[None], [None], [42.0]]
    [value] = _provider(fake).fetch(_query("throughput"))
    assert value.success and value.value == 42.0
    assert len(fake.requests) == 3
    assert all(set(r["params"]) == {"nextPageKey"} for r in fake.requests[1:])


@pytest.mark.parametrize("series, reason", [
    ([], "no data"),
    ([[None, None]], "no data"),
    ([[1.0], [2.0]], "2 series"),
])
def test_empty_or_ambiguous_answers_are_not_measured(fake, series, reason) -> None:  # type: ignore[no-untyped-def]
    """No series, only nulls, or several series → could not measure, saying why (never 0)."""
    fake.series[(P95, ENTITY_CARTS)] = series
    [value] = _provider(fake).fetch(_query("response_time_p95"))
    assert not value.success and value.value is None and reason in value.message and "response_time_p95" in value.message


def test_failures_are_reported_per_indicator(fake) -> None:  # type: ignore[no-untyped-def]
    """A refused token, a Dynatrace error, an unknown indicator: each indicator says why; the
    token never appears in a message."""
    fake.series[(P95, ENTITY_CARTS)] = [[1000.0]]
    values = _provider(fake, token="dt0c01.WRONG.SECRET").fetch(_query("response_time_p95", "nosuch"))
    assert [v.success for v in values] == [False, False]
    assert "HTTP 401" in values[0].message and "WRONG" not in values[0].message
    assert "no query in dynatrace/sli.yaml" in values[1].message and "throughput" in values[1].message
    fake.fail[P95] = (400, "The metric selector is invalid: unknown transformation")
    [value] = _provider(fake).fetch(_query("response_time_p95"))
    assert not value.success and "HTTP 400" in value.message and "unknown transformation" in value.message


def test_timeout_and_unreachable_are_not_measured(fake) -> None:  # type: ignore[no-untyped-def]
    """A tenant slower than the timeout, or not listening: could not measure, with the reason."""
    fake.series[(P95, ENTITY_CARTS)] = [[1000.0]]
    fake.delay_s = 2.0
    [value] = _provider(fake, timeout_s=0.3).fetch(_query("response_time_p95"))
    assert not value.success and "did not answer within 0.3 s" in value.message
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    [value] = DynatraceSliProvider(f"http://127.0.0.1:{port}", "t", QUERIES).fetch(_query("throughput"))
    assert not value.success and "unreachable" in value.message


def test_filter_values_are_escaped(fake) -> None:  # type: ignore[no-untyped-def]
    """An SLO filter value cannot close the tag or add a condition: it is sent escaped."""
    fake.series[("builtin:service.errors.total.rate:avg", "tag(team:a~)~,tag~(x~:y~))")] = [[0.5]]
    [value] = _provider(fake).fetch(_query("failures", team="a),tag(x:y)"))
    assert value.success and value.value == 0.5


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "~":
            assert text[i + 1] in '~"(),:'
            out.append(text[i + 1])
            i += 2
        else:
            assert text[i] not in '~"(),:', text
            out.append(text[i])
            i += 1
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters="\x7f"), max_size=30))
def test_escaping_keeps_any_value_inside_its_tag(value: str) -> None:
    """Whatever the value, the rendered tag holds it whole: every special character escaped."""
    rendered = render_selector("tag(team:$team)", {"team": value})
    assert rendered.startswith("tag(team:") and rendered.endswith(")")
    assert _unescape(rendered[len("tag(team:"):-1]) == value
    assert escape_value(value) == rendered[len("tag(team:"):-1]


@pytest.mark.parametrize("value", ["a\nb", "x\x00", "\x7f", "tab\there"])
def test_control_characters_are_refused(value: str) -> None:
    """A value with control characters is refused rather than sent."""
    with pytest.raises(ValidationError, match="control characters"):
        render_selector("tag(team:$team)", {"team": value})


@pytest.mark.parametrize("text, problem", [
    ("builtin:service.response.time:avg?scope=tag(keptn_service:$SERVICE)", "Timeseries API v1"),
    ("metricSelector=a&from=now-1h", "Sluice sets from"),
    ("entitySelector=type(SERVICE)", "metricSelector=… is missing"),
    ("MV2;Parsec;metricSelector=a", "MV2 unit"),
])
def test_bad_queries_are_refused(text, problem) -> None:  # type: ignore[no-untyped-def]
    """A query that is not metricSelector=…[&entitySelector=…] is refused, naming the problem."""
    with pytest.raises(ValidationError, match=problem.replace("?", r"\?")):
        parse_query(text, "q")


def test_get_sli_with_the_secret_store(fake) -> None:  # type: ignore[no-untyped-def]
    """get-sli with sliProvider dynatrace: tenant and token from the secret store, queries from
    dynatrace/sli.yaml; without the secret every indicator says which command sets it."""
    records, secrets = Records(MemoryStore()), MemorySecrets()
    records.create_project("sockshop", "stages: [{name: staging}]", {"stages": [{"name": "staging"}]})
    records.put_resource("sockshop", "staging", "carts", "dynatrace/sli.yaml",
                         f"indicators:\n  response_time_p95: 'MV2;MicroSecond;metricSelector={P95}&entitySelector={ENTITY}'\n")
    fake.series[(P95, ENTITY_CARTS)] = [[120000.0]]
    request = GetSli(project="sockshop", stage="staging", service="carts", sliProvider="dynatrace", start=START,
                     end=END, indicators=["response_time_p95"], deployment=Slot.CANARY)
    service = SliService(lambda name, req: sli_provider(Settings(), records, lambda: secrets, name, req.project,
                                                        req.stage, req.service), lambda: END, "test")
    event = Event.new(request, source="test", id="e1", time=START)

    [done] = service.handle(event)
    [value] = done.data.indicatorValues
    assert not value["success"] and "sluice set dynatrace --project sockshop" in value["message"]

    store_connection(records, secrets, "sockshop", connection_record("sockshop", fake.url + "/", fake.token))
    assert secrets.get(secret_name("sockshop")) == {"tenant": fake.url, "token": fake.token}
    [done] = service.handle(event)
    assert done.data.indicatorValues[0]["value"] == pytest.approx(120.0)
    assert fake.token not in str(done.to_json_dict())
    with pytest.raises(ConfigurationError):
        connection_record("sockshop", "ftp://tenant", fake.token)
