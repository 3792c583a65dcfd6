"""The cluster manifests (knative/, triggers/) and the Dockerfile: schemas, wiring, least privilege.

Core kinds are checked with kubernetes-validate (offline, strict schemas of a recent Kubernetes);
Knative kinds against the openAPIV3Schema of Knative's own CRDs in ``../shared/schemas/knative``
(made strict the way kubernetes-validate's strict schemas are: no unknown fields where the CRD
does not preserve them). Those CRD files are not part of a user's clone: the tests that need them
skip, saying so; CI has them.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from sluice.core.events import EventType

ROOT = Path(__file__).resolve().parents[3]
KNATIVE = ROOT / "knative"
TRIGGERS = ROOT / "triggers"
CRDS = Path(__file__).resolve().parents[3].parent / "shared" / "schemas" / "knative"
K8S_VERSION = "1.33"
IMAGE = "ghcr.io/sluice-dev/sluice:0.1.0"
BROKER_URL = "http://broker-ingress.knative-eventing.svc.cluster.local/sluice/default"

#: Which function consumes which event type (DESIGN §2 and the services' handle methods).
CONSUMERS: dict[EventType, set[str]] = {
    EventType.CONFIGURATION_CHANGE: {"sluice-deploy"},
    EventType.DEPLOYMENT_FINISHED: {"sluice-test"},
    EventType.TESTS_FINISHED: {"sluice-evaluate"},
    EventType.START_EVALUATION: {"sluice-evaluate"},
    EventType.GET_SLI: {"sluice-sli"},
    EventType.GET_SLI_DONE: {"sluice-evaluate"},
    EventType.EVALUATION_DONE: {"sluice-gatekeeper"},
    EventType.APPROVAL_FINISHED: {"sluice-gatekeeper"},
    EventType.PING: {"sluice-evaluate", "sluice-test", "sluice-deploy", "sluice-gatekeeper"},
}
#: Produced for people and the read-model (CLI, web view), consumed by no function's Trigger.
PRODUCED_ONLY = {EventType.APPROVAL_TRIGGERED, EventType.APPROVAL_REJECTED, EventType.DONE}

CORE_API_VERSIONS = {"v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1"}
KNATIVE_CRDS = {
    ("eventing.knative.dev", "Broker"): "eventing-broker.yaml",
    ("eventing.knative.dev", "Trigger"): "eventing-trigger.yaml",
    ("sources.knative.dev", "PingSource"): "eventing-pingsource.yaml",
    ("sources.knative.dev", "SinkBinding"): "eventing-sinkbindings.yaml",
    ("serving.knative.dev", "Service"): "serving-service.yaml",
}
DELIVERY_KEYS = {"deadLetterSink", "retry", "backoffPolicy", "backoffDelay", "timeout", "retryAfterMax", "format"}
DURATION = re.compile(r"^P(?!$)(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")


def _docs(directory: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in _files(directory):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                yield f"{path.relative_to(ROOT)}#{i}", doc


ALL = list(_docs(KNATIVE)) + list(_docs(TRIGGERS))


def _id(item: tuple[str, dict[str, Any]]) -> str:
    origin, doc = item
    return f"{origin}:{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def _of_kind(kind: str, api_prefix: str = "") -> list[dict[str, Any]]:
    return [d for _, d in ALL if d.get("kind") == kind and str(d.get("apiVersion", "")).startswith(api_prefix)]


SERVICES = {d["metadata"]["name"]: d for d in _of_kind("Service", "serving.knative.dev/")}
TRIGGER_DOCS = {d["metadata"]["name"]: d for _, d in _docs(TRIGGERS) if d.get("kind") == "Trigger"}


def _env(service: dict[str, Any]) -> dict[str, str]:
    container = service["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


# --- schemas ---------------------------------------------------------------------------------------


def test_every_manifest_is_a_core_or_knative_kind() -> None:
    """Each document is a kind this suite validates: a core Kubernetes kind or one of the Knative CRDs."""
    assert ALL, "no manifests found in knative/ and triggers/"
    unknown = [
        _id((o, d)) for o, d in ALL
        if d.get("apiVersion") not in CORE_API_VERSIONS
        and (str(d.get("apiVersion", "")).split("/")[0], d.get("kind")) not in KNATIVE_CRDS
    ]
    assert unknown == []


@pytest.mark.parametrize("item", [i for i in ALL if i[1].get("apiVersion") in CORE_API_VERSIONS], ids=_id)
def test_core_kinds_validate_against_the_kubernetes_schema(item: tuple[str, dict[str, Any]]) -> None:
    """Core kinds (Namespace, ServiceAccount, RBAC, ConfigMap) validate strictly against Kubernetes' schema."""
    _, doc = item
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        pytest.fail(f"{_id(item)}: {err.message} at {'/'.join(map(str, err.path))}")


