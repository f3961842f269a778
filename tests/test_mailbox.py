"""imap_bouncer.mailbox against a real Dovecot (tests/dovecot.py), variants included."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
import time
from datetime import date, datetime, timedelta

import dovecot
import imapclient
import pytest

from imap_bouncer.mailbox import (
    CapabilityError,
    ConnectError,
    DisconnectedError,
    LoginError,
    Mailbox,
    MailboxError,
)

pytestmark = pytest.mark.dovecot


def message(subject: str, body: str = "Delivery failed.\r\n") -> bytes:
    return (f"From: MAILER-DAEMON@example.test\r\nTo: bounces@example.test\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '-')}@example.test>\r\n"
            f"\r\n{body}").encode()


def new_mailbox(account: dovecot.Account, **kwargs) -> Mailbox:
    ca_file = str(account.ca_file) if account.ca_file else None
    return Mailbox(account.host, account.port, security=account.security, timeout=10,
                   ca_file=ca_file, **kwargs)


def open_mailbox(account: dovecot.Account, **kwargs) -> Mailbox:
    mailbox = new_mailbox(account, **kwargs)
    mailbox.connect()
    mailbox.login(account.user, account.password)
    return mailbox


def append(account: dovecot.Account, *messages: bytes, folder: str = "INBOX",
           flags: tuple = ()) -> list[int]:
    """APPEND from a separate connection; return the new UIDs (APPENDUID)."""
    with contextlib.closing(_Client(account)) as c:
        uids = []
        for raw in messages:
            response = c.client.append(folder, raw, flags=flags)
            match = re.search(rb"APPENDUID \d+ (\d+)", response)
            uids.append(int(match.group(1)) if match else 0)
        return uids


def flags_of(account: dovecot.Account, uids: list[int], folder: str = "INBOX") -> dict:
    with contextlib.closing(_Client(account)) as c:
        c.client.select_folder(folder, readonly=True)
        return c.client.get_flags(uids)


class _Client:
    def __init__(self, account: dovecot.Account) -> None:
        self.client = account.client()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.logout()


@pytest.fixture
def mbox(imap_server: dovecot.Account):
    mailbox = open_mailbox(imap_server)
    yield mailbox
    mailbox.logout()


def needs_local(account: dovecot.Account) -> None:
    if account.server is None:
        pytest.skip("needs the local Dovecot")


# -- connecting, logging in ----------------------------------------------------------------


def test_login_reads_capabilities_and_namespace(imap_server, mbox):
    caps = mbox.capabilities
    assert caps is not None
    if imap_server.server is not None:
        assert caps.move and caps.idle and caps.uidplus and caps.namespace
        assert (mbox.prefix, mbox.delimiter) == ("", "/")
    assert mbox.folder("INBOX") == "INBOX"
    assert mbox.folder("inbox") == "INBOX"


@pytest.mark.parametrize("imap_server", [dovecot.NO_MOVE, dovecot.NO_IDLE,
                                         dovecot.NO_MOVE_NO_UIDPLUS], indirect=True,
                         ids=lambda o: o.label)
def test_hidden_capabilities_are_seen_as_missing(imap_server, mbox):
    hidden = imap_server.options.hide_capabilities
    caps = mbox.capabilities
    assert caps.move is ("MOVE" not in hidden)
    assert caps.idle is ("IDLE" not in hidden)
    assert caps.uidplus is ("UIDPLUS" not in hidden)


def test_login_failure_is_clear_and_never_shows_the_password(imap_server, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wrong-Pa55word-zq81"
    mailbox = new_mailbox(imap_server)
    mailbox.connect()
    with pytest.raises(LoginError) as caught:
        mailbox.login(imap_server.user, wrong)
    text = str(caught.value)
    assert imap_server.user in text and imap_server.host in text and "refused" in text
    if imap_server.server is not None:
        assert "[AUTHENTICATIONFAILED] Authentication failed." in text  # the server's words
    chain = []
    err: BaseException | None = caught.value
    while err is not None:
        chain.append(repr(err) + str(err))
        err = err.__cause__ or err.__context__
    assert all(wrong not in part for part in chain)
    assert wrong not in caplog.text
    assert "LOGIN" in caplog.text  # the debug log did see the command, redacted
    mailbox.logout()


def test_password_never_logged_on_success(imap_server, caplog):
    caplog.set_level(logging.DEBUG)
    open_mailbox(imap_server).logout()
    assert imap_server.password not in caplog.text


def test_non_ascii_password_uses_authenticate_plain(imap_server):
    needs_local(imap_server)
    account = imap_server.server.add_user(password="pässwörd-ünïcode")
    mailbox = open_mailbox(account)
    assert mailbox.user == account.user
    mailbox.logout()


def test_xoauth2_login(imap_server):
    """Dovecot 2.3's XOAUTH2 mechanism checks the token with the passdb, like a password."""
    needs_local(imap_server)
    mailbox = Mailbox(imap_server.host, imap_server.port, security="none", timeout=10)
    mailbox.connect()
    mailbox.login(imap_server.user, oauth2_token=imap_server.password)
    assert mailbox.capabilities is not None
    mailbox.logout()

    mailbox.connect()
    with pytest.raises(LoginError) as caught:
        mailbox.login(imap_server.user, oauth2_token="ya29.not-a-valid-token")
    assert "ya29.not-a-valid-token" not in str(caught.value)
    assert "XOAUTH2" in str(caught.value)
    mailbox.logout()


