"""One request path for the sync and async clients.

Every operation is written once, as a *program*: a generator that yields effects (send this request,
sleep, take a concurrency slot, start a sub-program, emit rows) and receives their results. Two small
drivers run programs, one on ``httpx.Client`` and threads, one on ``httpx.AsyncClient`` and asyncio.
Retries, authentication, paging and rate limiting therefore exist once, whatever the caller's world.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


# --- effects ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """Send a request; the program receives the response (or the transport error is thrown in).

    The driver builds the request with its client's ``build_request``, so the client's default headers
    (User-Agent), cookies and timeouts apply. ``options`` are ``build_request`` keyword arguments.
    """

    method: str
    url: str
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Acquire:
    """Take a slot of a Gate; the program must ``gate.release()`` it (in a finally)."""

    gate: Gate


@dataclass(frozen=True, slots=True)
class Spawn:
    """Start a sub-program concurrently; the program receives a handle for Join."""

    program: Generator[Any, Any, Any]


@dataclass(frozen=True, slots=True)
class Join:
    handle: Any


@dataclass(frozen=True, slots=True)
class Emit:
    """Hand rows to the consumer of an iterating program."""

    rows: list[dict[str, Any]]


Program = Generator[Any, Any, T]


# --- process-wide limits ------------------------------------------------------------------------------
class ThreadWaiter:
    """A thread waiting for a Gate slot (``event`` is set when the slot is granted)."""

    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.granted = False

    def wake(self) -> bool:
        self.event.set()
        return True


class LoopWaiter:
    """An asyncio task waiting for a Gate slot (``future`` resolves when the slot is granted)."""

    __slots__ = ("future", "granted", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future = loop.create_future()
        self.granted = False

    def wake(self) -> bool:
        """Hand the slot over; False when the waiter already gave up (its future was cancelled)."""
        if self.future.done():
            return False
        self.loop.call_soon_threadsafe(_resolve, self.future)
        return True


class Gate:
    """A FIFO counting semaphore usable from threads and from any asyncio loop at once.

    Its capacity may change while slots are taken: a smaller capacity takes effect as slots come back.
    Every waiter is either still queued, or was granted a slot (``granted``), or was passed over because it
    had already given up; ``abandon`` relies on that to give back exactly the slots that were granted.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._free = capacity
        self._lock = threading.Lock()
        self._waiters: deque[ThreadWaiter | LoopWaiter] = deque()
        self.peak = 0  # the most slots ever taken at once (observability)

    def try_acquire(self, waiter: ThreadWaiter | LoopWaiter) -> bool:
        """Take a slot now (True), or queue ``waiter`` to be woken when one is granted to it (False)."""
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._take()
                return True
            self._waiters.append(waiter)
            return False

    def _take(self) -> None:
        self._free -= 1
        self.peak = max(self.peak, self.capacity - self._free)

    def release(self) -> None:
        with self._lock:
            self._free += 1
            self._hand_over()

    def _hand_over(self) -> None:
        # Under the lock: pass free slots to waiters in order, skipping (without a slot) those that gave up.
        while self._free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if waiter.wake():
                waiter.granted = True
                self._take()

    def resize(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        with self._lock:
            self._free += capacity - self.capacity
            self.capacity = capacity
            self._hand_over()

    def abandon(self, waiter: ThreadWaiter | LoopWaiter) -> None:
        """A waiter gave up (cancelled): drop it from the queue, or hand back the slot it was granted.

        A waiter passed over because it had already given up holds no slot: nothing to give back.
        """
        with self._lock:
            try:
                self._waiters.remove(waiter)
                return
            except ValueError:
                pass
            if not waiter.granted:
                return
            waiter.granted = False  # abandoning twice gives the slot back once
            self._free += 1
            self._hand_over()

    @property
    def in_use(self) -> int:
        return self.capacity - self._free


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class RequestRateLimiter:
    """Spaces requests to at most ``per_second`` (a reservation clock, fair across threads and loops)."""

    def __init__(self, per_second: float | None):
        self.per_second = per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Reserve the next slot; return how long to wait before using it."""
        if not self.per_second:
            return 0.0
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + 1.0 / self.per_second
            return slot - now


class InstanceLimits:
    """The concurrency cap and request rate of one instance, shared by every client in the process.

    Each live client claims its settings; the strictest claim applies (a lower cap, a lower rate). When
    the last client lets go, the limits stay as they were until the next claim replaces them, so a
    process that builds one short-lived client per task still spaces its requests.
    """

    def __init__(self, max_concurrency: int, requests_per_second: float | None):
        self.gate = Gate(max_concurrency)
        self.rate = RequestRateLimiter(requests_per_second)
        self._claims: dict[int, tuple[int, float | None]] = {}
        self._next_claim = 0
        self._lock = threading.Lock()

    def claim(self, max_concurrency: int, requests_per_second: float | None) -> int:
        with self._lock:
            self._next_claim += 1
            self._claims[self._next_claim] = (max_concurrency, requests_per_second)
            self._apply()
            return self._next_claim

    def release_claim(self, claim: int) -> None:
        with self._lock:
            if self._claims.pop(claim, None) is not None and self._claims:
                self._apply()

    def _apply(self) -> None:
        self.gate.resize(min(cap for cap, _ in self._claims.values()))
        rates = [rate for _, rate in self._claims.values() if rate]
        self.rate.per_second = min(rates) if rates else None


_LIMITS: dict[str, InstanceLimits] = {}
_LIMITS_LOCK = threading.Lock()


def limits_for(base_url: str, max_concurrency: int, requests_per_second: float | None) -> InstanceLimits:
    """The limits of one instance (one per base URL in the process); the caller then claims its settings."""
    with _LIMITS_LOCK:
        limits = _LIMITS.get(base_url)
        if limits is None:
            limits = _LIMITS[base_url] = InstanceLimits(max_concurrency, requests_per_second)
        return limits


# --- drivers ----------------------------------------------------------------------------------------
class SyncDriver:
    """Runs programs on an httpx.Client; Spawn uses a thread pool."""

    def __init__(self, http: httpx.Client, max_workers: int = 8):
        self.http = http
        self._max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="servicenow")
            return self._pool

    def run(self, program: Program[T]) -> T:
        steps = self.steps(program)
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                return stop.value

    def iterate(self, program: Program[Any]) -> Iterator[dict[str, Any]]:
        yield from self.steps(program)

    def steps(self, program: Program[T]) -> Generator[dict[str, Any], None, T]:
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    effect = program.throw(error) if error is not None else program.send(value)
                except StopIteration as stop:
                    return stop.value
                value, error = None, None
                try:
                    if isinstance(effect, Send):
                        value = self.http.send(self.http.build_request(effect.method, effect.url, **effect.options))
                    elif isinstance(effect, Sleep):
                        if effect.seconds > 0:
                            time.sleep(effect.seconds)
                    elif isinstance(effect, Acquire):
                        waiter = ThreadWaiter()
                        if not effect.gate.try_acquire(waiter):
                            waiter.event.wait()
                    elif isinstance(effect, Spawn):
                        value = self._executor().submit(self.run, effect.program)
                    elif isinstance(effect, Join):
                        value = effect.handle.result()
                    elif isinstance(effect, Emit):
                        yield from effect.rows
                    else:
                        raise TypeError(f"unknown effect {effect!r}")
                except Exception as exc:  # handed to the program, which decides
                    error = exc
        finally:
            program.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class AsyncDriver:
    """Runs programs on an httpx.AsyncClient; Spawn creates tasks."""

    def __init__(self, http: httpx.AsyncClient):
        self.http = http

    async def run(self, program: Program[T]) -> T:
        result: list[T] = []
        async for _ in self._steps(program, result):
            pass
        return result[0]

    def iterate(self, program: Program[Any]) -> AsyncIterator[dict[str, Any]]:
        return self._steps(program, [])

    async def _steps(self, program: Program[T], result: list[T]) -> AsyncIterator[dict[str, Any]]:
        value: Any = None
        error: BaseException | None = None
        spawned: set[asyncio.Task] = set()  # still running; a finished one leaves (its rows go with the Join)
        try:
            while True:
                try:
                    effect = program.throw(error) if error is not None else program.send(value)
                except StopIteration as stop:
                    result.append(stop.value)
                    return
                value, error = None, None
                try:
                    if isinstance(effect, Send):
                        request = self.http.build_request(effect.method, effect.url, **effect.options)
                        value = await self.http.send(request)
                    elif isinstance(effect, Sleep):
                        if effect.seconds > 0:
                            await asyncio.sleep(effect.seconds)
                    elif isinstance(effect, Acquire):
                        await self._acquire(effect.gate)
                    elif isinstance(effect, Spawn):
                        task = asyncio.ensure_future(self.run(effect.program))
                        spawned.add(task)
                        task.add_done_callback(spawned.discard)
                        value = task
                    elif isinstance(effect, Join):
                        value = await effect.handle
                    elif isinstance(effect, Emit):
                        for row in effect.rows:
                            yield row
                    else:
                        raise TypeError(f"unknown effect {effect!r}")
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    error = exc
        finally:
            for task in list(spawned):
                task.cancel()
            program.close()

    @staticmethod
    async def _acquire(gate: Gate) -> None:
        waiter = LoopWaiter(asyncio.get_running_loop())
        if gate.try_acquire(waiter):
            return
        try:
            await waiter.future
        except asyncio.CancelledError:
            gate.abandon(waiter)
            raise