def _strict(schema: Any) -> Any:
    """``additionalProperties: false`` on every object with properties that does not preserve unknown fields."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _crd_schema(group: str, kind: str, version: str) -> dict[str, Any]:
    if not CRDS.is_dir():
        pytest.skip(
            f"Knative CRD schemas are missing: expected {CRDS} (the shared/ folder beside the checkout, "
            "present in CI); Knative kinds are not validated here"
        )
    crd = yaml.safe_load((CRDS / KNATIVE_CRDS[(group, kind)]).read_text())
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            assert entry.get("served"), f"{group}/{version} {kind} is not served by Knative"
            schema = copy.deepcopy(entry["schema"]["openAPIV3Schema"])
            # the API server accepts these at the root of every object, listed in the CRD or not
            for key, kind in (("apiVersion", "string"), ("kind", "string"), ("metadata", "object")):
                schema.setdefault("properties", {}).setdefault(key, {"type": kind})
            return _strict(schema)
    pytest.fail(f"{kind}: Knative's CRD has no version {version!r}")


@pytest.mark.parametrize("item", [i for i in ALL if i[1].get("apiVersion") not in CORE_API_VERSIONS], ids=_id)
def test_knative_kinds_validate_against_their_crd(item: tuple[str, dict[str, Any]]) -> None:
    """Broker, Trigger, PingSource, SinkBinding and Service validate against Knative's CRD openAPIV3Schema."""
    _, doc = item
    group, _, version = str(doc["apiVersion"]).partition("/")
    schema = _crd_schema(group, doc["kind"], version)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_strict_crd_schema_catches_a_misspelt_field() -> None:
    """The strict CRD check is able to fail: a typo in a Knative Service's template spec is refused."""
    schema = _crd_schema("serving.knative.dev", "Service", "v1")
    bad = copy.deepcopy(SERVICES["sluice-deploy"])
    bad["spec"]["template"]["spec"]["timeoutSecond"] = 300
    assert list(jsonschema.Draft7Validator(schema).iter_errors(bad))


def test_the_core_schema_catches_a_misspelt_field() -> None:
    """kubernetes-validate's strict mode is able to fail: an unknown RBAC field is refused."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "x"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verb": ["get"]}]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(role, K8S_VERSION, strict=True)


# --- Knative rules the CRDs leave to the admission webhooks ---------------------------------------------


def _deliveries() -> Iterator[tuple[str, dict[str, Any]]]:
    for broker in _of_kind("Broker"):
        yield f"Broker {broker['metadata']['name']}", broker["spec"]["delivery"]
    for name, trigger in TRIGGER_DOCS.items():
        if "delivery" in trigger["spec"]:
            yield f"Trigger {name}", trigger["spec"]["delivery"]


@pytest.mark.parametrize("item", list(_deliveries()), ids=lambda i: i[0])
def test_delivery_settings_are_real_knative_fields(item: tuple[str, dict[str, Any]]) -> None:
    """Every delivery has only DeliverySpec fields, ISO-8601 durations and a known backoff policy."""
    where, delivery = item
    assert set(delivery) <= DELIVERY_KEYS, f"{where}: unknown delivery fields {set(delivery) - DELIVERY_KEYS}"
    for key in ("backoffDelay", "timeout", "retryAfterMax"):
        if key in delivery:
            assert DURATION.match(delivery[key]), f"{where}: {key} {delivery[key]!r} is not an ISO-8601 duration"
    assert delivery.get("backoffPolicy", "exponential") in ("linear", "exponential")
    assert isinstance(delivery.get("retry", 0), int) and delivery.get("retry", 0) >= 0


def test_triggers_use_only_trigger_spec_fields() -> None:
    """Trigger specs (preserve-unknown in the CRD) use broker, filter.attributes, subscriber and delivery only."""
    for name, trigger in TRIGGER_DOCS.items():
        spec = trigger["spec"]
        assert set(spec) <= {"broker", "filter", "filters", "subscriber", "delivery"}, name
        assert spec["broker"] == "default", name
        assert trigger["metadata"]["namespace"] == "sluice", name
        if "filter" in spec:
            assert set(spec["filter"]) == {"attributes"}, name
            assert all(isinstance(v, str) for v in spec["filter"]["attributes"].values()), name
        assert set(spec["subscriber"]) <= {"ref", "uri"}, name


def test_services_stay_within_knatives_limits() -> None:
    """timeoutSeconds within Knative's default maximum (600), min-scale <= max-scale, numeric annotations."""
    for name, svc in SERVICES.items():
        template = svc["spec"]["template"]
        assert 0 < template["spec"]["timeoutSeconds"] <= 600, name
        assert template["spec"]["containerConcurrency"] >= 1, name
        notes = template["metadata"]["annotations"]
        low, high = int(notes["autoscaling.knative.dev/min-scale"]), int(notes["autoscaling.knative.dev/max-scale"])
        assert 0 <= low <= high, name


