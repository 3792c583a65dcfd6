"""The ``DeploymentBackend`` contract (ports/backend.py), one suite run against every backend:
``noop``; ``local`` (real processes of examples/sockshop/carts behind the router — ``slow``);
``kubernetes`` and ``knative`` against the fake Kubernetes API (tests/support/fake_kube.py); and
``kubernetes`` and ``knative`` against a real API server (``kube``: tests/support/kube/cluster.py,
the test playing the kubelet and Knative's controller).

The contract, as the deploy service relies on it (its plans are core/deployment.py's):

1. ``deploy`` is idempotent: the same image in the same slot again answers the same URL and
   starts no second rollout; another image rolls the slot out anew.
2. A redelivered step does no harm: the whole promote (deploy primary = candidate, route 0,
   scale the canary to zero) or discard (route 0, scale the canary to zero) done twice leaves the
   same state as once, without an error.
3. Discarding nothing is fine: ``scale_to_zero`` of a slot that never ran, and a discard on a
   stage that only runs its primary, succeed and change nothing.
4. Promote makes the candidate the primary: the stage's traffic reaches the candidate's image,
   the canary gets no traffic any more.
5. Weights: ``route(w)`` gives the canary ``w`` % where the platform splits by weight (a switch
   at 50 % otherwise); ``route`` always answers the same stable stage URL; ``deploy`` answers the
   slot's own URL, the same for every image.
6. Errors are classified: a weight outside 0..100 is refused before any change
   (``ValidationError``), a malformed image too (``ValidationError`` or ``PermanentError``: never
   retried); an image that never becomes ready is a ``PermanentError``
   within the timeout, and the traffic stays where it was; a platform that cannot be reached is a
   ``RetryableError`` (kubernetes, knative). No vendor exception escapes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.support.fake_kube import FakeKube, deployment_failing, deployment_rollout, knative_serving

from sluice.adapters.backends.noop import NoopBackend
from sluice.errors import PermanentError, RetryableError, SluiceError, ValidationError
from sluice.ports.backend import DeploymentBackend, Placement, Slot

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sockshop"
CARTS = "docker.io/keptnexamples/carts"
V1, V3 = f"{CARTS}:0.10.1", f"{CARTS}:0.10.3"
NEVER = "example.org/never-ready:1"
KSVC = "services.serving.knative.dev"
REVISIONS = "revisions.serving.knative.dev"
VS = "virtualservices.networking.istio.io"
Obj = dict[str, Any]


@dataclass
class Harness:
    """A backend and how to look at what it runs, for one fresh stage (``placement``) and a
    direct one (``direct``)."""

    backend: DeploymentBackend
    placement: Placement
    direct: Placement
    timeout_s: float
    #: the image most of a stage's traffic reaches now ('' when none)
    serving: Callable[[Placement], str]
    #: the canary's share of the stage's traffic as the platform records it (None: no weighted split)
    weight: Callable[[Placement], int | None]
    #: changes with every rollout of a slot, and only then
    rollout: Callable[[Placement, Slot], object]
    #: a backend whose platform cannot be reached (None: the backend has no remote platform)
    unreachable: DeploymentBackend | None = None
    #: a short timeout for the image that never becomes ready
    never_timeout_s: float = 2.0
    cleanup: list[Callable[[], None]] = field(default_factory=list)


# --- noop ----------------------------------------------------------------------------------------

def noop_harness() -> Harness:
    backend = NoopBackend(fail_images=[NEVER])

    def rollouts(placement: Placement, slot: Slot) -> object:
        """How often the slot's image changed (a noop 'rollout')."""
        count, last = 0, None
        for call in backend.calls:
            if call.method == "deploy" and call.placement == placement and call.slot is slot and call.image != NEVER:
                count, last = count + (call.image != last), call.image
            elif call.method == "scale_to_zero" and call.placement == placement and call.slot is slot:
                last = None
        return count

    weights: Callable[[Placement], int | None] = lambda p: backend.weights.get(p)  # noqa: E731
    return Harness(backend, Placement("shop", "staging", "carts"), Placement("shop", "dev", "carts"), 5.0,
                   backend.serving, weights, rollouts)


# --- the fake and the real Kubernetes API: one way to read objects --------------------------------

