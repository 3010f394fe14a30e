"""Template -> runbook. A new template adds a module in this package and one line below."""

from __future__ import annotations

import re

from . import restart_app_service, rotate_tls_certificate
from .base import Runbook

RUNBOOKS: tuple[Runbook, ...] = (
    restart_app_service.RUNBOOK,
    rotate_tls_certificate.RUNBOOK,
)

_VERSION_SUFFIX = re.compile(r"\s+-\s+\d+$")


def normalize(name: str) -> str:
    """'Restart application service - 2' -> 'restart_application_service'."""
    base = _VERSION_SUFFIX.sub("", name.strip())
    return re.sub(r"[^a-z0-9]+", "_", base.lower()).strip("_")


def resolve(template: str | None, category: str | None = None) -> Runbook | None:
    """The runbook for a standard change template version's name, falling back to the category."""
    if template:
        wanted = normalize(template)
        for runbook in RUNBOOKS:
            if wanted in {normalize(t) for t in runbook.templates}:
                return runbook
    if category:
        wanted = normalize(category)
        for runbook in RUNBOOKS:
            if wanted in {normalize(c) for c in runbook.categories}:
                return runbook
    return None


def known_templates() -> list[str]:
    return [runbook.templates[0] for runbook in RUNBOOKS if runbook.templates]
