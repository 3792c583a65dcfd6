"""The kubernetes deployment backend against the fake Kubernetes API: slots, traffic, waits, failures."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.fake_kube import DEFAULT_RESOURCES, FakeKube, deployment_failing, deployment_rollout

from sluice.adapters.backends import create_backend
from sluice.adapters.backends.kubernetes import KubernetesBackend
from sluice.errors import (
    ConfigurationError,
    NotFoundError,
    PermanentError,
    RetryableError,
    SluiceError,
    ValidationError,
)
from sluice.ports.backend import Placement, Slot

STAGING = Placement("sockshop", "staging", "carts")
DEV = Placement("sockshop", "dev", "carts")
NS = "sockshop-staging"
OLD, NEW = "docker.io/keptnexamples/carts:0.10.1", "docker.io/keptnexamples/carts:0.10.2"
RBAC = Path(__file__).resolve().parents[3] / "knative" / "rbac.yaml"
NO_ISTIO = tuple(r for r in DEFAULT_RESOURCES if r.group != "networking.istio.io")


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as server:
        yield server


@pytest.fixture
def plain() -> Iterator[FakeKube]:
    """A cluster without Istio (its API group is not served)."""
    with FakeKube(NO_ISTIO) as server:
        yield server


def backend(fake: FakeKube, **kwargs: Any) -> KubernetesBackend:
    kwargs.setdefault("poll_s", 0.01)
    return KubernetesBackend(fake.api_client(), **kwargs)


def rolling(fake: FakeKube, after: int = 3) -> FakeKube:
    fake.on_read("deployments.apps", deployment_rollout(ready_after_reads=after))
    return fake


def image_of(fake: FakeKube, name: str, ns: str = NS) -> str:
    dep = fake.get_object("deployments.apps", ns, name)
    assert dep is not None, f"Deployment {ns}/{name} missing"
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def replicas_of(fake: FakeKube, name: str, ns: str = NS) -> int:
    dep = fake.get_object("deployments.apps", ns, name)
    assert dep is not None
    return int(dep["spec"]["replicas"])


def selector_of(fake: FakeKube, name: str, ns: str = NS) -> dict[str, str]:
    svc = fake.get_object("services", ns, name)
    assert svc is not None, f"Service {ns}/{name} missing"
    return dict(svc["spec"]["selector"])


def vs_weights(fake: FakeKube, ns: str = NS) -> dict[str, int]:
    vs = fake.get_object("virtualservices.networking.istio.io", ns, "carts")
    assert vs is not None
    return {d["destination"]["host"]: d["weight"] for d in vs["spec"]["http"][0]["route"]}


def writes(fake: FakeKube) -> list[tuple[str, str | None, str | None]]:
    return [(r.method, r.resource, r.name) for r in fake.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]


def blue_green(fake: FakeKube, b: KubernetesBackend, weight: int = 100) -> None:
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    b.deploy(STAGING, Slot.CANARY, NEW, 5)
    b.route(STAGING, weight)


# --- deploy ----------------------------------------------------------------------------------------


def test_blue_green_deploy_creates_a_deployment_and_service_per_slot(plain: FakeKube) -> None:
    """Primary and canary each get Deployment and Service <svc>-<slot>, selecting only their own pods."""
    b = backend(rolling(plain))
    primary = b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    canary = b.deploy(STAGING, Slot.CANARY, NEW, 5)
    assert primary == "http://carts-primary.sockshop-staging.svc.cluster.local"
    assert canary == "http://carts-canary.sockshop-staging.svc.cluster.local"
    assert image_of(plain, "carts-primary") == OLD and image_of(plain, "carts-canary") == NEW
    assert selector_of(plain, "carts-primary") == {"app": "carts", "sluice.dev/slot": "primary"}
    assert selector_of(plain, "carts-canary") == {"app": "carts", "sluice.dev/slot": "canary"}
    dep = plain.get_object("deployments.apps", NS, "carts-canary")
    assert dep is not None
    assert dep["spec"]["selector"]["matchLabels"] == {"app": "carts", "sluice.dev/slot": "canary"}
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert dep["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sluice"


def test_deploy_waits_for_the_rollout(plain: FakeKube) -> None:
    """deploy returns only after the Deployment reports the rollout complete (polls until then)."""
    b = backend(rolling(plain, after=4))
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    reads = [r for r in plain.requests if r.method == "GET" and r.resource == "deployments.apps" and r.name == "carts-primary"]
    assert len(reads) >= 4
    dep = plain.get_object("deployments.apps", NS, "carts-primary")
    assert dep is not None and dep["status"]["availableReplicas"] == 1


def test_deploy_of_the_running_image_changes_nothing(plain: FakeKube) -> None:
    """Deploying the image a ready slot already runs writes nothing (idempotent)."""
    b = backend(rolling(plain, after=1))
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    before = len(writes(plain))
    assert b.deploy(STAGING, Slot.PRIMARY, OLD, 5).startswith("http://carts-primary.")
    assert len(writes(plain)) == before


def test_deploy_of_a_new_image_patches_the_deployment_and_waits_again(plain: FakeKube) -> None:
    """A new image patches the slot's Deployment in place and waits for the new generation's rollout."""
    b = backend(rolling(plain, after=2))
    b.deploy(STAGING, Slot.CANARY, OLD, 5)
    b.deploy(STAGING, Slot.CANARY, NEW, 5)
    assert image_of(plain, "carts-canary") == NEW
    dep = plain.get_object("deployments.apps", NS, "carts-canary")
    assert dep is not None and dep["metadata"]["generation"] == 2 and dep["status"]["observedGeneration"] == 2
    assert ("PATCH", "deployments.apps", "carts-canary") in writes(plain)


def test_direct_deploy_uses_the_service_name(plain: FakeKube) -> None:
    """A direct stage runs Deployment <svc> behind Service <svc>; route ignores the weight."""
    b = backend(rolling(plain, after=1))
    url = b.deploy(DEV, Slot.DIRECT, NEW, 5)
    assert url == "http://carts.sockshop-dev.svc.cluster.local"
    assert image_of(plain, "carts", "sockshop-dev") == NEW
    assert selector_of(plain, "carts", "sockshop-dev") == {"app": "carts", "sluice.dev/slot": "direct"}
    assert b.route(DEV, 100) == url
    assert selector_of(plain, "carts", "sockshop-dev") == {"app": "carts", "sluice.dev/slot": "direct"}


def test_not_ready_within_the_timeout_is_a_permanent_error(plain: FakeKube) -> None:
    """A rollout that never completes ends in PermanentError naming the timeout and the replica counts."""
    b = backend(plain)  # no controller: the Deployment never gets a status
    with pytest.raises(PermanentError, match=r"not ready within 0.2 s"):
        b.deploy(STAGING, Slot.CANARY, NEW, 0.2)


def test_progress_deadline_exceeded_is_reported_with_its_reason(plain: FakeKube) -> None:
    """Condition Progressing=False ProgressDeadlineExceeded fails the deploy with that reason and message."""
    plain.on_read("deployments.apps", deployment_failing(after_reads=2, message='ReplicaSet "carts-canary-5d9" has timed out progressing.'))
    b = backend(plain)
    with pytest.raises(PermanentError, match=r"ProgressDeadlineExceeded.*timed out progressing") as info:
        b.deploy(STAGING, Slot.CANARY, NEW, 5)
    assert NEW in str(info.value) and "canary" in str(info.value)


def seed_pod(fake: FakeKube, name: str, image: str, waiting: dict[str, str], restarts: int = 0, slot: str = "canary") -> None:
    fake.seed(
        "pods",
        {
            "metadata": {"name": name, "namespace": NS, "labels": {"app": "carts", "sluice.dev/slot": slot}},
            "spec": {"containers": [{"name": "carts", "image": image}]},
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    {"name": "carts", "image": image, "ready": False, "restartCount": restarts, "state": {"waiting": waiting}}
                ],
            },
        },
    )


def test_image_pull_error_is_reported_with_its_reason(plain: FakeKube) -> None:
    """A pod of the new image stuck in ImagePullBackOff fails the deploy with the reason and the kubelet's message."""
    seed_pod(plain, "carts-canary-abc", NEW, {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "carts:0.10.2"'})
    b = backend(plain)
    with pytest.raises(PermanentError, match=r"ImagePullBackOff in pod carts-canary-abc: Back-off pulling image") as info:
        b.deploy(STAGING, Slot.CANARY, NEW, 5)
    assert "not ready within" not in str(info.value)


def test_crash_loop_is_reported_with_its_reason_and_restarts(plain: FakeKube) -> None:
    """A pod of the new image in CrashLoopBackOff fails the deploy, naming the restarts."""
    seed_pod(plain, "carts-canary-xyz", NEW, {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}, restarts=3)
    b = backend(plain)
    with pytest.raises(PermanentError, match=r"CrashLoopBackOff after 3 restarts in pod carts-canary-xyz"):
        b.deploy(STAGING, Slot.CANARY, NEW, 5)


def test_failing_pods_of_the_previous_image_are_not_blamed(plain: FakeKube) -> None:
    """A crash-looping pod of another image does not fail the new image's rollout."""
    seed_pod(plain, "carts-canary-old", OLD, {"reason": "CrashLoopBackOff"}, restarts=9)
    b = backend(rolling(plain, after=3))
    assert b.deploy(STAGING, Slot.CANARY, NEW, 5).startswith("http://carts-canary.")


def test_invalid_image_is_refused_before_any_request(plain: FakeKube) -> None:
    """An empty image reference is a PermanentError and touches nothing."""
    with pytest.raises(PermanentError, match="expected an image reference"):
        backend(plain).deploy(STAGING, Slot.CANARY, "", 5)
    assert plain.requests == []


# --- route without Istio: the Service selector ---------------------------------------------------


def test_route_without_istio_switches_the_stage_service_selector(plain: FakeKube) -> None:
    """Without Istio, weight 100 points Service <svc> at the canary, 0 at the primary (partial
    weights are refused: tests/integration/adapters/test_kube_no_istio_partial_weights.py)."""
    b = backend(rolling(plain, after=1))
    blue_green(plain, b, weight=100)
    assert selector_of(plain, "carts") == {"app": "carts", "sluice.dev/slot": "canary"}
    assert b.route(STAGING, 0) == "http://carts.sockshop-staging.svc.cluster.local"
    assert selector_of(plain, "carts") == {"app": "carts", "sluice.dev/slot": "primary"}
    b.route(STAGING, 100)
    assert selector_of(plain, "carts") == {"app": "carts", "sluice.dev/slot": "canary"}


def test_route_without_istio_never_touches_virtual_services(plain: FakeKube) -> None:
    """Istio detection: a cluster that does not serve networking.istio.io gets no VirtualService request."""
    b = backend(rolling(plain, after=1))
    blue_green(plain, b)
    assert not [r for r in plain.requests if (r.resource or "").endswith("networking.istio.io")]


# --- route with Istio: VirtualService weights ----------------------------------------------------


def test_route_with_istio_sets_virtual_service_weights(fake: FakeKube) -> None:
    """With Istio detected, route writes VirtualService <svc> weights primary/canary; <svc> selects the primary."""
    b = backend(rolling(fake, after=1))
    blue_green(fake, b, weight=20)
    assert vs_weights(fake) == {"carts-primary": 80, "carts-canary": 20}
    vs = fake.get_object("virtualservices.networking.istio.io", NS, "carts")
    assert vs is not None and "carts.sockshop-staging.svc.cluster.local" in vs["spec"]["hosts"]
    assert selector_of(fake, "carts") == {"app": "carts", "sluice.dev/slot": "primary"}
    b.route(STAGING, 100)
    assert vs_weights(fake) == {"carts-primary": 0, "carts-canary": 100}


def test_route_with_the_same_weight_writes_nothing(fake: FakeKube) -> None:
    """Routing to the weights already set is idempotent: no write."""
    b = backend(rolling(fake, after=1))
    blue_green(fake, b, weight=100)
    before = len(writes(fake))
    b.route(STAGING, 100)
    assert len(writes(fake)) == before


def test_istio_can_be_forced_off(fake: FakeKube) -> None:
    """istio=False uses the selector switch even where Istio is served."""
    b = backend(rolling(fake, after=1), istio=False)
    blue_green(fake, b, weight=100)
    assert fake.list_objects("virtualservices.networking.istio.io", NS) == []
    assert selector_of(fake, "carts")["sluice.dev/slot"] == "canary"


def test_route_before_any_deploy_is_not_found(fake: FakeKube) -> None:
    """route of traffic to a service that has no Deployment in the stage says so; route 0 (a
    discard after a failed first deployment) has nothing to do: it answers and creates nothing."""
    with pytest.raises(NotFoundError, match="deploy before routing"):
        backend(fake).route(STAGING, 50)
    assert backend(fake).route(STAGING, 0) == "http://carts.sockshop-staging.svc.cluster.local"
    assert not [r for r in fake.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]


def test_route_to_a_missing_canary_is_refused(fake: FakeKube) -> None:
    """Sending traffic to a canary that does not run is a PermanentError, not a silent no-op."""
    b = backend(rolling(fake, after=1))
    b.deploy(STAGING, Slot.PRIMARY, OLD, 5)
    with pytest.raises(PermanentError, match="expected a running Deployment carts-canary"):
        b.route(STAGING, 100)


@pytest.mark.parametrize("weight", [-1, 101, True, 50.5])
def test_route_rejects_weights_outside_0_to_100(fake: FakeKube, weight: Any) -> None:
    """A weight that is not a whole number 0–100 is a ValidationError."""
    with pytest.raises(ValidationError):
        backend(fake).route(STAGING, weight)


# --- promote and discard ---------------------------------------------------------------------------


def test_promote_sequence_moves_the_candidate_into_the_primary(fake: FakeKube) -> None:
    """deploy(primary, candidate) → route(0) → scale_to_zero(canary): primary runs the candidate with all traffic."""
    b = backend(rolling(fake, after=2))
    blue_green(fake, b, weight=100)
    b.deploy(STAGING, Slot.PRIMARY, NEW, 5)
    b.route(STAGING, 0)
    b.scale_to_zero(STAGING, Slot.CANARY)
    assert image_of(fake, "carts-primary") == NEW
    assert vs_weights(fake) == {"carts-primary": 100, "carts-canary": 0}
    assert replicas_of(fake, "carts-canary") == 0 and replicas_of(fake, "carts-primary") == 1


def test_discard_sequence_returns_traffic_to_the_primary(plain: FakeKube) -> None:
    """route(0) → scale_to_zero(canary): the old primary gets everything back and the candidate stops."""
    b = backend(rolling(plain, after=1))
    blue_green(plain, b, weight=100)
    b.route(STAGING, 0)
    b.scale_to_zero(STAGING, Slot.CANARY)
    assert selector_of(plain, "carts")["sluice.dev/slot"] == "primary"
    assert image_of(plain, "carts-primary") == OLD and replicas_of(plain, "carts-canary") == 0


def test_scale_to_zero_refuses_a_canary_that_still_gets_traffic(plain: FakeKube) -> None:
    """Stopping the canary while Service <svc> selects it would drop requests: PermanentError."""
    b = backend(rolling(plain, after=1))
    blue_green(plain, b, weight=100)
    with pytest.raises(PermanentError, match="still receives traffic"):
        b.scale_to_zero(STAGING, Slot.CANARY)
    assert replicas_of(plain, "carts-canary") == 1


def test_scale_to_zero_refuses_a_weighted_canary_with_istio(fake: FakeKube) -> None:
    """With Istio, a canary weight above 0 also blocks scaling it to zero."""
    b = backend(rolling(fake, after=1))
    blue_green(fake, b, weight=10)
    with pytest.raises(PermanentError, match="sends it 10 %"):
        b.scale_to_zero(STAGING, Slot.CANARY)


def test_scale_to_zero_of_a_missing_or_stopped_slot_is_a_no_op(plain: FakeKube) -> None:
    """scale_to_zero of a slot that does not run writes nothing."""
    b = backend(rolling(plain, after=1))
    b.scale_to_zero(STAGING, Slot.CANARY)
    assert writes(plain) == []


def test_a_redeployed_canary_runs_again_after_scale_to_zero(plain: FakeKube) -> None:
    """A stopped canary slot deployed again is scaled back up to one replica."""
    b = backend(rolling(plain, after=1))
    blue_green(plain, b, weight=0)
    b.scale_to_zero(STAGING, Slot.CANARY)
    b.deploy(STAGING, Slot.CANARY, NEW, 5)
    assert replicas_of(plain, "carts-canary") == 1


# --- conflicts and API errors ----------------------------------------------------------------------


def test_a_lost_race_is_re_read_and_retried(plain: FakeKube) -> None:
    """A 409 on the Deployment patch is retried after re-reading; the deploy succeeds."""
    b = backend(rolling(plain, after=1))
    b.deploy(STAGING, Slot.CANARY, OLD, 5)
    plain.fail_next(1, 409, method="PATCH", resource="deployments.apps", reason="Conflict")
    b.deploy(STAGING, Slot.CANARY, NEW, 5)
    assert image_of(plain, "carts-canary") == NEW
    assert [r.code for r in plain.requests if r.method == "PATCH"] == [409, 200]


def test_a_concurrent_create_is_taken_over(plain: FakeKube) -> None:
    """AlreadyExists on create (a duplicate delivery created it) turns into an update."""
    b = backend(rolling(plain, after=1))
    plain.fail_next(1, 409, method="POST", resource="deployments.apps", reason="AlreadyExists")
    assert b.deploy(STAGING, Slot.PRIMARY, OLD, 5).startswith("http://carts-primary.")


def test_conflicts_that_never_end_are_retryable(plain: FakeKube) -> None:
    """A write that keeps losing races gives up with RetryableError (the broker retries later)."""
    b = backend(rolling(plain, after=1))
    b.deploy(STAGING, Slot.CANARY, OLD, 5)
    plain.fail_next(10, 409, method="PATCH", resource="deployments.apps")
    with pytest.raises(RetryableError, match="after 4 attempts"):
        b.deploy(STAGING, Slot.CANARY, NEW, 5)


def test_conflict_retries_back_off(plain: FakeKube) -> None:
    """Between attempts that lose a compare-and-swap race the backend waits, longer each time (jittered exponential)."""
    pauses: list[float] = []
    b = KubernetesBackend(plain.api_client(), poll_s=0.01, sleep=pauses.append)
    rolling(plain, after=1)
    b.deploy(STAGING, Slot.CANARY, OLD, 5)
    pauses.clear()
    plain.fail_next(10, 409, method="PATCH", resource="deployments.apps")
    with pytest.raises(RetryableError):
        b.deploy(STAGING, Slot.CANARY, NEW, 5)
    assert len(pauses) == 3  # 4 attempts, a pause between each
    assert all(0.025 <= p <= 0.075 * 2**i for i, p in enumerate(pauses))
    assert pauses[2] > pauses[0]


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, RetryableError), (429, RetryableError), (403, ConfigurationError), (422, PermanentError)],
)
def test_api_errors_become_sluice_errors(plain: FakeKube, status: int, error: type[Exception]) -> None:
    """API server errors map to Retryable (5xx, 429), Configuration (RBAC) or Permanent (invalid) errors."""
    plain.fail_next(1, status, method="POST", resource="deployments.apps", message="injected")
    with pytest.raises(error) as info:
        backend(plain).deploy(STAGING, Slot.CANARY, NEW, 5)
    assert type(info.value).__module__.startswith("sluice.")


