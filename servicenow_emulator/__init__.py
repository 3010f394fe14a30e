"""A faithful local ServiceNow: Table, Attachment, Aggregate, Batch, CMDB and IRE APIs over SQLite.

Storage (``store``) is kept apart from HTTP (``app``); each platform rule lives in one module of
``rules``. Start it with ``python -m servicenow_emulator`` or ``prefect-servicenow emulator``.
"""

from .app import create_app
from .emulator import Emulator
from .seed import generate, seed

__all__ = ["Emulator", "create_app", "generate", "seed"]
