"""The cloudwatch SLI provider: sli.yaml section parsing (pure) and get_metric_data against moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.support.motoserver import MotoServer

from sluice.adapters.secrets.memory import MemorySecrets
from sluice.adapters.sli.cloudwatch import CloudWatchSliProvider, default_period
from sluice.adapters.sli.cloudwatch.section import MetricQuery, merge_sections, parse_section, render
from sluice.adapters.state.memory import MemoryStore
from sluice.compose import sli_provider
from sluice.config import Settings
from sluice.core.events import Event, GetSli, GetSliDone
from sluice.errors import ValidationError
from sluice.ports.sli import SliQuery
from sluice.services.records import Records
from sluice.services.sli import SliService

START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
END = START + timedelta(minutes=5)

SECTION = {
    "cloudwatch": {
        "indicators": {
            "response_time_avg": {"namespace": "Sockshop", "metric": "ResponseTime",
                                  "dimensions": {"Service": "$SERVICE", "Stage": "$STAGE"}},
            "response_time_max": {"namespace": "Sockshop", "metric": "ResponseTime", "statistic": "Maximum",
                                  "dimensions": {"Service": "$SERVICE", "Stage": "$STAGE"}, "period": 60},
            "requests": {"namespace": "Sockshop", "metric": "Requests", "statistic": "Sum",
                         "dimensions": {"Service": "$SERVICE", "Stage": "$STAGE"}},
        },
    },
}


def query(*indicators: str, stage: str = "staging") -> SliQuery:
    return SliQuery("sockshop", stage, "carts", indicators, START.isoformat(), END.isoformat())


def put(moto: MotoServer, metric: str, values: list[float], stage: str = "staging") -> None:
    moto.client("cloudwatch").put_metric_data(Namespace="Sockshop", MetricData=[
        {"MetricName": metric, "Dimensions": [{"Name": "Service", "Value": "carts"}, {"Name": "Stage", "Value": stage}],
         "Timestamp": START + timedelta(seconds=30 + 40 * i), "Value": v} for i, v in enumerate(values)])


@pytest.fixture
def provider(moto: MotoServer) -> CloudWatchSliProvider:
    return CloudWatchSliProvider(parse_section(SECTION, "sli.yaml"), client=moto.client("cloudwatch"))


def test_average_maximum_and_sum_over_the_window(moto: MotoServer, provider: CloudWatchSliProvider) -> None:
    """Datapoints put in the window come back as their average, maximum and sum (placeholders filled in)."""
    put(moto, "ResponseTime", [100.0, 200.0, 600.0])
    put(moto, "Requests", [10.0, 20.0, 30.0])
    put(moto, "ResponseTime", [9999.0], stage="production")  # another dimension value: not counted
    avg, mx, total = provider.fetch(query("response_time_avg", "response_time_max", "requests"))
    assert (avg.success, avg.value) == (True, pytest.approx(300.0))
    assert (mx.success, mx.value) == (True, 600.0)
    assert (total.success, total.value) == (True, 60.0)


def test_no_datapoints_is_could_not_measure(provider: CloudWatchSliProvider) -> None:
    """An indicator with no datapoints in the window is success=False saying so, never a silent 0."""
    [value] = provider.fetch(query("response_time_avg"))
    assert value.success is False and value.value is None and "no datapoints" in value.message


def test_undefined_indicator_is_named(provider: CloudWatchSliProvider) -> None:
    """An indicator the cloudwatch section does not define fails alone, listing the defined ones."""
    values = provider.fetch(query("error_rate", "response_time_avg"))
    assert values[0].success is False and "response_time_avg" in values[0].message
    assert values[1].metric == "response_time_avg"


def test_unreachable_endpoint_fails_every_indicator_with_a_message() -> None:
    """When CloudWatch cannot be reached, each indicator is success=False with the reason; fetch does not raise."""
    import boto3
    from botocore.config import Config

    client = boto3.client("cloudwatch", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    values = CloudWatchSliProvider(parse_section(SECTION, "s"), client=client).fetch(query("response_time_avg", "requests"))
    assert [v.success for v in values] == [False, False]
    assert all("unreachable" in v.message for v in values)


def test_bad_window_fails_without_calling_aws() -> None:
    """A window whose end is not after its start gives success=False for each indicator."""
    bad = SliQuery("sockshop", "staging", "carts", ("requests",), END.isoformat(), START.isoformat())
    [value] = CloudWatchSliProvider(parse_section(SECTION, "s"), client=object()).fetch(bad)
    assert value.success is False and "window" in value.message


def test_section_errors_are_listed_together() -> None:
    """A section with a missing metric, a bad statistic and a bad period reports all three."""
    doc = {"cloudwatch": {"indicators": {"x": {"namespace": "N", "statistic": "Median", "period": 61}}}}
    with pytest.raises(ValidationError) as err:
        parse_section(doc, "sli.yaml")
    text = str(err.value)
    assert "x.metric" in text and "x.statistic" in text and "x.period" in text


def test_levels_merge_most_specific_wins() -> None:
    """The service level's query replaces the project level's for the same indicator; others stay."""
    project = {"cloudwatch": {"region": "eu-west-1", "indicators": {
        "a": {"namespace": "P", "metric": "A"}, "b": {"namespace": "P", "metric": "B"}}}}
    service = {"cloudwatch": {"indicators": {"a": {"namespace": "S", "metric": "A", "statistic": "p95"}}}}
    merged = merge_sections(project, None, service)
    assert merged.region == "eu-west-1"
    assert merged.indicators["a"] == MetricQuery("S", "A", {}, "p95") and merged.indicators["b"].namespace == "P"


def test_unknown_placeholder_is_refused() -> None:
    """A dimension value naming an unknown placeholder is refused, listing the known ones."""
    with pytest.raises(ValidationError, match=r"\$NOPE"):
        render("$NOPE", {"SERVICE": "carts"})
    assert render("$SERVICE-$STAGE", {"SERVICE": "carts", "STAGE": "dev"}) == "carts-dev"


def test_default_period_covers_the_window() -> None:
    """The default period is the window rounded up to whole minutes (at least 60 s)."""
    assert default_period(START, START + timedelta(seconds=61)) == 120
    assert default_period(START, START + timedelta(seconds=5)) == 60


def test_get_sli_event_through_the_sli_service(moto: MotoServer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A get-sli event for sliProvider cloudwatch is answered from the stored sli.yaml and moto's metrics."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)  # boto3's own chain, as on a cluster
    put(moto, "ResponseTime", [300.0, 500.0])
    records = Records(MemoryStore())
    import yaml

    records.put_resource("sockshop", "", "", "sli.yaml", yaml.safe_dump(SECTION))
    service = SliService(lambda name, request: sli_provider(Settings(), records, MemorySecrets, name, request.project,
                                                            request.stage, request.service),
                         lambda: END.isoformat(), "sluice/sli")
    request = GetSli(project="sockshop", stage="staging", service="carts", sliProvider="cloudwatch",
                     start=START.isoformat(), end=END.isoformat(), indicators=["response_time_avg", "error_rate"])
    [reply] = service.handle(Event.new(request, source="test", id="e1", time=END.isoformat()))
    assert isinstance(reply.data, GetSliDone)
    avg, missing = reply.data.indicatorValues
    assert avg["success"] is True and avg["value"] == pytest.approx(400.0)
    assert missing["success"] is False and "error_rate" in missing["message"]