def test_login_needs_exactly_one_secret(imap_server):
    mailbox = new_mailbox(imap_server)
    with pytest.raises(ValueError):
        mailbox.login(imap_server.user)
    with pytest.raises(ValueError):
        mailbox.login(imap_server.user, "a", oauth2_token="b")


def test_implicit_tls_with_private_ca(imap_server):
    needs_local(imap_server)
    if imap_server.tls_port is None:
        pytest.skip("no openssl: the Dovecot fixture runs without TLS")
    mailbox = Mailbox(imap_server.host, imap_server.tls_port, security="tls", timeout=10,
                      ca_file=str(imap_server.ca_file))
    mailbox.connect()
    mailbox.login(imap_server.user, imap_server.password)
    assert mailbox.select() > 0
    mailbox.logout()


def test_starttls_with_private_ca(imap_server):
    needs_local(imap_server)
    if imap_server.ca_file is None:
        pytest.skip("no openssl: the Dovecot fixture runs without TLS")
    mailbox = Mailbox(imap_server.host, imap_server.port, security="starttls", timeout=10,
                      ca_file=str(imap_server.ca_file))
    mailbox.connect()
    mailbox.login(imap_server.user, imap_server.password)
    mailbox.logout()


def test_tls_certificate_is_verified(imap_server):
    needs_local(imap_server)
    if imap_server.tls_port is None:
        pytest.skip("no openssl: the Dovecot fixture runs without TLS")
    mailbox = Mailbox(imap_server.host, imap_server.tls_port, security="tls", timeout=10)
    with pytest.raises(ConnectError) as caught:
        mailbox.connect()
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert caught.value.__cause__ is not None


def test_connect_refused_is_a_connect_error():
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        mailbox = Mailbox("127.0.0.1", port, security="none", timeout=5)
        with pytest.raises(ConnectError) as caught:
            mailbox.connect()
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


# -- searching and fetching ----------------------------------------------------------------


