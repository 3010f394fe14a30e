"""Fixtures for the client tests: credentials and clients aimed at the session emulator (see client_support)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from client_support import Instance


@pytest.fixture(scope="session")
def sn(emulator: Any) -> Instance:
    return Instance(emulator)


@pytest.fixture
def client(sn: Instance) -> Iterator[Any]:
    with sn.credentials().get_client() as c:
        yield c


@pytest.fixture
async def aclient(sn: Instance) -> Any:
    async with sn.credentials().get_async_client() as c:
        yield c
