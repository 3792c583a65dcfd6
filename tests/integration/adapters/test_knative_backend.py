"""The knative deployment backend against the fake Kubernetes API: revisions, traffic tags, waits, failures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.fake_kube import FakeKube, knative_serving

from sluice.adapters.backends import create_backend
from sluice.adapters.backends.knative import KnativeBackend
from sluice.errors import ConfigurationError, NotFoundError, PermanentError, RetryableError, ValidationError
from sluice.ports.backend import Placement, Slot

STAGING = Placement("sockshop", "staging", "carts")
DEV = Placement("sockshop", "dev", "carts")
NS = "sockshop-staging"
KSVC = "services.serving.knative.dev"
REVISIONS = "revisions.serving.knative.dev"
OLD, NEW = "docker.io/keptnexamples/carts:0.10.1", "docker.io/keptnexamples/carts:0.10.2"
RBAC = Path(__file__).resolve().parents[3] / "knative" / "rbac.yaml"


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as server:
        server.on_write(KSVC, knative_serving())
        yield server


def backend(fake: FakeKube, **kwargs: Any) -> KnativeBackend:
    kwargs.setdefault("poll_s", 0.01)
    return KnativeBackend(fake.api_client(), **kwargs)


def traffic(fake: FakeKube, placement: Placement = STAGING) -> list[tuple[str | None, str, int]]:
    svc = fake.get_object(KSVC, placement.namespace, placement.service)
    assert svc is not None
    return [(t.get("tag"), t["revisionName"], t["percent"]) for t in svc["spec"]["traffic"]]


def revisions(fake: FakeKube, ns: str = NS) -> dict[str, str]:
    return {r["metadata"]["name"]: r["spec"]["containers"][0]["image"] for r in fake.list_objects(REVISIONS, ns)}


def writes(fake: FakeKube) -> list[tuple[str, str | None]]:
    return [(r.method, r.name) for r in fake.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]


def revision_status(status: str, reason: str = "", message: str = "") -> Callable[[dict[str, Any], int], dict[str, Any]]:
    def set_status(obj: dict[str, Any], reads: int) -> dict[str, Any]:
        obj["status"] = {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message}]}
        return obj

    return set_status


def ready_after(reads_needed: int, image: str | None = None) -> Callable[[dict[str, Any], int], dict[str, Any] | None]:
    """Read hook: revisions (of ``image``, default all) are Ready=Unknown until their n-th GET."""

    def hook(obj: dict[str, Any], reads: int) -> dict[str, Any] | None:
        if image is not None and obj["spec"]["containers"][0]["image"] != image:
            return None
        ready = reads >= reads_needed
        return revision_status("True" if ready else "Unknown", "" if ready else "Deploying")(obj, reads)

    return hook


def blue_green(b: KnativeBackend, weight: int = 100) -> tuple[str, str]:
    primary = b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    canary = b.deploy(STAGING, Slot.CANARY, NEW, 5)
    b.route(STAGING, weight)
    return primary, canary


# --- deploy ----------------------------------------------------------------------------------------


def test_first_primary_deploy_creates_the_service_and_tags_its_revision(fake: FakeKube) -> None:
    """The first deploy creates Knative Service <svc>; its revision gets the primary tag and 100 %."""
    url = backend(fake).deploy(STAGING, Slot.PRIMARY, OLD, 5)
    assert url == "http://primary-carts.sockshop-staging.svc.cluster.local"
    assert revisions(fake) == {"carts-00001": OLD}
    assert traffic(fake) == [("primary", "carts-00001", 100)]
    svc = fake.get_object(KSVC, NS, "carts")
    assert svc is not None and svc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sluice"


def test_canary_is_a_new_revision_reached_by_its_tag_url(fake: FakeKube) -> None:
    """deploy(canary) creates a revision of the new image, tagged canary with 0 %; the primary keeps 100 %."""
    b = backend(fake)
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    url = b.deploy(STAGING, Slot.CANARY, NEW, 5)
    assert url == "http://canary-carts.sockshop-staging.svc.cluster.local"
    assert revisions(fake) == {"carts-00001": OLD, "carts-00002": NEW}
    assert traffic(fake) == [("primary", "carts-00001", 100), ("canary", "carts-00002", 0)]


def test_route_splits_traffic_between_the_tags(fake: FakeKube) -> None:
    """route(w) gives w % to the canary revision and the rest to the primary; returns the stage URL."""
    b = backend(fake)
    blue_green(b, weight=30)
    assert traffic(fake) == [("primary", "carts-00001", 70), ("canary", "carts-00002", 30)]
    assert b.route(STAGING, 100) == "http://carts.sockshop-staging.example.com"
    assert traffic(fake) == [("primary", "carts-00001", 0), ("canary", "carts-00002", 100)]


def test_promote_moves_all_traffic_and_the_primary_tag_to_the_candidate(fake: FakeKube) -> None:
    """deploy(primary, candidate) → route(0) → scale_to_zero(canary): the candidate's revision is primary with 100 %."""
    b = backend(fake)
    blue_green(b, weight=100)
    assert b.deploy(STAGING, Slot.PRIMARY, NEW, 5) == "http://primary-carts.sockshop-staging.svc.cluster.local"
    b.route(STAGING, 0)
    b.scale_to_zero(STAGING, Slot.CANARY)
    assert traffic(fake) == [("primary", "carts-00002", 100)]
    assert len(revisions(fake)) == 2  # promotion reuses the candidate's revision


