"""The ledger and the schema, on SQLite and PostgreSQL (the `test_db` fixture, conftest.py)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import peewee
import pytest

from imap_bouncer import models
from imap_bouncer.ledger import Ledger, LedgerError, MessageItem, ReviewItem
from imap_bouncer.models import AddressState, Event, Message, Outbox, Transition
from imap_bouncer.report import Action, Kind, Original, Reason, Recipient, Report
from imap_bouncer.settings import Settings

MAILBOX = "bounces"


@pytest.fixture
def ledger(test_db) -> Iterator[Ledger]:
    ledger = Ledger.open(test_db.url)
    yield ledger
    ledger.close()


def bounce(*addresses: str) -> Report:
    return Report(
        kind=Kind.BOUNCE,
        recipients=[Recipient(address=a, action=Action.FAILED, status="5.1.1", smtp_code="550",
                              diagnostic="550 5.1.1 no such user", remote_mta="mx.example.net",
                              reason=Reason.USERUNKNOWN, permanent=True, evidence="5.1.1")
                    for a in addresses],
        original=Original(message_id="<orig@example.org>",
                          from_="News <news@Lists.Example.ORG>", list_id="<news.example.org>",
                          verp_recipient=addresses[0] if addresses else ""),
        analyzer="dsn",
    )


def item(uid: int, raw: bytes | None = None, uidvalidity: int = 7, report: Report | None = None,
         **kwargs) -> MessageItem:
    raw = raw if raw is not None else f"Message-ID: <{uid}@bounce>\r\n\r\nbody {uid}".encode()
    return MessageItem(mailbox=kwargs.pop("mailbox", MAILBOX), uidvalidity=uidvalidity, uid=uid,
                       target_folder=kwargs.pop("target_folder", "Processed"), raw=raw,
                       report=report if report is not None else bounce(f"user{uid}@example.com"),
                       message_id=f"<{uid}@bounce>", analyzer_version="1", **kwargs)


def counts() -> tuple[int, int]:
    return Message.select().count(), Event.select().count()


# -- recording --------------------------------------------------------------------------------


def test_records_message_and_events(ledger: Ledger) -> None:
    when = datetime(2026, 11, 20, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    raw = b"Subject: x\r\n\r\nhello"
    [result] = ledger.record_batch([item(5, raw, report=bounce("a@example.com", "b@example.com"),
                                         internal_date=when)])
    assert result.created and not result.relocated and not result.moved
    assert (result.mailbox, result.uidvalidity, result.uid) == (MAILBOX, 7, 5)
    assert result.sha256 == hashlib.sha256(raw).hexdigest()
    assert result.kind == "bounce" and result.target_folder == "Processed"

    row = Message.get_by_id(result.id)
    assert row.size == len(raw)
    assert row.message_id == "<5@bounce>"
    assert row.internal_date == when  # aware, converted to UTC and back
    assert row.internal_date.tzinfo is not None
    assert row.analyzer == "dsn" and row.analyzer_version == "1"
    assert row.errors == [] and row.raw is None  # store_raw is off
    events = list(Event.select().order_by(Event.address))
    assert [e.address for e in events] == ["a@example.com", "b@example.com"]
    first = events[0]
    assert first.message_id == result.id
    assert (first.action, first.status, first.smtp_code, first.reason, first.permanent) == (
        "failed", "5.1.1", "550", "userunknown", True)
    assert first.kind == "bounce"
    assert first.original_message_id == "<orig@example.org>"
    assert first.sender_domain == "lists.example.org"
    assert first.list_id == "<news.example.org>"
    assert first.verp_recipient == "a@example.com"
    assert first.diagnostic == "550 5.1.1 no such user" and first.remote_mta == "mx.example.net"


def test_store_raw(test_db) -> None:
    ledger = Ledger.open(test_db.url, store_raw=True)
    try:
        raw = bytes(range(256)) * 4
        [result] = ledger.record_batch([item(1, raw)])
        assert bytes(Message.get_by_id(result.id).raw) == raw
    finally:
        ledger.close()


def test_failed_analysis_is_recorded_with_its_errors(ledger: Ledger) -> None:
    broken = MessageItem(mailbox=MAILBOX, uidvalidity=7, uid=9, target_folder="Error",
                         raw=b"\xff\xfe garbage", errors=["ValueError: boom"])
    [result] = ledger.record_batch([broken])
    assert result.kind is None and result.errors == ("ValueError: boom",)
    assert counts() == (1, 0)
    assert Message.get_by_id(result.id).errors == ["ValueError: boom"]


def test_report_errors_and_extra_errors_are_both_kept(ledger: Ledger) -> None:
    report = bounce("a@example.com")
    report.errors.append("unreadable part 2")
    [result] = ledger.record_batch([item(1, report=report, errors=["late warning"])])
    assert result.errors == ("unreadable part 2", "late warning")


def test_message_without_body_sha256_unknown(ledger: Ledger) -> None:
    too_big = MessageItem(mailbox=MAILBOX, uidvalidity=7, uid=3, target_folder="Error",
                          size=40_000_000, errors=["too big"])
    [result] = ledger.record_batch([too_big])
    assert result.sha256 is None
    assert Message.get_by_id(result.id).size == 40_000_000


# -- idempotence ------------------------------------------------------------------------------


def test_recording_twice_does_not_duplicate(ledger: Ledger) -> None:
    batch = [item(1), item(2), item(3)]
    first = ledger.record_batch(batch)
    assert all(r.created for r in first)
    assert counts() == (3, 3)
    second = ledger.record_batch(batch)
    assert [r.id for r in second] == [r.id for r in first]
    assert not any(r.created or r.relocated for r in second)
    assert counts() == (3, 3)


def test_same_message_twice_in_one_batch(ledger: Ledger) -> None:
    results = ledger.record_batch([item(1), item(1)])
    assert results[0].id == results[1].id
    assert results[0].created and not results[1].created
    assert counts() == (1, 1)


def test_new_uidvalidity_same_bytes_relocates(ledger: Ledger) -> None:
    [old] = ledger.record_batch([item(10, b"same bytes", uidvalidity=7)])
    ledger.mark_moved(MAILBOX, 7, [10])
    # The folder was recreated: new UIDVALIDITY, new UID, same message.
    [new] = ledger.record_batch([item(3, b"same bytes", uidvalidity=8, report=bounce("x@y.z"))])
    assert new.id == old.id and new.relocated and not new.created
    assert (new.uidvalidity, new.uid, new.moved) == (8, 3, False)
    assert counts() == (1, 1)  # no second message, no events from the second report
    assert set(ledger.find_recorded(MAILBOX, 8, [3])) == {3}
    assert ledger.find_recorded(MAILBOX, 7, [10]) == {}
    # ... and recording it again at its new address is a plain repeat.
    [again] = ledger.record_batch([item(3, b"same bytes", uidvalidity=8)])
    assert again.id == old.id and not again.relocated and not again.created


def test_relocation_needs_only_the_bytes(ledger: Ledger) -> None:
    [old] = ledger.record_batch([item(10, b"known", uidvalidity=7)])
    digest = hashlib.sha256(b"known").hexdigest()
    known = ledger.find_by_sha256(MAILBOX, [digest, "0" * 64])
    assert set(known) == {digest} and known[digest].id == old.id
    # The service skips the analysis: no report.
    skipped = MessageItem(mailbox=MAILBOX, uidvalidity=9, uid=1, target_folder="Processed",
                          sha256=digest.upper())
    [result] = ledger.record_batch([skipped])
    assert result.relocated and result.id == old.id and result.kind == "bounce"


def test_same_bytes_same_uidvalidity_is_a_new_record(ledger: Ledger) -> None:
    # A person moved the message back from Error to retry it: record it again.
    [first] = ledger.record_batch([item(1, b"retry me", target_folder="Error")])
    [second] = ledger.record_batch([item(2, b"retry me")])
    assert second.created and second.id != first.id
    assert counts() == (2, 2)
    assert ledger.find_by_sha256(MAILBOX, [first.sha256])[first.sha256].id == second.id


def test_sha256_matches_only_within_the_mailbox(ledger: Ledger) -> None:
    ledger.record_batch([item(1, b"shared", uidvalidity=1)])
    [other] = ledger.record_batch([item(1, b"shared", uidvalidity=2, mailbox="other")])
    assert other.created
    assert counts() == (2, 2)


def test_each_stored_row_is_relocated_once(ledger: Ledger) -> None:
    ledger.record_batch([item(1, b"twice", uidvalidity=1)])
    results = ledger.record_batch([item(1, b"twice", uidvalidity=2),
                                   item(2, b"twice", uidvalidity=2)])
    assert results[0].relocated and results[1].created
    assert Message.select().count() == 2


# -- transactions -----------------------------------------------------------------------------


def test_one_commit_per_batch(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    commits = []
    real_commit = ledger.db.commit
    monkeypatch.setattr(ledger.db, "commit", lambda: (commits.append(1), real_commit())[1])
    ledger.record_batch([item(uid) for uid in range(1, 121)])
    assert len(commits) == 1
    assert counts() == (120, 120)


def test_database_failure_mid_batch_leaves_nothing(ledger: Ledger) -> None:
    ledger.record_batch([item(1)])
    # target_folder is NOT NULL: the third insert fails in the database.
    bad = MessageItem(mailbox=MAILBOX, uidvalidity=7, uid=30, raw=b"x",
                      target_folder=None,  # type: ignore[arg-type]
                      report=bounce("bad@example.com"))
    with pytest.raises(LedgerError) as caught:
        ledger.record_batch([item(2), item(3), bad, item(4)])
    assert isinstance(caught.value.__cause__, peewee.IntegrityError)
    assert "record a batch" in str(caught.value)
    assert counts() == (1, 1)
    # The ledger is still usable afterwards.
    assert ledger.record_batch([item(2)])[0].created


def test_other_failure_mid_batch_leaves_nothing(ledger: Ledger,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import imap_bouncer.ledger as ledger_module

    real = ledger_module._event_rows
    calls = []

    def flaky(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("bug in the middle of a batch")
        return real(*args)

    monkeypatch.setattr(ledger_module, "_event_rows", flaky)
    with pytest.raises(RuntimeError):
        ledger.record_batch([item(uid) for uid in range(1, 6)])
    assert counts() == (0, 0)


def test_failed_batch_is_not_retried_forever(ledger: Ledger,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = []
    real = Ledger._bulk_insert

    def colliding(*args, **kwargs):
        attempts.append(1)
        raise peewee.IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(Ledger, "_bulk_insert", colliding)
    with pytest.raises(LedgerError):
        ledger.record_batch([item(1)])
    assert len(attempts) == 2  # one retry for a collision with another writer, no more
    monkeypatch.setattr(Ledger, "_bulk_insert", real)
    assert counts() == (0, 0)


def test_two_writers_recording_the_same_batch(ledger: Ledger) -> None:
    """Both succeed, the rows exist once: the loser of the race retries and finds them."""
    batch = [item(uid) for uid in range(1, 51)]
    barrier = threading.Barrier(2)
    results: list[list] = []
    errors: list[BaseException] = []

    def record() -> None:
        try:
            barrier.wait()
            results.append(ledger.record_batch(batch))  # each thread has its own connection
        except BaseException as err:
            errors.append(err)
        finally:
            ledger.db.close()

    threads = [threading.Thread(target=record) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert [r.id for r in results[0]] == [r.id for r in results[1]]
    assert counts() == (50, 50)


# -- reading and moving -----------------------------------------------------------------------


def test_find_recorded_and_mark_moved(ledger: Ledger) -> None:
    uids = list(range(1, 1201))  # more than one IN (...) chunk
    for start in range(0, len(uids), 400):
        ledger.record_batch([item(uid) for uid in uids[start:start + 400]])
    found = ledger.find_recorded(MAILBOX, 7, [*uids, 5000])
    assert set(found) == set(uids)
    assert not any(r.moved for r in found.values())
    assert ledger.find_recorded(MAILBOX, 8, uids) == {}
    assert ledger.find_recorded("other", 7, uids) == {}

    at = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    assert ledger.mark_moved(MAILBOX, 7, range(1, 701), at=at) == 700
    found = ledger.find_recorded(MAILBOX, 7, [1, 700, 701])
    assert found[1].moved and found[1].moved_at == at
    assert found[700].moved and not found[701].moved
    assert ledger.mark_moved(MAILBOX, 7, [99999]) == 0


def test_find_with_no_uids(ledger: Ledger) -> None:
    assert ledger.find_recorded(MAILBOX, 7, []) == {}
    assert ledger.find_by_sha256(MAILBOX, []) == {}
    assert ledger.record_batch([]) == []
    assert ledger.mark_moved(MAILBOX, 7, []) == 0


# -- schema and migrations --------------------------------------------------------------------


def test_migrations_twice_are_harmless(test_db) -> None:
    db = models.connect(test_db.url)
    try:
        assert models.schema_version(db) == 0
        assert models.upgrade(db) == models.LATEST_VERSION
        assert models.upgrade(db) == models.LATEST_VERSION
        versions = list(models._version_model(db).select().order_by(peewee.SQL("version")))
        assert [v.version for v in versions] == [m[0] for m in models.MIGRATIONS]
        assert versions[0].applied_at.tzinfo is not None
    finally:
        db.close()
    # Opening again (which upgrades) keeps the data.
    ledger = Ledger.open(test_db.url)
    ledger.record_batch([item(1)])
    ledger.close()
    ledger = Ledger.open(test_db.url)
    assert set(ledger.find_recorded(MAILBOX, 7, [1])) == {1}
    ledger.close()


def test_migrated_schema_matches_the_models(test_db) -> None:
    db = models.connect(test_db.url)
    try:
        models.upgrade(db)
        for model in models.MODELS:
            table = model._meta.table_name
            columns = {c.name: c for c in db.get_columns(table)}
            fields = {f.column_name: f for f in model._meta.sorted_fields}
            assert set(columns) == set(fields), table
            for name, field in fields.items():
                assert columns[name].null == field.null, f"{table}.{name}"
            indexed = {tuple(i.columns): i.unique for i in db.get_indexes(table)}
            for fields_, unique in [((f.column_name,), f.unique) for f in fields.values()
                                    if f.index or f.unique] + [
                    (tuple(cols), unique) for cols, unique in model._meta.indexes]:
                assert indexed.get(tuple(fields_)) == unique, f"{table} index {fields_}"
    finally:
        db.close()


def test_newer_schema_is_refused(test_db) -> None:
    db = models.connect(test_db.url)
    try:
        models.upgrade(db)
        models._version_model(db).create(version=models.LATEST_VERSION + 1, name="future",
                                         applied_at=datetime.now(UTC))
        with pytest.raises(models.SchemaError, match="newer"):
            models.upgrade(db)
    finally:
        db.close()
    with pytest.raises(LedgerError, match="newer"):
        Ledger.open(test_db.url)


def test_open_without_upgrade_checks_the_version(test_db) -> None:
    with pytest.raises(LedgerError, match="version 0"):
        Ledger.open(test_db.url, upgrade=False)
    Ledger.open(test_db.url).close()
    Ledger.open(test_db.url, upgrade=False).close()


def test_concurrent_upgrades_run_each_migration_once(test_db,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Several processes starting at once: one migrates, the others wait, then find it done.

    Each thread has its own Database object, so its own connection (its own PostgreSQL session).
    A slow extra migration widens the window in which an unguarded upgrade would run twice.
    """
    runs: list[int] = []
    inside = threading.Lock()

    def slow(db, migrator) -> None:
        assert inside.acquire(blocking=False), "two upgrades ran a migration at the same time"
        try:
            runs.append(threading.get_ident())
            time.sleep(0.5)
        finally:
            inside.release()

    extra = models.LATEST_VERSION + 1
    monkeypatch.setattr(models, "MIGRATIONS", (*models.MIGRATIONS, (extra, "slow", slow)))
    monkeypatch.setattr(models, "LATEST_VERSION", extra)

    workers = 4
    barrier = threading.Barrier(workers)
    results: list[int] = []
    errors: list[BaseException] = []

    def start() -> None:
        db = models.connect(test_db.url)
        try:
            barrier.wait()
            results.append(models.upgrade(db))
        except BaseException as err:
            errors.append(err)
        finally:
            db.close()

    threads = [threading.Thread(target=start) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert results == [extra] * workers
    assert len(runs) == 1
    db = models.connect(test_db.url)
    try:
        versions = [v.version for v in models._version_model(db).select()]
        assert sorted(versions) == [*range(1, extra + 1)]
    finally:
        db.close()


@pytest.mark.postgres
@pytest.mark.parametrize("test_db", ["postgresql"], indirect=True)
def test_upgrade_lock_is_released(test_db) -> None:
    db = models.connect(test_db.url)
    try:
        models.upgrade(db)
        held = db.execute_sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                              "AND pid = pg_backend_pid()").fetchone()[0]
        assert held == 0
        assert db.execute_sql("SHOW lock_timeout").fetchone()[0] == "0"
    finally:
        db.close()