class View:
    """Reads objects by resource name ('deployments.apps', 'services', VS, KSVC, REVISIONS)."""

    def __init__(self, get: Callable[[str, str, str], Obj | None], list_: Callable[[str, str], list[Obj]]) -> None:
        self.get = get
        self.list = list_


def fake_view(fake: FakeKube) -> View:
    return View(fake.get_object, lambda resource, ns: fake.list_objects(resource, ns))


def real_view(api: Any) -> View:
    from kubernetes import client

    apps, core, custom = client.AppsV1Api(api), client.CoreV1Api(api), client.CustomObjectsApi(api)
    plain = api.sanitize_for_serialization

    def get(resource: str, ns: str, name: str) -> Obj | None:
        try:
            if resource == "deployments.apps":
                return dict(plain(apps.read_namespaced_deployment(name, ns)))
            if resource == "services":
                return dict(plain(core.read_namespaced_service(name, ns)))
            group, version, plural = _custom(resource)
            return dict(custom.get_namespaced_custom_object(group, version, ns, plural, name))
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def list_(resource: str, ns: str) -> list[Obj]:
        group, version, plural = _custom(resource)
        return list(custom.list_namespaced_custom_object(group, version, ns, plural)["items"])

    return View(get, list_)


def _custom(resource: str) -> tuple[str, str, str]:
    return {VS: ("networking.istio.io", "v1", "virtualservices"), KSVC: ("serving.knative.dev", "v1", "services"),
            REVISIONS: ("serving.knative.dev", "v1", "revisions")}[resource]


def _image(obj: Obj | None) -> str:
    if obj is None or int((obj.get("spec") or {}).get("replicas", 1) or 0) == 0:
        return ""
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def kube_serving(view: View) -> Callable[[Placement], str]:
    def serving(p: Placement) -> str:
        ns, svc = p.namespace, p.service
        vs = view.get(VS, ns, svc)
        if vs is not None:
            weights = {r["destination"]["host"]: int(r.get("weight", 0)) for r in vs["spec"]["http"][0]["route"]}
            host = f"{svc}-canary" if weights.get(f"{svc}-canary", 0) > weights.get(f"{svc}-primary", 0) else f"{svc}-primary"
            return _image(view.get("deployments.apps", ns, host))
        stage = view.get("services", ns, svc)
        if stage is None:
            return ""
        slot = stage["spec"]["selector"].get("sluice.dev/slot", "direct")
        return _image(view.get("deployments.apps", ns, svc if slot == "direct" else f"{svc}-{slot}"))

    return serving


def kube_weight(view: View) -> Callable[[Placement], int | None]:
    def weight(p: Placement) -> int | None:
        vs = view.get(VS, p.namespace, p.service)
        if vs is None:
            return None
        return next((int(r.get("weight", 0)) for r in vs["spec"]["http"][0]["route"]
                     if r["destination"]["host"] == f"{p.service}-canary"), 0)

    return weight


def kube_rollout(view: View) -> Callable[[Placement, Slot], object]:
    def rollout(p: Placement, slot: Slot) -> object:
        name = p.service if slot is Slot.DIRECT else f"{p.service}-{slot.value}"
        dep = view.get("deployments.apps", p.namespace, name)
        return None if dep is None else (dep["metadata"].get("generation"), _image(dep))

    return rollout


def knative_serving_of(view: View) -> Callable[[Placement], str]:
    def serving(p: Placement) -> str:
        svc = view.get(KSVC, p.namespace, p.service)
        if svc is None or not svc["spec"].get("traffic"):
            return ""
        top = max(svc["spec"]["traffic"], key=lambda t: (int(t.get("percent", 0)), t.get("tag") == "primary"))
        images = {r["metadata"]["name"]: r["spec"]["containers"][0]["image"] for r in view.list(REVISIONS, p.namespace)}
        return str(images.get(top.get("revisionName", ""), ""))

    return serving


def knative_weight(view: View) -> Callable[[Placement], int | None]:
    def weight(p: Placement) -> int | None:
        svc = view.get(KSVC, p.namespace, p.service)
        traffic = (svc or {}).get("spec", {}).get("traffic") or []
        return next((int(t.get("percent", 0)) for t in traffic if t.get("tag") == "canary"), 0)

    return weight


