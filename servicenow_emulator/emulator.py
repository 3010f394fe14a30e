"""The emulator's state: the store plus the services built on it, wired together once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .auth import Authenticator
from .dictionary import DICTIONARY, Dictionary
from .faults import FaultConfig, FaultInjector
from .limits import RateLimiter
from .outbound import OutboundRules
from .platform import SYSTEM, Platform
from .rules import default_rules
from .settings import Settings
from .store import Store


@dataclass
class Counters:
    """Request accounting, read by tests and benchmarks through /emulator/admin/stats."""

    requests: int = 0
    count_queries: int = 0
    by_route: Counter = field(default_factory=Counter)

    def reset(self) -> None:
        self.requests = 0
        self.count_queries = 0
        self.by_route.clear()

    def to_json(self) -> dict:
        return {"requests": self.requests, "count_queries": self.count_queries, "by_route": dict(self.by_route)}


class Emulator:
    """A local ServiceNow instance: storage, platform rules, auth, limits, faults and outbound rules."""

    def __init__(self, db: str = ":memory:", *, faults: FaultConfig | None = None, dictionary: Dictionary = DICTIONARY):
        self.dictionary = dictionary
        self.store = Store(db, dictionary)
        self.settings = Settings(self.store)
        self.platform = Platform(self.store, dictionary, self.settings, default_rules())
        self.auth = Authenticator(self.store, lambda: self.settings.get("glide.sys.default.tz") or "UTC")
        self.limiter = RateLimiter(self.store, self.settings)
        self.faults = FaultInjector(faults)
        self.outbound = OutboundRules(self)
        self.stats = Counters()
        self.platform.identity_listeners.append(self.auth.invalidate)
        self.platform.config_listeners.append(self._config_changed)
        self.platform.after_commit.append(self.outbound.on_commit)

    def _config_changed(self, table: str) -> None:
        if table == "sys_properties":
            self.settings.invalidate()
        elif table == "sys_rate_limit_rules":
            self.limiter.invalidate()
        elif table == "sys_script":
            self.outbound.invalidate()

    def set_property(self, name: str, value: str) -> None:
        """Create or update a system property (as an admin would in sys_properties)."""
        existing = self.store.find("sys_properties", {"name": name}, limit=1)
        if existing:
            self.platform.update("sys_properties", existing[0]["sys_id"], {"value": value}, SYSTEM)
        else:
            self.platform.insert("sys_properties", {"name": name, "value": value}, SYSTEM)
