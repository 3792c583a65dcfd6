"""`sluice onboard service --chart DIR / --manifests DIR`: the real helm renders the chart per stage
(release = the service, namespace = the stage's); manifests are read plain or through
`kubectl kustomize`; the checked workload is stored per stage. Hostile charts and folders —
rendering nothing, garbage, too much, Secrets, foreign kinds or namespaces, Sluice's own names,
YAML alias bombs — end in exit code 2 naming the input, and nothing is onboarded or stored."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.adapters.state.local import LocalStore
from sluice.cli.main import main
from sluice.errors import ValidationError
from sluice.services.records import RECORD_BUDGET, Records
from sluice.services.workloads import DEFAULT_HELM, RENDER_LIMIT, find_helm, render_chart

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # any test folder depth
SHIPYARD = ROOT / "examples" / "sockshop" / "shipyard.yaml"
CHARTS = ROOT / "tests" / "fixtures" / "charts"
STAGES = ("dev", "staging", "production")

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "carts"},
    "spec": {"selector": {"matchLabels": {"app": "carts"}},
             "template": {"metadata": {"labels": {"app": "carts"}},
                          "spec": {"containers": [{"name": "carts", "image": "carts:1", "ports": [{"containerPort": 8080}]}]}}},
}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "carts"},
           "spec": {"selector": {"app": "carts"}, "ports": [{"port": 80, "targetPort": 8080}]}}


@pytest.fixture
def state(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SLUICE_HELM", raising=False)
    monkeypatch.delenv("SLUICE_BACKEND", raising=False)
    assert main(["create", "project", "sockshop", "--shipyard", str(SHIPYARD)]) == 0
    return tmp_path


def records(state: Path) -> Records:
    return Records(LocalStore(state / "state"))


def nothing_stored(state: Path, service: str = "carts") -> bool:
    r = records(state)
    return service not in r.project("sockshop").services and all(r.workload("sockshop", s, service) is None for s in STAGES)


def chart(tmp: Path, templates: dict[str, str], values: str = "") -> Path:
    folder = tmp / "chart"
    (folder / "templates").mkdir(parents=True)
    (folder / "Chart.yaml").write_text("apiVersion: v2\nname: hostile\nversion: 0.1.0\n")
    (folder / "values.yaml").write_text(values)
    for name, text in templates.items():
        (folder / "templates" / name).write_text(text)
    return folder


def manifests(tmp: Path, files: dict[str, str]) -> Path:
    folder = tmp / "manifests"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_make_helm_builds_where_sluice_looks() -> None:
    """tools/helm/build.sh and the CLI agree on where `make helm` puts helm."""
    printed = subprocess.run(["bash", str(ROOT / "tools" / "helm" / "build.sh"), "--print"], capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == str(DEFAULT_HELM)


def test_chart_is_rendered_per_stage_and_stored(state, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """helm template runs per stage: release = the service, namespace = the stage's (seen in the
    chart's own env and ConfigMap); every object is stored without a namespace."""
    monkeypatch.setenv("SLUICE_BACKEND", "kubernetes")
    assert main(["onboard", "service", "carts", "--project", "sockshop", f"--chart={CHARTS / 'carts-full'}"]) == 0
    out = capsys.readouterr().out
    assert "derives carts-primary/carts-canary" in out and "StatefulSet carts-db" in out
    for stage in STAGES:
        workload = records(state).workload("sockshop", stage, "carts")
        assert workload is not None and workload.source == f"--chart {CHARTS / 'carts-full'}"
        dep = next(o for o in workload.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "carts")
        env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "NAMESPACE", "value": f"sockshop-{stage}"} in env
        assert all("namespace" not in o["metadata"] for o in workload.objects)
    dev, staging = (records(state).workload("sockshop", s, "carts") for s in ("dev", "staging"))
    assert dev is not None and staging is not None and dev.digest != staging.digest


