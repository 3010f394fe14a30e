"""Seed data: the platform baseline, a realistic demo estate, and a scalable generator for benchmarks.

Every seed has the baseline (roles, users, relationship types, choices, the table list). ``demo`` adds a
small estate: services with tiers and owning groups, applications, servers, VMs and a Kubernetes cluster
linked by real relationship types, standard change templates with their variables, change requests in
several states, and incidents. ``generate`` adds bulk rows quickly (bypassing platform rules).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .emulator import Emulator
from .platform import SYSTEM, new_sys_id
from .rules.priority import PRIORITY_MATRIX
from .timeutil import glide_now, now_utc, to_glide

# Base-system sys_ids the documentation shows for relationship types (reference §5.4).
REL_TYPES = {
    "Depends on::Used by": "1a9cb166f1571100a92eb60da2bce5c5",
    "Runs on::Runs": "60bc4e22c0a8010e01f074cbe6bd73c3",
    "Exchanges data with::Exchanges data with": "607ad1b2c0a8010e01941856b365af90",
    "Hosted on::Hosts": "5f985e0ec0a8010e00a9714f2a172815",
    "Contains::Contained by": "55c95bf6c0a8010e0118ec7056ebc54d",
    "Uses::Used by": "41008aa6ef32010098d5925495c0fb94",
    "Virtualized by::Virtualizes": "d93304fb0a0a0b78006081a72ef08444",
    "Cluster of::Cluster": "cb5592603751200032ff8c00dfbe5d17",
    "Members::Member of": "b0f8ae2bc0a8010b5d4c89a2c0a5c6b9",
    "Owns::Owned by": "2b9f41a1c0a8010b0047d3d3f2e8bd9b",
    "Provides::Provided by": "5599a965c0a8010e00da3b58b113d70e",
    "Connected by::Connects": "9afd7f2fc0a8010b00b07d0e2f4ca5bf",
    "IP Connection::IP Connection": "f0a7c3b3c0a8010b00d77df37b2a2bc4",
}
ROLES = ["admin", "itil", "itil_admin", "snc_read_only", "change_manager", "asset", "cmdb_read", "sn_change_read"]


@dataclass(frozen=True)
class SeedUser:
    user_name: str
    password: str
    first_name: str
    last_name: str
    roles: tuple[str, ...]
    email: str = ""


def baseline_users(admin_user: str, admin_password: str) -> list[SeedUser]:
    return [
        SeedUser(admin_user, admin_password, "System", "Administrator", ("admin",)),
        SeedUser("itil", "itil", "Ivy", "Tilson", ("itil",)),
        SeedUser("readonly", "readonly", "Rita", "Reader", ("itil", "snc_read_only")),
        SeedUser(
            "prefect.integration", "snow-integration-pw", "Prefect", "Integration", ("itil", "asset", "change_manager")
        ),
        SeedUser("norole", "norole", "Nora", "Role", ()),
    ]


OAUTH_CLIENT_ID = "prefect-servicenow"
OAUTH_CLIENT_SECRET = "prefect-oauth-secret"
API_KEY = "emulator-api-key-for-prefect-integration"


class Seeder:
    def __init__(self, emulator: Emulator):
        self.emulator = emulator
        self.platform = emulator.platform
        self.ids: dict[str, str] = {}

    def insert(self, table: str, values: dict[str, Any], key: str | None = None) -> str:
        record = self.platform.insert(table, values, SYSTEM)
        if key:
            self.ids[key] = record["sys_id"]
        return record["sys_id"]

    # --- baseline ---------------------------------------------------------------------------------
    def baseline(self, admin_user: str = "admin", admin_password: str = "admin") -> None:
        dictionary = self.emulator.dictionary
        store = self.emulator.store
        with store.transaction():
            for name in ROLES:
                self.insert("sys_user_role", {"name": name}, f"role:{name}")
            for user in baseline_users(admin_user, admin_password):
                values = {
                    "user_name": user.user_name,
                    "user_password": user.password,
                    "first_name": user.first_name,
                    "last_name": user.last_name,
                    "email": user.email or f"{user.user_name}@example.com",
                }
                if user.user_name == admin_user:
                    values["sys_id"] = SYSTEM.user_sys_id
                user_id = self.insert("sys_user", values, f"user:{user.user_name}")
                for role in user.roles:
                    self.insert("sys_user_has_role", {"user": user_id, "role": self.ids[f"role:{role}"]})
            for name, sys_id in REL_TYPES.items():
                parent, child = name.split("::")
                self.insert(
                    "cmdb_rel_type",
                    {"sys_id": sys_id, "name": name, "parent_descriptor": parent, "child_descriptor": child},
                    f"rel:{name}",
                )
            self.insert(
                "oauth_entity",
                {
                    "name": "Prefect integration",
                    "client_id": OAUTH_CLIENT_ID,
                    "client_secret": OAUTH_CLIENT_SECRET,
                    "user": self.ids["user:prefect.integration"],
                },
            )
            self.insert(
                "api_key",
                {"name": "Prefect integration key", "user": self.ids["user:prefect.integration"], "token": API_KEY},
            )
            # The table list and every choice list, as sys_db_object and sys_choice rows.
            table_rows = []
            choice_rows = []
            now = glide_now()
            system = {
                "sys_created_on": now,
                "sys_created_by": "system",
                "sys_updated_on": now,
                "sys_updated_by": "system",
                "sys_mod_count": 0,
            }
            object_ids = {name: new_sys_id() for name in dictionary.tables}
            for name, t in dictionary.tables.items():
                table_rows.append((object_ids[name], name, t.label, object_ids.get(t.parent or ""), t.number_prefix))
                for f in t.own_fields.values():
                    for sequence, (value, label) in enumerate(f.choices):
                        choice_rows.append((new_sys_id(), name, f.name, value, label, sequence * 10))
            store.insert_many(
                "sys_db_object",
                ["sys_id", "name", "label", "super_class", "number_ref", *system],
                [(*row, *system.values()) for row in table_rows],
            )
            store.insert_many(
                "sys_choice",
                ["sys_id", "name", "element", "value", "label", "sequence", "inactive", "language", *system],
                [(*row, 0, "en", *system.values()) for row in choice_rows],
            )

    # --- demo estate ------------------------------------------------------------------------------
    def demo(self) -> None:
        ids = self.ids
        with self.emulator.store.transaction():
            people = [
                ("alice.ops", "Alice", "Operator"),
                ("bob.dba", "Bob", "Dbadmin"),
                ("carol.web", "Carol", "Webster"),
                ("dave.pay", "Dave", "Payne"),
                ("erin.change", "Erin", "Changemgr"),
            ]
            for user_name, first, last in people:
                user_id = self.insert(
                    "sys_user",
                    {
                        "user_name": user_name,
                        "user_password": user_name,
                        "first_name": first,
                        "last_name": last,
                        "email": f"{user_name}@example.com",
                    },
                    f"user:{user_name}",
                )
                self.insert("sys_user_has_role", {"user": user_id, "role": ids["role:itil"]})
            groups = {
                "Payments Engineering": ("dave.pay", "Owns the payments platform"),
                "Web Platform": ("carol.web", "Customer portal and the web tier"),
                "Database Operations": ("bob.dba", "Databases"),
                "Linux Operations": ("alice.ops", "Linux fleet and patching"),
                "Change Management": ("erin.change", "Change advisory"),
                "Service Desk": ("alice.ops", "First line"),
            }
            for name, (manager, description) in groups.items():
                group_id = self.insert(
                    "sys_user_group",
                    {
                        "name": name,
                        "manager": ids[f"user:{manager}"],
                        "description": description,
                        "email": f"{name.lower().replace(' ', '.')}@example.com",
                    },
                    f"group:{name}",
                )
                self.insert("sys_user_grmember", {"user": ids[f"user:{manager}"], "group": group_id})
            self.insert(
                "sys_user_grmember", {"user": ids["user:prefect.integration"], "group": ids["group:Linux Operations"]}
            )

            # Services carry the tier (busines_criticality) and the owning group.
            services = {
                "Payments": ("1 - most critical", "Payments Engineering", "Production"),
                "Customer Portal": ("2 - somewhat critical", "Web Platform", "Production"),
                "Reporting": ("3 - less critical", "Database Operations", "Production"),
                "Internal Wiki": ("4 - not critical", "Web Platform", "Production"),
            }
            for name, (criticality, group, used_for) in services.items():
                self.insert(
                    "cmdb_ci_service_discovered",
                    {
                        "name": name,
                        "busines_criticality": criticality,
                        "support_group": ids[f"group:{group}"],
                        "managed_by_group": ids[f"group:{group}"],
                        "owned_by": ids[f"user:{groups[group][0]}"],
                        "used_for": used_for,
                        "operational_status": "1",
                    },
                    f"ci:{name}",
                )
            applications = {
                "payments-api": ("Payments", "8443", "Payments Engineering"),
                "payments-worker": ("Payments", "", "Payments Engineering"),
                "portal-web": ("Customer Portal", "443", "Web Platform"),
                "reporting-etl": ("Reporting", "", "Database Operations"),
                "wiki": ("Internal Wiki", "80", "Web Platform"),
            }
            for name, (service, port, group) in applications.items():
                self.insert(
                    "cmdb_ci_appl",
                    {
                        "name": name,
                        "tcp_port": port,
                        "version": "1.4.2",
                        "support_group": ids[f"group:{group}"],
                        "managed_by_group": ids[f"group:{group}"],
                        "environment": "Production",
                        "used_for": "Production",
                    },
                    f"ci:{name}",
                )
                self.relate(f"ci:{service}", f"ci:{name}", "Depends on::Used by")
            servers = [
                ("pay-app-01", "cmdb_ci_linux_server", "10.10.1.11", "payments-api"),
                ("pay-app-02", "cmdb_ci_linux_server", "10.10.1.12", "payments-api"),
                ("pay-wrk-01", "cmdb_ci_linux_server", "10.10.1.21", "payments-worker"),
                ("pay-db-01", "cmdb_ci_linux_server", "10.10.1.31", None),
                ("portal-web-01", "cmdb_ci_linux_server", "10.10.2.11", "portal-web"),
                ("portal-web-02", "cmdb_ci_linux_server", "10.10.2.12", "portal-web"),
                ("portal-web-03", "cmdb_ci_linux_server", "10.10.2.13", "portal-web"),
                ("rpt-etl-01", "cmdb_ci_linux_server", "10.10.3.11", "reporting-etl"),
                ("rpt-win-01", "cmdb_ci_win_server", "10.10.3.21", "reporting-etl"),
                ("wiki-01", "cmdb_ci_linux_server", "10.10.4.11", "wiki"),
            ]
            for index, (name, cls, ip, app) in enumerate(servers):
                linux = cls == "cmdb_ci_linux_server"
                self.insert(
                    cls,
                    {
                        "name": name,
                        "ip_address": ip,
                        "host_name": name,
                        "fqdn": f"{name}.prod.example.com",
                        "dns_domain": "prod.example.com",
                        "os": "Linux Red Hat" if linux else "Windows 2022 Datacenter",
                        "os_version": "9.4" if linux else "10.0.20348",
                        "cpu_count": 8,
                        "ram": 32768,
                        "serial_number": f"VMware-42 1a 9c {index:02d} 7f",
                        "environment": "Production",
                        "classification": "Production",
                        "support_group": ids["group:Linux Operations"],
                        "managed_by_group": ids["group:Linux Operations"],
                        "virtual": True,
                        "discovery_source": "ServiceNow",
                    },
                    f"ci:{name}",
                )
                if app:
                    self.relate(f"ci:{app}", f"ci:{name}", "Runs on::Runs")
            self.relate("ci:payments-api", "ci:pay-db-01", "Depends on::Used by")
            self.relate("ci:payments-worker", "ci:pay-db-01", "Depends on::Used by")
            # Cloud VMs (object_id = the provider's id) virtualising the guest-OS servers.
            for name, instance_id in (("pay-app-01", "i-0a1b2c3d4e5f60001"), ("pay-app-02", "i-0a1b2c3d4e5f60002")):
                self.insert(
                    "cmdb_ci_vm_instance",
                    {
                        "name": f"{name}-vm",
                        "object_id": instance_id,
                        "vm_inst_id": instance_id,
                        "state": "on",
                        "cpus": 8,
                        "memory": 32768,
                        "discovery_source": "AWS",
                    },
                    f"ci:{name}-vm",
                )
                self.relate(f"ci:{name}", f"ci:{name}-vm", "Virtualized by::Virtualizes")
            self.insert(
                "cmdb_ci_kubernetes_cluster",
                {
                    "name": "prod-k8s",
                    "cluster_version": "1.31",
                    "ip_address_api": "10.10.9.1",
                    "port": "6443",
                    "discovery_source": "Kubernetes",
                },
                "ci:prod-k8s",
            )
            for namespace in ("payments", "portal"):
                self.insert(
                    "cmdb_ci_kubernetes_namespace",
                    {"name": namespace, "discovery_source": "Kubernetes"},
                    f"ci:ns-{namespace}",
                )
                self.relate("ci:prod-k8s", f"ci:ns-{namespace}", "Contains::Contained by")
            self.relate("ci:payments-worker", "ci:prod-k8s", "Hosted on::Hosts")

            self._templates()
            self._changes()
            self._incidents()

    def relate(self, parent_key: str, child_key: str, type_name: str) -> str:
        return self.insert(
            "cmdb_rel_ci",
            {"parent": self.ids[parent_key], "child": self.ids[child_key], "type": self.ids[f"rel:{type_name}"]},
        )

    def _templates(self) -> None:
        templates = {
            "Restart application service": (
                "Restart an application's service on the hosts it runs on",
                "Software",
                [
                    ("service_name", "Service to restart", True),
                    ("restart_timeout_s", "Seconds to wait for health", False),
                ],
            ),
            "Patch Linux hosts": (
                "Apply OS patches to the Linux hosts of an application",
                "Software",
                [
                    ("patch_baseline", "Patch baseline", False),
                    ("max_parallel", "Hosts patched at once", False),
                    ("failure_threshold", "Failures that stop the wave", False),
                ],
            ),
            "Rotate TLS certificate": (
                "Rotate the TLS certificate of an application endpoint",
                "Software",
                [("common_name", "Certificate common name", True), ("validity_days", "Validity in days", False)],
            ),
        }
        for name, (description, category, variables) in templates.items():
            producer = self.insert(
                "std_change_record_producer",
                {
                    "name": name,
                    "short_description": description,
                    "category": category,
                    "template_value": f"short_description={description}^category={category}^type=standard",
                },
                f"producer:{name}",
            )
            version = self.insert(
                "std_change_producer_version",
                {"name": f"{name} - 1", "version": 1, "std_change_producer": producer},
                f"template:{name}",
            )
            self.platform.update("std_change_record_producer", producer, {"current_version": version}, SYSTEM)
            for order, (var_name, question, mandatory) in enumerate(variables):
                self.insert(
                    "item_option_new",
                    {"name": var_name, "question_text": question, "mandatory": mandatory, "order": order * 100},
                    f"var:{var_name}",
                )

    def standard_change(
        self,
        template: str,
        ci_key: str,
        variables: dict[str, str],
        *,
        short_description: str,
        group: str = "Linux Operations",
        approval: str = "requested",
        state: str = "-5",
    ) -> str:
        """A standard change from a template, with its variables in question_answer (as a record producer does)."""
        start = now_utc() + timedelta(minutes=5)
        change_id = self.insert(
            "change_request",
            {
                "type": "standard",
                "short_description": short_description,
                "description": short_description,
                "category": "Software",
                "std_change_producer_version": self.ids[f"template:{template}"],
                "cmdb_ci": self.ids[ci_key],
                "assignment_group": self.ids[f"group:{group}"],
                "requested_by": self.ids["user:erin.change"],
                "start_date": to_glide(start),
                "end_date": to_glide(start + timedelta(hours=2)),
                "approval": approval,
                "state": state,
                "risk": "4",
                "impact": "3",
            },
        )
        for order, (name, value) in enumerate(variables.items()):
            self.insert(
                "question_answer",
                {
                    "table_name": "change_request",
                    "table_sys_id": change_id,
                    "question": self.ids[f"var:{name}"],
                    "value": value,
                    "order": order * 100,
                },
            )
        return change_id

    def _changes(self) -> None:
        self.standard_change(
            "Restart application service",
            "ci:payments-api",
            {"service_name": "payments-api", "restart_timeout_s": "60"},
            short_description="Restart payments-api after config rollout",
        )
        self.standard_change(
            "Restart application service",
            "ci:portal-web",
            {"service_name": "portal-web", "restart_timeout_s": "30"},
            short_description="Restart portal-web to pick up new TLS bundle",
        )
        self.standard_change(
            "Patch Linux hosts",
            "ci:portal-web",
            {"patch_baseline": "2026-11", "max_parallel": "2", "failure_threshold": "1"},
            short_description="Monthly patching: portal-web hosts",
        )
        closed = self.standard_change(
            "Restart application service",
            "ci:wiki",
            {"service_name": "wiki"},
            short_description="Restart wiki (last month)",
            approval="approved",
        )
        for state in ("-2", "-1", "0"):
            self.platform.update("change_request", closed, {"state": state}, SYSTEM)
        self.platform.update(
            "change_request",
            closed,
            {
                "state": "3",
                "close_code": "successful",
                "close_notes": "Restarted by hand before automation.",
                "work_notes": "Closed by the on-call engineer.",
            },
            SYSTEM,
        )
        canceled = self.standard_change(
            "Patch Linux hosts",
            "ci:reporting-etl",
            {"patch_baseline": "2026-10"},
            short_description="Patch reporting hosts (superseded)",
        )
        self.platform.update("change_request", canceled, {"state": "4"}, SYSTEM)
        self.insert(
            "change_request",
            {
                "type": "normal",
                "short_description": "Migrate payments database to new storage",
                "category": "Hardware",
                "cmdb_ci": self.ids["ci:pay-db-01"],
                "assignment_group": self.ids["group:Database Operations"],
                "state": "-4",
                "approval": "not requested",
                "risk": "2",
            },
        )

    def _incidents(self) -> None:
        ids = self.ids
        self.insert(
            "incident",
            {
                "short_description": "Portal login slow for some users",
                "caller_id": ids["user:carol.web"],
                "cmdb_ci": ids["ci:portal-web"],
                "assignment_group": ids["group:Web Platform"],
                "impact": "2",
                "urgency": "2",
                "category": "software",
            },
        )
        self.insert(
            "incident",
            {
                "short_description": "Reporting ETL job missed its window",
                "caller_id": ids["user:bob.dba"],
                "cmdb_ci": ids["ci:reporting-etl"],
                "assignment_group": ids["group:Database Operations"],
                "impact": "3",
                "urgency": "2",
                "state": "2",
                "category": "database",
            },
        )
        resolved = self.insert(
            "incident",
            {
                "short_description": "Payments API 5xx spike",
                "caller_id": ids["user:dave.pay"],
                "cmdb_ci": ids["ci:payments-api"],
                "assignment_group": ids["group:Payments Engineering"],
                "impact": "1",
                "urgency": "1",
                "category": "software",
            },
        )
        self.platform.update(
            "incident",
            resolved,
            {
                "state": "6",
                "close_code": "Solution provided",
                "close_notes": "Rolled back the faulty release.",
                "work_notes": "Rollback done, error rate normal.",
            },
            SYSTEM,
        )


def generate(
    emulator: Emulator,
    *,
    ci_count: int = 0,
    change_count: int = 0,
    incident_count: int = 0,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Bulk rows for benchmarks: servers, changes and incidents, inserted in a few large transactions.

    ``progress`` hears about each batch written (the CLI prints it).
    """
    report = progress or (lambda message: None)
    rng = random.Random(seed)
    store = emulator.store
    now = glide_now()
    # every generated row is in a domain-aware hierarchy (cmdb_ci, task): the global domain, as on insert
    system = ["system", now, "system", now, 0, "global", "/"]
    sys_cols = [
        "sys_created_by",
        "sys_created_on",
        "sys_updated_by",
        "sys_updated_on",
        "sys_mod_count",
        "sys_domain",
        "sys_domain_path",
    ]
    if ci_count:
        columns = [
            "sys_id",
            "sys_class_name",
            "name",
            "ip_address",
            "os",
            "os_version",
            "cpu_count",
            "ram",
            "operational_status",
            "install_status",
            "serial_number",
            "environment",
            "discovery_source",
            *sys_cols,
        ]
        batch = []
        for i in range(ci_count):
            linux = rng.random() < 0.8
            batch.append(
                (
                    new_sys_id(),
                    "cmdb_ci_linux_server" if linux else "cmdb_ci_win_server",
                    f"{'lnx' if linux else 'win'}-{i:06d}",
                    f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                    "Linux Red Hat" if linux else "Windows 2022 Datacenter",
                    "9.4" if linux else "10.0.20348",
                    rng.choice([2, 4, 8, 16]),
                    rng.choice([4096, 8192, 16384, 32768]),
                    1,
                    1,
                    f"SN-{i:08d}",
                    rng.choice(["Production", "Test", "Development"]),
                    "ServiceNow",
                    *system,
                )
            )
            if len(batch) == 20000:
                store.insert_many("cmdb_ci", columns, batch)
                batch = []
                report(f"generated {i + 1:,} of {ci_count:,} servers")
        if batch:
            store.insert_many("cmdb_ci", columns, batch)
        report(f"generated {ci_count:,} servers")
    if change_count:
        first = store.reserve_numbers("CHG", change_count)
        columns = [
            "sys_id",
            "sys_class_name",
            "number",
            "short_description",
            "type",
            "state",
            "approval",
            "active",
            "priority",
            "impact",
            "urgency",
            "risk",
            "opened_at",
            *sys_cols,
        ]
        rows = [
            (
                new_sys_id(),
                "change_request",
                f"CHG{first + i:07d}",
                f"Generated change {i}",
                rng.choice(["standard", "normal"]),
                rng.choice([-5, -2, 3, 4]),
                rng.choice(["approved", "requested", "not requested"]),
                1,
                4,
                3,
                3,
                4,
                now,
                *system,
            )
            for i in range(change_count)
        ]
        store.insert_many("task", columns, rows)
        report(f"generated {change_count:,} change requests")
    if incident_count:
        first = store.reserve_numbers("INC", incident_count)
        columns = [
            "sys_id",
            "sys_class_name",
            "number",
            "short_description",
            "state",
            "incident_state",
            "active",
            "impact",
            "urgency",
            "priority",
            "opened_at",
            *sys_cols,
        ]
        rows = []
        for i in range(incident_count):
            impact, urgency = rng.choice([1, 2, 3]), rng.choice([1, 2, 3])
            rows.append(
                (
                    new_sys_id(),
                    "incident",
                    f"INC{first + i:07d}",
                    f"Generated incident {i}",
                    1,
                    1,
                    1,
                    impact,
                    urgency,
                    PRIORITY_MATRIX[(impact, urgency)],
                    now,
                    *system,
                )
            )
        store.insert_many("task", columns, rows)
        report(f"generated {incident_count:,} incidents")


