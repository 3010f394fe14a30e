"""Table API reads: exact limits, stable order, one COUNT, the request count, concurrent and keyset paging,
read parameters, and memory that stays flat however many rows stream through."""

from __future__ import annotations

import gc
import math
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from client_support import Instance, LiveEmulator, start_emulator, tag

from servicenow_blocks import ConfigurationError, Query

N = 37
INCIDENT_ROUTE = "GET /api/now/table/incident"


@pytest.fixture(scope="module")
def tagged(sn: Instance) -> dict[str, Any]:
    """N incidents of this module, created with plain HTTP: the tag and their sys_ids in sys_id order."""
    marker = tag("paging")
    with sn.live.client() as admin:
        for i in range(N):
            r = admin.post(
                "/api/now/table/incident",
                json={"short_description": f"paging {i:02d}", "correlation_id": marker, "urgency": str(1 + i % 3)},
            )
            assert r.status_code == 201, r.text
    rows = sn.rows("incident", f"correlation_id={marker}^ORDERBYsys_id")
    assert len(rows) == N
    return {"tag": marker, "query": Query().eq("correlation_id", marker), "ids": [r["sys_id"] for r in rows]}


@pytest.mark.parametrize(
    ("limit", "page_size", "concurrency"),
    [(None, 10, 1), (None, 10, 4), (23, 10, 3), (20, 10, 2), (5, 10, 1), (N, 7, 3), (100, 1000, 4), (1, 1, 1)],
)
def test_limit_is_exact_order_is_stable_and_count_runs_once(
    sn: Instance, client: Any, tagged: dict, limit: int | None, page_size: int, concurrency: int
) -> None:
    before = sn.counts()
    rows = client.get_records(
        "incident", tagged["query"], fields=["sys_id"], limit=limit, page_size=page_size, concurrency=concurrency
    )
    expected = tagged["ids"][: (N if limit is None else min(limit, N))]
    assert [r["sys_id"] for r in rows] == expected  # exact, ordered by sys_id, no duplicates or gaps
    # One request per page: the total from the first page says when to stop (no probe for an empty page).
    assert sn.delta(before, INCIDENT_ROUTE) == max(1, math.ceil(len(expected) / page_size))
    # One COUNT for a read that spans pages; none when one page answers it (limit <= page size).
    single = limit is not None and limit <= page_size
    assert sn.delta(before, "count_queries") == (0 if single else 1)


def test_full_last_page_without_limit_needs_no_probe(sn: Instance, client: Any, tagged: dict) -> None:
    before = sn.counts()
    rows = list(client.iter_records("incident", tagged["query"], fields=["sys_id"], page_size=N))
    assert len(rows) == N
    assert sn.delta(before, INCIDENT_ROUTE) == 1  # the total said there was nothing more


def test_later_pages_send_no_count_and_suppress_the_link_header(sn: Instance, client: Any, tagged: dict) -> None:
    requests: list[Any] = []
    http = client._http
    http.event_hooks["request"].append(requests.append)
    try:
        rows = client.get_records("incident", tagged["query"], page_size=10, concurrency=2)
    finally:
        http.event_hooks["request"].remove(requests.append)
    assert len(rows) == N
    params = [dict(r.url.params) for r in requests]
    assert "sysparm_no_count" not in params[0]
    assert all(p["sysparm_no_count"] == "true" for p in params[1:])
    assert all(p["sysparm_suppress_pagination_header"] == "true" for p in params)
    assert all(p["sysparm_query"].endswith("ORDERBYsys_id") for p in params)
    assert sorted(int(p["sysparm_offset"]) for p in params) == [0, 10, 20, 30]
    assert all(p["sysparm_display_value"] == "false" and p["sysparm_exclude_reference_link"] == "true" for p in params)


def test_other_orders_keep_sys_id_as_the_tie_break(sn: Instance, client: Any, tagged: dict) -> None:
    rows = client.get_records(
        "incident", tagged["query"].order_by_desc("urgency"), fields=["sys_id", "urgency"], page_size=5, concurrency=3
    )
    assert sorted(r["sys_id"] for r in rows) == tagged["ids"]
    keys = [(-int(r["urgency"]), r["sys_id"]) for r in rows]
    assert keys == sorted(keys)  # urgency descending, then sys_id ascending


