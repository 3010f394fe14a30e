"""ServiceNow choice codes in one place, plus pure helpers over them (no I/O).

Values are the strings the Table API sends and expects (``sysparm_display_value=false``), so an enum
member compares equal to the raw field value: ``record["state"] == ChangeState.IMPLEMENT``. Numeric codes
also accept ints and the Change API's floats (``ChangeState(3.0) is ChangeState.CLOSED``).

Sources are the sections of ``reference/servicenow-api.md`` cited in each docstring (§7 data model).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Self

__all__ = [
    "BUSINESS_CRITICALITY_FIELD",
    "CHANGE_STATE_MODEL",
    "CRITICALITY_TO_IMPACT",
    "CRITICALITY_TO_SEVERITY",
    "DEFAULT_SEVERITY",
    "PRIORITY_MATRIX",
    "Approval",
    "BusinessCriticality",
    "CIInstallStatus",
    "CIOperationalStatus",
    "ChangeCloseCode",
    "ChangeRisk",
    "ChangeState",
    "ChangeTaskState",
    "ChangeType",
    "Environment",
    "Impact",
    "IncidentCloseCode",
    "IncidentHoldReason",
    "IncidentState",
    "Priority",
    "ServiceClassification",
    "Urgency",
    "UsedFor",
    "change_path",
    "change_transitions",
    "incident_severity_for_criticality",
    "priority_for",
]


class _Choice(StrEnum):
    """A choice value with its base-system display label (``member.label``)."""

    _label: str

    def __new__(cls, value: str, label: str | None = None) -> Self:
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj._label = value if label is None else label
        return obj

    @property
    def label(self) -> str:
        """The base-system display value (what ``sysparm_display_value=true`` shows)."""
        return self._label

    @classmethod
    def from_label(cls, label: str) -> Self:
        """The member whose display label is ``label`` (case-insensitive)."""
        wanted = label.strip().casefold()
        for member in cls:
            if member.label.casefold() == wanted:
                return member
        valid = ", ".join(repr(m.label) for m in cls)
        raise ValueError(f"{label!r} is not a {cls.__name__} label; valid labels: {valid}")


class _IntCodeChoice(_Choice):
    """A choice whose codes are integers sent as strings; also accepts ints and floats like ``3.0``."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        # The Change API sends typed numbers ({"value": 3.0}); normalise them to the Table API string.
        if isinstance(value, bool):
            return None
        number: float
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                return None
        else:
            return None
        if not number.is_integer():
            return None
        code = str(int(number))
        for member in cls:
            if member.value == code:
                return member
        return None


# ---------------------------------------------------------------------------------------------------
# change_request / change_task (§7.1, §7.2)


class ChangeState(_IntCodeChoice):
    """``change_request.state`` (§7.1). Legacy 1 Open, 2 Work in Progress, 7 Closed Skipped are unused."""

    NEW = "-5", "New"
    ASSESS = "-4", "Assess"
    AUTHORIZE = "-3", "Authorize"
    SCHEDULED = "-2", "Scheduled"
    IMPLEMENT = "-1", "Implement"
    REVIEW = "0", "Review"
    CLOSED = "3", "Closed"
    CANCELED = "4", "Canceled"


class ChangeType(_Choice):
    """``change_request.type`` (§7.1). With change models (``chg_model``) set it is only a category."""

    NORMAL = "normal", "Normal"
    STANDARD = "standard", "Standard"
    EMERGENCY = "emergency", "Emergency"


class Approval(_Choice):
    """``task.approval`` (§7.1). The first four are documented; cancelled/not_required/duplicate are
    in the task choice list but their exact codes are unconfirmed."""

    NOT_REQUESTED = "not requested", "Not Yet Requested"  # the default; note the space
    REQUESTED = "requested", "Requested"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    NOT_REQUIRED = "not_required", "No Longer Required"
    DUPLICATE = "duplicate", "Duplicate"


class ChangeCloseCode(_Choice):
    """``change_request.close_code`` (§7.1); with ``close_notes`` it is needed to close."""

    SUCCESSFUL = "successful", "Successful"
    SUCCESSFUL_ISSUES = "successful_issues", "Successful with issues"
    UNSUCCESSFUL = "unsuccessful", "Unsuccessful"


class ChangeRisk(_IntCodeChoice):
    """``change_request.risk`` (§7.1, ansible / Change API mapping)."""

    VERY_HIGH = "1", "Very High"
    HIGH = "2", "High"
    MODERATE = "3", "Moderate"
    LOW = "4", "Low"


