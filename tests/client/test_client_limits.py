"""Process-wide limits per instance: a concurrency cap and a request rate shared by every client (sync and
async alike), measured against an emulator that answers slowly."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from client_support import Instance

from servicenow_blocks.transport import limits_for

LATENCY_S = 0.25


def _gate(sn: Instance) -> Any:
    return limits_for(sn.url, 8, None).gate


async def _six_calls_from_two_clients(sn: Instance, cap: int) -> tuple[float, int]:
    """Three calls from a sync client (threads) and three from an async client, all at once."""
    sync_creds = sn.credentials(max_concurrency=cap)
    async_creds = sn.credentials(max_concurrency=cap)
    with sync_creds.get_client() as sync_client, ThreadPoolExecutor(3) as pool:
        async with async_creds.get_async_client() as async_client:
            gate = _gate(sn)
            gate.peak = 0
            with sn.faults(latency_ms=LATENCY_S * 1000):
                started = time.monotonic()
                threads = [pool.submit(sync_client.get_records, "incident", limit=1) for _ in range(3)]
                await asyncio.gather(*(async_client.get_records("incident", limit=1) for _ in range(3)))
                assert all(len(t.result()) == 1 for t in threads)
                elapsed = time.monotonic() - started
            return elapsed, gate.peak


async def test_two_clients_share_the_concurrency_cap(sn: Instance) -> None:
    elapsed, peak = await _six_calls_from_two_clients(sn, cap=2)
    assert peak == 2  # never more than two requests in flight to the instance from this process
    assert elapsed >= 3 * LATENCY_S  # six slow answers, two at a time
    # The measure can fail: with room for all six, they overlap.
    elapsed, peak = await _six_calls_from_two_clients(sn, cap=8)
    assert peak == 6
    assert elapsed < 2 * LATENCY_S


def test_the_strictest_live_client_sets_the_cap(sn: Instance) -> None:
    gate = _gate(sn)
    with sn.credentials(max_concurrency=8).get_client():
        assert gate.capacity == 8
        with sn.credentials(max_concurrency=3).get_client():
            assert gate.capacity == 3
        assert gate.capacity == 8  # the stricter client is gone
    with sn.credentials(max_concurrency=5).get_client():
        assert gate.capacity == 5  # the next client's setting replaces a loosened one


@pytest.mark.parametrize("rate", [5.0, 10.0])
def test_rate_limiter_spaces_requests(sn: Instance, rate: float) -> None:
    n = 9
    with sn.credentials(requests_per_second=rate).get_client() as client:
        client.get_records("incident", limit=1)  # the first request takes the first slot
        started = time.monotonic()
        for _ in range(n):
            client.get_records("incident", limit=1)
        elapsed = time.monotonic() - started
    assert n / rate * 0.9 <= elapsed < n / rate + 0.5


async def test_rate_limit_is_shared_by_clients_and_faces(sn: Instance) -> None:
    rate = 8.0
    with sn.credentials(requests_per_second=rate).get_client() as sync_client, ThreadPoolExecutor(4) as pool:
        async with sn.credentials().get_async_client() as async_client:  # no own rate: the shared one applies
            started = time.monotonic()
            threads = [pool.submit(sync_client.get_records, "incident", limit=1) for _ in range(6)]
            await asyncio.gather(*(async_client.get_records("incident", limit=1) for _ in range(6)))
            for t in threads:
                t.result()
            elapsed = time.monotonic() - started
        # 12 requests at 8/s: the first goes at once, the last 11/8 s later.
        assert 11 / rate * 0.9 <= elapsed < 12 / rate + 0.5
    with sn.credentials().get_client() as unlimited:
        started = time.monotonic()
        for _ in range(6):
            unlimited.get_records("incident", limit=1)
        assert time.monotonic() - started < 0.5  # the limit left with the client that asked for it
