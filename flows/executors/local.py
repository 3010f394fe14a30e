"""``LocalExecutor``: each host is a sandbox directory on this machine; commands run as real processes.

Commands are run by ``flows.executors.simhost``, a small service manager for sandboxed hosts
(``servicectl``, ``certctl``), so that a runbook's restarts, health checks and certificate installs
really happen, observably, without touching the machine's own services.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from .base import CommandResult, ExecutorError

DEFAULT_ROOT = Path(os.environ.get("PREFECT_SERVICENOW_SANDBOX", ".demo/hosts"))


class LocalExecutor:
    name = "local"

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root else DEFAULT_ROOT

    async def run(
        self, host: str, command: list[str], *, timeout_s: float = 300, stdin: bytes | None = None
    ) -> CommandResult:
        if not command:
            raise ExecutorError("empty command")
        argv = [sys.executable, "-m", "flows.executors.simhost", "--root", str(self.root), "--host", host, *command]
        started = time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise ExecutorError(f"cannot start {command[0]} for {host}: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), timeout=timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            return CommandResult(
                host=host,
                command=command,
                exit_code=124,
                stderr=f"timed out after {timeout_s:.0f} s",
                duration_s=time.monotonic() - started,
            )
        return CommandResult(
            host=host,
            command=command,
            exit_code=process.returncode or 0,
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            duration_s=time.monotonic() - started,
        )
