"""The ``cloudwatch`` SLI provider: metric statistics over the test window via boto3 ``get_metric_data``.

The indicators are defined in the ``cloudwatch`` section of ``sli.yaml``
(:mod:`sluice.core.cloudwatch_sli`). All requested indicators go into one ``get_metric_data``
call (paged by ``NextToken``) over [start, end] of the window; each yields the datapoints of its
period(s), combined into one value (its ``aggregate``).

Outcomes per indicator: datapoints → the value. No datapoints, an indicator the section does not
define, a bad placeholder, a query CloudWatch answers with an error status, an unreachable
endpoint, missing credentials or a refused call → ``success=False`` with a message naming the
indicator and the reason. ``fetch`` never raises for these.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sluice.adapters._aws import aws_call
from sluice.core.cloudwatch_sli import CloudWatchConfig, MetricQuery, combine, render
from sluice.core.sli_config import duration_placeholder, placeholder_values
from sluice.errors import SluiceError, ValidationError
from sluice.ports.sli import SliQuery, SliValue

log = logging.getLogger(__name__)

#: get_metric_data takes at most 500 queries per call.
MAX_QUERIES = 500


def default_period(start: datetime, end: datetime) -> int:
    """The window in seconds rounded up to a multiple of 60 (one datapoint for the whole window)."""
    return max(60, math.ceil((end - start).total_seconds() / 60) * 60)


class CloudWatchSliProvider:
    """``SliProvider`` over CloudWatch metrics. ``config``: the merged ``cloudwatch`` section;
    ``client``: a boto3 CloudWatch client (tests), else one is built for the section's region
    (or ``region_name``) and ``endpoint_url``, with boto3's credential chain."""

    def __init__(
        self,
        config: CloudWatchConfig,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        self.config = config
        self._client = client
        self._endpoint_url = endpoint_url
        self._region = config.region or region_name or None

    def _cloudwatch(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("cloudwatch", region_name=self._region, endpoint_url=self._endpoint_url)
        return self._client

    def fetch(self, query: SliQuery) -> Sequence[SliValue]:
        """One value per requested indicator, in order (see the module's outcomes)."""
        try:
            start = datetime.fromisoformat(query.start)
            end = datetime.fromisoformat(query.end)
            values = placeholder_values(query.project, query.stage, query.service, query.deployment,
                                        duration_placeholder(start.timestamp(), end.timestamp()), query.filters)
        except (ValueError, ValidationError) as err:
            return [SliValue(n, None, False, f"{n}: cannot query CloudWatch for this window: {err}") for n in query.indicators]
        failed: dict[str, str] = {}
        requests: dict[str, tuple[str, MetricQuery, dict[str, Any]]] = {}
        for i, name in enumerate(query.indicators):
            spec = self.config.indicators.get(name)
            if spec is None:
                known = ", ".join(sorted(self.config.indicators)) or "none"
                failed[name] = f"{name}: no CloudWatch query in the cloudwatch section of sli.yaml (defined: {known})"
                continue
            try:
                dims = [{"Name": k, "Value": render(v, values)} for k, v in spec.dimensions.items()]
            except ValidationError as err:
                failed[name] = f"{name}: {err}"
                continue
            stat: dict[str, Any] = {
                "Metric": {"Namespace": spec.namespace, "MetricName": spec.metric, "Dimensions": dims},
                "Period": spec.period or default_period(start, end),
                "Stat": spec.statistic,
            }
            if spec.unit:
                stat["Unit"] = spec.unit
            requests[f"q{i}"] = (name, spec, {"Id": f"q{i}", "MetricStat": stat, "ReturnData": True})
        results: dict[str, dict[str, Any]] = {}
        if requests:
            try:
                results = self._get(list(requests.values()), start, end)
            except SluiceError as err:
                log.warning("cloudwatch: get_metric_data failed: %s", err)
                for name, _, _ in requests.values():
                    failed[name] = f"{name}: CloudWatch get_metric_data failed: {err}"
        out: list[SliValue] = []
        by_name = {name: (qid, spec) for qid, (name, spec, _) in requests.items()}
        for name in query.indicators:
            if name in failed:
                out.append(SliValue(name, None, False, failed[name]))
                continue
            qid, spec = by_name[name]
            out.append(self._value(name, spec, results.get(qid, {})))
        return out

    def _get(self, requests: list[tuple[str, MetricQuery, dict[str, Any]]], start: datetime, end: datetime,
             ) -> dict[str, dict[str, Any]]:
        """Results by query id: ``{"values": [...], "status": ..., "messages": [...]}`` (pages joined)."""
        client = self._cloudwatch()
        results: dict[str, dict[str, Any]] = {}
        for offset in range(0, len(requests), MAX_QUERIES):
            batch = [r[2] for r in requests[offset:offset + MAX_QUERIES]]
            token: str | None = None
            for _ in range(100):  # bounded paging
                kwargs: dict[str, Any] = {"MetricDataQueries": batch, "StartTime": start, "EndTime": end,
                                          "ScanBy": "TimestampAscending"}
                if token:
                    kwargs["NextToken"] = token
                response = aws_call("CloudWatch get_metric_data", client.get_metric_data, **kwargs)
                for result in response.get("MetricDataResults", []):
                    entry = results.setdefault(result["Id"], {"values": [], "status": "", "messages": []})
                    entry["values"].extend(float(v) for v in result.get("Values", []))
                    entry["status"] = result.get("StatusCode", entry["status"])
                    entry["messages"].extend(m.get("Value", "") for m in result.get("Messages", []))
                token = response.get("NextToken")
                if not token:
                    break
        return results

    @staticmethod
    def _value(name: str, spec: MetricQuery, result: dict[str, Any]) -> SliValue:
        what = f"{spec.namespace}/{spec.metric} {spec.statistic}"
        status = result.get("status", "")
        if status in ("InternalError", "Forbidden"):
            detail = "; ".join(m for m in result.get("messages", []) if m) or status
            return SliValue(name, None, False, f"{name}: CloudWatch answered {status} for {what}: {detail}")
        values = [v for v in result.get("values", []) if math.isfinite(v)]
        if not values:
            return SliValue(name, None, False, f"{name}: no datapoints of {what} in the test window")
        value = combine(values, spec.combine)
        message = "partial data (CloudWatch status PartialData)" if status == "PartialData" else ""
        return SliValue(name, value, True, message)