def test_keyset_paging_matches_offset_paging(sn: Instance, client: Any, tagged: dict) -> None:
    before = sn.counts()
    rows = client.get_records("incident", tagged["query"], fields=["number"], page_size=8, paging="keyset")
    assert [r["sys_id"] for r in rows] == tagged["ids"]  # sys_id was added to the fields for the keyset
    assert sn.delta(before, INCIDENT_ROUTE) == math.ceil(N / 8)
    assert sn.delta(before, "count_queries") == 1
    everything = client.get_records("incident", None, fields=["sys_id"], page_size=4, paging="keyset", limit=9)
    assert [r["sys_id"] for r in everything] == sorted(r["sys_id"] for r in everything)
    assert len(everything) == 9
    with pytest.raises(ConfigurationError, match="keyset paging"):
        client.get_records("incident", tagged["query"].order_by("number"), paging="keyset")


@pytest.mark.parametrize("display_value", ["all", True])
async def test_keyset_paging_with_display_values_returns_every_row_once(
    sn: Instance, client: Any, aclient: Any, tagged: dict, display_value: Any
) -> None:
    """With display_value="all" every field, sys_id included, is {"display_value", "value"}: the keyset
    must page on the value."""

    def sys_id(row: dict[str, Any]) -> str:
        return row["sys_id"]["value"] if display_value == "all" else row["sys_id"]

    before = sn.counts()
    kw = {"fields": ["number"], "page_size": 8, "paging": "keyset", "display_value": display_value}
    rows = client.get_records("incident", tagged["query"], **kw)
    assert [sys_id(r) for r in rows] == tagged["ids"]  # every row, once, in order
    assert sn.delta(before, INCIDENT_ROUTE) == math.ceil(N / 8)
    if display_value == "all":
        assert set(rows[0]["number"]) == {"display_value", "value"}
    assert [r async for r in aclient.aiter_records("incident", tagged["query"], **kw)] == rows
    assert client.get_records("incident", tagged["query"], limit=20, **kw) == rows[:20]


def test_fields_display_value_and_reference_links(client: Any, tagged: dict) -> None:
    sys_id = tagged["ids"][0]
    raw = client.get("incident", sys_id, fields=["caller_id", "urgency", "sys_created_by"])
    assert set(raw) == {"caller_id", "urgency", "sys_created_by"}
    assert isinstance(raw["caller_id"], str)  # exclude_reference_link=True: a plain value, no link object
    assert raw["urgency"] in ("1", "2", "3")  # display_value=False: the stored value
    shown = client.get("incident", sys_id, fields=["urgency"], display_value=True)
    assert shown["urgency"].startswith(raw["urgency"] + " - ")  # the choice label
    both = client.get("incident", sys_id, fields=["urgency"], display_value="all")
    assert both["urgency"] == {"value": raw["urgency"], "display_value": shown["urgency"]}
    linked = client.get("incident", sys_id, fields=["opened_by"], exclude_reference_link=False)
    assert set(linked["opened_by"]) == {"link", "value"}


def test_limit_zero_and_empty_results(sn: Instance, client: Any) -> None:
    before = sn.counts()
    assert client.get_records("incident", limit=0) == []
    assert sn.delta(before, INCIDENT_ROUTE) == 0
    assert client.get_records("incident", Query().eq("correlation_id", tag("none"))) == []
    assert client.first("incident", Query().eq("correlation_id", tag("none"))) is None


async def test_async_iteration_matches_sync(client: Any, aclient: Any, tagged: dict) -> None:
    sync_rows = list(client.iter_records("incident", tagged["query"], page_size=6, concurrency=3))
    async_rows = [r async for r in aclient.aiter_records("incident", tagged["query"], page_size=6, concurrency=3)]
    assert async_rows == sync_rows
    assert await aclient.get_records("incident", tagged["query"], limit=11) == sync_rows[:11]


# --- constant memory: a private instance with 20,000 generated servers -------------------------------------
@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEmulator]:
    live = start_emulator(Path(tmp_path_factory.mktemp("big")), seed="empty", extra=["--ci-count", "20000"])
    yield live
    live.stop()