def test_plain_manifests_and_a_kustomization(state, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A folder of YAML files is read in order; a kustomization is rendered by kubectl kustomize
    (its namePrefix-free patches and labels applied)."""
    folder = manifests(tmp_path, {"a.yaml": yaml.safe_dump_all([DEPLOYMENT, SERVICE]), "notes.txt": "not read"})
    assert main(["onboard", "service", "carts", "--project", "sockshop", f"--manifests={folder}"]) == 0
    workload = records(state).workload("sockshop", "dev", "carts")
    assert workload is not None and [o["kind"] for o in workload.objects] == ["Deployment", "Service"]
    kust = tmp_path / "kust"
    kust.mkdir()
    (kust / "base.yaml").write_text(yaml.safe_dump_all([DEPLOYMENT, SERVICE]))
    (kust / "kustomization.yaml").write_text("resources: [base.yaml]\nlabels:\n- pairs: {team: shop}\n")
    assert main(["onboard", "service", "carts", "--project", "sockshop", f"--manifests={kust}"]) == 0
    workload = records(state).workload("sockshop", "staging", "carts")
    assert workload is not None and all(o["metadata"]["labels"] == {"team": "shop"} for o in workload.objects)


def test_missing_tools_are_named(state, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """No helm (or no kubectl for a kustomization): exit 2 naming the tool and how to get it; nothing onboarded."""
    monkeypatch.setenv("SLUICE_HELM", str(tmp_path / "no-helm"))
    assert main(["onboard", "service", "carts", "--project", "sockshop", f"--chart={CHARTS / 'carts-full'}"]) == 2
    err = capsys.readouterr().err
    assert "helm is not installed" in err and "make helm" in err
    kust = manifests(tmp_path, {"kustomization.yaml": "resources: []\n"})
    monkeypatch.setenv("SLUICE_KUBECTL", str(tmp_path / "no-kubectl"))
    assert main(["onboard", "service", "carts", "--project", "sockshop", f"--manifests={kust}"]) == 2
    assert "kubectl is not installed" in capsys.readouterr().err
    assert nothing_stored(state)


BIG = "{{ range $i := until 12000 }}  k{{ $i }}: {{ repeat 90 \"x\" }}\n{{ end }}"
HUGE = "{{ range $i := until 60000 }}  k{{ $i }}: {{ repeat 90 \"x\" }}\n{{ end }}"
OK = yaml.safe_dump_all([DEPLOYMENT, SERVICE])

HOSTILE_CHARTS = {
    "renders nothing": ({"empty.yaml": "{{- if false }}x: 1{{ end }}"}, "rendered no Kubernetes object"),
    "a template error": ({"bad.yaml": "{{ .Values.nope.deeper }}"}, "helm template (namespace sockshop-dev) failed"),
    "a helm fail": ({"bad.yaml": "{{ fail \"no database configured\" }}"}, "no database configured"),
    "garbage YAML": ({"bad.yaml": "a: [b\n: : :"}, "error converting YAML to JSON"),  # helm checks it itself
    "a scalar": ({"bad.yaml": "just a string"}, "helm template (namespace sockshop-dev) failed"),
    "a list of strings": ({"ok.yaml": OK, "bad.yaml": "kind: List\napiVersion: v1\nitems: [a, b]\n"},
                          "expected a Kubernetes object"),
    "no Service": ({"d.yaml": yaml.safe_dump(DEPLOYMENT)}, "expected a Service (v1) of service 'carts'"),
    "no Deployment": ({"s.yaml": yaml.safe_dump(SERVICE)}, "expected one Deployment of service 'carts'"),
    "a Secret": ({"ok.yaml": OK, "s.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {pw: hunter2}\n"},
                 "Sluice keeps no secrets"),
    "a cluster-wide kind": ({"ok.yaml": OK, "r.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\n"},
                            "not a kind Sluice applies"),
    "another namespace": ({"ok.yaml": OK, "c.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: kube-system}\n"},
                          "namespace 'kube-system'"),
    "Sluice's own name": ({"ok.yaml": OK, "c.yaml": yaml.safe_dump({**SERVICE, "metadata": {"name": "carts-canary"}})},
                          "the name is Sluice's own"),
    "over the record budget": ({"ok.yaml": OK, "big.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n" + BIG},
                               f"at most {RECORD_BUDGET:,}"),
    "over the render limit": ({"ok.yaml": OK, "big.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n" + HUGE},
                              f"more than {RENDER_LIMIT:,} bytes"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CHARTS))
def test_hostile_charts_are_refused_and_nothing_is_stored(state, tmp_path, capsys, case) -> None:  # type: ignore[no-untyped-def]
    """Each hostile chart: exit 2 with a message naming the chart and the problem; nothing onboarded."""
    templates, message = HOSTILE_CHARTS[case]
    folder = chart(tmp_path, templates)
    assert main(["onboard", "service", "carts", "--project", "sockshop", f"--chart={folder}"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(folder) in err and "Traceback" not in err
    assert nothing_stored(state)


@pytest.mark.parametrize("text, message", [
    ("a: [b\n: : :", "not valid YAML"),
    ("just a string", "expected a Kubernetes object"),
    ("- 1\n- 2\n", "expected a Kubernetes object"),
    ("[" * 5000, "not valid YAML"),
])
def test_garbage_manifests_are_refused(state, tmp_path, capsys, text, message) -> None:  # type: ignore[no-untyped-def]
    """Plain manifests that are not Kubernetes objects: exit 2 naming the file; nothing onboarded."""
    folder = manifests(tmp_path, {"ok.yaml": OK, "bad.yaml": text})
    assert main(["onboard", "service", "carts", "--project", "sockshop", f"--manifests={folder}"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert nothing_stored(state)


def test_an_alias_bomb_is_refused(state, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """YAML aliases would expand exponentially when stored as JSON: refused before that."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    folder = manifests(tmp_path, {"ok.yaml": OK, "bomb.yaml": bomb})
    assert main(["onboard", "service", "carts", "--project", "sockshop", f"--manifests={folder}"]) == 2
    assert "aliases are not accepted" in capsys.readouterr().err
    assert nothing_stored(state)


def test_a_chart_that_runs_too_long_is_stopped(tmp_path) -> None:
    """helm template past the time limit is killed and reported (a tiny limit here)."""
    folder = chart(tmp_path, {"slow.yaml": "{{ range $i := until 50000000 }}{{ end }}"})
    with pytest.raises(ValidationError, match=r"did not finish within 0\.5 s"):
        render_chart(find_helm(), folder, "carts", "sockshop-dev", timeout_s=0.5)


_TEXT = st.text(alphabet=st.sampled_from(list("abc:-[]{}&*!|>'\"\n #%@`\t0123456789")), max_size=200)
_OBJECT = st.fixed_dictionaries({
    "apiVersion": st.sampled_from(["v1", "apps/v1", "serving.knative.dev/v1", "x/y", ""]),
    "kind": st.sampled_from(["Deployment", "Service", "ConfigMap", "Secret", "Pod", "List", ""]),
    "metadata": st.fixed_dictionaries({"name": st.sampled_from(["carts", "carts-primary", "db", ""])},
                                      optional={"namespace": st.sampled_from(["sockshop-dev", "other"])}),
}, optional={"spec": st.recursive(st.none() | st.integers() | st.text(max_size=5),
                                  lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                                  max_leaves=10)})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(_TEXT, max_size=3), objects=st.lists(_OBJECT, max_size=4))
