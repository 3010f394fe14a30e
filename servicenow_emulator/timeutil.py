"""Glide date-time formatting and the ``javascript:gs.*`` date helpers clients send in queries."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

GLIDE_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATETIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2})?)(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def format_glide(moment: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS``, always with a four-digit year (``strftime('%Y')`` leaves years before 1000
    unpadded on Linux: ``1-01-01``)."""
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def glide_now() -> str:
    return format_glide(now_utc())


def to_glide(value: datetime) -> str:
    """An aware (or UTC) datetime as stored: UTC. OverflowError when UTC falls outside years 1-9999."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_glide(value.astimezone(UTC))


def parse_glide(value: str, *, date_only: bool = False, tz: str = "UTC") -> str | None:
    """Normalise an input date-time to the stored ``YYYY-MM-DD HH:MM:SS`` UTC form (None if invalid).

    Values without an offset are read in ``tz`` (UTC for raw input, the user's zone for display input).
    A moment whose UTC form falls outside years 1-9999 (``0001-01-01T00:00:00+01:00``) is invalid too.
    """
    m = _DATETIME_RE.match(value.strip())
    if not m:
        return None
    day, clock, offset = m.groups()
    if date_only:
        try:
            return date.fromisoformat(day).isoformat()
        except ValueError:
            return None
    clock = clock or "00:00:00"
    if len(clock) == 5:
        clock += ":00"
    try:
        parsed = datetime.fromisoformat(f"{day}T{clock}{'+00:00' if offset == 'Z' else (offset or '')}")
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone(tz))
    try:
        return to_glide(parsed)
    except OverflowError:
        return None


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def to_display(stored: str, tz: str) -> str:
    """Stored UTC -> the user's zone, for display values."""
    if not stored or len(stored) != 19 or tz in ("UTC", "GMT", ""):
        return stored
    try:
        parsed = datetime.strptime(stored, GLIDE_FORMAT).replace(tzinfo=UTC)
        return format_glide(parsed.astimezone(zone(tz)))
    except (OverflowError, ValueError):
        return stored  # not a stored date-time, or one the zone's offset pushes outside years 1-9999


_JS_CALL = re.compile(r"^\s*javascript\s*:\s*gs\.(\w+)\(\s*(.*?)\s*\)\s*;?\s*$", re.S)
_ARG = re.compile(r"""\s*(?:'([^']*)'|"([^"]*)"|(-?\d+))\s*(?:,|$)""")


class JsValueError(ValueError):
    """A ``javascript:`` value the emulator does not evaluate."""


def _args(text: str) -> list[str | int]:
    out: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _ARG.match(text, pos)
        if not m or m.end() == pos:
            raise JsValueError(f"cannot read arguments {text!r}")
        s1, s2, num = m.groups()
        out.append(int(num) if num is not None else (s1 if s1 is not None else s2))
        pos = m.end()
    return out


def _start_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _end_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=23, minute=59, second=59, microsecond=0)