class ChangeTaskState(_IntCodeChoice):
    """``change_task.state`` (§7.2). Closed needs close code and close notes."""

    PENDING = "-5", "Pending"
    OPEN = "1", "Open"
    IN_PROGRESS = "2", "Work in Progress"
    CLOSED = "3", "Closed"
    CANCELED = "4", "Canceled"


# The base-system state progressions (§7.1, normal-standard-emergency-states).
CHANGE_STATE_MODEL: Mapping[ChangeType, tuple[ChangeState, ...]] = MappingProxyType(
    {
        ChangeType.NORMAL: (
            ChangeState.NEW,
            ChangeState.ASSESS,
            ChangeState.AUTHORIZE,
            ChangeState.SCHEDULED,
            ChangeState.IMPLEMENT,
            ChangeState.REVIEW,
            ChangeState.CLOSED,
        ),
        ChangeType.STANDARD: (
            ChangeState.NEW,
            ChangeState.SCHEDULED,
            ChangeState.IMPLEMENT,
            ChangeState.REVIEW,
            ChangeState.CLOSED,
        ),
        ChangeType.EMERGENCY: (
            ChangeState.NEW,
            ChangeState.AUTHORIZE,
            ChangeState.SCHEDULED,
            ChangeState.IMPLEMENT,
            ChangeState.REVIEW,
            ChangeState.CLOSED,
        ),
    }
)


