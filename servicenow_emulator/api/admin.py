"""``/emulator/admin/*``: the emulator's own controls (faults, stats, properties), admin only.

These are not ServiceNow APIs. They exist so that tests, benchmarks and demos can change the instance
at runtime: inject faults, read request counters, flip properties.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import PlatformError, bad_request
from .common import emulator_of, json_response, resource, session_of


def _require_admin(request: Request) -> None:
    if not session_of(request).is_admin:
        raise PlatformError(403, "Operation Failed", "The emulator admin API needs the admin role")


async def _json_body(request: Request) -> dict:
    try:
        data = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        raise bad_request("Exception while reading request", "The payload is not valid JSON.") from None
    if not isinstance(data, dict):
        raise bad_request("Exception while reading request", "The payload must be a JSON object.")
    return data


@resource()
async def faults(request: Request) -> Response:
    _require_admin(request)
    emulator = emulator_of(request)
    if request.method in ("PUT", "PATCH", "POST"):
        data = await _json_body(request)
        try:
            # PUT resets what it does not set; PATCH/POST change only what they set. Invalid: nothing changes.
            emulator.faults.configure(data, reset=request.method == "PUT")
        except (TypeError, ValueError) as exc:
            raise bad_request("Invalid fault settings", str(exc)) from None
    return json_response({"result": emulator.faults.config.to_json()})


@resource()
async def stats(request: Request) -> Response:
    _require_admin(request)
    emulator = emulator_of(request)
    if request.method == "DELETE":
        emulator.stats.reset()
        emulator.limiter.reset_counts()
    result = emulator.stats.to_json()
    result["outbound_pending"] = emulator.outbound.pending
    return json_response({"result": result})


@resource()
async def properties(request: Request) -> Response:
    _require_admin(request)
    emulator = emulator_of(request)
    if request.method in ("PUT", "PATCH", "POST"):
        for name, value in (await _json_body(request)).items():
            emulator.set_property(str(name), str(value).lower() if isinstance(value, bool) else str(value))
    from ..settings import DEFAULTS

    names = set(DEFAULTS) | {r[0] for r in emulator.store.execute("SELECT name FROM sys_properties").fetchall() if r[0]}
    return json_response({"result": {name: emulator.settings.get(name) for name in sorted(names)}})


async def health(request: Request) -> Response:
    return json_response({"result": {"status": "ok"}})


ROUTES = [
    ("/emulator/admin/faults", faults, ["GET", "PUT", "PATCH", "POST"]),
    ("/emulator/admin/stats", stats, ["GET", "DELETE"]),
    ("/emulator/admin/properties", properties, ["GET", "PUT", "PATCH", "POST"]),
    ("/emulator/health", health, ["GET"]),
]
