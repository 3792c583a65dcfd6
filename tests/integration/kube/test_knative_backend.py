"""The knative backend against the real Serving CRDs, the test playing Knative's controller (tests/support/kube/serving.py).

Every template change passes through the state the real reconciler shows first: the Service
has observed the new generation, ConfigurationsReady is Unknown (OutOfDate), and
latestCreatedRevisionName still names the previous revision. The backend must wait it out.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client
from tests.support.kube.cluster import Cluster, require_knative
from tests.support.kube.serving import GROUP, VERSION, ServingController

from sluice.adapters.backends.knative import KnativeBackend
from sluice.errors import PermanentError
from sluice.ports.backend import Placement, Slot

OLD, NEW, NEWER = "example.test/carts:0.10.1", "example.test/carts:0.10.2", "example.test/carts:0.10.3"


@pytest.fixture
def placement(kube_cluster: Cluster) -> Placement:
    require_knative(kube_cluster)
    placement = Placement(f"k{uuid.uuid4().hex[:6]}", "staging", "carts")
    kube_cluster.create_namespace(placement.namespace)
    return placement


def backend(cluster: Cluster) -> KnativeBackend:
    return KnativeBackend(cluster.api_client(), poll_s=0.2, route_timeout_s=60)


def service(cluster: Cluster, placement: Placement) -> dict[str, Any]:
    api = client.CustomObjectsApi(cluster.api_client())
    return dict(api.get_namespaced_custom_object(GROUP, VERSION, placement.namespace, "services", placement.service))


def traffic(cluster: Cluster, placement: Placement) -> list[tuple[str | None, str, int]]:
    return [(t.get("tag"), t["revisionName"], t["percent"]) for t in service(cluster, placement)["spec"]["traffic"]]


def test_blue_green_through_the_out_of_date_state(kube_cluster: Cluster, placement: Placement) -> None:
    """Deploy, canary, 50 %, promote and discard, each template change passing through OutOfDate first."""
    be = backend(kube_cluster)
    ns = placement.namespace
    with ServingController(kube_cluster, ns) as serving:
        assert be.deploy(placement, Slot.PRIMARY, OLD, 60) == f"http://primary-carts.{ns}.svc.cluster.local"
        assert be.deploy(placement, Slot.CANARY, NEW, 60) == f"http://canary-carts.{ns}.svc.cluster.local"
        be.route(placement, 50)
        assert traffic(kube_cluster, placement) == [("primary", "carts-00001", 50), ("canary", "carts-00002", 50)]
        # promote
        be.deploy(placement, Slot.PRIMARY, NEW, 60)
        be.route(placement, 0)
        be.scale_to_zero(placement, Slot.CANARY)
        assert traffic(kube_cluster, placement) == [("primary", "carts-00002", 100)]
        # a later candidate, discarded
        be.deploy(placement, Slot.CANARY, NEWER, 60)
        be.route(placement, 0)
        be.scale_to_zero(placement, Slot.CANARY)
        assert traffic(kube_cluster, placement) == [("primary", "carts-00002", 100)]
    assert len(serving.seen_out_of_date) >= 3, "each new revision passed through OutOfDate"


def test_a_failed_revision_is_not_reused_for_ever(kube_cluster: Cluster, placement: Placement) -> None:
    """An image whose first revision failed gets a fresh revision on the next deploy (the pull works now)."""
    be = backend(kube_cluster)
    with ServingController(kube_cluster, placement.namespace, fails=lambda image, attempt: image == NEW and attempt == 1):
        be.deploy(placement, Slot.PRIMARY, OLD, 60)
        with pytest.raises(PermanentError, match="ContainerMissing"):
            be.deploy(placement, Slot.CANARY, NEW, 60)
        url = be.deploy(placement, Slot.CANARY, NEW, 60)
        assert url.startswith("http://canary-carts.")
        assert traffic(kube_cluster, placement) == [("primary", "carts-00001", 100), ("canary", "carts-00003", 0)]


def test_a_fixed_revision_name_is_removed_with_an_explicit_null(kube_cluster: Cluster, placement: Placement) -> None:
    """A template carrying a fixed revision name (kn --revision-name) loses it on the next image: the merge patch sends null."""
    be = backend(kube_cluster)
    ns = placement.namespace
    with ServingController(kube_cluster, ns):
        be.deploy(placement, Slot.PRIMARY, OLD, 60)
        api = client.CustomObjectsApi(kube_cluster.api_client())
        api.patch_namespaced_custom_object(
            GROUP, VERSION, ns, "services", "carts", {"spec": {"template": {"metadata": {"name": "carts-pinned"}}}}
        )
        be.deploy(placement, Slot.CANARY, NEW, 60)
        template = service(kube_cluster, placement)["spec"]["template"]
        assert "name" not in template["metadata"]
        assert template["spec"]["containers"][0]["image"] == NEW
