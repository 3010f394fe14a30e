"""Fault injection: latency, error rates, dropped connections, quota cancellations and hibernation.

Set at start (``--faults JSON|@file``, ``--latency-ms``, ``--fault-seed``) and changed at runtime through
``/emulator/admin/faults``, with the same JSON schema (``FaultInjector.configure``). Random faults draw
from a seeded generator in request order, so a run is reproducible. Scripted faults (``script``) answer
the next N requests matching a method and path pattern, which is how tests make one exact request fail.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

QUOTA_MESSAGE = "Transaction cancelled: maximum execution time exceeded"
FAULT_KINDS = frozenset({"error", "drop", "drop_after", "quota", "hibernate"})


@dataclass
class ScriptedFault:
    """Answer the next ``times`` matching requests with ``status`` (or a drop / hibernation / quota)."""

    status: int = 503
    times: int = 1
    method: str = "*"
    path: str = ".*"
    retry_after: int | None = None
    # error | drop | drop_after | quota | hibernate
    kind: str = "error"
    skip: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and re.search(self.path, path) is not None


@dataclass
class FaultConfig:
    latency_ms: float = 0.0
    latency_per_row_ms: float = 0.0
    error_rates: dict[int, float] = field(default_factory=dict)
    drop_rate: float = 0.0
    drop_after_rate: float = 0.0
    quota_cancel_rate: float = 0.0
    hibernate: bool = False
    seed: int = 0
    script: list[ScriptedFault] = field(default_factory=list)
    # Paths that faults never touch (admin, health).
    exempt_prefix: str = "/emulator/"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["error_rates"] = {str(k): v for k, v in self.error_rates.items()}
        return data


@dataclass
class Decision:
    kind: str  # none | error | drop | drop_after | quota | hibernate
    status: int = 0
    retry_after: int | None = None


class FaultInjector:
    def __init__(self, config: FaultConfig | None = None):
        self.config = config or FaultConfig()
        self.rng = random.Random(self.config.seed)

    def configure(self, data: dict[str, Any], *, reset: bool = False) -> FaultConfig:
        """Change the configuration from JSON: the keys given replace the current ones, and with ``reset``
        (a PUT) every other setting but the seed goes back to its default. Everything is checked before
        anything changes: an invalid setting raises ValueError and leaves the configuration as it was."""
        if not isinstance(data, dict):
            raise ValueError("fault settings are a JSON object")
        allowed = set(FaultConfig.__dataclass_fields__)
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(
                f"unknown fault settings: {', '.join(sorted(unknown))}; known: {', '.join(sorted(allowed))}"
            )
        base = asdict(self.config)
        if reset:
            base.update({k: v for k, v in asdict(FaultConfig()).items() if k not in ("seed", "exempt_prefix")})
        try:
            config, rng = self._validated({**base, **data})
        except (AttributeError, TypeError) as exc:
            raise ValueError(f"bad fault settings: {exc}") from None
        self.config, self.rng = config, rng
        return config

    @staticmethod
    def _validated(merged: dict[str, Any]) -> tuple[FaultConfig, random.Random]:
        merged["error_rates"] = {int(k): float(v) for k, v in (merged.get("error_rates") or {}).items()}
        merged["script"] = [
            s if isinstance(s, ScriptedFault) else ScriptedFault(**s) for s in merged.get("script") or []
        ]
        for scripted in merged["script"]:
            if not all(isinstance(n, int) and n >= 0 for n in (scripted.times, scripted.skip)):
                raise ValueError("a scripted fault's times and skip are counts (integers >= 0)")
            if scripted.retry_after is not None and not isinstance(scripted.retry_after, int):
                raise ValueError(f"retry_after is a number of seconds, not {scripted.retry_after!r}")
            if not isinstance(scripted.method, str):
                raise ValueError(f"method is an HTTP method or *, not {scripted.method!r}")
            if scripted.kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {scripted.kind!r}; known: {', '.join(sorted(FAULT_KINDS))}")
            if scripted.kind == "error" and not (isinstance(scripted.status, int) and 400 <= scripted.status <= 599):
                raise ValueError(f"an error fault needs an HTTP error status (400-599), not {scripted.status!r}")
            try:
                re.compile(scripted.path)  # a bad pattern is an error now, not on the next request
            except re.error as exc:
                raise ValueError(f"bad path pattern {scripted.path!r}: {exc}") from None
        for status in merged["error_rates"]:
            if not 400 <= status <= 599:
                raise ValueError(f"error_rates keys are HTTP error statuses (400-599), not {status}")
        for name in ("latency_ms", "latency_per_row_ms", "drop_rate", "drop_after_rate", "quota_cancel_rate"):
            merged[name] = float(merged[name])
            if merged[name] < 0:
                raise ValueError(f"{name} must not be negative")
        config = FaultConfig(**merged)
        return config, random.Random(config.seed)

    def decide(self, method: str, path: str) -> Decision:
        cfg = self.config
        if path.startswith(cfg.exempt_prefix):
            return Decision("none")
        for scripted in cfg.script:
            if scripted.times > 0 and scripted.matches(method, path):
                if scripted.skip > 0:
                    scripted.skip -= 1
                    continue
                scripted.times -= 1
                return Decision(scripted.kind, scripted.status, scripted.retry_after)
        if cfg.hibernate:
            return Decision("hibernate", 200)
        draw = self.rng.random
        if cfg.drop_rate and draw() < cfg.drop_rate:
            return Decision("drop")
        if cfg.drop_after_rate and draw() < cfg.drop_after_rate:
            return Decision("drop_after")
        if cfg.quota_cancel_rate and draw() < cfg.quota_cancel_rate:
            return Decision("quota", 500)
        for status, rate in sorted(cfg.error_rates.items()):
            if rate and draw() < rate:
                return Decision("error", status, 1 if status == 429 else None)
        return Decision("none")