def test_search_and_fetch_leave_messages_unseen(imap_server, mbox):
    raws = [message("bounce one"), message("bounce two")]
    unseen = append(imap_server, *raws)
    seen = append(imap_server, message("already read"), flags=(imapclient.SEEN,))
    append(imap_server, message("being deleted"), flags=(imapclient.DELETED,))
    uidvalidity = mbox.select("INBOX")
    assert isinstance(uidvalidity, int) and uidvalidity > 0
    assert mbox.uidvalidity == uidvalidity

    assert mbox.search_uids() == unseen  # neither \Seen nor \Deleted ones
    assert mbox.search_uids(unseen=False) == sorted(unseen + seen)  # never \Deleted ones
    today = date.today()
    assert mbox.search_uids(unseen=False, since=today - timedelta(days=1)) == sorted(unseen + seen)
    assert mbox.search_uids(since=today + timedelta(days=2)) == []

    fetched = mbox.fetch(unseen)
    assert [m.uid for m in fetched] == unseen
    assert [m.raw for m in fetched] == raws
    assert all(not m.truncated and m.size == len(m.raw) for m in fetched)
    assert all(isinstance(m.internaldate, datetime) and m.internaldate.tzinfo for m in fetched)

    flags = flags_of(imap_server, unseen)
    assert all(imapclient.SEEN not in flags[uid] for uid in unseen)
    assert mbox.search_uids() == unseen


def test_fetch_cuts_big_messages_at_the_size_cap(imap_server, mbox):
    big = message("big bounce", "x" * 76 + "\r\n") + b"".join(
        b"%06d " % i + b"y" * 70 + b"\r\n" for i in range(3000))  # ~230 kB
    small = message("small bounce")
    uids = append(imap_server, big, small)
    mbox.select()
    fetched = {m.uid: m for m in mbox.fetch(uids, size_cap=10_000)}
    assert fetched[uids[0]].truncated
    assert fetched[uids[0]].raw == big[:10_000]
    assert fetched[uids[0]].size == len(big)
    assert not fetched[uids[1]].truncated and fetched[uids[1]].raw == small
    assert mbox.search_uids() == uids  # the partial fetch was a PEEK too


def test_fetch_skips_uids_that_are_gone(imap_server, mbox):
    uids = append(imap_server, message("still here"))
    mbox.select()
    assert [m.uid for m in mbox.fetch([*uids, uids[0] + 1000])] == uids
    assert mbox.fetch([]) == []


def test_commands_before_select_are_refused(mbox):
    with pytest.raises(MailboxError, match="no folder selected"):
        mbox.search_uids()


# -- folders ---------------------------------------------------------------------------------


@pytest.mark.parametrize("imap_server, processed, nested", [
    (dovecot.NORMAL, "Processed", "Bounces/Processed"),
    (dovecot.DOT_NAMESPACE, "INBOX.Processed", "INBOX.Bounces.Processed"),
], indirect=["imap_server"], ids=["slash", "inbox-dot"])
def test_folder_names_and_creation(imap_server, processed, nested):
    mbox = open_mailbox(imap_server)
    try:
        assert mbox.folder("Processed") == processed
        assert mbox.folder("Bounces/Processed") == nested
        assert mbox.folder(processed) == processed  # already full: unchanged
        assert mbox.folder("INBOX/Processed") == ("INBOX.Processed" if "." in processed
                                                  else "INBOX/Processed")

        wanted = ["Processed", "Unknown", "Error", "Bounces/Processed"]
        full = [mbox.folder(name) for name in wanted]
        assert mbox.ensure_folders(wanted, dry_run=True) == full
        assert mbox.ensure_folders(wanted, dry_run=True) == full  # nothing was created
        assert mbox.ensure_folders(wanted) == full
        assert mbox.ensure_folders(wanted) == []

        with contextlib.closing(_Client(imap_server)) as c:
            listed = {name for _flags, _delim, name in c.client.list_folders()}
            subscribed = {name for _flags, _delim, name in c.client.list_sub_folders()}
        assert set(full) <= listed and set(full) <= subscribed
        if imap_server.maildir is not None:  # Maildir++ on disk: .Processed, .Bounces.Processed
            assert (imap_server.maildir / ".Processed" / "cur").is_dir()
            assert (imap_server.maildir / ".Bounces.Processed" / "cur").is_dir()

        uids = append(imap_server, message("to be filed"))
        mbox.select("INBOX")
        mbox.move(uids, "Bounces/Processed")
        assert mbox.search_uids(unseen=False) == []
        with contextlib.closing(_Client(imap_server)) as c:
            c.client.select_folder(nested, readonly=True)
            assert len(c.client.search("ALL")) == 1
    finally:
        mbox.logout()


