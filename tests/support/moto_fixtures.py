"""One moto server for the AWS adapter tests (reset before each test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.motoserver import MotoServer, moto_server


@pytest.fixture(scope="session")
def moto_session() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


@pytest.fixture
def moto(moto_session: MotoServer) -> MotoServer:
    moto_session.reset()
    return moto_session
