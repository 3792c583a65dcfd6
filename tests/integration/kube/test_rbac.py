"""RBAC through the real authorizer: knative/rbac.yaml applied, each function's adapter calls run with its
ServiceAccount's own token (a real, server-signed TokenRequest token).

For each ServiceAccount: every call it makes is allowed (the audit log shows no 403), and the
authorizer grants nothing more than what those calls used (SelfSubjectRulesReview, less what every
authenticated user may). Secrets rules (credentials, one consumer each) must name their Secrets
(``resourceNames``) and only ``get`` them. New project namespaces get the deployer's rights by the
documented RoleBinding command (docs/cluster.md), and without it the deploy calls are refused;
the objects of a service's own chart (created, then updated) are within the deployer's rights.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from tests.support.kube.cluster import Cluster, Kubelet, require_knative
from tests.support.kube.serving import ServingController

from sluice.adapters.backends.knative import KnativeBackend
from sluice.adapters.backends.kubernetes import KubernetesBackend
from sluice.adapters.state.configmap import ConfigMapStore
from sluice.adapters.testunits.kubernetes_job import JobLauncher
from sluice.core.workload import UserWorkload
from sluice.errors import ConfigurationError, ValidationError
from sluice.ports.backend import Placement, Slot
from sluice.ports.state import Record
from sluice.services.workloads import find_helm, prepare, render_chart

ROOT = Path(__file__).resolve().parents[3]
NS = "sluice"
Rule = tuple[str, str, str]  # (API group, resource, verb)

STATE_WRITE: set[Rule] = {("", "configmaps", v) for v in ("get", "list", "create", "patch")}
PRUNE: set[Rule] = {("", "configmaps", "delete")}
#: What each function's adapters do in the `sluice` namespace (sluice.adapters.*):
#: every writer reads, lists by label, creates and updates records; sli reads single records
#: (its project's settings, stored measurements); the bridge reads and lists; test starts Jobs.
IN_SLUICE: dict[str, set[Rule]] = {
    "sluice-deploy": STATE_WRITE,
    "sluice-test": STATE_WRITE | {("batch", "jobs", "create")},
    "sluice-testworker": STATE_WRITE,
    "sluice-evaluate": STATE_WRITE,
    "sluice-gatekeeper": STATE_WRITE | PRUNE,  # a quality gate's record, when it ends
    "sluice-eventlog": STATE_WRITE | PRUNE,  # the logs of deliveries past their retention
    "sluice-intake": STATE_WRITE | PRUNE,  # the old intake-secrets record, once moved
    "sluice-sli": {("", "configmaps", "get")},
    "sluice-bridge": {("", "configmaps", "get"), ("", "configmaps", "list")},
}
DEPLOYER: set[Rule] = {
    ("apps", "deployments", "get"), ("apps", "deployments", "create"), ("apps", "deployments", "patch"),
    ("", "services", "get"), ("", "services", "create"), ("", "services", "patch"),
    ("", "pods", "list"),
    ("networking.istio.io", "virtualservices", "get"), ("networking.istio.io", "virtualservices", "create"),
    ("networking.istio.io", "virtualservices", "patch"),
    ("serving.knative.dev", "services", "get"), ("serving.knative.dev", "services", "create"),
    ("serving.knative.dev", "services", "patch"),
    ("serving.knative.dev", "revisions", "get"), ("serving.knative.dev", "revisions", "list"),
    # the other objects of a service's own chart (sluice onboard --chart), created and updated
    *((group, resource, verb) for group, resource in (("", "configmaps"), ("", "persistentvolumeclaims"),
                                                      ("", "serviceaccounts"), ("apps", "statefulsets"))
      for verb in ("get", "create", "patch")),
}
CHARTS = ROOT / "tests" / "fixtures" / "charts"


def chart_workloads(placement: Placement) -> tuple[UserWorkload, UserWorkload]:
    """tests/fixtures/charts/carts-full rendered for the placement by the real helm, and a second
    version of it whose every other object changed (so each is created, then updated)."""
    objects = render_chart(find_helm(), CHARTS / "carts-full", placement.service, placement.namespace)
    first = prepare(objects, service=placement.service, namespace=placement.namespace, platform="kubernetes", source="chart")
    changed = []
    for obj in first.objects:
        obj = copy.deepcopy(dict(obj))
        if not (obj["kind"] in ("Deployment", "Service") and obj["metadata"]["name"] == placement.service):
            obj["metadata"].setdefault("annotations", {})["example.test/revision"] = "2"
        changed.append(obj)
    second = prepare(changed, service=placement.service, namespace=placement.namespace, platform="kubernetes", source="chart")
    return first, second


def user(sa: str) -> str:
    return f"system:serviceaccount:{NS}:{sa}"


@pytest.fixture(scope="module")
def installed(kube_cluster: Cluster) -> Cluster:
    """namespace.yaml and every knative/rbac*.yaml (the state's and the Secrets' rules) applied as an operator would."""
    files = [ROOT / "knative" / "namespace.yaml", *sorted((ROOT / "knative").glob("rbac*.yaml"))]
    kube_cluster.kubectl("apply", "--server-side", *(arg for path in files for arg in ("-f", str(path))))
    return kube_cluster


def granted(cluster: Cluster, token: str, namespace: str) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """What the authorizer grants the token's user in ``namespace`` (group, resource, verb, resourceNames)."""
    review = client.AuthorizationV1Api(cluster.api_client(token)).create_self_subject_rules_review(
        {"spec": {"namespace": namespace}}
    )
    out = set()
    for rule in review.status.resource_rules:
        for group in rule.api_groups or [""]:
            for resource in rule.resources or []:
                for verb in rule.verbs:
                    out.add((group, resource, verb, tuple(sorted(rule.resource_names or []))))
    return out


