"""Executors run a runbook's commands on a target host. Runbooks depend on the interface only.

``LocalExecutor`` runs commands on this machine against a sandbox per host (the demo and the tests).
SSH, AWS SSM and Kubernetes executors implement the same interface (patch-wave work).
"""

from __future__ import annotations

from .base import CommandResult, Executor, ExecutorError
from .local import LocalExecutor

__all__ = ["CommandResult", "Executor", "ExecutorError", "LocalExecutor"]