# -- moving ----------------------------------------------------------------------------------


@pytest.mark.parametrize("imap_server, how", [
    (dovecot.NORMAL, "(MOVE)"),
    (dovecot.NO_MOVE, "(COPY + UID EXPUNGE)"),
], indirect=["imap_server"], ids=["move", "copy-uid-expunge"])
def test_move(imap_server, how, caplog):
    caplog.set_level(logging.INFO, logger="imap_bouncer.mailbox")
    mbox = open_mailbox(imap_server)
    try:
        mbox.ensure_folders(["Processed"])
        uids = append(imap_server, message("move me"), message("move me too"))
        [other] = append(imap_server, message("someone else's deleted mail"),
                         flags=(imapclient.DELETED,))
        mbox.select()
        mbox.move(uids, "Processed")
        assert how in caplog.text
        # Only our UIDs left the folder: a message another client marked \Deleted stays.
        with contextlib.closing(_Client(imap_server)) as c:
            c.client.select_folder("INBOX", readonly=True)
            assert c.client.search("ALL") == [other]
            c.client.select_folder("Processed", readonly=True)
            moved = c.client.search("ALL")
            assert len(moved) == 2
            assert all(imapclient.SEEN not in f for f in c.client.get_flags(moved).values())
        mbox.move([], "Processed")  # nothing to do, no error
    finally:
        mbox.logout()


@pytest.mark.parametrize("imap_server", [dovecot.NO_MOVE_NO_UIDPLUS], indirect=True,
                         ids=["no-move-no-uidplus"])
def test_move_without_uidplus_needs_explicit_permission(imap_server):
    strict = open_mailbox(imap_server)
    try:
        strict.ensure_folders(["Processed"])
        uids = append(imap_server, message("stuck"))
        strict.select()
        with pytest.raises(CapabilityError, match="neither MOVE nor UIDPLUS"):
            strict.move(uids, "Processed")
        with contextlib.closing(_Client(imap_server)) as c:
            c.client.select_folder("Processed", readonly=True)
            assert c.client.search("ALL") == []  # refused before copying anything
    finally:
        strict.logout()

    lenient = open_mailbox(imap_server, allow_plain_expunge=True)
    try:
        lenient.select()
        lenient.move(uids, "Processed")
        assert lenient.search_uids(unseen=False) == []
    finally:
        lenient.logout()


def test_move_to_missing_folder_is_a_mailbox_error(imap_server, mbox):
    uids = append(imap_server, message("nowhere to go"))
    mbox.select()
    with pytest.raises(MailboxError, match="NoSuchFolder"):
        mbox.move(uids, "NoSuchFolder")
    assert mbox.connected
    assert mbox.search_uids() == uids


# -- waiting: IDLE and polling ---------------------------------------------------------------


@pytest.fixture(params=["plain", "tls"])
def idle_account(request, imap_server) -> dovecot.Account:
    """The account as given, and over implicit TLS: TLS buffers data the socket can't show."""
    return imap_server.over_tls() if request.param == "tls" else imap_server


@pytest.fixture
def idle_mbox(idle_account):
    mailbox = open_mailbox(idle_account)
    yield mailbox
    mailbox.logout()


