"""Every typed error, from real answers of the emulator: one error per bad input, naming the cause and the fix,
carrying status, message, detail and transaction id; and the query builder refusing injected values."""

from __future__ import annotations

import asyncio
import pickle
import time
from typing import Any

import httpx
import pytest
from client_support import Instance, tag

from servicenow_blocks import (
    ACLError,
    BatchItem,
    DataPolicyError,
    ForbiddenError,
    InvalidTableError,
    NotFoundError,
    Query,
    RetryBudgetExceededError,
    ServiceNowError,
    raw,
)
from servicenow_blocks.client import _error_from_response, _server_wait
from servicenow_blocks.errors import BadRequestError
from servicenow_blocks.query import QueryValueError


def _one_error(sn: Instance, call: Any, error_type: type[ServiceNowError], route: str) -> ServiceNowError:
    before = sn.counts()
    with pytest.raises(error_type) as caught:
        call()
    assert sn.delta(before, route) == 1  # one request, no retry
    error = caught.value
    assert error.transaction_id and error.transaction_id in str(error)  # what ServiceNow support asks for
    assert error.hint and str(error).endswith(error.hint)  # what to do
    copy = pickle.loads(pickle.dumps(error))  # Prefect ships task errors across processes
    assert type(copy) is type(error) and str(copy) == str(error) and copy.status == error.status
    return error


def test_unknown_table(sn: Instance, client: Any) -> None:
    error = _one_error(sn, lambda: client.get_records("incidnet"), InvalidTableError, "GET /api/now/table/incidnet")
    assert (error.status, error.message) == (400, "Invalid table incidnet")
    assert "Check the table name" in str(error)


@pytest.mark.parametrize("sys_id", ["0" * 32, "not-a-sys-id"])
def test_bad_sys_id(sn: Instance, client: Any, sys_id: str) -> None:
    route = "GET /api/now/table/incident/{id}" if len(sys_id) == 32 else f"GET /api/now/table/incident/{sys_id}"
    error = _one_error(sn, lambda: client.get("incident", sys_id), NotFoundError, route)
    assert error.status == 404 and error.message == "No Record found"
    assert error.detail and "ACL restricts" in error.detail
    assert error.path == f"/api/now/table/incident/{sys_id}" and error.method == "GET"
    with pytest.raises(NotFoundError):
        client.delete("incident", sys_id)  # a first-attempt 404 on DELETE is not success
    with pytest.raises(NotFoundError):
        client.update("incident", sys_id, {"short_description": "x"})


def test_acl_refused_write(sn: Instance) -> None:
    with sn.credentials(username="readonly", password="readonly").get_client() as client:
        error = _one_error(
            sn,
            lambda: client.create("incident", {"short_description": "not allowed"}),
            ACLError,
            "POST /api/now/table/incident",
        )
    assert error.status == 403 and "ACL Exception Insert Failed" in str(error)
    assert "role" in error.hint


def test_acl_refused_list(sn: Instance) -> None:
    with sn.credentials(username="itil", password="itil").get_client() as client:
        error = _one_error(
            sn, lambda: client.get_records("sys_properties"), ACLError, "GET /api/now/table/sys_properties"
        )
    assert error.message == "Insufficient rights to query records"


def test_data_policy_refused_write(sn: Instance, client: Any) -> None:
    record = client.create("incident", {"short_description": "resolve me", "correlation_id": tag("policy")})
    error = _one_error(
        sn,
        lambda: client.update("incident", record["sys_id"], {"state": "6"}),
        DataPolicyError,
        "PATCH /api/now/table/incident/{id}",
    )
    assert error.status == 403 and "mandatory" in str(error)
    assert "close_code" in error.hint
    # The message's advice works: the same move with the fields goes through.
    done = client.update(
        "incident",
        record["sys_id"],
        {"state": "6", "close_code": "Solved (Permanently)", "close_notes": "fixed"},
    )
    assert done["state"] == "6"


