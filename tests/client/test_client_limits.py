"""Process-wide limits per instance: a concurrency cap and a request rate shared by every client (sync and
async alike), measured against an emulator that answers slowly."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from client_support import Instance

from servicenow_blocks.transport import AsyncDriver, Gate, ThreadWaiter, limits_for

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


# --- a waiter that gives up just as a slot comes back ------------------------------------------------------
async def _cancel_while_a_slot_comes_back(gate: Gate, waiting: asyncio.Future) -> None:
    """``waiting`` is queued at ``gate`` behind the one slot, taken: cancel it, and before its cancel handler
    runs (the next loop step), give the slot back. The gate passes over the cancelled waiter."""
    await asyncio.sleep(0.05)  # it reaches the gate and queues
    assert gate.in_use == gate.capacity
    waiting.cancel()  # its future is cancelled now; its handler (gate.abandon) runs on the next step
    gate.release()  # ... but first the held slot comes back
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_waiter_cancelled_as_a_slot_comes_back_takes_no_slot_and_gives_none_back() -> None:
    gate = Gate(1)
    assert gate.try_acquire(ThreadWaiter())
    await _cancel_while_a_slot_comes_back(gate, asyncio.ensure_future(AsyncDriver._acquire(gate)))
    assert gate.in_use == 0  # not -1: the slot that came back is the only free one
    assert gate.try_acquire(ThreadWaiter())
    assert not gate.try_acquire(ThreadWaiter())  # a limit of 1 still admits one


async def test_a_waiter_cancelled_after_its_grant_gives_its_slot_back() -> None:
    gate = Gate(1)
    assert gate.try_acquire(ThreadWaiter())
    waiting = asyncio.ensure_future(AsyncDriver._acquire(gate))
    await asyncio.sleep(0.05)
    gate.release()  # granted: the slot is handed to the waiter, its future resolves on the next step
    waiting.cancel()  # ... but it is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.abandon(ThreadWaiter())  # a stranger's abandon gives nothing back
    assert gate.in_use == 0
    assert gate.try_acquire(ThreadWaiter())
    assert not gate.try_acquire(ThreadWaiter())


async def test_a_cancelled_request_never_widens_the_concurrency_cap(sn: Instance) -> None:
    """The same sequence through a client: a request queued at the instance's cap of 1 is cancelled as the
    slot comes back; afterwards the cap still holds (one request in flight at a time)."""
    async with sn.credentials(max_concurrency=1).get_async_client() as client:
        gate = _gate(sn)
        assert gate.capacity == 1 and gate.in_use == 0
        assert gate.try_acquire(ThreadWaiter())  # as if another request were in flight
        waiting = asyncio.ensure_future(client.get_records("incident", limit=1))
        await _cancel_while_a_slot_comes_back(gate, waiting)
        assert gate.in_use == 0
        gate.peak = 0
        with sn.faults(latency_ms=LATENCY_S * 1000):
            started = time.monotonic()
            results = await asyncio.gather(*(client.get_records("incident", limit=1) for _ in range(3)))
            elapsed = time.monotonic() - started
        assert all(len(rows) == 1 for rows in results)
        assert gate.peak == 1  # never two in flight
        assert elapsed >= 3 * LATENCY_S
