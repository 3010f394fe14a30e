"""Fixtures shared by the third-party client tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture(scope="module")
def http(emulator) -> Iterator[httpx.Client]:
    """A plain admin client for set-up and for checking what the third-party client did."""
    with emulator.client() as c:
        yield c
