"""CMDB traversal used by the runbooks (servicenow_blocks.cmdb) against the live demo-seeded emulator:
the hosts an application runs on, the services that depend on a host, and what each costs in requests."""

from __future__ import annotations

import pytest

from servicenow_blocks import ServiceNowCredentials, cmdb
from servicenow_blocks.query import Query

HOSTS = ("cmdb_ci_server", "cmdb_ci_vm_instance")


@pytest.fixture
async def client(emulator):
    credentials = ServiceNowCredentials(instance=emulator.url, username="admin", password="admin")
    async with credentials.get_async_client() as c:
        yield c


async def ci(client, name: str) -> str:
    return (await client.first("cmdb_ci", Query().eq("name", name), fields=["sys_id"]))["sys_id"]


@pytest.mark.parametrize(
    ("app", "hosts"),
    [
        ("wiki", {"wiki-01"}),
        ("portal-web", {"portal-web-01", "portal-web-02", "portal-web-03"}),
        ("reporting-etl", {"rpt-etl-01", "rpt-win-01"}),  # a Linux and a Windows server: both servers
    ],
)
async def test_hosts_of_an_application(client, app: str, hosts: set[str]) -> None:
    traversal = await cmdb.related_cis(client, await ci(client, app), classes=HOSTS, max_depth=2)
    assert {c.name for c in traversal.found} == hosts
    assert all(c.depth == 1 and c.via == "Runs on::Runs" for c in traversal.found)
    # one request per level, plus one for the ancestry of every new class of the first level
    assert traversal.requests == 3


async def test_traversal_passes_through_classes_it_does_not_keep(client) -> None:
    """payments-api -> its servers -> their cloud VMs ("Virtualized by"): only the VMs are kept."""
    traversal = await cmdb.related_cis(
        client,
        await ci(client, "payments-api"),
        rel_types=("Runs on::Runs", "Virtualized by::Virtualizes"),
        classes=("cmdb_ci_vm_instance",),
        max_depth=3,
    )
    assert {(c.name, c.depth) for c in traversal.found} == {("pay-app-01-vm", 2), ("pay-app-02-vm", 2)}


async def test_services_of_a_host(client) -> None:
    services = await cmdb.services_of(client, [await ci(client, "pay-app-01")])
    assert [s["name"] for s in services] == ["Payments"]
    assert cmdb.criticality_rank(services[0]["busines_criticality"]) == 1


async def test_deep_class_trees_are_read_in_several_requests(client, monkeypatch) -> None:
    monkeypatch.setattr(cmdb, "ANCESTRY_LEVELS", 2)  # cmdb_ci_linux_server is 4 levels below cmdb_ci
    cache: dict[str, set[str]] = {}
    traversal = cmdb.Traversal()
    await cmdb._load_ancestry(client, ["cmdb_ci_linux_server", "cmdb_ci_win_server"], cache, traversal)
    assert cache["cmdb_ci_linux_server"] == {"cmdb_ci_server", "cmdb_ci_computer", "cmdb_ci_hardware", "cmdb_ci"}
    assert cache["cmdb_ci_win_server"] == cache["cmdb_ci_linux_server"]
    assert traversal.requests == 3
