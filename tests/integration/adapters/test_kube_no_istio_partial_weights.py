"""Without a weighted router (no Istio), the kubernetes backend switches a stage's Service 0/100
only: a partial weight is refused with a clear error and changes nothing, never approximated by
pointing the Service at whichever slot "mostly" should get the traffic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.fake_kube import DEFAULT_RESOURCES, FakeKube, deployment_rollout

from sluice.adapters.backends.kubernetes import KubernetesBackend
from sluice.errors import PermanentError
from sluice.ports.backend import Placement, Slot

STAGING = Placement("sockshop", "staging", "carts")
NS = STAGING.namespace
OLD, NEW = "docker.io/keptnexamples/carts:0.10.1", "docker.io/keptnexamples/carts:0.10.2"
NO_ISTIO = tuple(r for r in DEFAULT_RESOURCES if r.group != "networking.istio.io")


@pytest.fixture
def plain() -> Iterator[FakeKube]:
    with FakeKube(NO_ISTIO) as server:
        server.on_read("deployments.apps", deployment_rollout(ready_after_reads=1))
        yield server


def selector(fake: FakeKube) -> dict[str, str]:
    svc = fake.get_object("services", NS, "carts")
    assert svc is not None
    return dict(svc["spec"]["selector"])


def writes(fake: FakeKube) -> int:
    return sum(1 for r in fake.requests if r.method in ("POST", "PUT", "PATCH", "DELETE"))


def deployed(fake: FakeKube) -> KubernetesBackend:
    b = KubernetesBackend(fake.api_client(), poll_s=0.01)
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    b.deploy(STAGING, Slot.CANARY, NEW, 5)
    b.route(STAGING, 0)
    return b


@pytest.mark.parametrize("weight", [1, 10, 25, 49, 50, 75, 99])
def test_a_partial_weight_without_istio_is_refused_and_changes_nothing(plain: FakeKube, weight: int) -> None:
    """route(w) for 0 < w < 100 raises PermanentError naming the weighted router; the Service keeps the primary."""
    b = deployed(plain)
    before = writes(plain)
    with pytest.raises(PermanentError, match=f"route {weight} % of carts .*needs a weighted router.*0 or 100"):
        b.route(STAGING, weight)
    assert writes(plain) == before
    assert selector(plain) == {"app": "carts", "sluice.dev/slot": "primary"}


def test_without_istio_0_and_100_switch_the_service(plain: FakeKube) -> None:
    """Blue/green's two weights still work: 100 selects the canary, 0 the primary."""
    b = deployed(plain)
    b.route(STAGING, 100)
    assert selector(plain) == {"app": "carts", "sluice.dev/slot": "canary"}
    b.route(STAGING, 0)
    assert selector(plain) == {"app": "carts", "sluice.dev/slot": "primary"}
