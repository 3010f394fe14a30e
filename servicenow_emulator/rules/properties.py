"""Configuration tables (properties, rate-limit rules, business rules) take effect on the next request."""

from __future__ import annotations

from ..platform import Change, RuleSet


def invalidate(change: Change) -> None:
    change.platform.on_config_change(change.table)


def register(rules: RuleSet) -> None:
    rules.add(
        "after", ["sys_properties", "sys_rate_limit_rules", "sys_script"], ["insert", "update", "delete"], invalidate
    )
