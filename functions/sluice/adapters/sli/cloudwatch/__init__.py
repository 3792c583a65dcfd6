"""The ``cloudwatch`` SLI provider: metric statistics over the test window via boto3 ``get_metric_data``.

The indicators are defined in the ``cloudwatch`` section of ``sli.yaml`` (parsed beside this
module, :mod:`sluice.adapters.sli.cloudwatch.section`), merged over the project, stage and
service levels. All requested indicators go into one ``get_metric_data`` call (paged by
``NextToken``) over [start, end] of the window; each yields the datapoints of its period(s),
combined into one value (its ``aggregate``). AWS credentials, region and endpoint come from
boto3's own chain (``AWS_*`` environment, profile, IRSA / instance role, ``AWS_ENDPOINT_URL``);
the section's ``region`` wins over the default region. boto3 is imported on the first fetch.

Outcomes per indicator: datapoints → the value. No datapoints, an indicator the section does not
define, a bad placeholder, a query CloudWatch answers with an error status, an unreachable
endpoint, missing credentials or a refused call → ``success=False`` with a message naming the
indicator and the reason. ``fetch`` never raises for these.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sluice.adapters._aws import aws_call
from sluice.adapters.sli._fetch import Unmeasured, Window, fetch_each
from sluice.adapters.sli.cloudwatch.section import (
    CloudWatchConfig,
    MetricQuery,
    combine,
    merge_sections,
    render,
)
from sluice.errors import ConfigurationError, SluiceError, ValidationError
from sluice.ports.sli import ProviderContext, SliQuery, SliValue

__all__ = ["MAX_QUERIES", "CloudWatchSliProvider", "create", "default_period", "section"]

log = logging.getLogger(__name__)

#: get_metric_data takes at most 500 queries per call.
MAX_QUERIES = 500


def section(ctx: ProviderContext) -> CloudWatchConfig:
    """The ``cloudwatch`` section of the context's sli.yaml levels, merged (empty when there is none)."""
    return merge_sections(*ctx.levels("sli.yaml"))


def create(ctx: ProviderContext) -> CloudWatchSliProvider:
    """The provider for one get-sli request; ``ConfigurationError`` when the section is not valid."""
    try:
        config = section(ctx)
    except ValidationError as err:
        raise ConfigurationError(
            f"the cloudwatch section of the sli.yaml of {ctx.service} in {ctx.project}/{ctx.stage} "
            f"is not valid: {err}") from err
    return CloudWatchSliProvider(config)


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
        return fetch_each(query, "CloudWatch", self._session)

    @contextmanager
    def _session(self, window: Window, names: Sequence[str]) -> Iterator[Callable[[str], SliValue]]:
        """One batched ``get_metric_data`` for every indicator that has a query; yields the
        per-indicator answer."""
        failed: dict[str, str] = {}
        requests: dict[str, tuple[str, MetricQuery, dict[str, Any]]] = {}
        for i, name in enumerate(names):
            spec = self.config.indicators.get(name)
            if spec is None:
                known = ", ".join(sorted(self.config.indicators)) or "none"
                failed[name] = f"no CloudWatch query in the cloudwatch section of sli.yaml (defined: {known})"
                continue
            try:
                dims = [{"Name": k, "Value": render(v, window.placeholders)} for k, v in spec.dimensions.items()]
            except ValidationError as err:
                failed[name] = str(err)
                continue
            stat: dict[str, Any] = {
                "Metric": {"Namespace": spec.namespace, "MetricName": spec.metric, "Dimensions": dims},
                "Period": spec.period or default_period(window.start, window.end),
                "Stat": spec.statistic,
            }
            if spec.unit:
                stat["Unit"] = spec.unit
            requests[f"q{i}"] = (name, spec, {"Id": f"q{i}", "MetricStat": stat, "ReturnData": True})
        results: dict[str, dict[str, Any]] = {}
        if requests:
            try:
                results = self._get(list(requests.values()), window.start, window.end)
            except SluiceError as err:
                log.warning("cloudwatch: get_metric_data failed: %s", err)
                for name, _, _ in requests.values():
                    failed[name] = f"CloudWatch get_metric_data failed: {err}"
        by_name = {name: (qid, spec) for qid, (name, spec, _) in requests.items()}

        def measure(name: str) -> SliValue:
            if name in failed:
                raise Unmeasured(failed[name])
            qid, spec = by_name[name]
            return self._value(name, spec, results.get(qid, {}))

        yield measure

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
            raise Unmeasured(f"CloudWatch answered {status} for {what}: {detail}")
        values = [v for v in result.get("values", []) if math.isfinite(v)]
        if not values:
            raise Unmeasured(f"no datapoints of {what} in the test window")
        value = combine(values, spec.combine)
        message = "partial data (CloudWatch status PartialData)" if status == "PartialData" else ""
        return SliValue(name, value, True, message)
