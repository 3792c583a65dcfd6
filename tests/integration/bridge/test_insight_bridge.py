"""The bridge's ``/metrics`` (Prometheus text format) and the metrics on a service's page."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families
from tests.support.insight_world import make_world

from sluice.bridge.app import Bridge
from sluice.core.events import EventType


def scrape(bridge: Bridge) -> dict[str, dict]:
    body, status, headers = bridge.handle("GET", "/metrics", {}, {})
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode() if isinstance(body, bytes) else body
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict, family: str, sample: str, **labels: str) -> float:
    return next(s.value for s in families[family].samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_endpoint_exports_counters_and_histograms() -> None:
    """Deliveries by outcome, catches by reason, evaluations, lead time and stage durations,
    with Prometheus' naming conventions."""
    world = make_world()
    for tag in ("0.10.1", "0.10.2", "0.10.3"):
        world.deliver(tag)
    families = scrape(Bridge(world.records, lambda e: None))
    assert value(families, "sluice_deliveries", "sluice_deliveries_total", stage="staging", outcome="rolled_back",
                 project="sockshop", service="carts") == 1
    assert value(families, "sluice_deliveries", "sluice_deliveries_total", stage="production", outcome="promoted") == 2
    assert value(families, "sluice_gate_catches", "sluice_gate_catches_total", stage="staging", reason="evaluation_fail") == 1
    assert value(families, "sluice_evaluations", "sluice_evaluations_total", stage="staging", result="pass") == 2
    assert value(families, "sluice_lead_time_seconds", "sluice_lead_time_seconds_count", service="carts") == 2
    assert value(families, "sluice_lead_time_seconds", "sluice_lead_time_seconds_bucket", le="+Inf") == 2
    assert value(families, "sluice_stage_duration_seconds", "sluice_stage_duration_seconds_count", stage="dev") == 3
    assert value(families, "sluice_evaluation_score_ratio", "sluice_evaluation_score_ratio_count", stage="staging") == 3
    assert value(families, "sluice_evaluation_duration_seconds", "sluice_evaluation_duration_seconds_count", stage="staging") == 3
    assert families["sluice_deliveries"].type == "counter" and families["sluice_lead_time_seconds"].type == "histogram"


def test_sli_fetch_errors_by_provider() -> None:
    """Values a provider could not fetch are counted by provider."""
    world = make_world()
    world.deliver("0.10.1")
    world.records.set_project_setting("sockshop", "sli-provider", "nosuch")
    world.deliver("0.10.3")
    families = scrape(Bridge(world.records, lambda e: None))
    errors = [e for e in world.flow.seen if e.type is EventType.GET_SLI_DONE and e.data.sliProvider == "nosuch"]  # type: ignore[attr-defined]
    assert errors and value(families, "sluice_sli_fetch_errors", "sluice_sli_fetch_errors_total", provider="nosuch") >= 1


def test_service_page_shows_metrics_with_a_chart_each() -> None:
    """The service's page: deployments, lead time, time per stage, catch rate and evaluations,
    each with a number and an SVG chart."""
    world = make_world(start=datetime.now(UTC) - timedelta(hours=3))
    for tag in ("0.10.1", "0.10.2", "0.10.3"):
        world.deliver(tag)
    body, status, _ = Bridge(world.records, lambda e: None).handle("GET", "/project/sockshop/service/carts", {}, {})
    assert status == 200
    html = str(body)
    for key in ("deployment-frequency", "lead-time", "stage-time", "catch-rate-staging", "evaluations-staging"):
        card = re.search(rf'<figure class="metric" data-metric="{key}">(.*?)</figure>', html, re.S)
        assert card is not None, key
        assert "<svg" in card.group(1), key
    assert re.search(r'data-metric="catch-rate-staging">.*?33 %', html, re.S)


def test_other_functions_do_not_import_prometheus_client() -> None:
    """Cold start: the eventlog function (which feeds the metrics) never loads prometheus-client."""
    code = ("import sys, sluice.functions.eventlog as m, sluice.services.insight;"
            "print('prometheus_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
