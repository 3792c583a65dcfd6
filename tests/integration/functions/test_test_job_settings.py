"""The test function's Kubernetes Job carries the function's whole settings (``Settings.to_env()``)
and its sink, so the worker in the Job runs under the same limits as the function that launched it."""

from __future__ import annotations

import pytest
from tests.support.fake_kube import FakeKube, ResourceType

from sluice.config import Settings
from sluice.functions.runtime import Runtime

EVENT = {"specversion": "1.0", "type": "sh.keptn.events.deployment-finished", "source": "sluice/deploy", "id": "e-7",
         "data": {"project": "sockshop", "stage": "staging", "service": "carts"}}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A fake API server serving Jobs, as the process's Kubernetes client (what a cluster's function has)."""
    from sluice import compose

    with FakeKube() as kube:
        kube.register(ResourceType("batch", ("v1",), "jobs", "Job"))
        monkeypatch.setattr(compose, "kube_api", kube.api_client)
        yield kube


def test_the_job_worker_gets_the_functions_settings_and_sink(fake: FakeKube) -> None:
    """A worker in a Job reads back the launching function's settings — test limit, performance
    duration, SLI timeout, Prometheus URL — and posts to the function's sink."""
    from sluice.functions.test import launcher

    settings = Settings(
        state="configmap", namespace="sluice", backend="kubernetes", broker_url="http://broker.example/sluice/default",
        sink_url="http://sink.example/", test_limit_s=90.0, performance_duration_s=7.0, sli_timeout_s=33.0,
        prometheus_url="http://prometheus.example:9090", function_image="img:2",
    )
    launcher(Runtime(settings, "test"))(EVENT)
    (job,) = fake.list_objects("jobs.batch", "sluice")
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert job["spec"]["activeDeadlineSeconds"] == 90
    env.pop("SLUICE_TEST_EVENT")
    worker = Settings.from_env(env)
    assert worker.test_limit_s == 90.0
    assert worker.performance_duration_s == 7.0
    assert worker.sink == "http://sink.example/"
    assert worker.with_(sink_url="") == settings.with_(sink_url="")