def knative_rollout(view: View) -> Callable[[Placement, Slot], object]:
    def rollout(p: Placement, slot: Slot) -> object:
        """The revisions of the stage (a rollout makes a new one) and the slot's revision."""
        svc = view.get(KSVC, p.namespace, p.service)
        tag = {Slot.PRIMARY: "primary", Slot.CANARY: "canary", Slot.DIRECT: None}[slot]
        traffic = (svc or {}).get("spec", {}).get("traffic") or []
        mine = next((t.get("revisionName") for t in traffic if t.get("tag") == tag), None)
        return len(view.list(REVISIONS, p.namespace)), mine

    return rollout


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unreachable_api() -> Any:
    from kubernetes.client import ApiClient, Configuration

    config = Configuration(host=f"http://127.0.0.1:{closed_port()}")
    return ApiClient(config)


# --- fake kubernetes / knative ---------------------------------------------------------------------

@contextlib.contextmanager
def fake_kubernetes() -> Iterator[Harness]:
    from sluice.adapters.backends.kubernetes import KubernetesBackend

    with FakeKube() as fake:
        fake.add_namespace("shop-staging")
        fake.add_namespace("shop-dev")
        fake.on_read("deployments.apps", deployment_failing(
            when=lambda dep: dep["spec"]["template"]["spec"]["containers"][0]["image"] == NEVER))
        fake.on_read("deployments.apps", deployment_rollout(ready_after_reads=2))
        view = fake_view(fake)
        backend = KubernetesBackend(fake.api_client(), poll_s=0.01)
        yield Harness(backend, Placement("shop", "staging", "carts"), Placement("shop", "dev", "carts"), 10.0,
                      kube_serving(view), kube_weight(view), kube_rollout(view),
                      unreachable=KubernetesBackend(unreachable_api(), poll_s=0.01, request_timeout=2.0))


@contextlib.contextmanager
def fake_knative() -> Iterator[Harness]:
    from sluice.adapters.backends.knative import KnativeBackend

    with FakeKube() as fake:
        fake.add_namespace("shop-staging")
        fake.add_namespace("shop-dev")
        fake.on_write(KSVC, knative_serving(ready=lambda rev: rev["spec"]["containers"][0]["image"] != NEVER))
        view = fake_view(fake)
        backend = KnativeBackend(fake.api_client(), poll_s=0.01)
        yield Harness(backend, Placement("shop", "staging", "carts"), Placement("shop", "dev", "carts"), 10.0,
                      knative_serving_of(view), knative_weight(view), knative_rollout(view),
                      unreachable=KnativeBackend(unreachable_api(), poll_s=0.01, request_timeout=2.0))


# --- local: real processes -------------------------------------------------------------------------

@contextlib.contextmanager
def local(tmp_path: Path) -> Iterator[Harness]:
    from sluice.adapters.backends.local import LocalBackend
    from sluice.embedded.host import pid_alive

    data = yaml.safe_load((EXAMPLE / "images.yaml").read_text())
    images = {k: v for k, v in data["images"].items() if k in (V1, V3)}
    for entry in images.values():
        entry["command"] = [arg.replace("{dir}", str(EXAMPLE)) for arg in entry["command"]]
    images[NEVER] = {"command": ["{python}", "-c", "import time; time.sleep(60)", "{port}"]}
    runtime = tmp_path / "runtime"
    backend = LocalBackend({"images": images}, runtime, drain_timeout_s=5, stop_timeout_s=3)

    def record(p: Placement, slot: Slot) -> Obj | None:
        """The slot's record (``slots/<project>.<stage>.<service>.<slot>.json``, docs/local-backend.md)."""
        path = runtime / "slots" / f"{p.project}.{p.stage}.{p.service}.{slot.value}.json"
        return dict(json.loads(path.read_text())) if path.exists() else None

    def serving(p: Placement) -> str:
        url = backend.stage_url(p)
        if url is None:
            return ""
        answer = httpx.get(url + "/version", timeout=10)
        return f"{CARTS}:{answer.json()['version']}" if answer.status_code == 200 else ""

    def weight(p: Placement) -> int | None:
        url = backend.stage_url(p)
        stages = json.loads((runtime / "router-stages.json").read_text()) if (runtime / "router-stages.json").exists() else {}
        port = url.rsplit(":", 1)[1] if url else None
        return next((int(e.get("canary_weight", 0)) for e in stages.values()
                     if isinstance(e, dict) and str(e.get("port")) == port), None)

    def rollout(p: Placement, slot: Slot) -> object:
        found = record(p, slot)
        return None if found is None else (found.get("pid"), found.get("image"))

    try:
        yield Harness(backend, Placement("shop", "staging", "carts"), Placement("shop", "dev", "carts"), 20.0,
                      serving, weight, rollout, never_timeout_s=3.0)
    finally:
        backend.stop_all()
        for path in (runtime / "slots").glob("*.json") if (runtime / "slots").is_dir() else ():
            pid = json.loads(path.read_text()).get("pid")
            if isinstance(pid, int) and pid_alive(pid, None):
                os.killpg(pid, signal.SIGKILL)