def _peak_while_iterating(read: Callable[[], Iterable[dict[str, Any]]]) -> tuple[int, int]:
    """Rows read and the peak of traced memory while reading them (all threads)."""
    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        for _ in read():
            count += 1
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_iterating_20k_rows_uses_the_memory_of_5k(big: LiveEmulator) -> None:
    from servicenow_blocks import ServiceNowCredentials

    # 500-row pages, 4 in flight: both reads go through many window refills, so both reach the steady state.
    creds = ServiceNowCredentials(instance=big.url, username="admin", password="admin", page_size=500)
    fields = ["sys_id", "name", "ip_address", "os", "cpu_count"]
    with creds.get_client() as client:
        assert client.count("cmdb_ci_server") == 20000
        list(client.iter_records("cmdb_ci_server", fields=fields, limit=2000))  # warm up (imports, pools)
        small, small_peak = _peak_while_iterating(
            lambda: client.iter_records("cmdb_ci_server", fields=fields, limit=5000)
        )
        large, large_peak = _peak_while_iterating(lambda: client.iter_records("cmdb_ci_server", fields=fields))
        kept, kept_peak = _peak_while_iterating(lambda: client.get_records("cmdb_ci_server", fields=fields))
    assert (small, large, kept) == (5000, 20000, 20000)
    # Streaming holds a bounded window of pages: 4x the rows must not cost more than a little extra memory.
    assert large_peak < small_peak * 1.5, (small_peak, large_peak)
    # The measure can tell: holding the 20,000 rows (get_records) costs several times more.
    assert kept_peak > large_peak * 3, (large_peak, kept_peak)


async def _apeak_while_iterating(read: Callable[[], Any]) -> tuple[int, int]:
    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        async for _ in read():
            count += 1
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_async_iteration_is_flat_too(big: LiveEmulator) -> None:
    from servicenow_blocks import ServiceNowCredentials

    creds = ServiceNowCredentials(instance=big.url, username="admin", password="admin", page_size=500)
    fields = ["sys_id", "name", "ip_address", "os", "cpu_count"]
    async with creds.get_async_client() as client:
        await client.get_records("cmdb_ci_server", fields=fields, limit=2000)  # warm up
        small, small_peak = await _apeak_while_iterating(
            lambda: client.aiter_records("cmdb_ci_server", fields=fields, limit=5000)
        )
        large, large_peak = await _apeak_while_iterating(lambda: client.aiter_records("cmdb_ci_server", fields=fields))
    assert (small, large) == (5000, 20000)
    assert large_peak < small_peak * 1.5, (small_peak, large_peak)


def test_an_instance_that_caps_rows_per_answer_is_paged_at_its_cap() -> None:
    """Some instances answer fewer rows than sysparm_limit asks; the total says there are more."""
    import httpx

    from servicenow_blocks.client import ClientSettings, ServiceNowClient, basic_auth

    table = [{"sys_id": f"{i:032x}"} for i in range(25)]
    offsets: list[int] = []
    send_total = True

    def answer(request: httpx.Request) -> httpx.Response:
        offset, limit = int(request.url.params["sysparm_offset"]), int(request.url.params["sysparm_limit"])
        offsets.append(offset)
        query = request.url.params["sysparm_query"]
        after = query.split("sys_id>", 1)[1].split("^", 1)[0] if "sys_id>" in query else ""
        matching = [row for row in table if row["sys_id"] > after]
        rows = matching[offset : offset + min(limit, 10)]  # a cap of 10 rows per answer
        counted = request.url.params.get("sysparm_no_count") != "true" and send_total
        return httpx.Response(200, json={"result": rows}, headers={"X-Total-Count": str(len(table))} if counted else {})

    settings = ClientSettings(base_url="https://capped.example.com", auth=basic_auth("u", "p"), page_size=20)
    with ServiceNowClient(settings, httpx.Client(transport=httpx.MockTransport(answer))) as client:
        rows = list(client.iter_records("incident", concurrency=2))
        assert rows == table
        assert sorted(offsets) == [0, 10, 20]
        offsets.clear()
        assert client.get_records("incident", paging="keyset") == table
        # Without X-Total-Count: one page at a time until a short one, and the limit still exact.
        send_total = False
        offsets.clear()
        assert client.get_records("incident", limit=23, page_size=10) == table[:23]
        assert offsets == [0, 10, 20]
        assert client.get_records("incident", page_size=8) == table
