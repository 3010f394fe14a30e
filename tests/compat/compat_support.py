"""Shared set-up for the third-party client tests: tagging, bulk creation through the Batch API."""

from __future__ import annotations

import base64
import json
import uuid

import httpx


def tag(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def bulk_create(http: httpx.Client, records: list[dict]) -> list[dict]:
    """Create records in one Batch API call (fast set-up); returns the created records in order."""
    items = [
        {
            "id": str(i),
            "method": "POST",
            "url": "/api/now/table/incident?sysparm_fields=sys_id,number,short_description,impact",
            "headers": [],
            "body": base64.b64encode(json.dumps(values).encode()).decode(),
        }
        for i, values in enumerate(records)
    ]
    r = http.post("/api/now/v1/batch", json={"batch_request_id": "setup", "rest_requests": items})
    r.raise_for_status()
    served = r.json()["serviced_requests"]
    assert [s["status_code"] for s in served] == [201] * len(records)
    return [json.loads(base64.b64decode(s["body"]))["result"] for s in served]


def table_ids(http: httpx.Client, query: str) -> list[str]:
    r = http.get("/api/now/table/incident", params={"sysparm_query": query, "sysparm_fields": "sys_id"})
    r.raise_for_status()
    return [row["sys_id"] for row in r.json()["result"]]
