"""User records: the display name is derived, and stored secrets are salted hashes, never plain text."""

from __future__ import annotations

from ..auth import hash_secret
from ..platform import Change, RuleSet

# table -> the secret column hashed on write (webhook secrets stay reversible: the HMAC needs them)
HASHED_SECRETS = {"sys_user": "user_password", "oauth_entity": "client_secret", "api_key": "token"}


def full_name(change: Change) -> None:
    parts = [change.value("first_name"), change.value("last_name")]
    name = " ".join(p for p in parts if p)
    change.current["name"] = name or change.value("user_name")


def hash_secrets(change: Change) -> None:
    column = HASHED_SECRETS.get(change.table)
    value = change.value(column) if column else None
    if not column or not value or str(value).startswith("sha256$"):
        return
    if change.operation == "insert" or change.changes(column):
        change.current[column] = hash_secret(str(value))


def invalidate_sessions(change: Change) -> None:
    change.platform.on_identity_change()


def register(rules: RuleSet) -> None:
    rules.add("before", ["sys_user"], ["insert", "update"], full_name)
    rules.add("before", list(HASHED_SECRETS), ["insert", "update"], hash_secrets)
    rules.add(
        "after",
        ["sys_user", "sys_user_has_role", "sys_user_grmember", "sys_user_role", "api_key", "oauth_entity"],
        ["insert", "update", "delete"],
        invalidate_sessions,
    )