def test_sqlite_connection_settings(tmp_path) -> None:
    db = models.connect(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 1000
    finally:
        db.close()


@pytest.mark.parametrize("test_db", ["sqlite"], indirect=True)
def test_sqlite_foreign_keys_enforced(ledger: Ledger) -> None:
    with pytest.raises(peewee.IntegrityError):
        Event.create(message=12345, kind="bounce", address="a@b.c", action="failed",
                     reason="userunknown", created_at=datetime.now(UTC))


# -- errors -----------------------------------------------------------------------------------


def test_unreachable_database_is_a_ledger_error_without_the_password() -> None:
    with pytest.raises(LedgerError) as caught:
        Ledger.open("postgresql://bouncer:s3cr3t-pw@127.0.0.1:1/nowhere?connect_timeout=2")
    assert "s3cr3t-pw" not in str(caught.value)
    assert isinstance(caught.value.__cause__, peewee.PeeweeException)


def test_url_without_database_name_does_not_echo_the_password() -> None:
    with pytest.raises(LedgerError) as caught:
        Ledger.open("postgresql://bouncer:s3cr3t-pw@db.example.org")
    assert "s3cr3t-pw" not in str(caught.value)
    assert "names no database" in str(caught.value)


def test_unusable_sqlite_path_is_a_ledger_error(tmp_path) -> None:
    with pytest.raises(LedgerError) as caught:
        Ledger.open(f"sqlite:///{tmp_path}/missing-dir/x.db")
    assert isinstance(caught.value.__cause__, peewee.OperationalError)


# -- a report that names no recipient ----------------------------------------------------------


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a made-up signing key


def anonymous_refusal() -> Report:
    """What the analyzer makes of a local MTA refusing a whole submission (too many
    recipients): one failure without an address."""
    return Report(
        kind=Kind.BOUNCE,
        recipients=[Recipient(address="", action=Action.FAILED, status="5.5.3", smtp_code="550",
                              diagnostic="550 5.5.3 too many recipients",
                              reason=Reason.TOOMANYCONN, permanent=False, evidence="phrase")],
        original=Original(message_id="<orig-anon@example.org>", from_="Anna <anna@example.org>"),
        analyzer="plaintext")


def test_a_report_naming_no_recipient_is_recorded_and_changes_no_state(test_db) -> None:
    """The event is kept (a person can see the refusal), but no send state exists for "", no
    transition is made, no DSN is planned to the sender, and a webhook whose URL needs the
    address gets no row, while one that does not gets the event."""
    settings = Settings(
        dsn={"enabled": True, "sender_domains": ["example.org"],
             "from_address": "Mail Delivery System <postmaster@example.org>",
             "only_signed": False},
        webhooks=[{"url": url, "events": ["event.recorded"], "secret": SECRET}
                  for url in ("https://hooks.example.net/all",
                              "https://hooks.example.net/by/{address}")])
    ledger = Ledger.open(test_db.url, notifications=settings)
    try:
        [result] = ledger.record_batch([item(1, report=anonymous_refusal())])
        assert result.kind == "bounce"
        [event] = ledger.events()
        assert (event.address, event.reason, event.permanent) == ("", "toomanyconn", False)
        assert AddressState.select().count() == 0 and Transition.select().count() == 0
        outbox = list(Outbox.select())
        assert [(row.channel, row.target) for row in outbox] == [
            ("webhook", "https://hooks.example.net/all")]
        assert outbox[0].payload["data"]["address"] == ""
    finally:
        ledger.close()


def test_a_review_never_gives_the_empty_address_a_state(ledger: Ledger) -> None:
    """A reviewed message is recorded with the verdict's recipients; should one ever arrive
    without an address, no state is made for it (the review names nobody to judge)."""
    review_item = ReviewItem(item(2, report=anonymous_refusal(), mailbox="review"),
                             verdict="hard", folder="Bounces/Hard")
    [result] = ledger.record_review([review_item])
    assert result.created and [e.address for e in ledger.events()] == [""]
    assert AddressState.select().count() == 0 and Transition.select().count() == 0