def seed(emulator: Emulator, kind: str = "demo", *, admin_user: str = "admin", admin_password: str = "admin") -> Seeder:
    """Seed an empty store. ``kind`` is ``demo`` or ``empty`` (baseline only)."""
    if kind not in ("demo", "empty"):
        raise ValueError(f"unknown seed {kind!r}: use demo or empty")
    seeder = Seeder(emulator)
    seeder.baseline(admin_user, admin_password)
    if kind == "demo":
        seeder.demo()
    return seeder


def ensure_admin(emulator: Emulator, user_name: str, password: str | None) -> str:
    """On a reopened store (``--db`` of an existing file): make ``user_name`` an active admin, with
    ``password`` when one is given. A missing user is created (password ``admin`` when none is given);
    other users, the first admin included, are left as they are. Returns the user's sys_id."""
    platform, store = emulator.platform, emulator.store
    found = store.find("sys_user", {"user_name": user_name}, limit=1)
    if found:
        user_id = found[0]["sys_id"]
        values: dict[str, Any] = {"active": "true", "locked_out": "false"}
        if password is not None:
            values["user_password"] = password
        platform.update("sys_user", user_id, values, SYSTEM)
    else:
        values = {
            "user_name": user_name,
            "user_password": "admin" if password is None else password,
            "first_name": "System",
            "last_name": "Administrator",
            "email": f"{user_name}@example.com",
        }
        user_id = platform.insert("sys_user", values, SYSTEM)["sys_id"]
    roles = store.find("sys_user_role", {"name": "admin"}, limit=1)
    role_id = roles[0]["sys_id"] if roles else platform.insert("sys_user_role", {"name": "admin"}, SYSTEM)["sys_id"]
    if not store.find("sys_user_has_role", {"user": user_id, "role": role_id}, limit=1):
        platform.insert("sys_user_has_role", {"user": user_id, "role": role_id}, SYSTEM)
    return user_id
