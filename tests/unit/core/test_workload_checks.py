"""The checks on a rendered workload before it is stored, and the Knative derivation (pure)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.workload import (
    check_objects,
    derive_knative_template,
    service_container,
    split_knative,
    split_workload,
)
from sluice.errors import ValidationError

DEP: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "carts"},
    "spec": {"selector": {"matchLabels": {"app": "carts"}},
             "template": {"metadata": {"labels": {"app": "carts"}}, "spec": {"containers": [{"name": "carts", "image": "c:1"}]}}},
}
SVC: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "carts"}, "spec": {"ports": [{"port": 80}]}}
KSVC: dict[str, Any] = {
    "apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "carts"},
    "spec": {"template": {"metadata": {"name": "carts-fixed", "annotations": {"a": "1"}},
                          "spec": {"containers": [{"name": "sidecar", "image": "s:1"},
                                                  {"name": "carts", "image": "c:1", "env": [{"name": "X", "value": "1"}]}]}}},
}
CM: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}


def check(objects: list[Any], platform: str = "kubernetes") -> None:
    check_objects(objects, service="carts", namespace="sockshop-dev", platform=platform, source="src")


def test_a_deployment_and_service_pass() -> None:
    """The service's Deployment and Service with a ConfigMap, in no or the stage's namespace, pass."""
    check([DEP, SVC, {**CM, "metadata": {"name": "cfg", "namespace": "sockshop-dev"}}])
    check([KSVC, CM], "knative")
    check([KSVC], "local")  # the local backend takes either


@pytest.mark.parametrize("objects, platform, problem", [
    ([], "kubernetes", "rendered no Kubernetes object"),
    ([DEP], "kubernetes", "expected a Service (v1)"),
    ([SVC], "kubernetes", "expected one Deployment"),
    ([DEP, SVC], "knative", "expected one Knative Service"),
    ([KSVC, CM], "kubernetes", "expected one Deployment"),
    ([DEP, SVC, KSVC], "kubernetes", "applies beside the service only"),
    ([KSVC, {**KSVC, "metadata": {"name": "other"}}], "knative", "applies beside the service only"),
    ([DEP, SVC, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}], "kubernetes", "no secrets"),
    ([DEP, SVC, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}], "kubernetes", "not a kind Sluice applies"),
    ([DEP, SVC, {**CM, "metadata": {"name": "c", "namespace": "default"}}], "kubernetes", "namespace 'default'"),
    ([DEP, SVC, {**CM, "metadata": {}}], "kubernetes", "expected metadata.name"),
    ([DEP, SVC, {**DEP, "metadata": {"name": "carts-primary"}}], "kubernetes", "the name is Sluice's own"),
    ([DEP, SVC, "text"], "kubernetes", "expected a Kubernetes object"),
    ([DEP, SVC, {"kind": "ConfigMap"}], "kubernetes", "without them"),
])
def test_what_is_refused(objects: list[Any], platform: str, problem: str) -> None:
    """Each refusal names its problem (and the source)."""
    with pytest.raises(ValidationError, match="src") as err:
        check(objects, platform)
    assert problem in str(err.value)


def test_knative_template_keeps_all_but_the_image_and_the_fixed_name() -> None:
    """The service's container (named so, not the first) gets the image; the rest is kept."""
    kn = split_knative([CM, KSVC], "carts", "src")
    assert kn.service is KSVC and kn.extras == (CM,)
    out = derive_knative_template(KSVC, service="carts", image="c:2")
    expected = copy.deepcopy(KSVC["spec"]["template"])
    expected["spec"]["containers"][1]["image"] = "c:2"
    del expected["metadata"]["name"]
    assert out == expected and KSVC["spec"]["template"]["metadata"]["name"] == "carts-fixed"


def test_service_container() -> None:
    """Named so, else the only one, else none."""
    assert service_container([{"name": "a"}, {"name": "carts"}], "carts") == 1
    assert service_container([{"name": "a"}], "carts") == 0
    assert service_container([{"name": "a"}, {"name": "b"}], "carts") == -1


def test_a_service_whose_spec_is_no_mapping_is_refused() -> None:
    """Found by the property below (a TypeError before): a Service with ``spec: true``."""
    with pytest.raises(ValidationError, match="spec: expected a mapping"):
        check([DEP, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "carts"}, "spec": True}], "kubernetes")


def test_a_knative_service_is_not_taken_for_the_core_service() -> None:
    """split_workload picks the v1 Service, not a Knative Service of the same name."""
    assert split_workload([DEP, KSVC, SVC], "carts", "src").service is SVC


_ANY = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)
_OBJ = st.fixed_dictionaries({
    "apiVersion": st.sampled_from(["v1", "apps/v1", "serving.knative.dev/v1", "x"]),
    "kind": st.sampled_from(["Deployment", "Service", "ConfigMap", "StatefulSet", "Secret"]),
    "metadata": st.fixed_dictionaries({"name": st.sampled_from(["carts", "db", "carts-canary"])}),
    "spec": _ANY,
})


@settings(max_examples=300, deadline=None)
@given(objects=st.lists(st.one_of(_OBJ, _ANY, st.just(DEP), st.just(SVC), st.just(KSVC)), max_size=5),
       platform=st.sampled_from(["kubernetes", "knative", "local"]))
def test_any_input_passes_or_is_refused_cleanly(objects: list[Any], platform: str) -> None:
    """Whatever was rendered: it passes, or a ValidationError names the source — never another error."""
    try:
        check(objects, platform)
    except ValidationError as err:
        assert err.subject == "src" and err.problems
