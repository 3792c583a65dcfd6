"""Fixtures of the insight tests (the helpers are in ``world.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.insight_world import Receiver, World, make_world


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()