def test_rbac_refusal_names_the_fix(plain: FakeKube) -> None:
    """A 403 says the ServiceAccount lacks a right and where the rights are declared."""
    plain.fail_next(1, 403, method="GET", resource="deployments.apps", message='deployments.apps "carts-canary" is forbidden')
    with pytest.raises(ConfigurationError, match=r"knative/rbac.yaml"):
        backend(plain).deploy(STAGING, Slot.CANARY, NEW, 5)


def test_unreachable_api_server_is_retryable() -> None:
    """No API server listening: RetryableError, never a urllib3 or kubernetes exception."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from kubernetes.client import Configuration

    config = Configuration(host=f"http://127.0.0.1:{port}")
    config.retries = 0
    b = KubernetesBackend(config, poll_s=0.01, request_timeout=2)
    with pytest.raises(RetryableError, match="could not be reached"):
        b.deploy(STAGING, Slot.CANARY, NEW, 1)


def test_registry_builds_the_backend_by_name(fake: FakeKube) -> None:
    """create_backend('kubernetes', api=...) gives a KubernetesBackend; a wrong api is a ConfigurationError."""
    assert isinstance(create_backend("kubernetes", api=fake.api_client()), KubernetesBackend)
    with pytest.raises(ConfigurationError, match="expected a kubernetes ApiClient"):
        create_backend("kubernetes", api="http://nowhere")


# --- least privilege ---------------------------------------------------------------------------------


def _granted() -> set[tuple[str, str, str]]:
    docs = list(yaml.safe_load_all(RBAC.read_text()))
    role = next(d for d in docs if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "sluice-deployer")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _verb(method: str, name: str | None) -> str:
    return {"GET": "get" if name else "list", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]


@pytest.mark.parametrize("istio", [True, False])
def test_every_request_is_allowed_by_the_deployer_cluster_role(fake: FakeKube, plain: FakeKube, istio: bool) -> None:
    """Each verb the backend uses in a full delivery is granted by ClusterRole sluice-deployer, and no more is needed."""
    server = fake if istio else plain
    b = backend(rolling(server, after=2))
    seed_pod(server, "carts-canary-ok", OLD, {"reason": "ContainerCreating"})
    blue_green(server, b, weight=100)
    b.deploy(STAGING, Slot.PRIMARY, NEW, 5)
    b.route(STAGING, 0)
    b.scale_to_zero(STAGING, Slot.CANARY)
    b.deploy(DEV, Slot.DIRECT, NEW, 5)
    b.route(DEV, 100)
    granted = _granted()
    used = set()
    for r in server.requests:
        if r.resource is None:
            continue  # discovery (/apis): open to every authenticated user
        plural, _, group = r.resource.partition(".")
        used.add((group, plural, _verb(r.method, r.name)))
    assert used <= granted, f"requests not granted by sluice-deployer: {sorted(used - granted)}"


def test_errors_are_sluice_errors_only(plain: FakeKube) -> None:
    """Whatever the API answers, the backend raises only Sluice's own errors."""
    for status in (400, 404, 409, 500):
        plain.fail_next(5, status, method="GET")
        with pytest.raises(SluiceError):
            backend(plain).route(STAGING, 0)
