"""Plugins every test folder may use: ``kube_cluster``, a real Kubernetes control plane (tests/kube/cluster.py)."""

pytest_plugins = ["tests.kube.cluster"]