def test_generated_manifests_never_crash_and_a_refusal_stores_nothing(state, tmp_path_factory, texts, objects) -> None:  # type: ignore[no-untyped-def]
    """Whatever a manifest folder holds (random text, random objects): exit 0 or 2, never a
    traceback; on 2 nothing is onboarded or stored; on 0 every stage has a workload."""
    folder = tmp_path_factory.mktemp("gen")
    for i, text in enumerate(texts):
        (folder / f"t{i}.yaml").write_text(text)
    (folder / "objects.yaml").write_text(yaml.safe_dump_all(objects))
    records(state).store  # noqa: B018  (the project exists)
    code = main(["onboard", "service", "gen", "--project", "sockshop", f"--manifests={folder}"])
    assert code in (0, 2)
    if code == 2:
        assert nothing_stored(state, "gen")
    else:
        assert all(records(state).workload("sockshop", s, "gen") is not None for s in STAGES)


@pytest.mark.parametrize("backend", ["local", "kubernetes"])
def test_the_documented_examples_onboard(state, capsys, monkeypatch, backend) -> None:  # type: ignore[no-untyped-def]
    """docs/coming-from-keptn.md's commands, from the repository root: the example chart and the
    example kustomization onboard; the chart's pod template (env, probes, resources, volume) is stored."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("SLUICE_BACKEND", backend)
    assert main(["onboard", "service", "carts", "--project", "sockshop", "--chart", "examples/keptn-tutorial/carts"]) == 0
    workload = records(state).workload("sockshop", "production", "carts")
    assert workload is not None
    dep = next(o for o in workload.objects if o["kind"] == "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert {"env", "readinessProbe", "livenessProbe", "resources", "volumeMounts"} <= set(container)
    config = next(o for o in workload.objects if o["kind"] == "ConfigMap")
    assert "stage.namespace=sockshop-production" in config["data"]["application.properties"]
    assert main(["onboard", "service", "carts", "--project", "sockshop", "--manifests", "examples/keptn-tutorial/carts-manifests"]) == 0
    workload = records(state).workload("sockshop", "dev", "carts")
    assert workload is not None and {o["kind"] for o in workload.objects} == {"Deployment", "Service"}
    assert all(o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sockshop" for o in workload.objects)
