"""Recording faults in a pass, against a real Dovecot and the real databases: a database
locked while the moves are noted (the moved flags must not stay stale), and a message the
recording cannot take (a poison message: shunted to Error, the rest flows). Faults are
injected from outside the product code: a Mailbox subclass, a second SQLite connection
holding the write lock, a monkeypatched event builder."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import dovecot
import pytest
from service_support import (
    FOLDERS,
    SAMPLES,
    append,
    client,
    counts,
    imap_settings,
    numbered,
    rows,
    seq_numbers,
)
from support import sample

from imap_bouncer import ledger as ledger_module
from imap_bouncer.ledger import Ledger, LedgerError
from imap_bouncer.mailbox import Mailbox
from imap_bouncer.service import MailboxService

pytestmark = pytest.mark.dovecot

NAMES = list(SAMPLES)
POSTFIX_ID = "<20240327090122.3F2A11C00B7@mail.example.org>"  # postfix.eml's Message-ID


def append_numbered(account: dovecot.Account, copies: int = 1) -> int:
    raws = [numbered(sample(NAMES[i % len(NAMES)]), i) for i in range(len(NAMES) * copies)]
    append(account, raws)
    return len(raws)


def one_pass(svc: MailboxService):
    with svc.connected() as mailbox:
        return svc.run_pass(mailbox)


def assert_each_once(account: dovecot.Account, ledger: Ledger, total: int) -> dict[int, str]:
    """Every message in exactly one target folder, the one its row names, recorded once and
    noted as moved. Returns number -> folder."""
    where: dict[int, str] = {}
    for folder in FOLDERS:
        for number in seq_numbers(account, folder):
            assert number not in where, f"message {number} in {where[number]} and {folder}"
            where[number] = folder
    assert seq_numbers(account, "INBOX") == []
    assert sorted(where) == list(range(total))
    recorded = rows(ledger)
    assert len(recorded) == total and len({r.uid for r in recorded}) == total
    for row in recorded:
        assert row.target_folder == where[row.uid - 1], row
        assert row.moved, f"UID {row.uid} moved but its row says not"
    return where


# -- 9: a stale moved flag ----------------------------------------------------------------


@pytest.fixture
def sqlite_path(tmp_path):
    return tmp_path / "ledger.db"


class LockAfterFirstMove(Mailbox):
    """The first MOVE is done; then another connection takes SQLite's write lock, so the
    note of that move (and of the next ones) fails with "database is locked"."""

    holder: sqlite3.Connection | None = None
    path = ""

    def move(self, uids, folder):
        super().move(uids, folder)
        if LockAfterFirstMove.holder is None:
            holder = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            holder.execute("BEGIN IMMEDIATE")
            LockAfterFirstMove.holder = holder


def test_database_locked_while_moves_are_noted_leaves_no_stale_flag(imap_server, sqlite_path):
    total = append_numbered(imap_server, copies=3)
    # A short busy timeout, so that the locked database fails fast instead of in 10 s.
    ledger = Ledger.open(f"sqlite:///{sqlite_path}", timeout=0.2,
                         pragmas=(("journal_mode", "wal"), ("busy_timeout", 200)))
    LockAfterFirstMove.path, LockAfterFirstMove.holder = str(sqlite_path), None
    try:
        svc = MailboxService(imap_settings(imap_server, batch_size=10), ledger,
                             mailbox_factory=LockAfterFirstMove)
        with pytest.raises(LedgerError, match="locked"):
            one_pass(svc)
        assert LockAfterFirstMove.holder is not None
        LockAfterFirstMove.holder.rollback()
        # Every MOVE was sent before the first note failed: all moved, none noted.
        assert counts(imap_server)["INBOX"] == 0
        assert not any(r.moved for r in rows(ledger))

        summary = one_pass(svc)  # the same service's next pass, as `run` would make it

        assert summary.found == 0
        assert_each_once(imap_server, ledger, total)
    finally:
        if LockAfterFirstMove.holder is not None:
            LockAfterFirstMove.holder.close()
        ledger.close()


def test_a_new_process_notes_the_moves_a_killed_one_did(imap_server, sqlite_path):
    """As after a SIGKILL between a MOVE and its note: the rows say not moved, the messages
    are gone from the source. A fresh service (a new process) notes them at its first pass,
    and leaves alone a row whose message is still in the source (it is only moved)."""
    total = append_numbered(imap_server)
    ledger = Ledger.open(f"sqlite:///{sqlite_path}")
    try:
        one_pass(MailboxService(imap_settings(imap_server), ledger))
        ledger_module.Message.update(moved=False, moved_at=None).execute()

        summary = one_pass(MailboxService(imap_settings(imap_server), ledger))

        assert summary.found == 0
        assert_each_once(imap_server, ledger, total)
    finally:
        ledger.close()


# -- 10: a poison message -----------------------------------------------------------------


@pytest.fixture
def ledger(test_db) -> Iterator[Ledger]:
    opened = Ledger.open(test_db.url)
    yield opened
    opened.close()


def poison_events(monkeypatch, message_id: str = POSTFIX_ID) -> list[str]:
    """Recording the events of the message with this Message-ID raises, every time."""
    real = ledger_module._event_rows
    raised: list[str] = []

    def event_rows(message_pk, report, *args, **kwargs):
        if report.message_id == message_id:
            raised.append(message_id)
            raise RuntimeError("injected: this message cannot be recorded")
        return real(message_pk, report, *args, **kwargs)

    monkeypatch.setattr(ledger_module, "_event_rows", event_rows)
    return raised


def test_a_poison_message_goes_to_error_and_the_rest_flows(imap_server, ledger, monkeypatch,
                                                           caplog):
    total = append_numbered(imap_server, copies=2)
    raised = poison_events(monkeypatch)

    summary = one_pass(MailboxService(imap_settings(imap_server, batch_size=5), ledger))

    assert raised  # the fault was hit
    assert summary.processed == total
    where = assert_each_once(imap_server, ledger, total)
    poisoned = {i for i in range(total) if NAMES[i % len(NAMES)] == "postfix.eml"}
    assert len(poisoned) == 2
    by_uid = {r.uid: r for r in rows(ledger)}
    for number in range(total):
        row, name = by_uid[number + 1], NAMES[number % len(NAMES)]
        if number in poisoned:
            assert where[number] == "Error"
            assert row.kind is None and row.events == 0
            assert any("recording failed (RuntimeError: injected" in e for e in row.errors)
        else:  # everything else as if nothing had happened
            expected = SAMPLES[name]
            assert (where[number], row.kind, row.events) == \
                (expected.folder, expected.kind, expected.recipients), name
    assert sum("recording failed" in e for e in summary.errors) == 2
    assert "recording them one by one" in caplog.text


def test_a_database_fault_is_not_taken_for_a_poison_message(imap_server, ledger, monkeypatch):
    """A batch refused by the database itself (here: its connection closed under it) stops
    the pass with nothing moved, as before; nothing is shunted to Error."""
    total = append_numbered(imap_server)
    real = Ledger.record_batch

    def closed_database(self, items):
        raise LedgerError("cannot record a batch: InterfaceError: injected") from \
            ledger_module.peewee.InterfaceError("connection already closed")

    monkeypatch.setattr(Ledger, "record_batch", closed_database)
    with pytest.raises(LedgerError, match="injected"):
        one_pass(MailboxService(imap_settings(imap_server), ledger))
    assert counts(imap_server)["INBOX"] == total
    assert rows(ledger) == []

    monkeypatch.setattr(Ledger, "record_batch", real)
    one_pass(MailboxService(imap_settings(imap_server), ledger))
    assert_each_once(imap_server, ledger, total)


def test_a_poison_message_in_a_review_folder_goes_to_error_too(imap_server, ledger,
                                                               monkeypatch):
    poison_events(monkeypatch)
    with client(imap_server) as c:
        c.create_folder("Review/Hard")
    append(imap_server, [numbered(sample("postfix.eml"), 0), numbered(sample("qmail.eml"), 1)],
           folder="Review/Hard")

    summary = one_pass(MailboxService(imap_settings(imap_server), ledger))

    assert summary.reviewed["hard"] == 2
    assert seq_numbers(imap_server, "Review/Hard") == []
    assert seq_numbers(imap_server, "Error") == [0]
    assert seq_numbers(imap_server, "Processed") == [1]
    by_uid = {r.uid: r for r in rows(ledger)}
    assert by_uid[1].target_folder == "Error" and by_uid[1].events == 0 and by_uid[1].moved
    assert any("recording failed (RuntimeError: injected" in e for e in by_uid[1].errors)
    assert by_uid[2].target_folder == "Processed" and by_uid[2].events == 1
    assert any("recording failed" in e for e in summary.errors)


def test_review_moves_done_but_not_noted_are_noted_by_the_next_process(imap_server, ledger):
    with client(imap_server) as c:
        c.create_folder("Review/Soft")
    append(imap_server, [numbered(sample("postfix.eml"), 0)], folder="Review/Soft")
    one_pass(MailboxService(imap_settings(imap_server), ledger))
    ledger_module.Message.update(moved=False, moved_at=None).execute()  # as if killed

    one_pass(MailboxService(imap_settings(imap_server), ledger))

    assert seq_numbers(imap_server, "Processed") == [0]
    assert [(r.target_folder, r.moved) for r in rows(ledger)] == [("Processed", True)]


def test_a_value_the_database_refuses_is_one_messages_problem(test_db, ledger):
    """PostgreSQL refuses a NUL byte in text (SQLite takes it): that error must read as the
    message's (shunted) and not as the database's (which would retry the pass forever)."""
    from imap_bouncer.ledger import MessageItem, is_database_fault
    from imap_bouncer.report import Action, Kind, Reason, Recipient, Report

    report = Report(kind=Kind.BOUNCE, message_id="<nul@mx>", analyzer="dsn", recipients=[
        Recipient(address="jo@example.net", action=Action.FAILED, status="5.1.1",
                  diagnostic="550 no such user\x00here", reason=Reason.USERUNKNOWN,
                  permanent=True)])
    item = MessageItem(mailbox="m", uidvalidity=1, uid=1, target_folder="Processed",
                       raw=b"raw", report=report, message_id="<nul@mx>")
    if test_db.backend == "sqlite":
        assert ledger.record_batch([item])[0].created
        return
    with pytest.raises(LedgerError, match="NUL") as refused:
        ledger.record_batch([item])
    assert not is_database_fault(refused.value)
    assert is_database_fault(LedgerError("cannot record: OperationalError: locked"))