# --- wiring: event types, Triggers, Services -----------------------------------------------------------


def test_every_event_type_is_classified_as_consumed_or_produced_only() -> None:
    """A new EventType fails this test until someone decides which function consumes it."""
    assert set(CONSUMERS) | PRODUCED_ONLY == set(EventType)
    assert not set(CONSUMERS) & PRODUCED_ONLY


def test_functions_refuse_exactly_the_types_their_triggers_do_not_send() -> None:
    """The functions' own table of what they consume matches the Triggers (CONSUMERS)."""
    from sluice.functions.http import CONSUMES

    table = {f"sluice-{name}": set(types) for name, types in CONSUMES.items()}
    from_triggers: dict[str, set[EventType]] = {}
    for event_type, functions in CONSUMERS.items():
        for function in functions:
            from_triggers.setdefault(function, set()).add(event_type)
    assert table == from_triggers


def test_every_consumed_event_type_has_a_trigger_to_its_function() -> None:
    """Each consumed type has a Trigger filtered on exactly that type to each function that consumes it."""
    routed: dict[str, set[str]] = {}
    for trigger in TRIGGER_DOCS.values():
        attributes = (trigger["spec"].get("filter") or {}).get("attributes") or {}
        if "type" in attributes:
            assert set(attributes) == {"type"}, f"{trigger['metadata']['name']}: filter on type only"
            routed.setdefault(attributes["type"], set()).add(trigger["spec"]["subscriber"]["ref"]["name"])
    expected = {t.value: services for t, services in CONSUMERS.items()}
    assert routed == expected


def test_no_trigger_filters_on_an_unknown_type() -> None:
    """Every type a Trigger filters on is an EventType (a typo would silently drop events)."""
    known = {t.value for t in EventType}
    for name, trigger in TRIGGER_DOCS.items():
        kind = ((trigger["spec"].get("filter") or {}).get("attributes") or {}).get("type")
        assert kind is None or kind in known, f"{name}: {kind!r}"


def test_a_catch_all_trigger_feeds_the_event_log() -> None:
    """One Trigger without a filter delivers every event to sluice-eventlog."""
    catch_all = [t for t in TRIGGER_DOCS.values() if not t["spec"].get("filter") and not t["spec"].get("filters")]
    assert [t["spec"]["subscriber"]["ref"]["name"] for t in catch_all] == ["sluice-eventlog"]


def test_every_trigger_and_dead_letter_sink_points_at_an_existing_service() -> None:
    """Subscribers and dead-letter sinks are Knative Services defined in knative/, in the Broker's namespace."""
    refs = [(n, t["spec"]["subscriber"]["ref"]) for n, t in TRIGGER_DOCS.items()]
    refs += [(n, d["deadLetterSink"]["ref"]) for n, d in _deliveries() if "deadLetterSink" in d]
    for where, ref in refs:
        assert ref["apiVersion"] == "serving.knative.dev/v1" and ref["kind"] == "Service", where
        assert ref["name"] in SERVICES, f"{where}: no Knative Service {ref['name']} in knative/"
        assert ref.get("namespace", "sluice") == SERVICES[ref["name"]]["metadata"]["namespace"], where


