"""Test databases for every backend the ledger supports: SQLite and PostgreSQL.

SQLite: a fresh file in the test's tmp_path. PostgreSQL: the server named by
$IMAP_BOUNCER_TEST_DATABASE_URL (CI: postgresql://postgres@127.0.0.1:5432/test), with a fresh
schema per test, created before and dropped (CASCADE) after, selected through the connection's
search_path (`?options=-c search_path=...` in the URL), so parallel runs never see each other's
tables. Without the variable the PostgreSQL cases are skipped, except in CI (CI=true), where
they fail: a CI that silently skips them would prove nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_ENV = "IMAP_BOUNCER_TEST_DATABASE_URL"
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class TestDatabase:
    __test__ = False  # not a test class, despite the name

    backend: str
    url: str  # a URL imap_bouncer.models.connect() and Ledger.open() accept
    schema: str = ""  # PostgreSQL only


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def postgres_url() -> str:
    """The server URL from the environment; skip (or fail in CI) when it is not set."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        message = f"PostgreSQL tests need ${POSTGRES_ENV}, e.g. postgresql://postgres@127.0.0.1:5432/test"
        if in_ci():
            pytest.fail(message + " (required when CI=true)", pytrace=False)
        pytest.skip(message)
    return url


@contextmanager
def test_database(backend: str, tmp_path: Path) -> Iterator[TestDatabase]:
    if backend == "sqlite":
        yield TestDatabase("sqlite", f"sqlite:///{tmp_path / 'ledger.db'}")
        return
    import psycopg

    server = postgres_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in server else "?"
    url = f"{server}{separator}options=-c%20search_path%3D{schema}"
    try:
        yield TestDatabase("postgresql", url, schema)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