def test_unknown_resource_is_a_bad_request(sn: Instance, client: Any) -> None:
    error = _one_error(
        sn, lambda: client.request_json("GET", "/api/now/nothing/here"), BadRequestError, "GET /api/now/nothing/here"
    )
    assert error.status == 400 and "does not represent any resource" in error.message


def test_a_403_that_is_neither_acl_nor_data_policy_is_a_forbidden_error(sn: Instance, client: Any) -> None:
    route = "GET /api/now/table/incident"
    with sn.faults(script=[{"status": 403, "method": "GET", "path": "/api/now/table/incident$"}]):
        error = _one_error(sn, lambda: client.get_records("incident", limit=1), ForbiddenError, route)
    assert type(error) is ForbiddenError  # not ACLError, not DataPolicyError
    assert error.status == 403 and "roles, ACLs and business rules" in str(error)


def test_batch_items_left_unserviced_exhaust_the_retry_budget(sn: Instance, client: Any) -> None:
    marker = tag("unserviced")
    item = BatchItem("POST", "/api/now/table/incident", {"short_description": "x" * 200, "correlation_id": marker})
    before = sn.counts()
    # Items bigger than glide.rest.batch.max.inputSize (here about 100 bytes) are never run, only listed.
    with (
        sn.properties(**{"glide.rest.batch.max.inputSize": "0.0001"}),
        pytest.raises(RetryBudgetExceededError) as caught,
    ):
        client.batch([item], resubmit=2)
    assert sn.delta(before, "POST /api/now/v1/batch") == 3  # the first submission and two re-submissions
    error = caught.value
    assert "1 requests unserviced after 3 submissions" in str(error)
    assert error.hint and str(error).endswith(error.hint)  # what to do
    assert client.count("incident", Query().eq("correlation_id", marker)) == 0
    assert RetryBudgetExceededError("x").hint  # a default hint, too
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RetryBudgetExceededError and str(copy) == str(error)


def test_a_body_that_is_not_json_says_what_to_do(sn: Instance, client: Any) -> None:
    record = client.create("incident", {"short_description": "not json", "correlation_id": tag("notjson")})
    attachment = client.attach("incident", record["sys_id"], "plain.txt", b"plain text, not JSON")
    path = f"/api/now/attachment/{attachment.sys_id}/file"
    with pytest.raises(ServiceNowError) as caught:
        client.request_json("GET", path)  # a file's bytes where JSON was expected
    error = caught.value
    assert "not JSON" in error.message and error.status == 200 and error.path == path
    assert error.hint and "instance's root URL" in error.hint and str(error).endswith(error.hint)


def test_the_fallback_error_says_what_to_do() -> None:
    answer = httpx.Response(200, json={"result": []}, headers={"X-Transaction-ID": "abc123"})
    error = _error_from_response(answer, "GET", "/api/now/table/incident")
    assert error.hint and str(error).endswith(error.hint)
    assert error.path == "/api/now/table/incident" and error.transaction_id == "abc123"


# --- the query builder ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build",
    [
        lambda: Query().eq("short_description", "x^ORactive=true"),
        lambda: Query().eq("short_description", "x^NQactive=true"),
        lambda: Query().eq("short_description", "line\nbreak"),
        lambda: Query().in_("number", ["INC1", "INC2,INC3"]),
        lambda: Query().eq("short_description", "javascript:gs.getUserID()"),
        lambda: Query().eq("short_description^ORactive", "true"),
    ],
    ids=["or", "new-query", "newline", "in-comma", "javascript", "field"],
)
def test_injected_query_values_are_refused_before_any_request(sn: Instance, client: Any, build: Any) -> None:
    before = sn.counts()
    with pytest.raises(QueryValueError):
        client.get_records("incident", build())
    assert sn.delta(before, "GET /api/now/table/incident") == 0