# --- the real API server ---------------------------------------------------------------------------

@contextlib.contextmanager
def real_kubernetes(cluster: Any) -> Iterator[Harness]:
    from tests.support.kube.cluster import Kubelet

    from sluice.adapters.backends.kubernetes import KubernetesBackend

    project = f"c{uuid.uuid4().hex[:6]}"
    staging, dev = Placement(project, "staging", "carts"), Placement(project, "dev", "carts")
    for p in (staging, dev):
        cluster.create_namespace(p.namespace, {"pod-security.kubernetes.io/enforce": "baseline"})
    api = cluster.api_client()
    view = real_view(api)

    def starts(pod: Any) -> bool:
        return all(c.image != NEVER for c in pod.spec.containers)

    with Kubelet(cluster, staging.namespace, accept=starts), Kubelet(cluster, dev.namespace, accept=starts):
        yield Harness(KubernetesBackend(api, poll_s=0.2), staging, dev, 120.0, kube_serving(view), kube_weight(view),
                      kube_rollout(view), unreachable=KubernetesBackend(unreachable_api(), request_timeout=2.0),
                      never_timeout_s=5.0)


@contextlib.contextmanager
def real_knative(cluster: Any) -> Iterator[Harness]:
    from tests.support.kube.cluster import require_knative
    from tests.support.kube.serving import ServingController

    from sluice.adapters.backends.knative import KnativeBackend

    require_knative(cluster)
    project = f"k{uuid.uuid4().hex[:6]}"
    staging, dev = Placement(project, "staging", "carts"), Placement(project, "dev", "carts")
    for p in (staging, dev):
        cluster.create_namespace(p.namespace)
    api = cluster.api_client()
    view = real_view(api)

    def fails(image: str, attempt: int) -> bool:
        return image == NEVER

    with ServingController(cluster, staging.namespace, fails=fails), ServingController(cluster, dev.namespace, fails=fails):
        yield Harness(KnativeBackend(api, poll_s=0.2, route_timeout_s=60), staging, dev, 60.0, knative_serving_of(view),
                      knative_weight(view), knative_rollout(view),
                      unreachable=KnativeBackend(unreachable_api(), request_timeout=2.0), never_timeout_s=10.0)


BACKENDS = [
    pytest.param("noop", id="noop"),
    pytest.param("local", id="local", marks=pytest.mark.slow),
    pytest.param("kubernetes-fake", id="kubernetes-fake"),
    pytest.param("knative-fake", id="knative-fake"),
    pytest.param("kubernetes-real", id="kubernetes-real", marks=pytest.mark.kube),
    pytest.param("knative-real", id="knative-real", marks=pytest.mark.kube),
]


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    kind = request.param
    if kind == "noop":
        yield noop_harness()
        return
    factories: dict[str, Callable[[], contextlib.AbstractContextManager[Harness]]] = {
        "local": lambda: local(tmp_path),
        "kubernetes-fake": fake_kubernetes,
        "knative-fake": fake_knative,
        "kubernetes-real": lambda: real_kubernetes(request.getfixturevalue("kube_cluster")),
        "knative-real": lambda: real_knative(request.getfixturevalue("kube_cluster")),
    }
    with factories[kind]() as made:
        yield made