def test_discard_returns_all_traffic_to_the_previous_revision(fake: FakeKube) -> None:
    """route(0) → scale_to_zero(canary): the previous revision has 100 % again and the canary tag is gone."""
    b = backend(fake)
    blue_green(b, weight=100)
    b.route(STAGING, 0)
    b.scale_to_zero(STAGING, Slot.CANARY)
    assert traffic(fake) == [("primary", "carts-00001", 100)]


def test_next_candidate_after_a_discard_is_a_new_revision(fake: FakeKube) -> None:
    """After a discard, the next image becomes a third revision tagged canary; the primary is untouched."""
    b = backend(fake)
    blue_green(b, weight=100)
    b.route(STAGING, 0)
    b.scale_to_zero(STAGING, Slot.CANARY)
    b.deploy(STAGING, Slot.CANARY, "docker.io/keptnexamples/carts:0.10.3", 5)
    assert traffic(fake) == [("primary", "carts-00001", 100), ("canary", "carts-00003", 0)]


def test_deploy_of_the_running_image_writes_nothing(fake: FakeKube) -> None:
    """Deploying again what a slot already runs is idempotent: no write."""
    b = backend(fake)
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    b.deploy(STAGING, Slot.CANARY, NEW, 5)
    before = len(writes(fake))
    b.deploy(STAGING, Slot.CANARY, NEW, 5)
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    assert len(writes(fake)) == before