PLAIN = "number=INC0000001^NQactive=true"  # what f"number={user_input}" becomes with a hostile input


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda c: c.get_records("incident", PLAIN), "query"),
        (lambda c: c.first("incident", PLAIN), "query"),
        (lambda c: c.count("incident", PLAIN), "query"),
        (lambda c: c.group_by("incident", ["urgency"], PLAIN), "query"),
        (lambda c: c.iter_records("incident", PLAIN), "query"),  # refused at the call, not at the first row
        (lambda c: c.create("incident", {"short_description": "x"}, correlation=PLAIN), "correlation"),
    ],
    ids=["get_records", "first", "count", "group_by", "iter_records", "create-correlation"],
)
def test_a_plain_str_query_is_refused_before_any_request(sn: Instance, client: Any, call: Any, parameter: str) -> None:
    before = sn.counts()
    with pytest.raises(TypeError) as caught:
        call(client)
    message = str(caught.value)
    assert message.startswith(f"{parameter} must be a Query or raw(...), not a plain str")
    assert "Query().eq(" in message and 'raw("...")' in message  # the two fixes
    assert sn.counts()["requests"] == before["requests"] + 1  # only the stats read of this test: nothing sent


async def test_the_async_face_refuses_a_plain_str_too(sn: Instance, aclient: Any) -> None:
    with pytest.raises(TypeError, match="query must be a Query or raw"):
        await aclient.get_records("incident", PLAIN)
    with pytest.raises(TypeError, match="query must be a Query or raw"):
        aclient.aiter_records("incident", PLAIN)
    with pytest.raises(TypeError, match="correlation must be a Query or raw"):
        await aclient.create("incident", {"short_description": "x"}, correlation=PLAIN)


def test_the_tasks_refuse_a_plain_str(sn: Instance) -> None:
    from servicenow_blocks import tasks

    creds = sn.credentials()
    with pytest.raises(TypeError, match="query must be a Query or raw"):
        asyncio.run(tasks.get_records.fn(creds, "incident", PLAIN))
    with pytest.raises(TypeError, match="query must be a Query or raw"):
        asyncio.run(tasks.count_records.fn(creds, "incident", PLAIN))
    with pytest.raises(TypeError, match="correlation must be a Query or raw"):
        asyncio.run(tasks.create_record.fn(creds, "incident", {"short_description": "x"}, PLAIN))


def test_raw_is_the_explicit_way_to_send_an_encoded_query(client: Any) -> None:
    marker = tag("raw")
    first = client.create("incident", {"short_description": "raw one", "correlation_id": marker})
    second = client.create("incident", {"short_description": "raw two", "correlation_id": marker})
    both = raw(f"correlation_id={marker}^short_description=raw one^NQcorrelation_id={marker}^short_description=raw two")
    assert sorted(r["sys_id"] for r in client.get_records("incident", both)) == sorted(
        [first["sys_id"], second["sys_id"]]
    )
    assert client.count("incident", both) == 2


def test_awkward_but_legal_values_match_exactly(client: Any) -> None:
    marker = tag("literal")
    text = "a,b @ c = d ! e"
    created = client.create("incident", {"short_description": text, "correlation_id": marker})
    client.create("incident", {"short_description": "a", "correlation_id": marker})
    found = client.get_records("incident", Query().eq("correlation_id", marker).eq("short_description", text))
    assert [r["sys_id"] for r in found] == [created["sys_id"]]
    assert client.count("incident", Query().eq("correlation_id", marker).in_("short_description", ["a", "b"])) == 1


# --- Retry-After and X-RateLimit-Reset ------------------------------------------------------------------------
def test_server_wait_reads_both_rate_limit_headers() -> None:
    def answer(**headers: str) -> httpx.Response:
        return httpx.Response(429, headers=headers)

    assert _server_wait(answer(**{"Retry-After": "3"})) == 3.0
    reset = time.time() + 5
    assert 4.0 < _server_wait(answer(**{"X-RateLimit-Reset": str(reset)})) <= 5.0
    assert _server_wait(answer(**{"Retry-After": "2", "X-RateLimit-Reset": str(reset)})) == 2.0
    assert _server_wait(answer(**{"X-RateLimit-Reset": str(time.time() - 10)})) == 0.0
    assert _server_wait(answer(**{"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})) > 0
    assert _server_wait(answer()) is None