def _coerce(enum: type[_Choice], value: Any, what: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        valid = ", ".join(f"{m.value!r} ({m.label})" for m in enum)
        raise ValueError(f"{what}: {value!r} is not a valid {enum.__name__}; valid: {valid}") from None


def change_transitions(change_type: ChangeType | str) -> dict[ChangeState, frozenset[ChangeState]]:
    """Allowed moves per state for ``change_type``: stay, go to the next state, or cancel.

    Every state up to and including Implement may go to Canceled; Review and Closed may not (§7.1).
    Closed and Canceled are terminal. On-hold rules (only Canceled while on hold) are not modelled here.
    """
    ctype = _coerce(ChangeType, change_type, "change_type")
    states = CHANGE_STATE_MODEL[ctype]
    implement_at = states.index(ChangeState.IMPLEMENT)
    transitions: dict[ChangeState, frozenset[ChangeState]] = {}
    for i, state in enumerate(states):
        allowed = {state}
        if i + 1 < len(states):
            allowed.add(states[i + 1])
        if i <= implement_at:
            allowed.add(ChangeState.CANCELED)
        transitions[state] = frozenset(allowed)
    transitions[ChangeState.CANCELED] = frozenset({ChangeState.CANCELED})
    return transitions


def change_path(
    change_type: ChangeType | str, from_state: ChangeState | str, to_state: ChangeState | str
) -> list[ChangeState]:
    """The states to set, in order, to move a ``change_type`` change from ``from_state`` to ``to_state``.

    ``from_state`` itself is not included; ``[]`` means already there. Example: a standard change in
    Implement reaches Closed through ``[REVIEW, CLOSED]``. Canceled is reached in one step from any state
    up to Implement. Raises ValueError if ``to_state`` cannot be reached (backwards, or out of the model).
    """
    ctype = _coerce(ChangeType, change_type, "change_type")
    start = _coerce(ChangeState, from_state, "from_state")
    goal = _coerce(ChangeState, to_state, "to_state")
    transitions = change_transitions(ctype)
    for state, name in ((start, "from_state"), (goal, "to_state")):
        if state not in transitions:
            names = ", ".join(s.label for s in transitions)
            raise ValueError(
                f"{name}: {state.label} ({state.value}) is not a state of a {ctype.value} change; "
                f"its states are {names}"
            )
    if start == goal:
        return []
    if goal in transitions[start]:
        return [goal]
    states = CHANGE_STATE_MODEL[ctype]
    if goal != ChangeState.CANCELED and start in states and states.index(start) < states.index(goal):
        return list(states[states.index(start) + 1 : states.index(goal) + 1])
    raise ValueError(
        f"a {ctype.value} change cannot go from {start.label} ({start.value}) to {goal.label} ({goal.value})"
        + (f"; {start.label} cannot be canceled" if goal == ChangeState.CANCELED else "")
    )


# ---------------------------------------------------------------------------------------------------
# incident (§7.3)


class IncidentState(_IntCodeChoice):
    """``incident.state`` (§7.3). Resolving or closing needs ``close_code`` and ``close_notes``."""

    NEW = "1", "New"
    IN_PROGRESS = "2", "In Progress"
    ON_HOLD = "3", "On Hold"
    RESOLVED = "6", "Resolved"
    CLOSED = "7", "Closed"
    CANCELED = "8", "Canceled"


class IncidentHoldReason(_IntCodeChoice):
    """``incident.hold_reason`` (§7.3); Awaiting Caller makes additional comments mandatory."""

    AWAITING_CALLER = "1", "Awaiting Caller"
    AWAITING_PROBLEM = "3", "Awaiting Problem"
    AWAITING_VENDOR = "4", "Awaiting Vendor"
    AWAITING_CHANGE = "5", "Awaiting Change"


class Impact(_IntCodeChoice):
    """``task.impact`` (§7.3)."""

    HIGH = "1", "1 - High"
    MEDIUM = "2", "2 - Medium"
    LOW = "3", "3 - Low"


class Urgency(_IntCodeChoice):
    """``task.urgency`` (§7.3)."""

    HIGH = "1", "1 - High"
    MEDIUM = "2", "2 - Medium"
    LOW = "3", "3 - Low"


class Priority(_IntCodeChoice):
    """``task.priority`` (§7.3); computed by the instance from impact x urgency (see ``priority_for``)."""

    CRITICAL = "1", "1 - Critical"
    HIGH = "2", "2 - High"
    MODERATE = "3", "3 - Moderate"
    LOW = "4", "4 - Low"
    PLANNING = "5", "5 - Planning"


# The base-system priority data-lookup rules (§7.3, def-prio-lookup-rules).
PRIORITY_MATRIX: Mapping[tuple[Impact, Urgency], Priority] = MappingProxyType(
    {
        (Impact.HIGH, Urgency.HIGH): Priority.CRITICAL,
        (Impact.HIGH, Urgency.MEDIUM): Priority.HIGH,
        (Impact.HIGH, Urgency.LOW): Priority.MODERATE,
        (Impact.MEDIUM, Urgency.HIGH): Priority.HIGH,
        (Impact.MEDIUM, Urgency.MEDIUM): Priority.MODERATE,
        (Impact.MEDIUM, Urgency.LOW): Priority.LOW,
        (Impact.LOW, Urgency.HIGH): Priority.MODERATE,
        (Impact.LOW, Urgency.MEDIUM): Priority.LOW,
        (Impact.LOW, Urgency.LOW): Priority.PLANNING,
    }
)


def priority_for(impact: Impact | str | int, urgency: Urgency | str | int) -> Priority:
    """The priority the default matrix gives for ``impact`` x ``urgency`` (codes or enum members)."""
    return PRIORITY_MATRIX[_coerce(Impact, impact, "impact"), _coerce(Urgency, urgency, "urgency")]


class IncidentCloseCode(_Choice):
    """``incident.close_code`` (Resolution code; value = label), current base choices (§7.3).

    The last two are believed present on recent releases but unconfirmed; older releases used
    other codes, so query ``sys_choice`` (``name=incident^element=close_code``) when in doubt.
    """

    DUPLICATE = "Duplicate"
    KNOWN_ERROR = "Known error"
    RESOLVED_BY_CALLER = "Resolved by caller"
    RESOLVED_BY_CHANGE = "Resolved by change"
    RESOLVED_BY_PROBLEM = "Resolved by problem"
    SOLUTION_PROVIDED = "Solution provided"
    WORKAROUND_PROVIDED = "Workaround provided"
    USER_ERROR = "User error"
    NO_RESOLUTION_PROVIDED = "No resolution provided"
    RESOLVED_BY_REQUEST = "Resolved by request"


# ---------------------------------------------------------------------------------------------------
# CMDB (§7.4)


class CIOperationalStatus(_IntCodeChoice):
    """``cmdb_ci.operational_status`` (§7.4). Retired here and in install_status are kept in sync."""

    OPERATIONAL = "1", "Operational"
    NON_OPERATIONAL = "2", "Non-Operational"
    REPAIR_IN_PROGRESS = "3", "Repair in Progress"
    DR_STANDBY = "4", "DR Standby"
    READY = "5", "Ready"
    RETIRED = "6", "Retired"
    PIPELINE = "7", "Pipeline"
    CATALOG = "8", "Catalog"


class CIInstallStatus(_IntCodeChoice):
    """``cmdb_ci.install_status`` (§7.4)."""

    IMPLEMENTING = "0", "Implementing"
    INSTALLED = "1", "Installed"
    ON_ORDER = "2", "On Order"
    IN_MAINTENANCE = "3", "In Maintenance"
    PENDING_INSTALL = "4", "Pending Install"
    PENDING_REPAIR = "5", "Pending Repair"
    IN_STOCK = "6", "In Stock"
    RETIRED = "7", "Retired"
    STOLEN = "8", "Stolen"
    ABSENT = "100", "Absent"


# The column really is spelled with one "s" on cmdb_ci_service and its children (§7.4).
BUSINESS_CRITICALITY_FIELD = "busines_criticality"


class BusinessCriticality(_Choice):
    """``cmdb_ci_service.busines_criticality`` (§7.4; note the column's spelling)."""

    MOST_CRITICAL = "1 - most critical"
    SOMEWHAT_CRITICAL = "2 - somewhat critical"
    LESS_CRITICAL = "3 - less critical"
    NOT_CRITICAL = "4 - not critical"

    @property
    def tier(self) -> int:
        """1 (most critical) .. 4 (not critical)."""
        return int(self.value[0])


# Tier -> (impact, urgency) for an incident a failed run opens against a service of that tier.
# Tier 2 is impact Medium / urgency High rather than the reverse: the outage is narrower than a tier-1
# one, but a failed automated run still needs prompt action. Both orders give priority 2 - High.
CRITICALITY_TO_SEVERITY: Mapping[BusinessCriticality, tuple[Impact, Urgency]] = MappingProxyType(
    {
        BusinessCriticality.MOST_CRITICAL: (Impact.HIGH, Urgency.HIGH),
        BusinessCriticality.SOMEWHAT_CRITICAL: (Impact.MEDIUM, Urgency.HIGH),
        BusinessCriticality.LESS_CRITICAL: (Impact.MEDIUM, Urgency.MEDIUM),
        BusinessCriticality.NOT_CRITICAL: (Impact.LOW, Urgency.LOW),
    }
)
CRITICALITY_TO_IMPACT: Mapping[BusinessCriticality, Impact] = MappingProxyType(
    {tier: impact for tier, (impact, _urgency) in CRITICALITY_TO_SEVERITY.items()}
)
# Unknown or empty criticality: treat as least critical rather than paging anyone on a guess.
DEFAULT_SEVERITY: tuple[Impact, Urgency] = (Impact.LOW, Urgency.LOW)

_TIER_PREFIX = re.compile(r"\s*([1-4])(?:\s*-.*)?\s*$", re.DOTALL)


def incident_severity_for_criticality(
    criticality: BusinessCriticality | str | int | None,
) -> tuple[Impact, Urgency]:
    """(impact, urgency) for a service's business criticality.

    Accepts the enum, its string value (display value is the same), or the tier as int/str ("2").
    Tier 1 -> (1, 1), 2 -> (2, 1), 3 -> (2, 2), 4 -> (3, 3). Unknown, empty or None gives
    ``DEFAULT_SEVERITY`` (3, 3): the field is often unset, and that must not fail incident creation.
    """
    if isinstance(criticality, BusinessCriticality):
        return CRITICALITY_TO_SEVERITY[criticality]
    tier: int | None = None
    if isinstance(criticality, int) and not isinstance(criticality, bool):
        tier = criticality
    elif isinstance(criticality, str):
        match = _TIER_PREFIX.match(criticality)
        tier = int(match.group(1)) if match else None
    for member in BusinessCriticality:
        if member.tier == tier:
            return CRITICALITY_TO_SEVERITY[member]
    return DEFAULT_SEVERITY


class Environment(_Choice):
    """``cmdb_ci.environment`` (§7.4; value = label)."""

    PRODUCTION = "Production"
    TEST = "Test"
    DEVELOPMENT = "Development"


class UsedFor(_Choice):
    """``used_for`` on the service tables (§7.4; value = label)."""

    PRODUCTION = "Production"
    STAGING = "Staging"
    QA = "QA"
    TEST = "Test"
    DEVELOPMENT = "Development"
    DEMONSTRATION = "Demonstration"
    TRAINING = "Training"
    DISASTER_RECOVERY = "Disaster Recovery"


class ServiceClassification(_Choice):
    """``service_classification`` on the service tables (§7.4; value = label)."""

    APPLICATION_SERVICE = "Application Service"
    TECHNICAL_SERVICE = "Technical Service"
    SERVICE_OFFERING = "Service Offering"
    SHARED_SERVICE = "Shared Service"
    BILLABLE_SERVICE = "Billable Service"
