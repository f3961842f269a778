"""MailboxService in this process against a real Dovecot and both databases (`test_db`): the
server variants (no MOVE, no MOVE nor UIDPLUS, an "INBOX." namespace), faults injected at the
edges (a move or a database write that fails, a connection lost after a move, a changed
UIDVALIDITY, a secret that can't be read) and the IDLE loop. Faults come from wrappers passed
in (`mailbox_factory`, a Ledger subclass): the product code has no test hooks."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import dovecot
import peewee
import psycopg
import pytest
from database_support import postgres_url
from service_support import (
    SAMPLES,
    append,
    client,
    contents,
    counts,
    imap_settings,
    numbered,
    rows,
    seq_numbers,
    table_counts,
    uidvalidity,
    wait_for,
)
from support import sample

from imap_bouncer.ledger import Ledger, LedgerError
from imap_bouncer.mailbox import CapabilityError, DisconnectedError, Mailbox, MailboxError
from imap_bouncer.service import MailboxService

pytestmark = pytest.mark.dovecot

NAMES = list(SAMPLES)


@pytest.fixture
def ledger(test_db) -> Iterator[Ledger]:
    opened = Ledger.open(test_db.url)
    yield opened
    opened.close()


def service(account: dovecot.Account, ledger: Ledger | None, mailbox_factory=Mailbox,
            **settings) -> MailboxService:
    return MailboxService(imap_settings(account, **settings), ledger,
                          mailbox_factory=mailbox_factory)


def one_pass(svc: MailboxService):
    with svc.connected() as mailbox:
        return svc.run_pass(mailbox)


def append_numbered(account: dovecot.Account, folder: str = "INBOX") -> None:
    append(account, (numbered(sample(name), index) for index, name in enumerate(NAMES)),
           folder=folder)


def assert_filed(account: dovecot.Account, ledger: Ledger, prefix: str = "",
                 source: str = "INBOX") -> None:
    """Each sample is in the folder it belongs in, unread, recorded once with its events."""
    assert seq_numbers(account, source) == [], f"{source} is not empty"
    for folder in ("Processed", "Unknown", "Error"):
        expected = [i for i, name in enumerate(NAMES) if SAMPLES[name].folder == folder]
        assert sorted(seq_numbers(account, prefix + folder)) == expected, folder
    recorded = rows(ledger)
    assert sorted((r.target_folder, r.kind, r.events) for r in recorded) == \
        sorted((SAMPLES[n].folder, SAMPLES[n].kind, SAMPLES[n].recipients) for n in NAMES)
    mail = contents(account, [prefix + folder for folder in ("Processed", "Unknown", "Error")])
    assert all(b"\\Seen" not in data[b"FLAGS"]
               for messages in mail.values() for data in messages.values())


# -- server variants -------------------------------------------------------------------------


@pytest.mark.parametrize("imap_server", [dovecot.NO_MOVE], indirect=True, ids=lambda o: o.label)
def test_without_move_copy_and_uid_expunge(imap_server, ledger, caplog):
    append(imap_server, [b"Subject: someone else's, being deleted\r\n\r\nbye\r\n"],
           flags=(b"\\Deleted",))
    append_numbered(imap_server)
    caplog.set_level(logging.INFO, logger="imap_bouncer")

    summary = one_pass(service(imap_server, ledger))

    assert summary.processed == len(NAMES)
    assert "(COPY + UID EXPUNGE)" in caplog.text and "(MOVE)" not in caplog.text
    # UID EXPUNGE removed exactly our copies: the other client's \Deleted message stays.
    with client(imap_server) as c:
        c.select_folder("INBOX", readonly=True)
        assert c.search("ALL") == [1]
    with client(imap_server) as c:
        c.select_folder("INBOX")
        c.expunge()
    assert_filed(imap_server, ledger)
    assert all(r.moved for r in rows(ledger))


@pytest.mark.parametrize("imap_server", [dovecot.DOT_NAMESPACE], indirect=True,
                         ids=lambda o: o.label)
def test_dot_namespace_files_into_inbox_subfolders(imap_server, ledger):
    append_numbered(imap_server)

    one_pass(service(imap_server, ledger))

    with client(imap_server) as c:
        names = {name for _flags, _delimiter, name in c.list_folders()}
    assert {"INBOX.Processed", "INBOX.Unknown", "INBOX.Error"} <= names
    assert_filed(imap_server, ledger, prefix="INBOX.")
    # Recorded with the configured names, not the server's: a move of the server is harmless.
    assert {r.target_folder for r in rows(ledger)} == {"Processed", "Unknown", "Error"}


@pytest.mark.parametrize("imap_server", [dovecot.NO_MOVE_NO_UIDPLUS], indirect=True,
                         ids=lambda o: o.label)
def test_without_move_and_uidplus_refused_unless_allowed(imap_server, ledger, caplog):
    append(imap_server, [b"Subject: someone else's, being deleted\r\n\r\nbye\r\n"],
           flags=(b"\\Deleted",))
    append_numbered(imap_server)

    with pytest.raises(CapabilityError, match="allow_plain_expunge"):
        one_pass(service(imap_server, ledger))

    # Refused before anything was recorded or copied.
    assert table_counts(ledger) == (0, 0)
    assert counts(imap_server)["INBOX"] == len(NAMES) + 1
    assert sum(counts(imap_server, ["Processed", "Unknown", "Error"]).values()) == 0

    caplog.set_level(logging.INFO, logger="imap_bouncer")
    one_pass(service(imap_server, ledger, allow_plain_expunge=True))

    assert "(COPY + EXPUNGE)" in caplog.text
    assert_filed(imap_server, ledger)  # and the other client's \Deleted message went too:
    assert counts(imap_server)["INBOX"] == 0  # the price of allow_plain_expunge


# -- crash safety: faults between record and move --------------------------------------------


class MoveFailsOnce(Mailbox):
    """The connection dies as the first MOVE is sent: recorded, nothing moved."""

    failed = 0

    def move(self, uids, folder):
        if MoveFailsOnce.failed == 0:
            MoveFailsOnce.failed += 1
            self._drop()
            raise DisconnectedError("injected: connection lost before MOVE")
        super().move(uids, folder)


class ConnectionLostAfterMove(Mailbox):
    """Every MOVE is done by the server, but the reply is lost with the connection: moved,
    never noted as moved."""

    def move(self, uids, folder):
        super().move(uids, folder)
        self._drop()
        raise DisconnectedError("injected: connection lost after MOVE")


def test_move_fails_after_the_record_then_the_next_pass_only_moves(imap_server, ledger):
    append_numbered(imap_server)
    MoveFailsOnce.failed = 0

    with pytest.raises(MailboxError, match="injected"):
        one_pass(service(imap_server, ledger, mailbox_factory=MoveFailsOnce))

    assert counts(imap_server)["INBOX"] == len(NAMES)  # nothing moved ...
    recorded = rows(ledger)
    assert len(recorded) == len(NAMES) and not any(r.moved for r in recorded)  # ... all kept
    events = table_counts(ledger)

    summary = one_pass(service(imap_server, ledger))

    assert summary.only_moved == len(NAMES) and not summary.by_kind  # nothing analyzed again
    assert table_counts(ledger) == events
    assert [r.uid for r in rows(ledger)] == [r.uid for r in recorded]
    assert all(r.moved for r in rows(ledger))
    assert_filed(imap_server, ledger)


def test_connection_lost_after_a_move_nothing_is_counted_twice(imap_server, ledger):
    append_numbered(imap_server)

    with pytest.raises(MailboxError, match="injected"):
        one_pass(service(imap_server, ledger, mailbox_factory=ConnectionLostAfterMove))
    moved = len(NAMES) - counts(imap_server)["INBOX"]
    assert 0 < moved < len(NAMES)  # the first folder's MOVE was done, the others not sent
    events = table_counts(ledger)

    summary = one_pass(service(imap_server, ledger))

    assert summary.found == summary.only_moved == len(NAMES) - moved
    assert table_counts(ledger) == events
    assert_filed(imap_server, ledger)
    assert all(r.moved for r in rows(ledger))  # the MOVE whose answer was lost, too


class FailingLedger(Ledger):
    """A database that refuses the first `failures` batches."""

    failures = 1

    def record_batch(self, items):
        if self.failures > 0:
            self.failures -= 1
            raise LedgerError("cannot record a batch: OperationalError: injected: disk full")
        return super().record_batch(items)


@pytest.fixture
def failing_ledger(test_db) -> Iterator[FailingLedger]:
    opened = FailingLedger.open(test_db.url)
    yield opened
    opened.close()


def test_database_fault_moves_nothing(imap_server, failing_ledger):
    append_numbered(imap_server)

    with pytest.raises(LedgerError, match="disk full"):
        one_pass(service(imap_server, failing_ledger, batch_size=5))

    assert counts(imap_server) == {"INBOX": len(NAMES), "Processed": 0, "Unknown": 0,
                                   "Error": 0}
    assert table_counts(failing_ledger) == (0, 0)


def test_serve_retries_after_a_database_fault(imap_server, failing_ledger, caplog):
    append_numbered(imap_server)
    caplog.set_level(logging.INFO, logger="imap_bouncer")
    svc = service(imap_server, failing_ledger)
    stop = threading.Event()
    thread = threading.Thread(target=svc.serve, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: counts(imap_server, ["INBOX"])["INBOX"] == 0, 10, "a second try")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert "database unavailable: cannot record a batch" in caplog.text
    assert "nothing more was moved; retrying in" in caplog.text
    assert_filed(imap_server, failing_ledger)


def test_postgresql_connection_killed_between_passes(imap_server, caplog):
    """The server ends the service's session (a restart, a failover): the next pass fails,
    the loop reconnects, and the mail is filed once."""
    server = postgres_url()
    schema = f"test_kill_{int(time.time() * 1000) % 10**9}"
    name = f"ib-{schema}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in server else "?"
    url = f"{server}{separator}options=-c%20search_path%3D{schema}"
    ledger = Ledger.open(url, application_name=name)
    stop = threading.Event()
    svc = service(imap_server, ledger)
    thread = threading.Thread(target=svc.serve, args=(stop,))
    caplog.set_level(logging.INFO, logger="imap_bouncer")
    try:
        append(imap_server, [numbered(sample("postfix.eml"), 0)])
        thread.start()
        wait_for(lambda: counts(imap_server, ["Processed"])["Processed"] == 1, 10, "first")
        with psycopg.connect(server, autocommit=True) as admin:
            killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE application_name = %s", (name,)).fetchall()
        assert killed
        append(imap_server, [numbered(sample("exim.eml"), 1)])
        wait_for(lambda: counts(imap_server, ["Processed"])["Processed"] == 2, 10,
                 "the message after the database restart")
        assert sorted(seq_numbers(imap_server, "Processed")) == [0, 1]
        assert "database unavailable: " in caplog.text  # noticed, and survived
        with contextlib.suppress(peewee.PeeweeException):
            ledger.db.close()  # this thread's session was ended too
        assert len(rows(ledger)) == 2
    finally:
        stop.set()
        thread.join(timeout=10)
        ledger.close()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- UIDVALIDITY ---------------------------------------------------------------------------


def test_changed_uidvalidity_recognised_by_sha256_and_only_moved(imap_server, ledger):
    """The source folder is recreated (as a server migration or a restore would do): new
    UIDVALIDITY, same messages. Recorded ones are known by their bytes and only moved."""
    with client(imap_server) as c:
        c.create_folder("Bounces")
    append_numbered(imap_server, folder="Bounces")
    old_validity = uidvalidity(imap_server, "Bounces")
    MoveFailsOnce.failed = 0
    with pytest.raises(MailboxError, match="injected"):
        one_pass(service(imap_server, ledger, mailbox_factory=MoveFailsOnce,
                         source_folder="Bounces"))
    before = rows(ledger)
    assert len(before) == len(NAMES) and {r.uidvalidity for r in before} == {old_validity}
    events = table_counts(ledger)

    with client(imap_server) as c:  # the folder as recreated: same bytes, new UIDs
        c.select_folder("Bounces", readonly=True)
        saved = [data[b"BODY[]"] for _uid, data in
                 sorted(c.fetch(c.search("ALL"), ["BODY.PEEK[]"]).items())]
        c.close_folder()
        c.delete_folder("Bounces")
        c.create_folder("Bounces")
    append(imap_server, saved, folder="Bounces")
    new_validity = uidvalidity(imap_server, "Bounces")
    assert new_validity != old_validity

    summary = one_pass(service(imap_server, ledger, source_folder="Bounces"))

    assert summary.only_moved == len(NAMES) and not summary.by_kind
    assert table_counts(ledger) == events  # no new message rows, no events twice
    after = rows(ledger)
    assert {r.uidvalidity for r in after} == {new_validity}
    assert sorted(r.sha256 for r in after) == sorted(r.sha256 for r in before)
    assert all(r.moved for r in after)
    assert_filed(imap_server, ledger, source="Bounces")


# -- the IDLE loop ---------------------------------------------------------------------------


class MailArrivesDuringMove(Mailbox):
    """Another client delivers a message while the first MOVE is under way, so that the
    server announces it in the MOVE's reply, not during the IDLE that follows."""

    account: dovecot.Account
    delivered = threading.Event()

    def move(self, uids, folder):
        if not self.delivered.is_set():
            self.delivered.set()
            append(self.account, [numbered(sample("exim.eml"), 1)])
            deadline = time.monotonic() + 5
            while counts(self.account, ["INBOX"])["INBOX"] < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        super().move(uids, folder)


