"""Exactly once: duplicated webhooks, retried POSTs and a poll racing the webhook make one run per approval
round; a change approved again (a new round) runs again. Runs are counted in Prefect by the change tag."""

from __future__ import annotations

import asyncio
import contextvars
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from dispatch_support import (
    dispatched_runs,
    payload,
    post_webhook,
    receiver_url,
    restart_change,
    signed_headers,
    wait_run,
)

from flows.change_dispatch import poll_change_requests
from flows.stack_ops import approve, rule_off, ticket, update, wait_note, wait_state, work_notes
from servicenow_blocks import signing
from servicenow_blocks.dispatch import ready_changes_query


def started_notes(stack, sys_id: str) -> list[str]:
    return [n["value"] for n in work_notes(stack, sys_id) if n["value"].startswith("Started by Prefect")]


def test_duplicated_and_retried_webhooks_make_one_run(stack) -> None:
    change = restart_change(stack, "wiki")
    with rule_off(stack):
        approve(stack, change["sys_id"])
    body = signing.canonical_body(payload(change))
    now = int(time.time())
    # Six distinct deliveries of the same event (ServiceNow sending it again: new timestamps, new ids),
    # and one request retried byte for byte by a proxy, all at once.
    requests = [signed_headers(stack.secret, body, now - k) for k in range(6)]
    requests.append(requests[0])
    with ThreadPoolExecutor(len(requests)) as pool:
        responses = list(
            pool.map(lambda h: httpx.post(receiver_url(stack), content=body, headers=h, timeout=60), requests)
        )
    answers = [r.json() for r in responses]
    record = wait_state(stack, change["sys_id"], {"3"})
    runs = dispatched_runs(change["number"])
    assert len(runs) == 1, answers
    run_id = str(runs[0].id)
    assert record["correlation_id"]["value"] == run_id
    for response, answer in zip(responses, answers, strict=True):
        if response.status_code == 202:  # dispatched, or found the run this approval round already has
            assert answer["dispatched"] is True and answer["flow_run_id"] == run_id, answers
        else:  # or arrived after that run claimed the ticket
            assert response.status_code == 200, answers
            assert answer["reason"] == f"{change['number']} is already claimed by execution {run_id}", answers
    assert sum(1 for a in answers if a.get("dispatched") and not a["duplicate"] and not a.get("replayed")) == 1
    # The byte-for-byte retry got the first answer again, marked as a replay.
    first, retry = answers[0], answers[-1]
    assert first.get("replayed", False) != retry.get("replayed", False)
    assert {k: v for k, v in first.items() if k != "replayed"} == {k: v for k, v in retry.items() if k != "replayed"}
    assert len(started_notes(stack, change["sys_id"])) == 1
    # A late duplicate, after the run claimed the ticket: ServiceNow says it is taken, nothing new.
    late = post_webhook(stack, payload(change))
    assert late.status_code == 200 and late.json()["dispatched"] is False
    assert late.json()["reason"] == f"{change['number']} is already claimed by execution {run_id}"
    assert len(dispatched_runs(change["number"])) == 1


def test_poll_racing_the_webhook_makes_one_run(stack) -> None:
    changes = [restart_change(stack, "wiki") for _ in range(3)]
    with rule_off(stack):
        for change in changes:
            approve(stack, change["sys_id"])
    query = ready_changes_query().in_("sys_id", [c["sys_id"] for c in changes]).encoded

    def poll() -> dict:
        return asyncio.run(poll_change_requests(query=query))

    def webhook(change: dict) -> httpx.Response:
        return post_webhook(stack, payload(change))

    with ThreadPoolExecutor(8) as pool:
        # Prefect's settings (the session server's API URL) live in context variables: carry them over.
        polls = [pool.submit(contextvars.copy_context().run, poll) for _ in range(2)]
        hooks = [pool.submit(webhook, c) for c in changes for _ in range(2)]
        poll_results = [p.result() for p in polls]
        hook_answers = [h.result().json() for h in hooks]

    for change in changes:
        record = wait_state(stack, change["sys_id"], {"3"})
        runs = dispatched_runs(change["number"])
        assert len(runs) == 1, (change["number"], [(r.id, r.tags) for r in runs])
        run_id = str(runs[0].id)
        assert record["correlation_id"]["value"] == run_id
        assert len(started_notes(stack, change["sys_id"])) == 1
        seen = [a["flow_run_id"] for a in hook_answers if a.get("number") == change["number"] and a["dispatched"]]
        seen += [
            d["flow_run_id"]
            for result in poll_results
            for d in result["dispatched"]
            if d["number"] == change["number"] and d["dispatched"]
        ]
        assert seen and set(seen) == {run_id}, (change["number"], seen, run_id)


