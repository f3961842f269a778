"""The database drivers a process loads.

peewee imports every driver it knows the moment it is itself imported: psycopg alone costs
tens of milliseconds, paid by each `imap-bouncer ingest -` the MTA starts, though a SQLite
installation never uses it. A command calls `load_for(url)` before anything imports peewee:
for a SQLite URL, peewee is imported while the PostgreSQL drivers look absent to it. Such a
process then cannot open PostgreSQL (models.connect says so); a process handles one database.
"""

from __future__ import annotations

import sys

POSTGRES_DRIVERS = ("psycopg", "psycopg2")

_postgres_hidden = False


def load_for(url: str) -> None:
    """Import the database layer for `url`: for SQLite, without the PostgreSQL drivers.

    Does nothing once peewee is imported (its drivers are decided then), nor for another URL.
    """
    global _postgres_hidden
    if "peewee" in sys.modules or not url.lower().startswith("sqlite:"):
        return
    hidden = [name for name in POSTGRES_DRIVERS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` -> ImportError
    try:
        import peewee  # noqa: F401
        from playhouse import db_url  # noqa: F401  (it probes the drivers too)
    finally:
        for name in hidden:  # anything else may import them again
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    _postgres_hidden = len(hidden) == len(POSTGRES_DRIVERS)


def postgres_hidden() -> bool:
    """True when peewee was imported without its PostgreSQL drivers (`load_for` SQLite)."""
    return _postgres_hidden