def blue_green(h: Harness, primary: str = V1, candidate: str = V3, weight: int = 100) -> tuple[str, str, str]:
    """A stage running ``primary`` with ``candidate`` beside it at ``weight`` %: (primary URL, canary URL, stage URL)."""
    p = h.placement
    primary_url = h.backend.deploy(p, Slot.PRIMARY, primary, h.timeout_s)
    h.backend.route(p, 0)
    canary_url = h.backend.deploy(p, Slot.CANARY, candidate, h.timeout_s)
    stage_url = h.backend.route(p, weight)
    return primary_url, canary_url, stage_url


def promote(h: Harness, candidate: str) -> None:
    """The deploy service's promotion (core.deployment.plan_promote of a blue/green stage)."""
    h.backend.deploy(h.placement, Slot.PRIMARY, candidate, h.timeout_s)
    h.backend.route(h.placement, 0)
    h.backend.scale_to_zero(h.placement, Slot.CANARY)


def discard(h: Harness, placement: Placement | None = None) -> None:
    """The deploy service's roll-back of a split stage (core.deployment.plan_discard)."""
    h.backend.route(placement or h.placement, 0)
    h.backend.scale_to_zero(placement or h.placement, Slot.CANARY)


# --- 1. deploy is idempotent -----------------------------------------------------------------------

def test_deploying_the_running_image_again_starts_no_rollout(harness: Harness) -> None:
    """The same image twice: the same URL, no second rollout; another image: a new rollout."""
    h, p = harness, harness.placement
    url = h.backend.deploy(p, Slot.PRIMARY, V1, h.timeout_s)
    assert url.startswith("http")
    first = h.rollout(p, Slot.PRIMARY)
    assert first is not None
    assert h.backend.deploy(p, Slot.PRIMARY, V1, h.timeout_s) == url
    assert h.rollout(p, Slot.PRIMARY) == first, "a redelivered deploy rolled the slot out again"
    assert h.backend.deploy(p, Slot.PRIMARY, V3, h.timeout_s) == url, "a slot's URL does not depend on its image"
    assert h.rollout(p, Slot.PRIMARY) != first


def test_a_direct_stage_serves_its_one_image(harness: Harness) -> None:
    """A direct stage: deploy, route (weight ignored) → its image serves; a new image replaces it; again: no rollout."""
    h, d = harness, harness.direct
    h.backend.deploy(d, Slot.DIRECT, V1, h.timeout_s)
    stage = h.backend.route(d, 100)
    assert h.serving(d) == V1
    h.backend.deploy(d, Slot.DIRECT, V3, h.timeout_s)
    assert h.backend.route(d, 100) == stage
    assert h.serving(d) == V3
    before = h.rollout(d, Slot.DIRECT)
    h.backend.deploy(d, Slot.DIRECT, V3, h.timeout_s)
    assert h.rollout(d, Slot.DIRECT) == before


# --- 2 and 4. promote makes the candidate primary; redelivered, it does no harm -----------------------

def test_promote_makes_the_candidate_primary_and_twice_is_once(harness: Harness) -> None:
    """After promote the stage serves the candidate and the canary gets nothing; the whole promotion
    redelivered changes nothing (no rollout, same traffic) and raises nothing."""
    h, p = harness, harness.placement
    _, _, stage = blue_green(h)
    assert h.serving(p) == V3
    promote(h, V3)
    assert h.serving(p) == V3
    assert h.weight(p) in (0, None)
    state = (h.rollout(p, Slot.PRIMARY), h.rollout(p, Slot.CANARY), h.weight(p))
    promote(h, V3)
    assert (h.rollout(p, Slot.PRIMARY), h.rollout(p, Slot.CANARY), h.weight(p)) == state
    assert h.serving(p) == V3 and h.backend.route(p, 0) == stage


def test_discard_returns_the_traffic_and_twice_is_once(harness: Harness) -> None:
    """A discard sends every request to the primary again; redelivered, it changes nothing."""
    h, p = harness, harness.placement
    blue_green(h)
    discard(h)
    assert h.serving(p) == V1 and h.weight(p) in (0, None)
    state = (h.rollout(p, Slot.PRIMARY), h.rollout(p, Slot.CANARY), h.weight(p))
    discard(h)
    assert (h.rollout(p, Slot.PRIMARY), h.rollout(p, Slot.CANARY), h.weight(p)) == state
    assert h.serving(p) == V1


# --- 3. discarding nothing is fine -----------------------------------------------------------------