def test_template_update_keeps_the_operators_container_settings(fake: FakeKube) -> None:
    """A new image replaces only the image: env, ports and resources of the existing template stay."""
    fake.seed(
        KSVC,
        {"metadata": {"name": "carts", "namespace": NS, "generation": 1},
         "spec": {"template": {"spec": {"containers": [{"image": OLD, "env": [{"name": "DB", "value": "carts-db"}]}]}}}},
    )
    b = backend(fake)
    b.deploy(STAGING, Slot.PRIMARY, NEW, 5)
    svc = fake.get_object(KSVC, NS, "carts")
    assert svc is not None
    container = svc["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == NEW and container["env"] == [{"name": "DB", "value": "carts-db"}]


def test_direct_deploy_runs_one_revision_with_all_traffic(fake: FakeKube) -> None:
    """A direct stage: one untagged target with 100 %; a new image moves it; route ignores the weight."""
    b = backend(fake)
    assert b.deploy(DEV, Slot.DIRECT, OLD, 5) == "http://carts.sockshop-dev.example.com"
    assert traffic(fake, DEV) == [(None, "carts-00001", 100)]
    b.deploy(DEV, Slot.DIRECT, NEW, 5)
    assert traffic(fake, DEV) == [(None, "carts-00002", 100)]
    before = len(writes(fake))
    assert b.route(DEV, 100) == "http://carts.sockshop-dev.example.com"
    assert len(writes(fake)) == before


# --- waits and failures -----------------------------------------------------------------------------


def test_deploy_waits_until_the_revision_is_ready(fake: FakeKube) -> None:
    """deploy polls the new revision until Ready=True (driven by the fake after several reads)."""
    fake.on_read(REVISIONS, ready_after(4, NEW))
    b = backend(fake)
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    b.deploy(STAGING, Slot.CANARY, NEW, 5)
    reads = [r for r in fake.requests if r.method == "GET" and r.resource == REVISIONS and r.name == "carts-00002"]
    assert len(reads) >= 4
    assert traffic(fake)[1] == ("canary", "carts-00002", 0)


def test_revision_that_never_gets_ready_times_out(fake: FakeKube) -> None:
    """A revision still Unknown at the deadline is a PermanentError; the primary keeps its traffic."""
    fake.on_read(REVISIONS, ready_after(10_000, NEW))
    b = backend(fake)
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    with pytest.raises(PermanentError, match=r"carts-00002 of .*0\.10\.2 not ready within 0.2 s \(Ready=Unknown Deploying\)"):
        b.deploy(STAGING, Slot.CANARY, NEW, 0.2)
    assert traffic(fake) == [("primary", "carts-00001", 100)]


def test_image_pull_failure_of_a_revision_is_reported_with_its_reason(fake: FakeKube) -> None:
    """Ready=False on the candidate's revision fails the deploy at once with Knative's reason and message."""
    message = 'Unable to fetch image "docker.io/keptnexamples/carts:0.10.2": failed to resolve image to digest: MANIFEST_UNKNOWN'
    hook = revision_status("False", "ContainerMissing", message)
    fake.on_read(REVISIONS, lambda obj, reads: hook(obj, reads) if obj["spec"]["containers"][0]["image"] == NEW else None)
    b = backend(fake)
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    with pytest.raises(PermanentError, match=r"failed: ContainerMissing: Unable to fetch image .*MANIFEST_UNKNOWN"):
        b.deploy(STAGING, Slot.CANARY, NEW, 5)
    assert traffic(fake) == [("primary", "carts-00001", 100)]


def test_failed_revision_from_the_controller_is_reported(fake: FakeKube) -> None:
    """A revision the (fake) controller marks failed at creation is a PermanentError naming RevisionFailed."""
    with FakeKube() as server:
        server.on_write(KSVC, knative_serving(ready=lambda rev: rev["spec"]["containers"][0]["image"] != NEW))
        b = backend(server)
        b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
        with pytest.raises(PermanentError, match="RevisionFailed"):
            b.deploy(STAGING, Slot.CANARY, NEW, 5)
        # a discard after the failed candidate still works: routes are ready although the config is not
        b.route(STAGING, 0)
        b.scale_to_zero(STAGING, Slot.CANARY)
        assert traffic(server) == [("primary", "carts-00001", 100)]


def test_route_that_never_becomes_ready_times_out(fake: FakeKube) -> None:
    """A Service whose RoutesReady stays Unknown fails route after route_timeout_s."""
    b = backend(fake, route_timeout_s=0.2)
    blue_green(b, weight=0)

    def routes_unknown(obj: dict[str, Any], reads: int) -> dict[str, Any]:
        obj["status"]["conditions"] = [c if c["type"] != "RoutesReady" else {**c, "status": "Unknown"} for c in obj["status"]["conditions"]]
        return obj

    fake.on_read(KSVC, routes_unknown)
    with pytest.raises(PermanentError, match=r"traffic not switched within 0.2 s \(RoutesReady=Unknown\)"):
        b.route(STAGING, 50)


def test_route_failure_is_reported_with_its_reason(fake: FakeKube) -> None:
    """RoutesReady=False (e.g. a revision missing) fails route with the reason."""
    b = backend(fake)
    blue_green(b, weight=0)

    def routes_false(obj: dict[str, Any], reads: int) -> dict[str, Any]:
        obj["status"]["conditions"] = [
            c if c["type"] != "RoutesReady" else {**c, "status": "False", "reason": "RevisionMissing", "message": "carts-00002 not found"}
            for c in obj["status"]["conditions"]
        ]
        return obj

    fake.on_read(KSVC, routes_false)
    with pytest.raises(PermanentError, match="RevisionMissing: carts-00002 not found"):
        b.route(STAGING, 50)


# --- refusals ---------------------------------------------------------------------------------------


def test_canary_without_a_primary_is_refused_before_creating_anything(fake: FakeKube) -> None:
    """deploy(canary) of a service with no Knative Service yet says deploy the primary first, and writes nothing."""
    with pytest.raises(PermanentError, match="deploy the primary first"):
        backend(fake).deploy(STAGING, Slot.CANARY, NEW, 5)
    assert writes(fake) == []


def test_route_to_a_missing_canary_is_refused(fake: FakeKube) -> None:
    """Traffic to a canary that has no tag is a PermanentError; route 0 is fine."""
    b = backend(fake)
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    with pytest.raises(PermanentError, match="no canary revision"):
        b.route(STAGING, 10)
    assert b.route(STAGING, 0) == "http://carts.sockshop-staging.example.com"


def test_route_of_a_missing_service_is_not_found(fake: FakeKube) -> None:
    """route of traffic before any deploy names the missing Knative Service; route 0 (a discard
    after a failed first deployment) has nothing to do: it answers and writes nothing."""
    with pytest.raises(NotFoundError, match="Knative Service sockshop-staging/carts does not exist"):
        backend(fake).route(STAGING, 50)
    assert backend(fake).route(STAGING, 0) == ""
    assert writes(fake) == []


def test_scale_to_zero_refuses_a_canary_with_traffic(fake: FakeKube) -> None:
    """Dropping the canary target while it has traffic is refused; route 0 first."""
    b = backend(fake)
    blue_green(b, weight=100)
    with pytest.raises(PermanentError, match="still receives 100 %"):
        b.scale_to_zero(STAGING, Slot.CANARY)


def test_scale_to_zero_of_the_primary_or_a_missing_service_writes_nothing(fake: FakeKube) -> None:
    """Knative scales idle revisions itself: the primary's scale_to_zero and a missing service are no-ops."""
    b = backend(fake)
    b.scale_to_zero(STAGING, Slot.CANARY)
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    before = len(writes(fake))
    b.scale_to_zero(STAGING, Slot.PRIMARY)
    b.scale_to_zero(STAGING, Slot.CANARY)
    assert len(writes(fake)) == before


def test_weights_outside_0_to_100_are_invalid(fake: FakeKube) -> None:
    """route(101) is a ValidationError."""
    with pytest.raises(ValidationError):
        backend(fake).route(STAGING, 101)


# --- conflicts and errors ---------------------------------------------------------------------------


def test_a_lost_race_on_the_traffic_is_re_read_and_retried(fake: FakeKube) -> None:
    """A 409 on the traffic patch (resourceVersion precondition) is retried after re-reading."""
    b = backend(fake)
    blue_green(b, weight=0)
    fake.fail_next(1, 409, method="PATCH", resource=KSVC, reason="Conflict")
    b.route(STAGING, 40)
    assert traffic(fake) == [("primary", "carts-00001", 60), ("canary", "carts-00002", 40)]
    assert [r.code for r in fake.requests if r.method == "PATCH"][-2:] == [409, 200]


def test_a_stale_resource_version_conflicts_for_real(fake: FakeKube) -> None:
    """The traffic patch carries the read resourceVersion: a change in between makes the fake answer 409."""
    b = backend(fake)
    blue_green(b, weight=0)
    changed = {"n": 0}
    original = b._read_service

    def read_then_someone_writes(placement: Placement) -> dict[str, Any] | None:
        svc = original(placement)
        if changed["n"] == 0 and svc is not None:
            changed["n"] += 1
            current = fake.get_object(KSVC, NS, "carts")
            assert current is not None
            current["metadata"].setdefault("labels", {})["touched"] = "yes"
            fake.seed(KSVC, current)  # a new resourceVersion underneath
        return svc

    b._read_service = read_then_someone_writes  # type: ignore[method-assign]
    b.route(STAGING, 25)
    assert traffic(fake)[1] == ("canary", "carts-00002", 25)
    assert 409 in [r.code for r in fake.requests if r.method == "PATCH"]


def test_conflicts_that_never_end_are_retryable(fake: FakeKube) -> None:
    """A traffic write that keeps losing races gives up with RetryableError."""
    b = backend(fake)
    blue_green(b, weight=0)
    fake.fail_next(10, 409, method="PATCH", resource=KSVC)
    with pytest.raises(RetryableError):
        b.route(STAGING, 40)


@pytest.mark.parametrize(("status", "error"), [(503, RetryableError), (403, ConfigurationError), (422, PermanentError)])
def test_api_errors_become_sluice_errors(fake: FakeKube, status: int, error: type[Exception]) -> None:
    """Errors of the API server (or Knative's admission webhook, 422) map to Sluice's error tree."""
    fake.fail_next(1, status, method="POST", resource=KSVC, message="injected")
    with pytest.raises(error):
        backend(fake).deploy(STAGING, Slot.PRIMARY, OLD, 5)


def test_registry_builds_the_backend_by_name(fake: FakeKube) -> None:
    """create_backend('knative', api=...) gives a KnativeBackend."""
    assert isinstance(create_backend("knative", api=fake.api_client()), KnativeBackend)


def test_every_request_is_allowed_by_the_deployer_cluster_role(fake: FakeKube) -> None:
    """Each verb a full delivery uses (Knative Services, revisions) is granted by ClusterRole sluice-deployer."""
    b = backend(fake)
    blue_green(b, weight=100)
    b.deploy(STAGING, Slot.PRIMARY, NEW, 5)
    b.route(STAGING, 0)
    b.scale_to_zero(STAGING, Slot.CANARY)
    b.deploy(DEV, Slot.DIRECT, NEW, 5)
    docs = list(yaml.safe_load_all(RBAC.read_text()))
    role = next(d for d in docs if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "sluice-deployer")
    granted = {(g, res, v) for r in role["rules"] for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]}
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    used = set()
    for r in fake.requests:
        if r.resource is None:
            continue
        plural, _, group = r.resource.partition(".")
        used.add((group, plural, verbs.get(r.method) or ("get" if r.name else "list")))
    assert used <= granted, f"requests not granted by sluice-deployer: {sorted(used - granted)}"


def test_a_new_candidate_never_inherits_the_previous_candidates_traffic(fake: FakeKube) -> None:
    """Replacing a canary that had 100 % starts the new revision at 0 % (route decides), the primary takes it back."""
    b = backend(fake)
    blue_green(b, weight=100)
    b.deploy(STAGING, Slot.CANARY, "docker.io/keptnexamples/carts:0.10.3", 5)
    assert traffic(fake) == [("primary", "carts-00001", 100), ("canary", "carts-00003", 0)]