def test_every_service_runs_a_function_target_of_main_py() -> None:
    """Service sluice-<target> runs the one image with FUNCTION_TARGET=<target>, a function of functions/main.py."""
    spec = importlib.util.spec_from_file_location("sluice_main_for_manifests", ROOT / "functions" / "main.py")
    assert spec is not None and spec.loader is not None
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)
    for name, svc in SERVICES.items():
        env = _env(svc)
        target = env["FUNCTION_TARGET"]
        assert name == f"sluice-{target}", name
        assert callable(getattr(main, target, None)), f"{name}: functions/main.py has no target {target!r}"
        assert svc["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE, name
        assert env["SLUICE_STATE"] == "configmap" and env["SLUICE_NAMESPACE"] == "sluice", name
        assert env["SLUICE_BACKEND"] == "kubernetes" and env["SLUICE_BROKER_URL"] == BROKER_URL, name


def test_every_subscribed_function_has_a_service() -> None:
    """Each function named in CONSUMERS, plus the event log, has its Knative Service."""
    wanted = set().union(*CONSUMERS.values()) | {"sluice-eventlog"}
    assert wanted <= set(SERVICES)


def test_the_sink_binding_selects_every_function_service() -> None:
    """The SinkBinding's selector matches every function Service's labels and sinks into the Broker."""
    (binding,) = _of_kind("SinkBinding")
    selector = binding["spec"]["subject"]["selector"]["matchLabels"]
    for name, svc in SERVICES.items():
        assert selector.items() <= svc["metadata"]["labels"].items(), name
    assert binding["spec"]["sink"]["ref"]["kind"] == "Broker"


def test_the_tick_goes_to_the_broker_every_minute() -> None:
    """PingSource sluice-tick sends to Broker default every minute."""
    (ping,) = _of_kind("PingSource")
    assert ping["metadata"]["name"] == "sluice-tick" and ping["spec"]["schedule"] == "* * * * *"
    assert ping["spec"]["sink"]["ref"] == {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default", "namespace": "sluice"}


def test_the_local_broker_reads_the_same_files() -> None:
    """The local broker (sluice up) loads knative/ and triggers/ and routes as the Triggers say."""
    manifests = pytest.importorskip("sluice.embedded.broker.manifests")
    topology = manifests.load_topology(KNATIVE, TRIGGERS)
    assert topology.broker.path == "/sluice/default"
    assert {t.name: t.subscriber.service for t in topology.triggers} == {
        n: t["spec"]["subscriber"]["ref"]["name"] for n, t in TRIGGER_DOCS.items()
    }
    assert {s.name: s.target for s in topology.services.values()} == {n: _env(s)["FUNCTION_TARGET"] for n, s in SERVICES.items()}


# --- security --------------------------------------------------------------------------------------


def test_function_containers_run_as_non_root_without_privileges() -> None:
    """Every function container: runAsNonRoot, no privilege escalation, all capabilities dropped."""
    for name, svc in SERVICES.items():
        sc = svc["spec"]["template"]["spec"]["containers"][0]["securityContext"]
        assert sc["runAsNonRoot"] is True and sc.get("runAsUser", 1) != 0, name
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], name


def test_every_service_account_exists_and_rbac_has_no_wildcards() -> None:
    """Service accounts named by Services exist; no rule uses '*'; nothing is bound cluster-wide."""
    accounts = {d["metadata"]["name"] for d in _of_kind("ServiceAccount")}
    for name, svc in SERVICES.items():
        assert svc["spec"]["template"]["spec"]["serviceAccountName"] in accounts, name
    for role in _of_kind("Role") + _of_kind("ClusterRole"):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], f"{role['metadata']['name']}: wildcard in {key}"
    assert _of_kind("ClusterRoleBinding") == []


def test_only_deploy_may_touch_project_namespaces() -> None:
    """The deployer ClusterRole is bound only to sluice-deploy's account, and only by namespaced RoleBindings."""
    bindings = [b for b in _of_kind("RoleBinding") if b["roleRef"]["name"] == "sluice-deployer"]
    assert bindings and all(b["roleRef"]["kind"] == "ClusterRole" for b in bindings)
    assert {s["name"] for b in bindings for s in b["subjects"]} == {"sluice-deploy"}
    deployers = {n for n, s in SERVICES.items() if s["spec"]["template"]["spec"]["serviceAccountName"] == "sluice-deploy"}
    assert deployers == {"sluice-deploy"}


def test_the_bridge_only_reads_state() -> None:
    """The web view's account may only get and list ConfigMaps."""
    svc = SERVICES["sluice-bridge"]
    account = svc["spec"]["template"]["spec"]["serviceAccountName"]
    roles = {r["metadata"]["name"]: r for r in _of_kind("Role")}
    verbs = {
        verb
        for b in _of_kind("RoleBinding")
        if any(s["name"] == account for s in b["subjects"])
        for rule in roles[b["roleRef"]["name"]]["rules"]
        for verb in rule["verbs"]
    }
    assert verbs == {"get", "list"}


