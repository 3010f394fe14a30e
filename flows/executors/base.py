"""The executor interface."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel


class CommandResult(BaseModel):
    """One command on one host."""

    host: str
    command: list[str]
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def summary(self) -> str:
        text = (self.stderr or self.stdout).strip().splitlines()
        tail = text[-1] if text else ""
        return f"{self.host}: `{' '.join(self.command)}` exited {self.exit_code}" + (f": {tail}" if tail else "")


class ExecutorError(RuntimeError):
    """A command could not be run at all (not the same as a command that failed)."""


@runtime_checkable
class Executor(Protocol):
    """Runs a command on a host and reports what happened."""

    name: str

    async def run(
        self, host: str, command: list[str], *, timeout_s: float = 300, stdin: bytes | None = None
    ) -> CommandResult: ...
