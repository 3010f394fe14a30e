"""The data dictionary: tables, fields, field types, references and class hierarchies.

ServiceNow keeps a class hierarchy (``task`` -> ``incident``; ``cmdb_ci`` -> ... -> ``cmdb_ci_linux_server``).
A query on a parent table returns the rows of every child class, with ``sys_class_name`` naming the
concrete class, and only the parent's columns. The storage mirrors that with one physical table per
hierarchy root holding the union of the hierarchy's columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

# Storage type per dictionary type. Everything the Table API returns is a string; storage keeps
# numbers as numbers so that comparisons and ordering follow the field's type.
NUMERIC_TYPES = frozenset({"integer", "decimal", "float", "longint"})
DATE_TYPES = frozenset({"glide_date_time", "glide_date", "due_date", "glide_duration"})
JOURNAL_TYPES = frozenset({"journal", "journal_input", "journal_list"})
REFERENCE_TYPES = frozenset({"reference"})
SECRET_TYPES = frozenset({"password2", "password"})


@dataclass(frozen=True)
class FieldDef:
    """One column of a table, as the dictionary (sys_dictionary) describes it."""

    name: str
    type: str = "string"
    label: str = ""
    reference: str | None = None
    choices: tuple[tuple[str, str], ...] = ()
    max_length: int = 255
    default: str | None = None
    read_only: bool = False

    @property
    def storage(self) -> str:
        if self.type in ("integer", "longint"):
            return "INTEGER"
        if self.type in ("decimal", "float"):
            return "REAL"
        if self.type == "boolean":
            return "INTEGER"
        return "TEXT"

    @property
    def kind(self) -> str:
        """The comparison family used by the query engine."""
        if self.type in NUMERIC_TYPES:
            return "num"
        if self.type == "boolean":
            return "bool"
        if self.type in DATE_TYPES:
            return "date"
        if self.type in REFERENCE_TYPES or self.type == "sys_id":
            return "ref"
        if self.type in JOURNAL_TYPES:
            return "journal"
        return "str"

    @property
    def display_label(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def choice_label(self, value: str) -> str | None:
        for choice_value, choice_label in self.choices:
            if choice_value == value:
                return choice_label
        return None

    def choice_value_for_label(self, label: str) -> str | None:
        lowered = label.lower()
        for choice_value, choice_label in self.choices:
            if choice_label.lower() == lowered:
                return choice_value
        return None


@dataclass
class TableDef:
    """A table: its own fields, its parent, its display field and its number prefix."""

    name: str
    label: str
    parent: str | None = None
    own_fields: dict[str, FieldDef] = field(default_factory=dict)
    display: str | None = None
    number_prefix: str | None = None
    extensible: bool = False
    # Tables the emulator keeps for itself: present in the store, never served by the Table API.
    internal: bool = False


def F(name: str, type: str = "string", label: str = "", **kw) -> FieldDef:
    return FieldDef(name=name, type=type, label=label, **kw)


def ref(name: str, target: str, label: str = "") -> FieldDef:
    return FieldDef(name=name, type="reference", reference=target, label=label)


def choice(name: str, pairs: list[tuple[str, str]], type: str = "string", label: str = "", **kw) -> FieldDef:
    return FieldDef(name=name, type=type, choices=tuple(pairs), label=label, **kw)


def _same(*labels: str) -> list[tuple[str, str]]:
    return [(label, label) for label in labels]


SYSTEM_FIELDS = [
    F("sys_id", "sys_id", "Sys ID", max_length=32, read_only=True),
    F("sys_created_on", "glide_date_time", "Created", read_only=True),
    F("sys_created_by", "string", "Created by", max_length=40, read_only=True),
    F("sys_updated_on", "glide_date_time", "Updated", read_only=True),
    F("sys_updated_by", "string", "Updated by", max_length=40, read_only=True),
    F("sys_mod_count", "integer", "Updates", read_only=True),
]
CLASS_FIELD = F("sys_class_name", "sys_class_name", "Class", max_length=80)
# Domain-aware tables (task, cmdb_ci) carry the global domain by default: a reference whose value is
# "global" (reference §1.8: sys_domain links to sys_user_group/global) and the path "/".
GLOBAL_DOMAIN = "global"
DOMAIN_FIELDS = [
    FieldDef("sys_domain", "reference", "Domain", reference="sys_user_group", default=GLOBAL_DOMAIN),
    F("sys_domain_path", "domain_path", "Domain path", default="/"),
]

CHANGE_STATES = [
    ("-5", "New"),
    ("-4", "Assess"),
    ("-3", "Authorize"),
    ("-2", "Scheduled"),
    ("-1", "Implement"),
    ("0", "Review"),
    ("3", "Closed"),
    ("4", "Canceled"),
]
INCIDENT_STATES = [
    ("1", "New"),
    ("2", "In Progress"),
    ("3", "On Hold"),
    ("6", "Resolved"),
    ("7", "Closed"),
    ("8", "Canceled"),
]
TASK_STATES = [
    ("-5", "Pending"),
    ("1", "Open"),
    ("2", "Work in Progress"),
    ("3", "Closed Complete"),
    ("4", "Closed Incomplete"),
    ("7", "Closed Skipped"),
]
APPROVALS = [
    ("not requested", "Not Yet Requested"),
    ("requested", "Requested"),
    ("approved", "Approved"),
    ("rejected", "Rejected"),
    ("cancelled", "Cancelled"),
    ("not_required", "No Longer Required"),
    ("duplicate", "Duplicate"),
]
HIGH_MED_LOW = [("1", "1 - High"), ("2", "2 - Medium"), ("3", "3 - Low")]
PRIORITIES = [("1", "1 - Critical"), ("2", "2 - High"), ("3", "3 - Moderate"), ("4", "4 - Low"), ("5", "5 - Planning")]
OPERATIONAL_STATUS = [
    ("1", "Operational"),
    ("2", "Non-Operational"),
    ("3", "Repair in Progress"),
    ("4", "DR Standby"),
    ("5", "Ready"),
    ("6", "Retired"),
    ("7", "Pipeline"),
    ("8", "Catalog"),
]
INSTALL_STATUS = [
    ("0", "Implementing"),
    ("1", "Installed"),
    ("2", "On Order"),
    ("3", "In Maintenance"),
    ("4", "Pending Install"),
    ("5", "Pending Repair"),
    ("6", "In Stock"),
    ("7", "Retired"),
    ("8", "Stolen"),
    ("100", "Absent"),
]
DISCOVERY_SOURCES = _same(
    "ServiceNow",
    "SCCM",
    "ImportSet",
    "Manual Entry",
    "Other Automated",
    "ServiceWatch",
    "CredentiallessDiscovery",
    "AWS",
    "Kubernetes",
    "Proxmox",
    "Prefect",
)
BUSINESS_CRITICALITY = _same("1 - most critical", "2 - somewhat critical", "3 - less critical", "4 - not critical")
USED_FOR = _same("Production", "Staging", "QA", "Test", "Development", "Demonstration", "Training", "Disaster Recovery")
INCIDENT_CLOSE_CODES = _same(
    "Duplicate",
    "Known error",
    "No resolution provided",
    "Resolved by caller",
    "Resolved by change",
    "Resolved by problem",
    "Resolved by request",
    "Solution provided",
    "Workaround provided",
    "User error",
)
CHANGE_CLOSE_CODES = [
    ("successful", "Successful"),
    ("successful_issues", "Successful with issues"),
    ("unsuccessful", "Unsuccessful"),
]


def _tables() -> list[TableDef]:
    t: list[TableDef] = []

    def add(name: str, label: str, fields: list[FieldDef], **kw) -> None:
        t.append(TableDef(name=name, label=label, own_fields={f.name: f for f in fields}, **kw))

    # --- task and its children -----------------------------------------------------------------
    add(
        "task",
        "Task",
        [
            *DOMAIN_FIELDS,
            F("number", "string", "Number", max_length=40, read_only=True),
            F("short_description", "string", "Short description", max_length=160),
            F("description", "string", "Description", max_length=4000),
            choice("state", TASK_STATES, "integer", "State", default="1"),
            F("active", "boolean", "Active", default="true"),
            choice("approval", APPROVALS, label="Approval", default="not requested"),
            F("approval_set", "glide_date_time", "Approval set"),
            F("approval_history", "journal", "Approval history"),
            ref("assignment_group", "sys_user_group", "Assignment group"),
            ref("assigned_to", "sys_user", "Assigned to"),
            ref("opened_by", "sys_user", "Opened by"),
            F("opened_at", "glide_date_time", "Opened"),
            ref("closed_by", "sys_user", "Closed by"),
            F("closed_at", "glide_date_time", "Closed"),
            F("close_notes", "string", "Close notes", max_length=4000),
            choice("impact", HIGH_MED_LOW, "integer", "Impact", default="3"),
            choice("urgency", HIGH_MED_LOW, "integer", "Urgency", default="3"),
            choice("priority", PRIORITIES, "integer", "Priority", default="4"),
            ref("cmdb_ci", "cmdb_ci", "Configuration item"),
            ref("business_service", "cmdb_ci_service", "Service"),
            ref("parent", "task", "Parent"),
            ref("company", "core_company", "Company"),
            F("correlation_id", "string", "Correlation ID", max_length=100),
            F("correlation_display", "string", "Correlation display", max_length=100),
            F("work_notes", "journal_input", "Work notes"),
            F("comments", "journal_input", "Additional comments"),
            F("comments_and_work_notes", "journal_list", "Comments and Work notes"),
            F("work_notes_list", "glide_list", "Work notes list"),
            F("watch_list", "glide_list", "Watch list"),
            F("work_start", "glide_date_time", "Actual start"),
            F("work_end", "glide_date_time", "Actual end"),
            F("due_date", "due_date", "Due date"),
            F("sla_due", "due_date", "SLA due"),
            F("expected_start", "glide_date_time", "Expected start"),
            F("upon_approval", "string", "Upon approval", default="proceed"),
            F("upon_reject", "string", "Upon reject", default="cancel"),
            choice("contact_type", _same("email", "phone", "self-service", "walk-in", "virtual_agent")),
            choice("escalation", [("0", "Normal"), ("1", "Moderate"), ("2", "High"), ("3", "Overdue")], "integer"),
            F("reassignment_count", "integer", "Reassignment count", default="0"),
            F("made_sla", "boolean", "Made SLA", default="true"),
            F("knowledge", "boolean", "Knowledge", default="false"),
            F("order", "integer", "Order"),
            F("time_worked", "glide_duration", "Time worked"),
            F("business_duration", "glide_duration", "Business duration"),
            F("calendar_duration", "glide_duration", "Duration"),
        ],
        display="number",
        number_prefix="TASK",
        extensible=True,
    )
    add(
        "change_request",
        "Change Request",
        [
            choice("state", CHANGE_STATES, "integer", "State", default="-5"),
            choice(
                "type",
                [("normal", "Normal"), ("standard", "Standard"), ("emergency", "Emergency")],
                label="Type",
                default="normal",
            ),
            F("chg_model", "string", "Model"),
            choice("phase", _same("requested", "approval", "execution", "closed"), default="requested"),
            choice(
                "risk",
                [("1", "Very High"), ("2", "High"), ("3", "Moderate"), ("4", "Low")],
                "integer",
                "Risk",
                default="3",
            ),
            choice(
                "category",
                _same(
                    "Hardware",
                    "Software",
                    "Service",
                    "System Software",
                    "Applications Software",
                    "Network",
                    "Telecom",
                    "Documentation",
                    "Other",
                ),
                label="Category",
                default="Other",
            ),
            choice("close_code", CHANGE_CLOSE_CODES, label="Close code"),
            F("start_date", "glide_date_time", "Planned start date"),
            F("end_date", "glide_date_time", "Planned end date"),
            ref("std_change_producer_version", "std_change_producer_version", "Standard change template version"),
            ref("requested_by", "sys_user", "Requested by"),
            F("requested_by_date", "glide_date_time", "Requested by date"),
            F("on_hold", "boolean", "On hold", default="false"),
            choice(
                "on_hold_reason",
                _same("awaiting_info", "awaiting_approval", "awaiting_change_task", "other"),
                label="On hold reason",
            ),
            F("justification", "string", "Justification", max_length=4000),
            F("implementation_plan", "string", "Implementation plan", max_length=4000),
            F("backout_plan", "string", "Backout plan", max_length=4000),
            F("test_plan", "string", "Test plan", max_length=4000),
            F("risk_impact_analysis", "string", "Risk and impact analysis", max_length=4000),
            F("cab_required", "boolean", "CAB required", default="false"),
            F("cab_date", "glide_date", "CAB date"),
            F("production_system", "boolean", "Production system", default="false"),
            F("unauthorized", "boolean", "Unauthorized", default="false"),
            F("outside_maintenance_schedule", "boolean", "Outside maintenance schedule", default="false"),
            choice("conflict_status", _same("Not Run", "Conflict", "No Conflict"), default="Not Run"),
            F("conflict_last_run", "glide_date_time", "Conflict last run"),
        ],
        parent="task",
        number_prefix="CHG",
    )
    add(
        "change_task",
        "Change Task",
        [
            choice(
                "state",
                [("-5", "Pending"), ("1", "Open"), ("2", "In Progress"), ("3", "Closed"), ("4", "Canceled")],
                "integer",
                "State",
                default="1",
            ),
            ref("change_request", "change_request", "Change request"),
            choice(
                "change_task_type",
                [
                    ("planning", "Planning"),
                    ("implementation", "Implementation"),
                    ("testing", "Testing"),
                    ("review", "Review"),
                ],
                label="Change task type",
                default="implementation",
            ),
            F("planned_start_date", "glide_date_time", "Planned start date"),
            F("planned_end_date", "glide_date_time", "Planned end date"),
            F("on_hold", "boolean", "On hold", default="false"),
            F("on_hold_reason", "string", "On hold reason"),
            choice(
                "close_code",
                [
                    ("successful", "Successful"),
                    ("successful_issues", "Successful with issues"),
                    ("unsuccessful", "Unsuccessful"),
                ],
                label="Close code",
            ),
        ],
        parent="task",
        number_prefix="CTASK",
    )
    add(
        "incident",
        "Incident",
        [
            choice("state", INCIDENT_STATES, "integer", "State", default="1"),
            choice("incident_state", INCIDENT_STATES, "integer", "Incident state", default="1"),
            ref("caller_id", "sys_user", "Caller"),
            choice(
                "category",
                _same("inquiry", "software", "hardware", "network", "database"),
                label="Category",
                default="inquiry",
            ),
            F("subcategory", "string", "Subcategory"),
            choice(
                "hold_reason",
                [
                    ("1", "Awaiting Caller"),
                    ("3", "Awaiting Problem"),
                    ("4", "Awaiting Vendor"),
                    ("5", "Awaiting Change"),
                ],
                "integer",
                "On hold reason",
            ),
            choice("close_code", INCIDENT_CLOSE_CODES, label="Resolution code"),
            F("close_notes", "string", "Resolution notes", max_length=4000),
            F("resolved_at", "glide_date_time", "Resolved"),
            ref("resolved_by", "sys_user", "Resolved by"),
            choice(
                "severity",
                [("1", "1 - High"), ("2", "2 - Medium"), ("3", "3 - Low")],
                "integer",
                "Severity",
                default="3",
            ),
            ref("problem_id", "problem", "Problem"),
            ref("rfc", "change_request", "Change Request"),
            ref("caused_by", "change_request", "Caused by Change"),
            ref("parent_incident", "incident", "Parent Incident"),
            choice("notify", [("1", "Do Not Notify"), ("2", "Send Email")], "integer", default="1"),
            F("reopen_count", "integer", "Reopen count", default="0"),
            F("business_stc", "integer", "Business resolve time"),
            F("calendar_stc", "integer", "Resolve time"),
        ],
        parent="task",
        number_prefix="INC",
    )
    add(
        "problem",
        "Problem",
        [
            choice(
                "state",
                [
                    ("101", "New"),
                    ("102", "Assess"),
                    ("103", "Root Cause Analysis"),
                    ("104", "Fix in Progress"),
                    ("106", "Resolved"),
                    ("107", "Closed"),
                ],
                "integer",
                "State",
                default="101",
            ),
            F("known_error", "boolean", "Known error", default="false"),
            F("cause_notes", "string", "Cause notes", max_length=4000),
            F("fix_notes", "string", "Fix notes", max_length=4000),
            F("resolved_at", "glide_date_time", "Resolved"),
            ref("resolved_by", "sys_user", "Resolved by"),
            choice("resolution_code", _same("fix_applied", "risk_accepted", "canceled", "duplicate")),
        ],
        parent="task",
        number_prefix="PRB",
    )

    # --- CMDB ----------------------------------------------------------------------------------
    add(
        "cmdb_ci",
        "Configuration Item",
        [
            *DOMAIN_FIELDS,
            F("name", "string", "Name"),
            F("short_description", "string", "Description", max_length=1000),
            F("comments", "string", "Comments", max_length=4000),
            choice("operational_status", OPERATIONAL_STATUS, "integer", "Operational status", default="1"),
            choice("install_status", INSTALL_STATUS, "integer", "Status", default="1"),
            choice(
                "hardware_status",
                _same("installed", "in_use", "in_maintenance", "retired", "on_order", "in_stock"),
                label="Hardware status",
            ),
            F("hardware_substatus", "string", "Hardware substatus"),
            F("ip_address", "string", "IP Address"),
            F("fqdn", "string", "Fully qualified domain name"),
            F("host_name", "string", "Host name"),
            F("dns_domain", "string", "DNS Domain"),
            F("mac_address", "string", "MAC Address"),
            F("default_gateway", "string", "Default Gateway"),
            F("serial_number", "string", "Serial number"),
            F("asset_tag", "string", "Asset tag"),
            F("model_number", "string", "Model number"),
            F("manufacturer", "string", "Manufacturer"),
            F("vendor", "string", "Vendor"),
            F("object_id", "string", "Object ID"),
            F("correlation_id", "string", "Correlation ID"),
            choice("discovery_source", DISCOVERY_SOURCES, label="Discovery source"),
            F("first_discovered", "glide_date_time", "First discovered"),
            F("last_discovered", "glide_date_time", "Most recent discovery"),
            ref("managed_by", "sys_user", "Managed by"),
            ref("managed_by_group", "sys_user_group", "Managed by Group"),
            ref("owned_by", "sys_user", "Owned by"),
            ref("supported_by", "sys_user", "Supported by"),
            ref("support_group", "sys_user_group", "Support group"),
            ref("assignment_group", "sys_user_group", "Assignment group"),
            ref("assigned_to", "sys_user", "Assigned to"),
            choice("environment", _same("Production", "Test", "Development"), label="Environment"),
            choice("used_for", USED_FOR, label="Used for"),
            F("category", "string", "Category"),
            F("subcategory", "string", "Subcategory"),
            ref("company", "core_company", "Company"),
            ref("duplicate_of", "cmdb_ci", "Duplicate of"),
            F("unverified", "boolean", "Requires verification", default="false"),
            F("skip_sync", "boolean", "Skip sync", default="false"),
            F("install_date", "glide_date_time", "Installed"),
            F("attestation_status", "string", "Attestation status"),
            F("life_cycle_stage", "string", "Life Cycle Stage"),
            F("life_cycle_stage_status", "string", "Life Cycle Stage Status"),
        ],
        display="name",
        extensible=True,
    )
    add(
        "cmdb_ci_hardware",
        "Hardware",
        [F("cpu_manufacturer", "string", "CPU manufacturer"), F("disk_space", "decimal", "Disk space (GB)")],
        parent="cmdb_ci",
    )
    add(
        "cmdb_ci_computer",
        "Computer",
        [
            F("os", "string", "Operating System"),
            F("os_version", "string", "OS Version"),
            F("os_domain", "string", "OS Domain"),
            F("cpu_count", "integer", "CPU count"),
            F("cpu_type", "string", "CPU type"),
            F("cpu_speed", "decimal", "CPU speed (MHz)"),
            F("ram", "integer", "RAM (MB)"),
            F("virtual", "boolean", "Is Virtual", default="false"),
        ],
        parent="cmdb_ci_hardware",
    )
    add(
        "cmdb_ci_server",
        "Server",
        [
            choice("classification", _same("Production", "Development", "Test", "Staging"), label="Classification"),
            F("firewall_status", "string", "Firewall status"),
        ],
        parent="cmdb_ci_computer",
    )
    add(
        "cmdb_ci_linux_server",
        "Linux Server",
        [F("kernel_release", "string", "Kernel release")],
        parent="cmdb_ci_server",
    )
    add(
        "cmdb_ci_win_server",
        "Windows Server",
        [F("os_service_pack", "string", "OS Service Pack")],
        parent="cmdb_ci_server",
    )
    add(
        "cmdb_ci_appl",
        "Application",
        [
            F("version", "string", "Version"),
            F("edition", "string", "Edition"),
            F("tcp_port", "string", "TCP port(s)"),
            F("install_directory", "string", "Installation directory"),
            F("config_directory", "string", "Configuration directory"),
            F("running_process_command", "string", "Running process command"),
        ],
        parent="cmdb_ci",
    )
    add(
        "cmdb_ci_service",
        "Service",
        [
            choice(
                "busines_criticality", BUSINESS_CRITICALITY, label="Business criticality", default="3 - less critical"
            ),
            choice(
                "service_classification",
                _same(
                    "Application Service", "Technical Service", "Service Offering", "Shared Service", "Billable Service"
                ),
                label="Service classification",
                default="Application Service",
            ),
            F("version", "string", "Version"),
        ],
        parent="cmdb_ci",
    )
    add("cmdb_ci_service_auto", "Application Service", [], parent="cmdb_ci_service")
    add("cmdb_ci_service_discovered", "Mapped Application Service", [], parent="cmdb_ci_service_auto")
    add(
        "cmdb_ci_vm",
        "Virtual Machine",
        [
            F("cpus", "integer", "CPUs"),
            F("memory", "integer", "Memory (MB)"),
            F("disks_size", "decimal", "Disks size (GB)"),
        ],
        parent="cmdb_ci",
    )
    add(
        "cmdb_ci_vm_instance",
        "Virtual Machine Instance",
        [
            choice(
                "state",
                _same("on", "off", "paused", "terminated", "not_found", "error", "starting", "stopping"),
                label="State",
            ),
            F("vm_inst_id", "string", "VM instance ID"),
            F("guest_os", "string", "Guest OS"),
        ],
        parent="cmdb_ci_vm",
    )
    add(
        "cmdb_ci_cluster",
        "Cluster",
        [F("cluster_id", "string", "Cluster ID"), F("cluster_version", "string", "Cluster version")],
        parent="cmdb_ci",
    )
    add(
        "cmdb_ci_kubernetes_cluster",
        "Kubernetes Cluster",
        [F("port", "string", "Port"), F("ip_address_api", "string", "API address")],
        parent="cmdb_ci_cluster",
    )
    add("cmdb_ci_kubernetes_namespace", "Kubernetes Namespace", [F("uid", "string", "UID")], parent="cmdb_ci")
    add(
        "cmdb_ci_kubernetes_node",
        "Kubernetes Node",
        [F("uid", "string", "UID"), F("kubelet_version", "string", "Kubelet version")],
        parent="cmdb_ci",
    )
    add(
        "cmdb_rel_type",
        "CI Relationship Type",
        [
            F("name", "string", "Name"),
            F("parent_descriptor", "string", "Parent descriptor"),
            F("child_descriptor", "string", "Child descriptor"),
        ],
        display="name",
    )
    add(
        "cmdb_rel_ci",
        "CI Relationship",
        [
            ref("parent", "cmdb_ci", "Parent"),
            ref("child", "cmdb_ci", "Child"),
            ref("type", "cmdb_rel_type", "Type"),
            F("connection_strength", "string", "Connection strength", default="always"),
            F("percent_outage", "integer", "Percent outage"),
            F("port", "string", "Port"),
        ],
    )

    # --- users, groups, roles ------------------------------------------------------------------
    add(
        "sys_user",
        "User",
        [
            F("user_name", "string", "User ID", max_length=40),
            F("first_name", "string", "First name"),
            F("last_name", "string", "Last name"),
            F("name", "string", "Name", read_only=True),
            F("email", "string", "Email"),
            F("title", "string", "Title"),
            F("phone", "string", "Business phone"),
            ref("manager", "sys_user", "Manager"),
            F("active", "boolean", "Active", default="true"),
            F("locked_out", "boolean", "Locked out", default="false"),
            F("web_service_access_only", "boolean", "Web service access only", default="false"),
            F("internal_integration_user", "boolean", "Internal Integration User", default="false"),
            F("user_password", "password2", "Password"),
            F("time_zone", "string", "Time zone"),
        ],
        display="name",
    )
    add(
        "sys_user_group",
        "Group",
        [
            F("name", "string", "Name"),
            F("description", "string", "Description", max_length=1000),
            ref("manager", "sys_user", "Manager"),
            F("email", "string", "Group email"),
            F("active", "boolean", "Active", default="true"),
            F("type", "glide_list", "Type"),
            ref("parent", "sys_user_group", "Parent"),
        ],
        display="name",
    )
    add("sys_user_grmember", "Group Member", [ref("user", "sys_user", "User"), ref("group", "sys_user_group", "Group")])
    add(
        "sys_user_role",
        "Role",
        [F("name", "string", "Name"), F("description", "string", "Description")],
        display="name",
    )
    add(
        "sys_user_has_role",
        "User Role",
        [
            ref("user", "sys_user", "User"),
            ref("role", "sys_user_role", "Role"),
            F("state", "string", "State", default="active"),
        ],
    )
    add(
        "core_company",
        "Company",
        [F("name", "string", "Name"), F("stock_symbol", "string", "Stock symbol")],
        display="name",
    )

    # --- platform tables ---------------------------------------------------------------------
    add(
        "sys_journal_field",
        "Journal Entry",
        [
            F("element", "string", "Element", max_length=40),
            F("element_id", "string", "Element ID", max_length=32),
            F("name", "string", "Name", max_length=80),
            F("value", "string", "Value", max_length=4000),
        ],
    )
    add(
        "sys_attachment",
        "Attachment",
        [
            F("file_name", "string", "File name", max_length=100),
            F("content_type", "string", "Content type"),
            F("size_bytes", "longint", "Size bytes"),
            F("size_compressed", "longint", "Compressed size"),
            F("compressed", "boolean", "Compressed", default="false"),
            F("table_name", "string", "Table name", max_length=100),
            F("table_sys_id", "string", "Table sys ID", max_length=32),
            F("hash", "string", "Hash", max_length=64),
            F("chunk_size_bytes", "string", "Chunk size bytes"),
            F("state", "string", "State", default="available"),
            F("image_height", "integer", "Image height"),
            F("image_width", "integer", "Image width"),
            F("average_image_color", "string", "Average image color"),
            F("encryption_context", "string", "Encryption context"),
        ],
        display="file_name",
    )
    add(
        "sys_choice",
        "Choice",
        [
            F("name", "string", "Table"),
            F("element", "string", "Element"),
            F("value", "string", "Value"),
            F("label", "string", "Label"),
            F("sequence", "integer", "Sequence"),
            F("inactive", "boolean", "Inactive", default="false"),
            F("language", "string", "Language", default="en"),
            F("dependent_value", "string", "Dependent value"),
        ],
        display="label",
    )
    add(
        "sys_db_object",
        "Table",
        [
            F("name", "string", "Name"),
            F("label", "string", "Label"),
            ref("super_class", "sys_db_object", "Extends table"),
            F("number_ref", "string", "Auto number"),
        ],
        display="name",
    )
    add(
        "sys_properties",
        "System Property",
        [
            F("name", "string", "Name"),
            F("value", "string", "Value", max_length=4000),
            F("type", "string", "Type", default="string"),
            F("description", "string", "Description", max_length=1000),
        ],
        display="name",
    )
    add(
        "std_change_record_producer",
        "Standard Change Template",
        [
            F("name", "string", "Name"),
            F("short_description", "string", "Short description"),
            F("template_value", "string", "Template", max_length=4000),
            F("category", "string", "Category"),
            F("active", "boolean", "Active", default="true"),
            ref("current_version", "std_change_producer_version", "Current version"),
        ],
        display="name",
    )
    add(
        "std_change_producer_version",
        "Standard Change Template Version",
        [
            F("name", "string", "Name"),
            F("version", "integer", "Version", default="1"),
            ref("std_change_producer", "std_change_record_producer", "Standard change template"),
            F("template_value", "string", "Template", max_length=4000),
        ],
        display="name",
    )
    add(
        "item_option_new",
        "Variable",
        [
            F("name", "string", "Name"),
            F("question_text", "string", "Question"),
            F("type", "integer", "Type", default="6"),
            F("mandatory", "boolean", "Mandatory", default="false"),
            F("order", "integer", "Order"),
        ],
        display="question_text",
    )
    add(
        "question_answer",
        "Question Answer",
        [
            F("table_name", "string", "Table name"),
            F("table_sys_id", "string", "Table sys ID", max_length=32),
            ref("question", "item_option_new", "Question"),
            F("value", "string", "Value", max_length=4000),
            F("order", "integer", "Order"),
        ],
    )
    add(
        "sysapproval_approver",
        "Approval",
        [
            ref("sysapproval", "task", "Approval for"),
            ref("approver", "sys_user", "Approver"),
            choice("state", APPROVALS, label="State", default="requested"),
            F("comments", "journal_input", "Comments"),
        ],
    )
    add(
        "sys_script",
        "Business Rule",
        [
            F("name", "string", "Name"),
            F("collection", "string", "Table"),
            choice("when", _same("before", "after", "async", "display"), default="after"),
            F("action_insert", "boolean", "Insert", default="false"),
            F("action_update", "boolean", "Update", default="true"),
            F("action_delete", "boolean", "Delete", default="false"),
            F("active", "boolean", "Active", default="true"),
            F("advanced", "boolean", "Advanced", default="true"),
            F("order", "integer", "Order", default="100"),
            F("filter_condition", "string", "Filter conditions", max_length=4000),
            F("condition", "string", "Condition", max_length=1000),
            F("script", "string", "Script", max_length=65000),
            F("x_webhook_url", "string", "Webhook URL (emulator)", max_length=1000),
            F("x_webhook_secret", "password2", "Webhook HMAC secret (emulator)"),
            F("x_webhook_headers", "string", "Webhook extra headers, JSON (emulator)", max_length=4000),
            F("x_webhook_max_attempts", "integer", "Webhook attempts (emulator)", default="5"),
        ],
        display="name",
    )
    add(
        "sys_outbound_http_log",
        "Outbound HTTP Request",
        [
            F("url", "string", "URL", max_length=1000),
            F("http_method", "string", "HTTP method"),
            F("response_status", "integer", "Response status"),
            F("request_body", "string", "Request body", max_length=65000),
            F("response_body", "string", "Response body", max_length=4000),
            F("request_headers", "string", "Request headers", max_length=4000),
            F("source_table", "string", "Source table"),
            F("source_record", "string", "Source record", max_length=32),
            F("source_business_rule", "string", "Business rule"),
            F("delivery_id", "string", "Delivery ID", max_length=32),
            F("attempt", "integer", "Attempt"),
            F("elapsed_ms", "integer", "Elapsed (ms)"),
            F("error", "string", "Error", max_length=1000),
        ],
    )
    add(
        "sys_rate_limit_rules",
        "Rate Limit Rule",
        [
            F("name", "string", "Name"),
            F("active", "boolean", "Active", default="true"),
            F("resource", "string", "REST resource"),
            choice("http_method", _same("ALL", "GET", "POST", "PUT", "PATCH", "DELETE"), default="ALL"),
            choice("type", _same("all", "role", "user"), label="Applies to", default="all"),
            ref("user", "sys_user", "User"),
            ref("role", "sys_user_role", "Role"),
            F("rate", "integer", "Requests per hour", default="10000"),
        ],
        display="name",
    )
    add(
        "oauth_entity",
        "Application Registry",
        [
            F("name", "string", "Name"),
            F("client_id", "string", "Client ID"),
            F("client_secret", "password2", "Client secret"),
            F("active", "boolean", "Active", default="true"),
            F("access_token_lifespan", "integer", "Access Token Lifespan", default="1800"),
            F("refresh_token_lifespan", "integer", "Refresh Token Lifespan", default="8640000"),
            ref("user", "sys_user", "OAuth Application User"),
        ],
        display="name",
    )
    add(
        "api_key",
        "REST API Key",
        [
            F("name", "string", "Name"),
            ref("user", "sys_user", "User"),
            F("token", "password2", "Token"),
            F("active", "boolean", "Active", default="true"),
            F("expires", "glide_date_time", "Expires"),
        ],
        display="name",
    )
    return t


class Dictionary:
    """The resolved dictionary: inherited fields, hierarchy roots and descendants."""

    def __init__(self, tables: list[TableDef]):
        self.tables: dict[str, TableDef] = {t.name: t for t in tables}
        self._fields: dict[str, dict[str, FieldDef]] = {}
        for name in self.tables:
            self._fields[name] = self._resolve_fields(name)
        self._check_storage_types()

    def _resolve_fields(self, name: str) -> dict[str, FieldDef]:
        table = self.tables[name]
        if table.parent:
            inherited = dict(self._fields.get(table.parent) or self._resolve_fields(table.parent))
        else:
            inherited = {f.name: f for f in SYSTEM_FIELDS}
            if table.extensible:
                inherited[CLASS_FIELD.name] = CLASS_FIELD
        inherited.update(table.own_fields)
        return inherited

    def _check_storage_types(self) -> None:
        for root in {self.root(name) for name in self.tables}:
            seen: dict[str, str] = {}
            for member in self.descendants(root):
                for f in self._fields[member].values():
                    if seen.setdefault(f.name, f.storage) != f.storage:
                        raise ValueError(f"{root}.{f.name} has conflicting storage types in the hierarchy")

    def __contains__(self, name: str) -> bool:
        return name in self.tables and not self.tables[name].internal

    def table(self, name: str) -> TableDef:
        return self.tables[name]

    def fields(self, name: str) -> dict[str, FieldDef]:
        return self._fields[name]

    def field(self, table: str, name: str) -> FieldDef | None:
        return self._fields[table].get(name)

    def root(self, name: str) -> str:
        while self.tables[name].parent:
            name = self.tables[name].parent  # type: ignore[assignment]
        return name

    def ancestors(self, name: str) -> list[str]:
        """The table and its parents, nearest first."""
        chain = [name]
        while self.tables[chain[-1]].parent:
            chain.append(self.tables[chain[-1]].parent)  # type: ignore[arg-type]
        return chain

    def descendants(self, name: str) -> list[str]:
        """The table and every table extending it, depth first."""
        out = [name]
        for child in self._children.get(name, ()):
            out.extend(self.descendants(child))
        return out

    def is_a(self, table: str, ancestor: str) -> bool:
        return ancestor in self.ancestors(table)

    @cached_property
    def _children(self) -> dict[str, list[str]]:
        children: dict[str, list[str]] = {}
        for t in self.tables.values():
            if t.parent:
                children.setdefault(t.parent, []).append(t.name)
        return children

    def hierarchy_columns(self, root: str) -> dict[str, FieldDef]:
        """Every stored column of a hierarchy (journal and list-only fields are not stored)."""
        columns: dict[str, FieldDef] = {}
        for member in self.descendants(root):
            for f in self._fields[member].values():
                if f.type not in ("journal", "journal_input", "journal_list"):
                    columns.setdefault(f.name, f)
        columns.setdefault("sys_class_name", CLASS_FIELD)
        return columns

    def display_field(self, table: str) -> str | None:
        for name in self.ancestors(table):
            if self.tables[name].display:
                return self.tables[name].display
        fields = self._fields[table]
        for candidate in ("name", "number"):
            if candidate in fields:
                return candidate
        return None

    def number_prefix(self, table: str) -> str | None:
        return self.tables[table].number_prefix


DICTIONARY = Dictionary(_tables())
