"""Every test in tests/kube runs against the real control plane of ``tests.kube.cluster``."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/kube/" in str(item.path):
            item.add_marker(pytest.mark.kube)
