"""Fixtures of the fault suite: a `Bench` (scenarios.Bench) on a fresh Dovecot account and
a fresh database of the backend the test asks for."""

from __future__ import annotations

from collections.abc import Iterator

import database_support
import pytest
from scenarios import Bench


def _bench(imap_server, backend: str, tmp_path) -> Iterator[Bench]:
    with database_support.test_database(backend, tmp_path) as database:
        admin = database_support.postgres_url() if backend == "postgresql" else ""
        yield Bench(imap_server, database.url, tmp_path / "work", backend,
                    postgres_admin_url=admin)


@pytest.fixture
def sqlite_bench(imap_server, tmp_path) -> Iterator[Bench]:
    yield from _bench(imap_server, "sqlite", tmp_path)


@pytest.fixture
def postgres_bench(imap_server, tmp_path) -> Iterator[Bench]:
    yield from _bench(imap_server, "postgresql", tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_bench(request, imap_server, tmp_path) -> Iterator[Bench]:
    yield from _bench(imap_server, request.param, tmp_path)