def later(seconds: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


def test_idle_wakes_on_append_from_another_connection(imap_server, idle_mbox):
    mbox = idle_mbox
    mbox.select()
    assert mbox.search_uids() == []
    thread = later(0.5, lambda: append(imap_server, message("arrives while idling")))
    started = time.monotonic()
    assert mbox.wait_for_changes(timeout=20) is True
    assert time.monotonic() - started < 10
    thread.join()
    assert len(mbox.search_uids()) == 1  # out of IDLE, commands work again


def test_idle_times_out_quietly(idle_mbox):
    mbox = idle_mbox
    mbox.select()
    started = time.monotonic()
    assert mbox.wait_for_changes(timeout=1.0) is False
    assert 0.9 <= time.monotonic() - started < 5
    assert mbox.noop() is not None and mbox.connected


def test_idle_notices_a_server_restart_without_busy_looping(idle_account, idle_mbox):
    imap_server, mbox = idle_account, idle_mbox
    needs_local(imap_server)
    mbox.select()
    thread = later(0.5, imap_server.restart)
    wall, cpu = time.monotonic(), time.process_time()
    with pytest.raises(DisconnectedError):
        mbox.wait_for_changes(timeout=60)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    thread.join()
    assert wall < 10, "the disconnect should be noticed at once, not at the IDLE timeout"
    assert cpu < 1.0, f"{cpu:.2f}s CPU while waiting: a busy loop"
    assert not mbox.connected
    # Later calls fail at once too (no endless empty results).
    with pytest.raises(DisconnectedError):
        mbox.wait_for_changes(timeout=5)
    with pytest.raises(DisconnectedError):
        mbox.search_uids()
    # And a new connection works once the server is back.
    again = open_mailbox(imap_server)
    assert again.select() > 0
    again.logout()


def test_idle_notices_a_dropped_connection_without_bye(idle_account, idle_mbox):
    """The imap process dies (no BYE): EOF must still end the wait, without spinning."""
    imap_server, mbox = idle_account, idle_mbox
    needs_local(imap_server)
    mbox.select()
    log_text = imap_server.server.log_path.read_text()
    pids = re.findall(rf"Login: user=<{re.escape(imap_server.user)}>.*?mpid=(\d+)", log_text)
    assert pids, "no login line with mpid for this user in dovecot.log"
    thread = later(0.5, lambda: os.kill(int(pids[-1]), signal.SIGKILL))
    wall, cpu = time.monotonic(), time.process_time()
    with pytest.raises(DisconnectedError, match="connection lost while idling"):
        mbox.wait_for_changes(timeout=60)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    thread.join()
    assert wall < 10 and cpu < 1.0


def test_imapclient_alone_would_spin_after_a_disconnect(imap_server):
    """Why mailbox.py watches the socket itself (documents imapclient 4.1's behaviour)."""
    needs_local(imap_server)
    client = imap_server.client()
    client.select_folder("INBOX")
    client.idle()
    imap_server.restart()
    first = client.idle_check(timeout=5)
    started = time.monotonic()
    results = [client.idle_check(timeout=5) for _ in range(3)]
    assert time.monotonic() - started < 1.0  # three "5 s" waits returned at once...
    assert results == [[], [], []]  # ...with nothing: indistinguishable from a quiet timeout
    assert first == [] or first[0][0] == b"BYE"
    with contextlib.suppress(Exception):
        client.shutdown()


@pytest.mark.parametrize("imap_server", [dovecot.NO_IDLE], indirect=True, ids=["no-idle"])
def test_without_idle_the_caller_is_told_to_poll(imap_server, mbox):
    mbox.select()
    with pytest.raises(CapabilityError, match="poll"):
        mbox.wait_for_changes(timeout=1)
    assert mbox.connected
    append(imap_server, message("polled"))
    responses = mbox.noop()
    assert any(r[1] == b"EXISTS" for r in responses if isinstance(r, tuple) and len(r) > 1)
    assert len(mbox.search_uids()) == 1


def test_noop_after_server_stop_is_a_disconnect(imap_server, mbox):
    needs_local(imap_server)
    mbox.select()
    imap_server.stop()
    with pytest.raises(DisconnectedError):
        mbox.noop()
    with pytest.raises(DisconnectedError, match="not connected"):
        mbox.select()
    imap_server.start()
