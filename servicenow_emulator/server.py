"""Serve the emulator with uvicorn: HTTP, plus an optional HTTPS listener with a generated local CA."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from .app import create_app
from .emulator import Emulator
from .faults import FaultConfig, FaultInjector
from .seed import ensure_admin, generate, seed
from .tls import ensure_local_ca

log = logging.getLogger("servicenow_emulator")


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    seed: str = "demo"
    db: str = ":memory:"
    tls: bool = False
    tls_port: int = 8443
    tls_dir: str = ".emulator-tls"
    latency_ms: float = 0.0
    # None: not given (a new store seeds admin / admin; a reopened one keeps its users as they are).
    admin_user: str | None = None
    admin_password: str | None = None
    # The /emulator/admin/faults schema, applied over latency_ms and fault_seed.
    faults: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    ci_count: int = 0
    change_count: int = 0
    incident_count: int = 0
    fault_seed: int = 0
    log_level: str = "warning"


def build_emulator(options: ServeOptions) -> Emulator:
    """Create (or reopen) the store, seeding it when it is new.

    A reopened store is not re-seeded; ``--admin-user`` / ``--admin-password``, when given, are applied to
    it (that user becomes an admin with that password, created if missing). Invalid ``faults`` raise
    ValueError or TypeError before anything is opened.
    """
    injector = FaultInjector(FaultConfig(latency_ms=options.latency_ms, seed=options.fault_seed))
    if options.faults:
        injector.configure(options.faults)
    fresh = options.db == ":memory:" or not Path(options.db).exists()
    emulator = Emulator(options.db, faults=injector.config)
    if fresh:
        seed(
            emulator,
            options.seed,
            admin_user=options.admin_user or "admin",
            admin_password="admin" if options.admin_password is None else options.admin_password,
        )
        generate(
            emulator,
            ci_count=options.ci_count,
            change_count=options.change_count,
            incident_count=options.incident_count,
            progress=lambda message: print(f"seed: {message}", flush=True),
        )
        emulator.store.analyze()  # planner statistics for the seeded data
    elif options.admin_user is not None or options.admin_password is not None:
        ensure_admin(emulator, options.admin_user or "admin", options.admin_password)
    for name, value in options.properties.items():
        emulator.set_property(name, value)
    return emulator


async def serve(options: ServeOptions, emulator: Emulator | None = None) -> None:
    emulator = emulator or build_emulator(options)
    app = create_app(emulator)
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                app,
                host=options.host,
                port=options.port,
                log_level=options.log_level,
                access_log=False,
                server_header=False,
                timeout_graceful_shutdown=2,
            )
        )
    ]
    print(
        f"ServiceNow emulator: http://{options.host}:{options.port}  (seed={options.seed}, db={options.db})", flush=True
    )
    if options.tls:
        material = ensure_local_ca(Path(options.tls_dir))
        servers.append(
            uvicorn.Server(
                uvicorn.Config(
                    app,
                    host=options.host,
                    port=options.tls_port,
                    ssl_certfile=str(material.server_cert),
                    ssl_keyfile=str(material.server_key),
                    log_level=options.log_level,
                    access_log=False,
                    server_header=False,
                    timeout_graceful_shutdown=2,
                    lifespan="off",
                )
            )
        )
        https = f"https://{options.host}:{options.tls_port}"
        print(f"ServiceNow emulator: {https}  CA certificate: {material.ca_cert.resolve()}", flush=True)
    print(
        "Not a production system: seeded users and passwords are public (see servicenow_emulator/README.md).",
        flush=True,
    )
    await asyncio.gather(*(s.serve() for s in servers))
