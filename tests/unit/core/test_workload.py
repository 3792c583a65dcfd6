"""The user's workload → primary/canary Deployments and the Service: the pod template kept whole."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.workload import derive_deployment, derive_service, split_workload
from sluice.errors import ValidationError

CARTS = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: carts
  namespace: user-ns
  uid: 1234
  resourceVersion: "77"
  labels: {app: carts, team: shop}
  annotations: {kubectl.kubernetes.io/last-applied-configuration: "{}", owner: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: carts}, matchExpressions: [{key: tier, operator: In, values: [web]}]}
  template:
    metadata:
      labels: {app: carts, tier: web}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      serviceAccountName: carts
      securityContext: {runAsNonRoot: true}
      initContainers:
        - {name: migrate, image: carts-migrate:1, command: [migrate]}
      containers:
        - name: carts
          image: docker.io/keptnexamples/carts:0.10.1
          env: [{name: JAVA_OPTS, value: -Xmx256m}, {name: DB, valueFrom: {secretKeyRef: {name: db, key: url}}}]
          ports: [{containerPort: 8080, name: http}]
          readinessProbe: {httpGet: {path: /health, port: 8080}, initialDelaySeconds: 5}
          livenessProbe: {httpGet: {path: /health, port: 8080}}
          resources: {limits: {memory: 512Mi}, requests: {cpu: 100m}}
          volumeMounts: [{name: config, mountPath: /config}]
        - name: envoy
          image: envoyproxy/envoy:v1.30
          args: [--config, /etc/envoy.yaml]
      volumes: [{name: config, configMap: {name: carts-config}}]
status: {replicas: 2}
""")
SELECTOR = {"app": "carts", "sluice.dev/slot": "canary"}
LABELS = {**SELECTOR, "app.kubernetes.io/managed-by": "sluice"}


def _derive(user: dict[str, Any], image: str = "docker.io/keptnexamples/carts:0.10.2") -> dict[str, Any]:
    return derive_deployment(user, service="carts", name="carts-canary", image=image, labels=LABELS, selector=SELECTOR,
                             annotations={"sluice.dev/image": image})


def test_pod_template_is_kept_whole() -> None:
    """Only the image of the service's container, names, labels and selector change."""
    out = _derive(copy.deepcopy(CARTS))
    assert out["metadata"]["name"] == "carts-canary" and "namespace" not in out["metadata"] and "uid" not in out["metadata"]
    assert out["metadata"]["labels"] == {"team": "shop", **LABELS}
    assert out["metadata"]["annotations"] == {"owner": "shop"} and "status" not in out
    assert out["spec"]["selector"] == {"matchLabels": SELECTOR} and out["spec"]["replicas"] == 2
    pod = out["spec"]["template"]
    assert pod["metadata"]["labels"] == {"tier": "web", **LABELS}
    assert pod["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false", "sluice.dev/image": "docker.io/keptnexamples/carts:0.10.2"}
    expected = copy.deepcopy(CARTS["spec"]["template"]["spec"])
    expected["containers"][0]["image"] = "docker.io/keptnexamples/carts:0.10.2"
    assert pod["spec"] == expected  # env, probes, resources, volumes, init container and sidecar intact


def test_the_input_is_not_changed() -> None:
    """Deriving twice from one user Deployment gives two independent objects."""
    user = copy.deepcopy(CARTS)
    _derive(user)
    assert user == CARTS


@pytest.mark.parametrize("change, problem", [
    (lambda d: d.update(kind="StatefulSet"), "expected kind Deployment"),
    (lambda d: d["spec"]["template"]["spec"].update(containers=[]), "non-empty list"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(name="app"), "no container named 'carts'"),
])
def test_bad_workloads_are_refused(change, problem) -> None:  # type: ignore[no-untyped-def]
    """A workload Sluice cannot derive from is refused, naming what is wrong."""
    user = copy.deepcopy(CARTS)
    change(user)
    with pytest.raises(ValidationError, match=problem):
        _derive(user)


def test_labels_must_hold_the_selector() -> None:
    """A selector the pods would not carry is refused (the Deployment would never be ready)."""
    with pytest.raises(ValidationError, match="labels must include the selector"):
        derive_deployment(CARTS, service="carts", name="x", image="i", labels={"app": "carts"}, selector=SELECTOR)


def test_split_and_service() -> None:
    """The chart's Deployment and Service are found; a database and a ConfigMap are extras; the
    Service keeps its ports and selects the given pods."""
    db = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "carts-db"}}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "carts-config"}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "carts"},
           "spec": {"clusterIP": "10.0.0.9", "selector": {"app": "carts"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    workload = split_workload([db, CARTS, None, cm, svc], "carts", "chart carts")
    assert workload.deployment is CARTS and workload.service is svc and workload.extras == (db, cm)
    out = derive_service(svc, name="carts", labels=LABELS, selector=SELECTOR)
    assert out["spec"] == {"selector": SELECTOR, "ports": [{"port": 80, "targetPort": 8080}]}
    with pytest.raises(ValidationError, match="expected one Deployment"):
        split_workload([db, {**db, "metadata": {"name": "other"}}], "carts", "chart carts")


_SCALARS = st.one_of(st.text(max_size=8), st.integers(), st.booleans())
_VALUES = st.recursive(_SCALARS, lambda inner: st.dictionaries(st.text(max_size=6), inner, max_size=3)
                       | st.lists(inner, max_size=3), max_leaves=8)


@settings(max_examples=100, deadline=None)
@given(pod_extra=st.dictionaries(st.sampled_from(["volumes", "nodeSelector", "tolerations", "hostAliases", "x"]), _VALUES),
       container_extra=st.dictionaries(st.sampled_from(["env", "args", "resources", "startupProbe", "y"]), _VALUES),
       sidecars=st.lists(st.dictionaries(st.sampled_from(["image", "args", "z"]), _VALUES), max_size=2))
def test_any_pod_template_survives(pod_extra, container_extra, sidecars) -> None:  # type: ignore[no-untyped-def]
    """Whatever else the pod template holds, the derived one equals it but for the image."""
    user = copy.deepcopy(CARTS)
    spec = user["spec"]["template"]["spec"]
    spec.update(pod_extra)
    spec["containers"] = [{**spec["containers"][0], **container_extra}] + [{**s, "name": f"side{i}"} for i, s in enumerate(sidecars)]
    out = _derive(user, image="new:1")
    expected = copy.deepcopy(spec)
    expected["containers"][0]["image"] = "new:1"
    assert out["spec"]["template"]["spec"] == expected