def test_project_lighthouse_config_is_a_state_record() -> None:
    """lighthouse-config-sockshop carries the labels the ConfigMap store and Records give it, and sli-provider."""
    from sluice.adapters.state.configmap import MANAGED_BY, MANAGER
    from sluice.services.records import KIND, PROJECT

    (cm,) = [d for d in _of_kind("ConfigMap") if d["metadata"]["name"] == "lighthouse-config-sockshop"]
    assert cm["metadata"]["namespace"] == "sluice"
    assert cm["metadata"]["labels"] == {MANAGED_BY: MANAGER, KIND: "lighthouse-config", PROJECT: "sockshop"}
    assert cm["data"]["sli-provider"] in ("builtin", "prometheus")


# --- kustomize -------------------------------------------------------------------------------------


@pytest.mark.parametrize("directory", [KNATIVE, TRIGGERS], ids=lambda d: d.name)
def test_kustomization_lists_every_file(directory: Path) -> None:
    """kustomization.yaml lists exactly the directory's manifests (nothing forgotten, nothing missing)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    listed = [r for r in kustomization["resources"] if not r.startswith("../")]
    assert sorted(listed) == sorted(p.name for p in _files(directory))
    assert len(set(listed)) == len(listed)


def test_knative_kustomization_includes_the_triggers_directory() -> None:
    """kubectl apply -k knative/ also installs triggers/ (a directory with its own kustomization)."""
    kustomization = yaml.safe_load((KNATIVE / "kustomization.yaml").read_text())
    assert "../triggers" in kustomization["resources"]
    assert (TRIGGERS / "kustomization.yaml").is_file()
    assert "namespace" not in kustomization, "a kustomize namespace would move the project namespaces' RoleBindings"


def test_object_names_are_unique_per_kind_and_namespace() -> None:
    """No two manifests declare the same object (kustomize would refuse the build)."""
    seen: set[tuple[str, str, str, str]] = set()
    for origin, doc in ALL:
        key = (doc["apiVersion"].split("/")[0], doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])
        assert key not in seen, f"{origin}: {key} declared twice"
        seen.add(key)


# --- Dockerfile ------------------------------------------------------------------------------------

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_pins_its_base_image() -> None:
    """Every FROM resolves to python:3.11.<patch>-slim-* (a pinned tag, never latest or a bare minor)."""
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE, re.MULTILINE))
    bases = [rest.split()[0] for word, rest in _instructions() if word == "FROM"]
    assert bases
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), image


def test_dockerfile_runs_as_a_non_root_user() -> None:
    """The final stage switches to a numeric non-root USER (so runAsNonRoot can verify it)."""
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    users = [rest for word, rest in instructions[last_from:] if word == "USER"]
    assert users, "the final stage has no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert uid == str(SERVICES["sluice-deploy"]["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"])


def test_dockerfile_installs_only_runtime_dependencies_and_starts_the_target() -> None:
    """pip installs the package with its runtime extras (not [test]); CMD runs functions-framework on FUNCTION_TARGET and PORT."""
    runs = " ".join(rest for word, rest in _instructions() if word == "RUN")
    assert 'pip install ".[kubernetes,prometheus,aws]"' in runs
    assert "[test]" not in runs and "[all]" not in runs and " -e " not in runs
    (cmd,) = [rest for word, rest in _instructions() if word == "CMD"]
    assert "functions-framework --source functions/main.py" in cmd
    assert "$FUNCTION_TARGET" in cmd or "${FUNCTION_TARGET" in cmd
    assert '--port "$PORT"' in cmd


def test_dockerfile_compiles_bytecode_and_warms_the_init_cache_in_the_final_stage() -> None:
    """The final stage compiles the functions' bytecode, then imports them with the virtualenv's
    Python from their folder (``sluice.functions.warm``: the cached ``@frozen`` inits), before
    bytecode writing is turned off."""
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    final = instructions[last_from:]
    runs = [(i, rest) for i, (word, rest) in enumerate(final) if word == "RUN"]
    (at, warm), = [(i, rest) for i, rest in runs if "sluice.functions.warm" in rest]
    assert "python -m compileall -q -j 0 /app/functions" in warm
    assert "cd /app/functions && /opt/venv/bin/python -m sluice.functions.warm" in warm
    off = [i for i, (word, rest) in enumerate(final) if word == "ENV" and "PYTHONDONTWRITEBYTECODE=1" in rest]
    assert off and min(off) > at


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    """.dockerignore excludes everything but pyproject.toml, README.md and functions/ (no tests, no .venv)."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"
    assert {line for line in lines if line.startswith("!")} == {"!pyproject.toml", "!README.md", "!functions/"}
    copied = [rest for word, rest in _instructions() if word == "COPY" and "--from" not in rest]
    for source in (part for rest in copied for part in rest.split()[:-1] if not part.startswith("--")):
        assert source in ("pyproject.toml", "README.md") or source.startswith("functions"), source


