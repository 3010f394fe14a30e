"""Instance settings: system properties (sys_properties) with the documented defaults.

Per-instance behaviour the reference marks as configurable is switched here, at start-up
(``--property name=value``) or at runtime by writing the ``sys_properties`` row through the Table API.
"""

from __future__ import annotations

from .store import Store

DEFAULTS: dict[str, tuple[str, str]] = {
    "glide.invalid_query.returns_no_rows": (
        "false",
        "An invalid query condition returns no rows instead of being ignored.",
    ),
    "glide.oauth.inbound.client.credential.grant_type.enabled": ("false", "Allow the OAuth client_credentials grant."),
    "com.glide.attachment.max_size": ("1024", "Largest attachment, in MB."),
    "glide.rest.max_content_length": ("10", "Largest REST request body, in MB."),
    "glide.sys.default.tz": ("UTC", "Session time zone for users without one (display values, gs.* date helpers)."),
    "glide.rest.batch.max.inputSize": ("5", "Largest Batch API request item, in MB."),
    "emulator.change.strict_state_transitions": (
        "true",
        "Reject change_request state moves the change model does not allow (403).",
    ),
    "emulator.change.close_requires_close_fields": (
        "true",
        "Closing a change needs close_code and close_notes (the closed-state UI policy as a data policy).",
    ),
    "emulator.incident.resolve_requires_close_fields": (
        "true",
        "Resolving or closing an incident needs close_code and close_notes (Data Policy Exception).",
    ),
    "emulator.rest.strict_content_type": ("true", "Reject request bodies without a JSON Content-Type (400/415)."),
}


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on")


class Settings:
    """Reads properties from the store, caching until a sys_properties row changes."""

    def __init__(self, store: Store):
        self.store = store
        self._cache: dict[str, str] | None = None

    def invalidate(self) -> None:
        self._cache = None

    def _load(self) -> dict[str, str]:
        if self._cache is None:
            values = {name: default for name, (default, _) in DEFAULTS.items()}
            for name, value in self.store.execute("SELECT name, value FROM sys_properties").fetchall():
                if name:
                    values[name] = value if value is not None else ""
            self._cache = values
        return self._cache

    def get(self, name: str, default: str = "") -> str:
        return self._load().get(name, default)

    def flag(self, name: str) -> bool:
        return truthy(self.get(name))

    def number(self, name: str, default: float) -> float:
        try:
            return float(self.get(name, str(default)))
        except ValueError:
            return default