def test_discarding_nothing_is_fine(harness: Harness) -> None:
    """scale_to_zero of a slot that never ran, and a discard where only the primary runs: no error, no change."""
    h, p = harness, harness.placement
    h.backend.scale_to_zero(p, Slot.CANARY)
    h.backend.deploy(p, Slot.PRIMARY, V1, h.timeout_s)
    h.backend.route(p, 0)
    before = (h.rollout(p, Slot.PRIMARY), h.serving(p))
    discard(h)
    discard(h)
    assert (h.rollout(p, Slot.PRIMARY), h.serving(p)) == before == (before[0], V1)


def test_a_discard_on_a_stage_that_never_ran_is_fine(harness: Harness) -> None:
    """A first delivery whose very first deployment failed is rolled back: the discard finds
    nothing at all, and must neither fail nor create anything that serves."""
    h, p = harness, harness.placement
    discard(h)
    assert h.serving(p) == ""


# --- 5. weights and URLs ---------------------------------------------------------------------------

def test_route_sets_the_canary_weight_and_keeps_one_stage_url(harness: Harness) -> None:
    """route(w) gives the canary w % where the platform splits by weight (else the majority
    switches at 50 %); every call answers the same stage URL."""
    h, p = harness, harness.placement
    _, _, stage = blue_green(h, weight=0)
    for weight in (0, 10, 50, 90, 100, 0):
        assert h.backend.route(p, weight) == stage
        recorded = h.weight(p)
        assert recorded is None or recorded == weight, f"route({weight}) recorded {recorded}"
        if weight in (0, 100):
            assert h.serving(p) == (V3 if weight == 100 else V1)


# --- 6. errors are classified ----------------------------------------------------------------------

@pytest.mark.parametrize("weight", [-1, 101, 1000])
def test_a_weight_outside_0_to_100_is_refused_before_any_change(harness: Harness, weight: int) -> None:
    h, p = harness, harness.placement
    blue_green(h, weight=30)
    before = (h.weight(p), h.serving(p))
    with pytest.raises(ValidationError):
        h.backend.route(p, weight)
    assert (h.weight(p), h.serving(p)) == before


def test_an_image_that_never_gets_ready_is_permanent_and_the_traffic_stays(harness: Harness) -> None:
    """PermanentError within the timeout (never retryable: waiting longer would not help); the
    primary keeps serving."""
    h, p = harness, harness.placement
    h.backend.deploy(p, Slot.PRIMARY, V1, h.timeout_s)
    h.backend.route(p, 0)
    with pytest.raises(PermanentError):
        h.backend.deploy(p, Slot.CANARY, NEVER, h.never_timeout_s)
    assert h.serving(p) == V1


def test_a_platform_that_cannot_be_reached_is_retryable(harness: Harness) -> None:
    """No API server: every method raises RetryableError (the broker retries), never a vendor exception."""
    if harness.unreachable is None:
        assert isinstance(harness.backend, NoopBackend) or type(harness.backend).__name__ == "LocalBackend"
        return  # no remote platform: nothing can be unreachable
    p = harness.placement
    for call in (lambda b: b.deploy(p, Slot.PRIMARY, V1, 2.0), lambda b: b.route(p, 0),
                 lambda b: b.scale_to_zero(p, Slot.CANARY)):
        with pytest.raises(SluiceError) as caught:
            call(harness.unreachable)
        assert isinstance(caught.value, RetryableError), f"{type(caught.value).__name__}: {caught.value}"


@pytest.mark.parametrize("image", ["not an image!", "", "a:b:c:d"])
def test_a_malformed_image_is_refused_before_any_change(harness: Harness, image: str) -> None:
    """A reference no registry could hold is refused with an error that is never retried
    (ValidationError or PermanentError), and nothing changes."""
    h, p = harness, harness.placement
    h.backend.deploy(p, Slot.PRIMARY, V1, h.timeout_s)
    h.backend.route(p, 0)
    before = (h.rollout(p, Slot.PRIMARY), h.rollout(p, Slot.CANARY), h.serving(p))
    with pytest.raises((ValidationError, PermanentError)):
        h.backend.deploy(p, Slot.CANARY, image, h.timeout_s)
    assert (h.rollout(p, Slot.PRIMARY), h.rollout(p, Slot.CANARY), h.serving(p)) == before