def test_mail_arriving_during_a_pass_is_not_left_until_the_idle_renewal(imap_server, ledger):
    MailArrivesDuringMove.account = imap_server
    MailArrivesDuringMove.delivered = threading.Event()
    append(imap_server, [numbered(sample("postfix.eml"), 0)])
    svc = service(imap_server, ledger, mailbox_factory=MailArrivesDuringMove, idle_renew=30)
    stop = threading.Event()
    thread = threading.Thread(target=svc.serve, args=(stop,))
    thread.start()
    try:
        wait_for(MailArrivesDuringMove.delivered.is_set, 10, "the first pass")
        started = time.monotonic()
        wait_for(lambda: counts(imap_server, ["Processed"])["Processed"] == 2, 2,
                 "the message that arrived during the pass (before: idle_renew, 30 s)")
        print(f"filed {time.monotonic() - started:.3f} s after its arrival")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(rows(ledger)) == 2


def test_server_shut_down_before_idle_is_a_disconnect(imap_server):
    """A shutdown between a pass and the next IDLE: the server answers IDLE with BYE, which
    imapclient reports as an odd reply; it is the end of the connection, and said so."""
    mailbox = Mailbox(imap_server.host, imap_server.port, security="none", timeout=10)
    mailbox.connect()
    mailbox.login(imap_server.user, imap_server.password)
    mailbox.select()
    imap_server.stop()
    with pytest.raises(DisconnectedError, match="closed the connection"):
        mailbox.wait_for_changes(5)
    assert not mailbox.connected


def test_serve_survives_an_unreadable_token_file(imap_server, ledger, tmp_path, caplog):
    """A token file being rewritten by another program can be missing for a moment: the
    loop retries instead of its thread dying while the process carries on."""
    token = tmp_path / "token"
    token.write_text(imap_server.password + "\n", encoding="utf-8")
    svc = service(imap_server, ledger, auth="xoauth2", password=None, token_file=token)
    token.write_text("\n", encoding="utf-8")  # emptied while being rewritten
    caplog.set_level(logging.INFO, logger="imap_bouncer")
    append(imap_server, [numbered(sample("postfix.eml"), 0)])
    stop = threading.Event()
    thread = threading.Thread(target=svc.serve, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: "token_file" in caplog.text, 10, "the failed login")
        assert thread.is_alive()
        token.write_text(imap_server.password + "\n", encoding="utf-8")
        wait_for(lambda: counts(imap_server, ["Processed"])["Processed"] == 1, 10,
                 "the message, once the token is back")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert imap_server.password not in caplog.text
