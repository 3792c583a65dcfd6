"""The state store registry: build by name, refuse unknown names and settings loudly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import sluice.adapters.state as state_package
from sluice.adapters.state import STORES, create_store
from sluice.adapters.state.local import LocalStore
from sluice.adapters.state.memory import MemoryStore
from sluice.errors import ConfigurationError


def test_builds_stores_by_name(tmp_path: Path) -> None:
    """'memory' and 'local' build their stores with the given settings."""
    assert isinstance(create_store("memory"), MemoryStore)
    local = create_store("local", directory=tmp_path)
    assert isinstance(local, LocalStore) and local.directory == tmp_path / "configmaps"


def test_unknown_kind_names_the_valid_ones() -> None:
    """An unknown store name is a ConfigurationError listing every valid name."""
    with pytest.raises(ConfigurationError) as raised:
        create_store("etcd")
    for kind in STORES:
        assert kind in str(raised.value)
    assert "'etcd'" in str(raised.value)


def test_unknown_setting_is_a_configuration_error() -> None:
    """A setting the store does not take is a ConfigurationError, not a TypeError."""
    with pytest.raises(ConfigurationError, match="memory"):
        create_store("memory", directory="x")


def test_the_tree_is_the_catalogue() -> None:
    """Every store module in the package is registered and every registered store has a module."""
    folder = Path(state_package.__file__ or "").parent
    modules = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    assert modules == set(STORES)


def test_local_store_does_not_import_kubernetes() -> None:
    """Building the local store (and importing the ConfigMap module) leaves the kubernetes client unimported (cold start)."""
    code = (
        "import sys; import sluice.adapters.state.configmap; from sluice.adapters.state import create_store; "
        "create_store('local', directory='unused'); print('kubernetes' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_configmap_without_api_says_how_to_build_one() -> None:
    """Asking for the ConfigMap store without an API client names load_api_client instead of failing obscurely."""
    with pytest.raises(ConfigurationError, match="load_api_client"):
        create_store("configmap", namespace="sluice")


def test_load_api_client_without_cluster_is_a_configuration_error(tmp_path: Path) -> None:
    """With no service account and no usable kubeconfig, load_api_client raises ConfigurationError."""
    from sluice.adapters.state.configmap import load_api_client

    with pytest.raises(ConfigurationError, match="kubeconfig"):
        load_api_client(kubeconfig=str(tmp_path / "missing"))


def test_load_api_client_reads_a_kubeconfig(tmp_path: Path) -> None:
    """A kubeconfig file yields a client pointed at its server, usable by the ConfigMap store."""
    from sluice.adapters.state.configmap import load_api_client

    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    api = load_api_client(kubeconfig=str(path))
    assert api.configuration.host == "http://127.0.0.1:6443"
    assert create_store("configmap", api=api, namespace="sluice") is not None