def _months_ago(moment: datetime, months: int) -> datetime:
    month_index = moment.year * 12 + (moment.month - 1) - months
    return moment.replace(year=month_index // 12, month=month_index % 12 + 1, day=1)


def evaluate_js(value: str, *, tz: str = "UTC", user_sys_id: str = "", user_name: str = "") -> str:
    """Evaluate the GlideSystem helpers that REST clients put in encoded queries.

    Date helpers compute in the session time zone and return UTC, as the platform documents. Anything the
    emulator cannot evaluate, including a moment outside years 1-9999 (``gs.daysAgo(999999999)``), raises
    JsValueError.
    """
    try:
        return _evaluate_js(value, tz=tz, user_sys_id=user_sys_id, user_name=user_name)
    except JsValueError:
        raise
    except (ArithmeticError, ValueError) as exc:
        raise JsValueError(f"{value!r} is out of range: {exc}") from None


def _evaluate_js(value: str, *, tz: str, user_sys_id: str, user_name: str) -> str:
    m = _JS_CALL.match(value)
    if not m:
        raise JsValueError(f"unsupported javascript value {value!r}")
    name, raw_args = m.group(1), m.group(2)
    args = _args(raw_args) if raw_args else []
    local_now = datetime.now(zone(tz)).replace(microsecond=0)
    n = int(args[0]) if args and isinstance(args[0], int) else 0

    def out(moment: datetime) -> str:
        return to_glide(moment)

    if name == "getUserID":
        return user_sys_id
    if name == "getUserName":
        return user_name
    if name in ("now", "nowDateTime", "nowNoTZ"):
        return out(local_now)
    if name == "daysAgo":
        return out(local_now - timedelta(days=n))
    if name == "daysAgoStart":
        return out(_start_of_day(local_now - timedelta(days=n)))
    if name == "daysAgoEnd":
        return out(_end_of_day(local_now - timedelta(days=n)))
    if name == "beginningOfToday":
        return out(_start_of_day(local_now))
    if name == "endOfToday":
        return out(_end_of_day(local_now))
    if name == "beginningOfYesterday":
        return out(_start_of_day(local_now - timedelta(days=1)))
    if name == "endOfYesterday":
        return out(_end_of_day(local_now - timedelta(days=1)))
    if name == "beginningOfTomorrow":
        return out(_start_of_day(local_now + timedelta(days=1)))
    if name == "endOfTomorrow":
        return out(_end_of_day(local_now + timedelta(days=1)))
    if name in ("minutesAgo", "minutesAgoStart", "minutesAgoEnd"):
        moment = local_now - timedelta(minutes=n)
        if name == "minutesAgoStart":
            moment = moment.replace(second=0)
        elif name == "minutesAgoEnd":
            moment = moment.replace(second=59)
        return out(moment)
    if name in ("hoursAgo", "hoursAgoStart", "hoursAgoEnd"):
        moment = local_now - timedelta(hours=n)
        if name == "hoursAgoStart":
            moment = moment.replace(minute=0, second=0)
        elif name == "hoursAgoEnd":
            moment = moment.replace(minute=59, second=59)
        return out(moment)
    if name in ("monthsAgo", "monthsAgoStart", "monthsAgoEnd"):
        start = _months_ago(_start_of_day(local_now), n)
        if name == "monthsAgoStart":
            return out(start)
        if name == "monthsAgoEnd":
            return out(_months_ago(start, -1) - timedelta(seconds=1))
        return out(_months_ago(local_now, n).replace(day=min(local_now.day, 28)))
    if name in ("beginningOfThisWeek", "endOfThisWeek", "beginningOfLastWeek", "endOfLastWeek"):
        monday = _start_of_day(local_now - timedelta(days=local_now.weekday()))
        if "Last" in name:
            monday -= timedelta(days=7)
        return out(monday if name.startswith("beginning") else monday + timedelta(days=7, seconds=-1))
    if name in ("beginningOfThisMonth", "endOfThisMonth", "beginningOfLastMonth", "endOfLastMonth"):
        start = _start_of_day(local_now).replace(day=1)
        if "Last" in name:
            start = _months_ago(start, 1)
        return out(start if name.startswith("beginning") else _months_ago(start, -1) - timedelta(seconds=1))
    if name in ("beginningOfThisYear", "endOfThisYear"):
        start = _start_of_day(local_now).replace(month=1, day=1)
        return out(start if name.startswith("beginning") else start.replace(year=start.year + 1) - timedelta(seconds=1))
    if name in ("yearsAgo",):
        return out(local_now.replace(year=local_now.year - n))
    if name == "dateGenerate":
        if not args:
            raise JsValueError("gs.dateGenerate needs a date")
        day = str(args[0])
        clock = str(args[1]) if len(args) > 1 else "00:00:00"
        if clock == "start":
            clock = "00:00:00"
        elif clock == "end":
            clock = "23:59:59"
        parsed = parse_glide(f"{day} {clock}", tz=tz)
        if parsed is None:
            raise JsValueError(f"gs.dateGenerate cannot read {day!r} {clock!r}")
        return parsed
    raise JsValueError(f"unsupported GlideSystem helper gs.{name}()")


RELATIVE_UNITS = {
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "dayofweek": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=30),
    "quarter": timedelta(days=91),
    "year": timedelta(days=365),
}


def relative_moment(unit: str, direction: str, amount: int) -> str:
    """``@hour@ago@1`` -> the UTC moment one hour ago (OverflowError outside years 1-9999)."""
    step = RELATIVE_UNITS[unit]
    sign = -1 if direction in ("ago", "before") else 1
    return to_glide(now_utc() + sign * amount * step)
