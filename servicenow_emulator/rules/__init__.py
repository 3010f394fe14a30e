"""Platform rules, one concern per module. ``default_rules()`` wires them in platform order."""

from __future__ import annotations

from ..platform import RuleSet
from . import (
    attachments,
    change_model,
    ci_status,
    data_policy,
    journal,
    numbering,
    priority,
    properties,
    task_lifecycle,
    users,
)


def default_rules() -> RuleSet:
    rules = RuleSet()
    for module in (
        numbering,
        users,
        priority,
        task_lifecycle,
        change_model,
        ci_status,
        data_policy,
        journal,
        properties,
        attachments,
    ):
        module.register(rules)
    return rules
