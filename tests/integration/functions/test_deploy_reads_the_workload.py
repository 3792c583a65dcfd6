"""The deploy function's composition root hands the kubernetes backend the workload that
`sluice onboard --chart` stored: onboard with the CLI (real helm), then the function's own
backend deploys the stage from the chart (fake Kubernetes API as the composition root's API client)."""

from __future__ import annotations

from pathlib import Path

from tests.support.fake_kube import FakeKube, ResourceType, deployment_rollout

from sluice.adapters.state import configmap
from sluice.cli.main import main
from sluice.config import Settings
from sluice.functions.runtime import Runtime
from sluice.ports.backend import Placement, Slot

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # any test folder depth
CHART = ROOT / "tests" / "fixtures" / "charts" / "carts-full"
SHIPYARD = ROOT / "examples" / "sockshop" / "shipyard.yaml"
IMAGE = "docker.io/keptnexamples/carts:0.10.3"


def test_the_deploy_runtime_derives_from_the_onboarded_chart(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """dev (direct): Deployment `carts` is the chart's with the new image; its ConfigMap and
    database are there; without the chart the same runtime would have made one container."""
    state = tmp_path / "state"
    monkeypatch.setenv("SLUICE_STATE_DIR", str(state))
    monkeypatch.setenv("SLUICE_BACKEND", "kubernetes")
    assert main(["create", "project", "sockshop", "--shipyard", str(SHIPYARD)]) == 0
    assert main(["onboard", "service", "carts", "--project", "sockshop", f"--chart={CHART}"]) == 0
    with FakeKube() as fake:
        for rtype in (ResourceType("", ("v1",), "persistentvolumeclaims", "PersistentVolumeClaim"),
                      ResourceType("", ("v1",), "serviceaccounts", "ServiceAccount", status=False),
                      ResourceType("apps", ("v1",), "statefulsets", "StatefulSet")):
            fake.register(rtype)
        fake.add_namespace("sockshop-dev")
        fake.on_read("deployments.apps", deployment_rollout(ready_after_reads=1))
        # the composition root's API client is the fake's (kubernetes.config reads $KUBECONFIG once, at import)
        monkeypatch.setattr(configmap, "load_api_client", lambda *a, **k: fake.api_client())
        runtime = Runtime(Settings(state_dir=str(state), backend="kubernetes"), "deploy")
        url = runtime.backend.deploy(Placement("sockshop", "dev", "carts"), Slot.DIRECT, IMAGE, 10)
        assert url == "http://carts.sockshop-dev.svc.cluster.local:8080"
        dep = fake.get_object("deployments.apps", "sockshop-dev", "carts")
        assert dep is not None
        containers = dep["spec"]["template"]["spec"]["containers"]
        assert [c["name"] for c in containers] == ["carts", "log-shipper"] and containers[0]["image"] == IMAGE
        assert {"name": "NAMESPACE", "value": "sockshop-dev"} in containers[0]["env"]
        assert fake.get_object("statefulsets.apps", "sockshop-dev", "carts-db") is not None
        assert fake.get_object("configmaps", "sockshop-dev", "carts-config") is not None
