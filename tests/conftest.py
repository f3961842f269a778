"""Shared pytest fixtures. Sections belong to different parts of the project; add yours as a
section of its own."""

from __future__ import annotations

from collections.abc import Iterator

import database_support  # tests/database_support.py: SQLite and PostgreSQL
import dovecot  # tests/dovecot.py: tests/ is on sys.path (pytest's default import mode)
import pytest

# -- IMAP: a real Dovecot (see tests/dovecot.py for how it runs and for external servers) -----


@pytest.fixture(scope="session")
def dovecot_pool() -> Iterator[dovecot.DovecotPool]:
    """Dovecot servers shared by the session, one per variant, started on first use."""
    pool = dovecot.DovecotPool()
    yield pool
    pool.close()


@pytest.fixture
def imap_server(request: pytest.FixtureRequest,
                dovecot_pool: dovecot.DovecotPool) -> Iterator[dovecot.Account]:
    """A fresh IMAP account: host, port, user, password, maildir, stop()/start()/restart().

    Variant by indirect parametrisation, e.g.
    `@pytest.mark.parametrize("imap_server", [dovecot.NO_MOVE], indirect=True)`.
    With IMAP_BOUNCER_TEST_IMAP_HOST set, an (emptied) external account instead; variants other
    than the default are skipped then.
    """
    options = getattr(request, "param", dovecot.NORMAL)
    if dovecot.external_configured():
        if options != dovecot.NORMAL:
            pytest.skip(f"Dovecot variant {options.label} needs the local Dovecot")
        yield dovecot.external_account()
        return
    server = dovecot_pool.get(options)
    yield server.add_user()
    if not server.running:  # a test stopped it: the next test gets it back
        server.start()


# -- Database: every backend (see tests/database_support.py for PostgreSQL's set-up) ----------


@pytest.fixture(params=[
    pytest.param("sqlite"),
    pytest.param("postgresql", marks=pytest.mark.postgres),
])
def test_db(request: pytest.FixtureRequest,
            tmp_path) -> Iterator[database_support.TestDatabase]:
    """An empty database of each backend: SQLite in tmp_path, PostgreSQL in a fresh schema.

    PostgreSQL comes from $IMAP_BOUNCER_TEST_DATABASE_URL: skipped when unset, failed when CI=true.
    """
    with database_support.test_database(request.param, tmp_path) as database:
        yield database
