"""Retries against injected faults: measured waits that honour Retry-After, bounded budgets, and the rules for
writes whose answer was lost (never duplicated; re-sent only when provably safe or after looking)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from client_support import Instance, forward_proxy, tag

from servicenow_blocks import (
    AmbiguousWriteError,
    ConnectionFailedError,
    InstanceUnavailableError,
    Query,
    RateLimitedError,
    TransactionCancelledError,
)
from servicenow_blocks.errors import ServerError

INCIDENTS = "/api/now/table/incident"
LIST = f"GET {INCIDENTS}"
CREATE = f"POST {INCIDENTS}"


def script(status: int = 503, *, times: int = 1, method: str = "GET", path: str = INCIDENTS, **kw: Any) -> dict:
    return {"status": status, "times": times, "method": method, "path": path, **kw}


def test_429_waits_as_long_as_retry_after_says(sn: Instance, client: Any, caplog: pytest.LogCaptureFixture) -> None:
    before = sn.counts()
    with sn.faults(script=[script(429, retry_after=1)]), caplog.at_level(logging.WARNING, "servicenow_blocks"):
        started = time.monotonic()
        rows = client.get_records("incident", limit=1)
        elapsed = time.monotonic() - started
    assert len(rows) == 1
    assert 1.0 <= elapsed < 2.0  # the instance's wait, not a guess and not the whole budget
    assert sn.delta(before, LIST) == 2
    assert any("HTTP 429; retrying in 1.00 s" in r.getMessage() for r in caplog.records)


async def test_async_429_wait_is_measured_too(sn: Instance, aclient: Any) -> None:
    with sn.faults(script=[script(429, times=2, retry_after=1)]):
        started = time.monotonic()
        assert len(await aclient.get_records("incident", limit=1)) == 1
        assert 2.0 <= time.monotonic() - started < 3.0


def test_platform_rate_limit_rule_resets_and_the_client_waits(sn: Instance, caplog: pytest.LogCaptureFixture) -> None:
    """A real rate-limit rule (X-RateLimit-Reset and Retry-After) for one user, with a 2 s window."""
    with sn.live.client() as admin:
        user = admin.get("/api/now/table/sys_user", params={"sysparm_query": "user_name=readonly"}).json()
        rule = admin.post(
            "/api/now/table/sys_rate_limit_rules",
            json={"name": tag("rule"), "type": "user", "user": user["result"][0]["sys_id"], "rate": "3"},
        )
        assert rule.status_code == 201, rule.text
        rule_id = rule.json()["result"]["sys_id"]
    try:
        with sn.properties(**{"emulator.rate_limit.window_seconds": "2"}):
            creds = sn.credentials(username="readonly", password="readonly")
            with caplog.at_level(logging.WARNING, "servicenow_blocks"), creds.get_client() as client:
                started = time.monotonic()
                for _ in range(7):  # at least 4 of them fall in one 2 s window
                    client.get_records("incident", limit=1)
                elapsed = time.monotonic() - started
        waits = [r.getMessage() for r in caplog.records if "HTTP 429; retrying" in r.getMessage()]
        assert waits  # the rule bit, and every request still succeeded after waiting for the next window
        assert 1.0 <= elapsed < 2.0 * len(waits) + 2.0
    finally:
        with sn.live.client() as admin:
            admin.delete(f"/api/now/table/sys_rate_limit_rules/{rule_id}")


def test_429_longer_than_the_budget_fails_at_once_with_advice(sn: Instance) -> None:
    before = sn.counts()
    with sn.faults(script=[script(429, retry_after=30)]), sn.credentials(max_retry_wait=5).get_client() as client:
        started = time.monotonic()
        with pytest.raises(RateLimitedError) as caught:
            client.get_records("incident", limit=1)
        assert time.monotonic() - started < 1
    assert caught.value.retry_after == 30
    assert "more than the 5 s left in the retry budget" in str(caught.value)
    assert "requests_per_second" in str(caught.value)  # what to do
    assert sn.delta(before, LIST) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_for_reads(sn: Instance, client: Any, status: int) -> None:
    before = sn.counts()
    with sn.faults(script=[script(status, times=2)]):
        assert len(client.get_records("incident", limit=1)) == 1
    assert sn.delta(before, LIST) == 3


def test_retry_budget_is_bounded_and_logged(sn: Instance, caplog: pytest.LogCaptureFixture) -> None:
    before = sn.counts()
    creds = sn.credentials(max_attempts=3)
    with (
        sn.faults(script=[script(503, times=50)]),
        caplog.at_level(logging.WARNING, "servicenow_blocks"),
        creds.get_client() as client,
        pytest.raises(ServerError) as caught,
    ):
        client.get_records("incident", limit=1)
    assert sn.delta(before, LIST) == 3
    assert caught.value.status == 503
    assert "503 Service Unavailable" in str(caught.value)  # the HTML page's title, not "HTTP 503 HTTP 503"
    assert "gave up after 3 attempts" in str(caught.value)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("retrying in" in m for m in messages) == 2
    assert "giving up after 3 attempts" in messages[-1]


def test_time_budget_stops_retries_before_the_attempts_run_out(sn: Instance) -> None:
    before = sn.counts()
    creds = sn.credentials(max_attempts=20, max_retry_wait=2.5)
    with sn.faults(script=[script(429, times=50, retry_after=1)]), creds.get_client() as client:
        started = time.monotonic()
        with pytest.raises(RateLimitedError):
            client.get_records("incident", limit=1)
        elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 3.0
    assert sn.delta(before, LIST) == 3  # waited 1 + 1 s; a third wait would pass the 2.5 s budget


def test_dropped_connections_are_retried_for_reads(sn: Instance, client: Any) -> None:
    before = sn.counts()
    with sn.faults(script=[script(kind="drop"), script(kind="drop_after")]):
        assert len(client.get_records("incident", limit=1)) == 1
    assert sn.delta(before, LIST) == 3


def test_hibernating_instance_is_reported_not_retried(sn: Instance, client: Any) -> None:
    before = sn.counts()
    with sn.faults(hibernate=True), pytest.raises(InstanceUnavailableError) as caught:
        client.get_records("incident", limit=1)
    assert sn.delta(before, LIST) == 1
    assert "HTML page" in str(caught.value) and "Wake the instance" in str(caught.value)


def test_quota_cancellation_is_reported(sn: Instance, client: Any) -> None:
    with sn.faults(script=[script(kind="quota")]), pytest.raises(TransactionCancelledError) as caught:
        client.get_records("incident", limit=1)
    assert "maximum execution time exceeded" in str(caught.value)
    assert "page_size" in str(caught.value)  # what to do


# --- writes whose answer was lost -----------------------------------------------------------------------------
def _count(sn: Instance, marker: str) -> int:
    return len(sn.rows("incident", f"correlation_id={marker}"))


def test_post_applied_but_answer_lost_without_correlation_is_ambiguous(sn: Instance, client: Any) -> None:
    marker = tag("ambiguous")
    before = sn.counts()
    with sn.faults(script=[script(kind="drop_after", method="POST")]), pytest.raises(AmbiguousWriteError) as caught:
        client.create("incident", {"short_description": "lost answer", "correlation_id": marker})
    assert sn.delta(before, CREATE) == 1  # not re-sent blindly
    assert _count(sn, marker) == 1  # the write was applied, exactly once
    assert "correlation" in str(caught.value)  # the hint says how to make it safe


def test_post_answer_lost_with_correlation_returns_the_existing_record(sn: Instance, client: Any) -> None:
    marker = tag("correlated")
    before = sn.counts()
    with sn.faults(script=[script(kind="drop_after", method="POST")]):
        record = client.create(
            "incident",
            {"short_description": "lost answer", "correlation_id": marker},
            correlation=Query().eq("correlation_id", marker),
        )
    assert record["correlation_id"] == marker and record["number"].startswith("INC")
    assert sn.delta(before, CREATE) == 1  # looked, found it, did not write again
    assert _count(sn, marker) == 1


async def test_post_dropped_before_processing_is_sent_again_after_looking(sn: Instance, aclient: Any) -> None:
    marker = tag("dropped")
    before = sn.counts()
    with sn.faults(script=[script(kind="drop", method="POST")]):
        record = await aclient.create(
            "incident",
            {"short_description": "dropped", "correlation_id": marker},
            correlation=Query().eq("correlation_id", marker),
        )
    assert record["correlation_id"] == marker
    assert sn.delta(before, CREATE) == 2  # the look found nothing, so the POST was re-sent
    assert _count(sn, marker) == 1


def test_post_dropped_without_correlation_is_not_re_sent(sn: Instance, client: Any) -> None:
    """A dropped connection looks the same whether the instance applied the POST or not: never guess."""
    marker = tag("dropped")
    before = sn.counts()
    with sn.faults(script=[script(kind="drop", method="POST")]), pytest.raises(AmbiguousWriteError):
        client.create("incident", {"short_description": "dropped", "correlation_id": marker})
    assert sn.delta(before, CREATE) == 1
    assert _count(sn, marker) == 0


@pytest.mark.parametrize("status", [429, 503])
def test_post_refused_unprocessed_is_sent_again(sn: Instance, client: Any, status: int) -> None:
    marker = tag("refused")
    before = sn.counts()
    with sn.faults(script=[script(status, method="POST", retry_after=0)]):
        client.create("incident", {"short_description": "refused first", "correlation_id": marker})
    assert sn.delta(before, CREATE) == 2
    assert _count(sn, marker) == 1


def test_post_behind_a_failing_gateway_is_ambiguous_unless_correlated(sn: Instance, client: Any) -> None:
    marker = tag("gateway")
    with sn.faults(script=[script(502, method="POST")]), pytest.raises(AmbiguousWriteError) as caught:
        client.create("incident", {"short_description": "502", "correlation_id": marker})
    assert caught.value.status == 502
    assert _count(sn, marker) == 0
    with sn.faults(script=[script(504, method="POST")]):
        record = client.create(
            "incident",
            {"short_description": "504", "correlation_id": marker},
            correlation=Query().eq("correlation_id", marker),
        )
    assert record["correlation_id"] == marker
    assert _count(sn, marker) == 1


SLOW_GATEWAY_S = 1.0  # the gateway passes the POST on this late; the client gives up after TIMEOUT_S
TIMEOUT_S = 0.4


def test_post_still_being_applied_at_the_first_look_is_found_by_the_next_one(
    sn: Instance, caplog: pytest.LogCaptureFixture
) -> None:
    """The answer times out (ReadTimeout: the request got through) while the instance has not yet run the
    insert: the first look finds nothing, so the client waits and looks again before it would re-send."""
    marker = tag("slow")
    before = sn.counts()
    with forward_proxy({("POST", INCIDENTS + "$"): SLOW_GATEWAY_S}) as proxy:
        creds = sn.credentials(proxy=proxy.url, timeout=TIMEOUT_S)
        with caplog.at_level(logging.WARNING, "servicenow_blocks"), creds.get_client() as client:
            started = time.monotonic()
            record = client.create(
                "incident",
                {"short_description": "slow insert", "correlation_id": marker},
                correlation=Query().eq("correlation_id", marker),
            )
            elapsed = time.monotonic() - started
    assert record["correlation_id"] == marker
    assert sn.delta(before, CREATE) == 1  # found by the second look: never sent twice
    assert _count(sn, marker) == 1
    assert elapsed >= 2.0  # the wait between the looks (RetryPolicy.lookup_waits_s)
    messages = [r.getMessage() for r in caplog.records]
    assert any("look 1 of 2 found no record matching the correlation" in m for m in messages), messages
    assert any("look 2 of 2 found the record matching the correlation: not sending again" in m for m in messages)


async def test_attachment_still_being_stored_at_the_first_look_is_found_by_the_next_one(
    sn: Instance, aclient: Any
) -> None:
    record = await aclient.create("incident", {"short_description": "slow attach", "correlation_id": tag("slow")})
    before = sn.counts()
    with forward_proxy({("POST", "/api/now/attachment/file$"): SLOW_GATEWAY_S}) as proxy:
        async with sn.credentials(proxy=proxy.url, timeout=TIMEOUT_S).get_async_client() as slow:
            result = await slow.attach("incident", record["sys_id"], "slow.txt", b"stored late")
    assert result.uploaded and result.metadata["file_name"] == "slow.txt"
    assert sn.delta(before, "POST /api/now/attachment/file") == 1
    assert len(await aclient.list_attachments("incident", record["sys_id"])) == 1


def test_post_that_never_lands_is_sent_again_after_every_look(sn: Instance, caplog: pytest.LogCaptureFixture) -> None:
    marker = tag("never")
    before = sn.counts()
    with (
        sn.faults(script=[script(kind="drop", method="POST")]),
        caplog.at_level(logging.WARNING, "servicenow_blocks"),
        sn.credentials().get_client() as client,
    ):
        client.create(
            "incident",
            {"short_description": "dropped", "correlation_id": marker},
            correlation=Query().eq("correlation_id", marker),
        )
    assert sn.delta(before, LIST) == 2  # two looks before the re-send
    assert sn.delta(before, CREATE) == 2 and _count(sn, marker) == 1
    assert any(
        "2 looks found no record matching the correlation; sending again" in r.getMessage() for r in caplog.records
    )


def _journal(sn: Instance, sys_id: str) -> list[str]:
    rows = sn.rows("sys_journal_field", f"element_id={sys_id}^element=work_notes", fields="value")
    return [r["value"] for r in rows]


def test_patch_with_work_notes_is_not_re_sent_but_a_plain_patch_is(sn: Instance, client: Any) -> None:
    record = client.create("incident", {"short_description": "journal", "correlation_id": tag("journal")})
    path = f"{INCIDENTS}/{record['sys_id']}"
    patch_route = f"PATCH {INCIDENTS}/{{id}}"
    before = sn.counts()
    with sn.faults(script=[script(kind="drop_after", method="PATCH", path=path)]), pytest.raises(AmbiguousWriteError):
        client.update("incident", record["sys_id"], {"work_notes": "ran the runbook"})
    assert sn.delta(before, patch_route) == 1
    assert _journal(sn, record["sys_id"]) == ["ran the runbook"]  # one entry, no duplicate

    before = sn.counts()
    with sn.faults(script=[script(kind="drop_after", method="PATCH", path=path)]):
        updated = client.update("incident", record["sys_id"], {"short_description": "journal (renamed)"})
    assert updated["short_description"] == "journal (renamed)"
    assert sn.delta(before, patch_route) == 2  # a plain PATCH is idempotent: re-sent


def test_delete_whose_answer_was_lost_still_succeeds(sn: Instance, client: Any) -> None:
    record = client.create("incident", {"short_description": "delete me", "correlation_id": tag("delete")})
    path = f"{INCIDENTS}/{record['sys_id']}"
    with sn.faults(script=[script(kind="drop_after", method="DELETE", path=path)]):
        client.delete("incident", record["sys_id"])  # the retry's 404 means the first attempt did it
    assert sn.rows("incident", f"sys_id={record['sys_id']}") == []


def test_attachment_upload_whose_answer_was_lost_is_found_by_its_hash(sn: Instance, client: Any) -> None:
    record = client.create("incident", {"short_description": "attach", "correlation_id": tag("attach")})
    before = sn.counts()
    with sn.faults(script=[script(kind="drop_after", method="POST", path="/api/now/attachment/file")]):
        result = client.attach("incident", record["sys_id"], "report.txt", b"lost answer")
    assert result.uploaded and result.metadata["file_name"] == "report.txt"
    assert sn.delta(before, "POST /api/now/attachment/file") == 1
    assert len(client.list_attachments("incident", record["sys_id"])) == 1


def test_slow_answers_time_out_with_advice(sn: Instance) -> None:
    before = sn.counts()
    creds = sn.credentials(timeout=0.3, max_attempts=2)
    with (
        sn.faults(latency_ms=1000),
        creds.get_client() as client,
        pytest.raises(ConnectionFailedError, match="did not answer in time") as caught,
    ):
        client.get_records("incident", limit=1)
    assert sn.delta(before, LIST) == 2
    assert "Raise timeout" in str(caught.value) and "gave up after 2 attempts" in str(caught.value)
