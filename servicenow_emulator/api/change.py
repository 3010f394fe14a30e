"""A subset of the Change Management API (reference §7.1): read a change and its next states.

* ``GET /api/sn_chg_rest/[v1/]change/{sys_id}``: the change with every field as ``{"value", "display_value"}``
  (the Table API renderer with ``display_value=all``; references without links, as the API's samples show).
* ``GET /api/sn_chg_rest/[v1/]change/{sys_id}/nextstates``: ``available_states`` (the states reachable in one move,
  then the current state last, as in the documented sample), ``state_label`` for each, and ``state_transitions``:
  one inner array per reachable target state (the current state has none, as in the sample), each transition
  carrying a "Not On hold" condition except the move to Canceled, which needs none. The moves come from
  ``rules.change_model.next_states`` (the change's ``type`` picks the normal, standard or emergency model); while the
  change is on hold only Canceled is offered.

Roles: change_manager, itil, sn_change_read or admin (403 "Failed API level ACL Validation" otherwise). Values stay
strings (the real API types some of them, e.g. ``"state": {"value": 3.0}``; UNCONFIRMED across releases).
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .. import acl
from ..errors import record_not_found
from ..render import Renderer, select_rows
from ..rules.change_model import CANCELED, LABELS, next_states
from .common import base_url, emulator_of, json_response, resource, session_of
from .ire import check_version, require_api_roles
from .table import query_context

CHANGE_READ_ROLES = acl.ITIL_ROLES | {"sn_change_read"}
NOT_ON_HOLD_CONDITION = "2132deb6c303101035ae3f52c1d3ae8c"  # the base system's "Not On hold" condition


def _change(request: Request) -> dict[str, Any]:
    emulator = emulator_of(request)
    session = session_of(request)
    check_version(request)
    require_api_roles(session, CHANGE_READ_ROLES)
    acl.check_read_one(emulator.dictionary, session, "change_request")
    record = emulator.store.get("change_request", request.path_params["sys_id"])
    if record is None:
        raise record_not_found()
    return record


def _id(*parts: Any) -> str:
    return hashlib.md5(":".join(str(p) for p in parts).encode()).hexdigest()


def _label(request: Request, state: int) -> str:
    if state in LABELS:
        return LABELS[state]
    f = emulator_of(request).dictionary.field("change_request", "state")
    return (f.choice_label(str(state)) if f else None) or str(state)


@resource()
async def get_change(request: Request) -> Response:
    emulator = emulator_of(request)
    record = _change(request)
    renderer = Renderer(
        emulator.dictionary,
        emulator.store,
        base_url=base_url(request),
        display_value="all",
        exclude_reference_link=True,
        tz=session_of(request).tz,
    )
    plan = renderer.plan("change_request", None, query_context(request, "change_request"))
    rows = select_rows(emulator.store, "change_request", plan, "t.sys_id = ?", [record["sys_id"]], [], 1, 0)
    return json_response({"result": plan.render(rows[0])})


@resource()
async def get_next_states(request: Request) -> Response:
    record = _change(request)
    change_type = record.get("type") or "normal"
    state = int(record["state"]) if record.get("state") is not None else -5
    on_hold = bool(record.get("on_hold"))
    targets = [s for s in next_states(change_type, state, on_hold) if s != state]
    available = [*targets, state]
    transitions = []
    for target in targets:
        conditions = []
        if target != CANCELED:
            conditions.append(
                {
                    "passed": not on_hold,
                    "condition": {"name": "Not On hold", "description": None, "sys_id": NOT_ON_HOLD_CONDITION},
                }
            )
        transitions.append(
            [
                {
                    "sys_id": _id(change_type, state, target),
                    "display_value": f"{_label(request, state)} to {_label(request, target)}",
                    "from_state": str(state),
                    "to_state": str(target),
                    "transition_available": True,
                    "automatic_transition": False,
                    "conditions": conditions,
                }
            ]
        )
    return json_response(
        {
            "result": {
                "available_states": [str(s) for s in available],
                "state_transitions": transitions,
                "state_label": {str(s): _label(request, s) for s in available},
            }
        }
    )


ROUTES = [
    (prefix + suffix, endpoint, ["GET"])
    for prefix in ("/api/sn_chg_rest/change", "/api/sn_chg_rest/{version}/change")
    for suffix, endpoint in (("/{sys_id}", get_change), ("/{sys_id}/nextstates", get_next_states))
]
