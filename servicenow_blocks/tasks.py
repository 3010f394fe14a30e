"""Prefect tasks over the ServiceNow REST client. Each takes a ``ServiceNowCredentials`` block.

Retries happen once, in the client (which knows what is safe to re-send), so the tasks themselves do not
retry. Each task logs what it did (table, number, sys_id) and never a credential.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from .client import AsyncServiceNowClient, AttachmentResult, QueryLike, check_query
from .credentials import ServiceNowCredentials


def _client(credentials: ServiceNowCredentials) -> AsyncServiceNowClient:
    return credentials.get_async_client(logger=get_run_logger())


def _label(record: dict[str, Any]) -> str:
    number = record.get("number")
    return f"{number} ({record.get('sys_id')})" if number else str(record.get("sys_id"))


@task(name="servicenow-get-records", retries=0)
async def get_records(
    credentials: ServiceNowCredentials,
    table: str,
    query: QueryLike = None,
    fields: Iterable[str] | None = None,
    limit: int | None = None,
    display_value: bool | str = False,
) -> list[dict[str, Any]]:
    """Rows of ``table`` matching ``query`` (a ``Query``, or ``raw("...")`` for an encoded query), all pages."""
    check_query(query, "query")
    logger = get_run_logger()
    async with _client(credentials) as client:
        rows = await client.get_records(
            table,
            query,
            fields=list(fields) if fields else None,
            limit=limit,
            display_value=display_value,
            on_total=lambda total: logger.info("Reading %d %s records", total, table),
        )
    get_run_logger().info("Read %d %s records", len(rows), table)
    return rows


@task(name="servicenow-get-record", retries=0)
async def get_record(
    credentials: ServiceNowCredentials,
    table: str,
    sys_id: str,
    fields: Iterable[str] | None = None,
    display_value: bool | str = False,
) -> dict[str, Any]:
    """One record by sys_id (raises NotFoundError when it does not exist or is hidden)."""
    async with _client(credentials) as client:
        record = await client.get(table, sys_id, fields=list(fields) if fields else None, display_value=display_value)
    get_run_logger().info("Read %s %s", table, _label(record))
    return record


@task(name="servicenow-create-record", retries=0)
async def create_record(
    credentials: ServiceNowCredentials,
    table: str,
    values: dict[str, Any],
    correlation: QueryLike = None,
) -> dict[str, Any]:
    """Create a record. ``correlation`` (a ``Query`` finding it) makes a lost answer safe to retry."""
    check_query(correlation, "correlation")
    async with _client(credentials) as client:
        record = await client.create(table, values, correlation=correlation)
    get_run_logger().info("Created %s %s", table, _label(record))
    return record


@task(name="servicenow-update-record", retries=0)
async def update_record(
    credentials: ServiceNowCredentials, table: str, sys_id: str, values: dict[str, Any]
) -> dict[str, Any]:
    """Update fields of a record (PATCH); journal fields (work_notes, comments) append an entry."""
    async with _client(credentials) as client:
        record = await client.update(table, sys_id, values)
    get_run_logger().info("Updated %s %s: %s", table, _label(record), ", ".join(sorted(values)))
    return record


@task(name="servicenow-delete-record", retries=0)
async def delete_record(credentials: ServiceNowCredentials, table: str, sys_id: str) -> None:
    async with _client(credentials) as client:
        await client.delete(table, sys_id)
    get_run_logger().info("Deleted %s %s", table, sys_id)


@task(name="servicenow-count-records", retries=0)
async def count_records(credentials: ServiceNowCredentials, table: str, query: QueryLike = None) -> int:
    """How many rows match ``query`` (a ``Query`` or ``raw(...)``; Aggregate API: one request, no rows)."""
    check_query(query, "query")
    async with _client(credentials) as client:
        count = await client.count(table, query)
    get_run_logger().info("%d %s records match", count, table)
    return count


@task(name="servicenow-attach-file", retries=0)
async def attach_file(
    credentials: ServiceNowCredentials,
    table: str,
    sys_id: str,
    file_name: str,
    content: bytes | str | Path,
    content_type: str = "application/octet-stream",
) -> dict[str, Any]:
    """Attach a file (bytes, text, or a path) to a record; an identical file already there is not re-sent."""
    if isinstance(content, Path):
        data = content.read_bytes()
    elif isinstance(content, str):
        data = content.encode()
    else:
        data = content
    async with _client(credentials) as client:
        result: AttachmentResult = await client.attach(table, sys_id, file_name, data, content_type=content_type)
    logger = get_run_logger()
    if result.uploaded:
        logger.info("Attached %s (%d bytes) to %s %s", file_name, len(data), table, sys_id)
    else:
        logger.info("%s is already attached to %s %s with the same content; not re-sent", file_name, table, sys_id)
    return {**result.metadata, "uploaded": result.uploaded}


@task(name="servicenow-download-attachment", retries=0)
async def download_attachment(
    credentials: ServiceNowCredentials, attachment_sys_id: str, destination: Path | None = None
) -> bytes:
    """The attachment's bytes; also written to ``destination`` when given."""
    async with _client(credentials) as client:
        data = await client.download_attachment(attachment_sys_id)
    if destination is not None:
        Path(destination).write_bytes(data)
    get_run_logger().info("Downloaded attachment %s (%d bytes)", attachment_sys_id, len(data))
    return data
