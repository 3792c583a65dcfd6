"""Test-unit launchers: a Job per event on a cluster (against the fake Kubernetes API), a process locally."""

from __future__ import annotations

import json

import pytest
from tests.support.fake_kube import FakeKube, ResourceType

from sluice.adapters.testunits import create_launcher
from sluice.errors import ConfigurationError

EVENT = {"specversion": "1.0", "type": "sh.keptn.events.deployment-finished", "source": "sluice/deploy", "id": "e-1",
         "data": {"project": "sockshop", "stage": "staging", "service": "carts"}}


@pytest.fixture
def fake():  # type: ignore[no-untyped-def]
    with FakeKube() as kube:
        kube.register(ResourceType("batch", ("v1",), "jobs", "Job"))
        yield kube


def test_a_job_per_event_with_a_hard_limit(fake) -> None:  # type: ignore[no-untyped-def]
    """The launcher creates one Job carrying the event, with activeDeadlineSeconds as the hard limit."""
    launch = create_launcher("kubernetes", api=fake.api_client(), namespace="sluice", image="img:1", limit_s=90)
    launch(EVENT)
    jobs = fake.list_objects("jobs.batch", "sluice")
    assert len(jobs) == 1
    spec = jobs[0]["spec"]
    assert spec["activeDeadlineSeconds"] == 90 and spec["backoffLimit"] == 0
    env = {e["name"]: e["value"] for e in spec["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["SLUICE_TEST_EVENT"])["id"] == "e-1"


def test_duplicate_delivery_starts_no_second_job(fake) -> None:  # type: ignore[no-untyped-def]
    """The Job's name derives from the event, so launching twice leaves one Job."""
    launch = create_launcher("kubernetes", api=fake.api_client(), namespace="sluice", image="img:1")
    launch(EVENT)
    launch(EVENT)
    assert len(fake.list_objects("jobs.batch", "sluice")) == 1


def test_unknown_launcher_names_the_valid_ones() -> None:
    """An unknown launcher is refused loudly."""
    with pytest.raises(ConfigurationError, match="kubernetes, local"):
        create_launcher("docker")