def extra_grants(cluster: Cluster, token: str, namespace: str) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """``granted`` less what every ServiceAccount has by Kubernetes' default policy (the same review
    for a ServiceAccount nobody bound anything to: discovery, self reviews, ClusterTrustBundles)."""
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", "default", check=False)
    baseline = granted(cluster, cluster.service_account_token("default", "nobody"), namespace)
    return granted(cluster, token, namespace) - baseline


def used(cluster: Cluster, sa: str, namespace: str) -> set[Rule]:
    entries = cluster.audit(user(sa), namespace)
    refused = [e for e in entries if e.code == 403]
    assert not refused, f"{sa} was refused: {[(e.verb, e.resource, e.uri) for e in refused]}"
    return {(e.group, e.resource, e.verb) for e in entries if e.resource and e.resource != "selfsubjectrulesreviews"}


def state_calls(store: ConfigMapStore, sa: str, write: bool, list_: bool, delete: bool = False) -> None:
    """The state store's calls: create and compare-and-swap update (writers), read, list by label,
    delete (the pruners)."""
    name = f"rbac-{sa}-{uuid.uuid4().hex[:6]}"
    if write:
        created = store.put(Record(name, data={"a": "1"}, labels={"sluice.dev/kind": "rbac"}))
        store.put(Record(name, data={"a": "2"}, labels={"sluice.dev/kind": "rbac"}, resource_version=created.resource_version))
    got = store.get(name)
    assert (got is not None) == write
    if list_:
        store.list({"sluice.dev/kind": "rbac"})
    if delete:
        assert store.delete(name) is True


@pytest.mark.parametrize("sa", sorted(IN_SLUICE))
def test_each_function_may_do_in_sluice_exactly_what_its_adapters_do(installed: Cluster, sa: str) -> None:
    """Run the function's adapter calls with its own token: all allowed, and nothing more is granted in `sluice`."""
    cluster = installed
    token = cluster.service_account_token(NS, sa)
    expected = IN_SLUICE[sa]
    verbs = {v for _, r, v in expected if r == "configmaps"}
    store = ConfigMapStore(cluster.api_client(token), NS)
    state_calls(store, sa, write="create" in verbs, list_="list" in verbs, delete="delete" in verbs)
    if ("", "configmaps", "create") not in expected:  # a reader's write is refused, as a configuration error
        with pytest.raises(ConfigurationError):
            store.put(Record(f"rbac-{sa}-refused"))
    if ("batch", "jobs", "create") in expected:
        JobLauncher(cluster.api_client(token), NS, "example.test/sluice:0.1.0")(
            {"id": str(uuid.uuid4()), "source": "rbac-test", "data": {"project": "p", "stage": "s", "service": "c"}}
        )
    # the refused write above is in the audit log as a 403: judge only the allowed calls
    entries = [e for e in cluster.audit(user(sa), NS) if e.code != 403]
    calls = {(e.group, e.resource, e.verb) for e in entries if e.resource and e.resource != "selfsubjectrulesreviews"}
    assert calls == expected
    grants = extra_grants(cluster, token, NS)
    secrets = {g for g in grants if g[1] == "secrets"}
    for _, _, verb, names in secrets:
        assert names and verb == "get", f"{sa} may {verb} secrets {names or '(all)'}: expected get by resourceNames"
    assert {(g, r, v) for g, r, v, _ in grants - secrets} == expected
    for verb in sorted({"delete", "update", "watch"} - verbs):
        answer = cluster.kubectl("auth", "can-i", verb, "configmaps", "-n", NS, f"--as={user(sa)}", check=False)
        assert answer.stdout.strip() == "no", f"{sa} may {verb} configmaps"