def test_the_image_is_the_one_make_image_builds() -> None:
    """The Services run the image that `make image` tags."""
    makefile = (ROOT / "Makefile").read_text()
    assert f"IMAGE ?= {IMAGE}" in makefile


# --- secrets ---------------------------------------------------------------------------------------


def test_every_secret_rule_names_its_secrets_and_only_reads() -> None:
    """No account may list Secrets or read one it was not given by name (resourceNames), and no
    Sluice account may write one."""
    for role in _of_kind("Role") + _of_kind("ClusterRole"):
        for rule in role["rules"]:
            if "secrets" in rule["resources"]:
                assert rule.get("resourceNames") and set(rule["verbs"]) == {"get"}, role["metadata"]["name"]


def test_each_secret_is_readable_by_its_one_consumer() -> None:
    """Intake secrets → intake; approver key → gatekeeper; Prometheus credentials → sli; bridge token → bridge."""
    roles = {r["metadata"]["name"]: r for r in _of_kind("Role")}
    readers: dict[str, set[str]] = {}
    for binding in _of_kind("RoleBinding"):
        role = roles.get(binding["roleRef"]["name"])
        for rule in (role or {}).get("rules", []):
            if "secrets" in rule["resources"]:
                for name in rule["resourceNames"]:
                    readers.setdefault(name, set()).update(s["name"] for s in binding["subjects"])
    accounts = {svc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]:
                svc["spec"]["template"]["spec"]["serviceAccountName"] for svc in SERVICES.values()}
    expected = {
        "sluice-intake-github": accounts["sluice-intake"], "sluice-approver-sockshop": accounts["sluice-gatekeeper"],
        "sluice-prometheus-sockshop": accounts["sluice-sli"], "sluice-bridge-token": accounts["sluice-bridge"],
        "sluice-dynatrace-sockshop": accounts["sluice-sli"],
    }
    for secret, account in expected.items():
        assert readers.get(secret) == {account}, secret
    users = {}
    for svc in SERVICES.values():
        users.setdefault(svc["spec"]["template"]["spec"]["serviceAccountName"], []).append(svc["metadata"]["name"])
    for secret, account in expected.items():
        assert len(users[account]) == 1, f"{secret}: {account} is shared by {users[account]}"


def test_the_web_view_is_cluster_local() -> None:
    """The bridge is not exposed on the cluster's ingress unless someone puts an auth proxy in front."""
    labels = SERVICES["sluice-bridge"]["metadata"]["labels"]
    assert labels["networking.knative.dev/visibility"] == "cluster-local"


def test_dockerfile_installs_dependencies_before_copying_the_code_and_compiles_bytecode() -> None:
    """The dependency layer comes before `COPY functions` (an edit does not reinstall them), and both stages run compileall."""
    steps = _instructions()
    copy_code = next(i for i, (word, rest) in enumerate(steps) if word == "COPY" and rest.startswith("functions "))
    installs = [i for i, (word, rest) in enumerate(steps) if word == "RUN" and "pip install" in rest and "--no-deps" not in rest]
    assert installs and installs[0] < copy_code
    assert sum("compileall" in rest for word, rest in steps if word == "RUN") == 2


def test_the_bridges_readiness_probe_reads_no_state() -> None:
    """The bridge's readiness probe path is answered 200 without a single call to the state store."""
    from sluice.bridge.app import Bridge
    from sluice.services.records import Records

    class NoStore:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the readiness probe called the state store ({name})")

    svc = yaml.safe_load((ROOT / "knative" / "service-bridge.yaml").read_text())
    path = svc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
    _body, status, _headers = Bridge(Records(NoStore()), lambda event: None).handle("GET", path, {}, {})  # type: ignore[arg-type]
    assert status == 200
