"""glide_date_time values as the Table API reads and writes them: ``YYYY-MM-DD HH:MM:SS`` in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

GLIDE_DATE_TIME = "%Y-%m-%d %H:%M:%S"


def format_glide_time(value: datetime) -> str:
    """A datetime as ServiceNow stores it (UTC); a naive datetime is taken as UTC already."""
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(UTC)
    return value.strftime(GLIDE_DATE_TIME)


def parse_glide_time(text: str) -> datetime:
    """An aware UTC datetime from a Table API value; ValueError when it is not one."""
    return datetime.strptime(text.strip(), GLIDE_DATE_TIME).replace(tzinfo=UTC)
