"""The change-dispatch suite: one real stack for the session, reached over real HTTP.

``stack`` is a ``flows.local_stack.LocalStack`` on the session's real ``prefect server``: a private
emulator (with the outbound Business Rules installed), the blocks, the webhook receiver process and
``python -m flows.serve``. Each test makes its own change (``new_standard_change``), so tests never
share tickets; a test that changes something stack-wide (a fault, a rule, a host) restores it.

When a test fails, the tail of every stack process's log (receiver, serve with the flow runs' output,
emulator, Prefect server) is attached to the failure report, and the stack's directory is named.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.local_stack import LocalStack
from flows.stack_ops import set_emulator_faults

LOG_TAIL_CHARS = 6000


@pytest.fixture(scope="session")
def stack(prefect_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    workdir = tmp_path_factory.mktemp("dispatch") / "stack"
    local = LocalStack(workdir, preferred_ports=False, quiet=True, prefect=prefect_server)
    try:
        local.start()
    except BaseException:
        local.stop()
        raise RuntimeError(f"the dispatch stack did not start; logs:\n{_logs(local, prefect_server)}") from None
    yield local
    local.stop()


@pytest.fixture
def no_emulator_faults(stack: LocalStack) -> Iterator[None]:
    """Whatever faults a test scripts in the emulator are gone afterwards."""
    set_emulator_faults(stack, script=[])
    yield
    set_emulator_faults(stack, script=[])


def _logs(stack: LocalStack, prefect_server=None) -> str:
    paths: list[tuple[str, Path]] = [(p.name, p.log) for p in getattr(stack, "processes", [])]
    if prefect_server is not None:
        paths.append(("prefect-server", prefect_server.log))
    parts = [f"stack directory: {stack.workdir}"]
    for name, path in paths:
        try:
            text = Path(path).read_text(errors="replace")
        except OSError as exc:
            text = f"(cannot read {path}: {exc})"
        parts.append(f"----- {name} ({path}), last {LOG_TAIL_CHARS} characters -----\n{text[-LOG_TAIL_CHARS:]}")
    return "\n".join(parts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, LocalStack):
        report.sections.append(("dispatch stack logs", _logs(stack, stack.prefect)))
