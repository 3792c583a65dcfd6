"""``/metrics``: Sluice's delivery metrics in Prometheus' text format (prometheus-client).

A custom collector reads the bounded ``insight.<project>.<service>`` records at each scrape
(one list of records: one per service), so every function process and every replica of the
bridge answers the same numbers — nothing is counted in a process's memory. Counters and
histograms come from the records' ``totals`` (monotonic since the record was created).

Imported only by the bridge, and only when ``/metrics`` is asked for (cold start of the other
functions never loads prometheus-client).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from sluice.core import delivery_metrics as dm
from sluice.services.insight import INSIGHT
from sluice.services.records import KIND, PROJECT, SERVICE, Records

log = logging.getLogger("sluice.bridge")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _buckets(hist: Mapping[str, Any], bounds: Sequence[float]) -> list[tuple[str, float]]:
    counts = list(hist.get("b", []))
    counts += [0] * (len(bounds) + 1 - len(counts))
    out, running = [], 0
    for bound, count in zip([*bounds, float("inf")], counts, strict=False):
        running += int(count)
        out.append(("+Inf" if bound == float("inf") else f"{bound:g}", float(running)))
    return out


class DeliveryCollector(Collector):
    def __init__(self, records: Records) -> None:
        self.records = records

    def collect(self) -> Iterator[Any]:
        deliveries = CounterMetricFamily(
            "sluice_deliveries", "Stages of deliveries that ended, by outcome (sh.keptn.events.done).",
            labels=["project", "service", "stage", "outcome"])
        catches = CounterMetricFamily(
            "sluice_gate_catches", "Builds the quality gate stopped in a stage, by reason.",
            labels=["project", "service", "stage", "reason"])
        evaluations = CounterMetricFamily(
            "sluice_evaluations", "Quality-gate evaluations, by result.", labels=["project", "service", "stage", "result"])
        approvals = CounterMetricFamily(
            "sluice_approvals_held", "Promotions held for a person's approval.", labels=["project", "service", "stage"])
        sli_errors = CounterMetricFamily(
            "sluice_sli_fetch_errors", "SLI values a provider could not fetch.", labels=["project", "service", "provider"])
        score = HistogramMetricFamily(
            "sluice_evaluation_score_ratio", "Evaluation scores (score / 100).", labels=["project", "service", "stage"])
        eval_time = HistogramMetricFamily(
            "sluice_evaluation_duration_seconds", "Time from tests-finished to evaluation-done (SLI fetch and scoring).",
            labels=["project", "service", "stage"])
        stage_time = HistogramMetricFamily(
            "sluice_stage_duration_seconds", "Time a delivery spent in a stage (deployment to done).",
            labels=["project", "service", "stage"])
        lead_time = HistogramMetricFamily(
            "sluice_lead_time_seconds", "From a delivery's first event to its promotion in the last stage.",
            labels=["project", "service"])
        for record in self.records.store.list({KIND: INSIGHT}):
            project, service = record.labels.get(PROJECT, ""), record.labels.get(SERVICE, "")
            try:
                doc = json.loads(record.data.get("metrics", "{}"))
            except ValueError:
                log.warning("record %s: unreadable metrics, not exported", record.name)
                continue
            lead: list[Mapping[str, Any]] = []
            for stage, counts in sorted((doc.get("totals") or {}).items()):
                labels = [project, service, stage]
                for outcome, n in sorted(counts.get("o", {}).items()):
                    deliveries.add_metric([*labels, outcome], float(n))
                for reason, n in sorted(counts.get("r", {}).items()):
                    catches.add_metric([*labels, reason], float(n))
                for result, n in sorted(counts.get("v", {}).items()):
                    evaluations.add_metric([*labels, result], float(n))
                if counts.get("a", {}).get("held"):
                    approvals.add_metric(labels, float(counts["a"]["held"]))
                for family, key, bounds in ((score, "score", dm.SCORE_BUCKETS), (eval_time, "eval", dm.SECONDS_BUCKETS),
                                            (stage_time, "sd", dm.SECONDS_BUCKETS)):
                    if key in counts:
                        family.add_metric(labels, _buckets(counts[key], bounds), float(counts[key].get("sum", 0.0)))
                if "lt" in counts:
                    lead.append(counts["lt"])
            if lead:
                merged = dm.merge_hists(lead, dm.SECONDS_BUCKETS)
                lead_time.add_metric([project, service], _buckets(merged, dm.SECONDS_BUCKETS), float(merged["sum"]))
            for provider, n in sorted((doc.get("totals_sli_errors") or {}).items()):
                sli_errors.add_metric([project, service, provider], float(n))
        yield from (deliveries, catches, evaluations, approvals, sli_errors, score, eval_time, stage_time, lead_time)


def exposition(records: Records) -> bytes:
    """The text format of every delivery metric, read from the records now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(records))
    return generate_latest(registry)