def test_poll_after_the_webhook_finds_nothing_new(stack) -> None:
    change = restart_change(stack, "wiki")
    approve(stack, change["sys_id"])  # webhook path
    wait_state(stack, change["sys_id"], {"3"})
    query = ready_changes_query().eq("sys_id", change["sys_id"]).encoded
    result = asyncio.run(poll_change_requests(query=query))
    assert result["dispatched"] == []  # claimed and closed: not ready any more
    assert len(dispatched_runs(change["number"])) == 1


def test_a_change_approved_again_after_its_claim_is_cleared_runs_again(stack) -> None:
    """A stale claim blocks dispatch; clearing correlation_id and approving again (a new round) runs it."""
    change = restart_change(stack, "wiki")
    stale = "00000000-0000-4000-8000-000000000000"
    update(stack, change["sys_id"], {"correlation_id": stale, "correlation_display": "Prefect"})
    with rule_off(stack):
        approve(stack, change["sys_id"])
    blocked = post_webhook(stack, payload(change))
    assert blocked.status_code == 200 and blocked.json()["dispatched"] is False
    assert blocked.json()["reason"] == f"{change['number']} is already claimed by execution {stale}"
    assert dispatched_runs(change["number"]) == []

    update(stack, change["sys_id"], {"correlation_id": "", "approval": "requested"})
    time.sleep(1.1)  # approval_set has one-second resolution: a new round is a later second
    approve(stack, change["sys_id"])  # the Business Rule fires
    record = wait_state(stack, change["sys_id"], {"3"})
    runs = dispatched_runs(change["number"])
    assert [str(r.id) for r in runs] == [record["correlation_id"]["value"]]


def test_fixed_inputs_and_a_new_approval_run_again(stack) -> None:
    """Invalid inputs leave the change unclaimed; fixing them and approving again runs it (a second run)."""
    change = restart_change(stack, "wiki", restart_timeout_s="2")  # below the minimum of 5
    approve(stack, change["sys_id"])
    wait_note(stack, change["sys_id"], "inputs are invalid")
    first = dispatched_runs(change["number"])
    assert len(first) == 1
    wait_run(first[0].id)
    assert ticket(stack, change["sys_id"])["correlation_id"]["value"] == ""

    with stack.sn() as sn:
        answer = sn.get(
            "/api/now/table/question_answer",
            params={"sysparm_query": f"table_sys_id={change['sys_id']}^question.name=restart_timeout_s"},
        ).json()["result"][0]
        sn.patch(f"/api/now/table/question_answer/{answer['sys_id']}", json={"value": "10"}).raise_for_status()
    # The same approval round again (a re-sent webhook) does not make a new run ...
    again = post_webhook(stack, payload(change))
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert again.json()["flow_run_id"] == str(first[0].id)
    # ... approving again does.
    update(stack, change["sys_id"], {"approval": "requested"})
    time.sleep(1.1)
    approve(stack, change["sys_id"])
    record = wait_state(stack, change["sys_id"], {"3"})
    runs = dispatched_runs(change["number"])
    assert len(runs) == 2
    assert record["correlation_id"]["value"] in {str(r.id) for r in runs} - {str(first[0].id)}
    assert record["close_code"]["value"] == "successful"