def project_namespaces(cluster: Cluster, project: str, stages: list[str]) -> list[str]:
    """The documented onboarding of a project: a namespace and a RoleBinding per stage (docs/cluster.md)."""
    out = []
    for stage in stages:
        ns = f"{project}-{stage}"
        cluster.kubectl("create", "namespace", ns)
        cluster.kubectl(
            "-n", ns, "create", "rolebinding", "sluice-deployer", "--clusterrole=sluice-deployer",
            "--serviceaccount=sluice:sluice-deploy",
        )
        out.append(ns)
    return out


def test_the_deploy_function_in_a_new_projects_namespaces(installed: Cluster) -> None:
    """With the documented RoleBindings, both backends' full blue/green cycles are allowed, and nothing more is granted."""
    cluster = installed
    require_knative(cluster)
    project = f"r{uuid.uuid4().hex[:6]}"
    istio_ns, plain_ns, knative_ns, chart_ns = project_namespaces(cluster, project, ["dev", "staging", "production", "chart"])
    token = cluster.service_account_token(NS, "sluice-deploy")
    old, new = "example.test/carts:1", "example.test/carts:2"
    for ns, istio in ((istio_ns, None), (plain_ns, False)):
        placement = Placement(project, ns.split("-", 1)[1], "carts")
        be = KubernetesBackend(cluster.api_client(token), istio=istio, poll_s=0.2)
        with Kubelet(cluster, ns):
            be.deploy(placement, Slot.PRIMARY, old, 60)
            be.route(placement, 0)
            be.deploy(placement, Slot.CANARY, new, 60)
            be.route(placement, 100)
            be.route(placement, 0)
            be.scale_to_zero(placement, Slot.CANARY)
    placement = Placement(project, "chart", "carts")
    workloads = list(chart_workloads(placement))
    be = KubernetesBackend(cluster.api_client(token), istio=False, poll_s=0.2, workloads=lambda p: workloads[0])
    with Kubelet(cluster, chart_ns):
        be.deploy(placement, Slot.PRIMARY, old, 60)
        workloads.pop(0)
        be.deploy(placement, Slot.PRIMARY, old, 60)
    placement = Placement(project, "production", "carts")
    kn = KnativeBackend(cluster.api_client(token), poll_s=0.2)
    with ServingController(cluster, knative_ns):
        kn.deploy(placement, Slot.PRIMARY, old, 60)
        kn.deploy(placement, Slot.CANARY, new, 60)
        kn.route(placement, 50)
        kn.route(placement, 0)
        kn.scale_to_zero(placement, Slot.CANARY)
    used_here = set().union(*(used(cluster, "sluice-deploy", ns) for ns in (istio_ns, plain_ns, knative_ns, chart_ns)))
    assert used_here == DEPLOYER, f"unused or unexpected: {sorted(used_here ^ DEPLOYER)}"
    for ns in (istio_ns, plain_ns, knative_ns, chart_ns):
        grants = {(g, r, v) for g, r, v, names in extra_grants(cluster, token, ns)}
        assert grants == DEPLOYER, f"in {ns}: granted beyond the calls: {sorted(grants - DEPLOYER)}"


def test_without_the_rolebinding_the_deploy_is_refused_as_a_configuration_error(installed: Cluster) -> None:
    """A project namespace nobody bound the deployer in: the first call is a 403, reported as a ConfigurationError naming rbac.yaml."""
    cluster = installed
    placement = Placement(f"u{uuid.uuid4().hex[:6]}", "dev", "carts")
    cluster.create_namespace(placement.namespace)
    token = cluster.service_account_token(NS, "sluice-deploy")
    with pytest.raises(ConfigurationError, match=r"rbac\.yaml"):
        KubernetesBackend(cluster.api_client(token), poll_s=0.2).deploy(placement, Slot.PRIMARY, "example.test/c:1", 30)
    with pytest.raises(ValidationError):  # and a name the server would refuse never gets that far
        KubernetesBackend(cluster.api_client(token)).deploy(Placement("p" * 40, "s" * 30, "c"), Slot.PRIMARY, "x:1", 30)


def test_no_function_has_rights_outside_sluice_and_its_project_namespaces(installed: Cluster) -> None:
    """In an unrelated namespace, no Sluice ServiceAccount is granted anything beyond every user's basics."""
    cluster = installed
    other = cluster.unique_namespace("other")
    for sa in sorted(IN_SLUICE):
        assert extra_grants(cluster, cluster.service_account_token(NS, sa), other) == set(), sa
