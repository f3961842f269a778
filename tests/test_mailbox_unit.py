"""imap_bouncer.mailbox without Dovecot: names, capabilities, and an IDLE case a real server
only produces by chance (an event in the same packet as the IDLE continuation)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from imap_bouncer import mailbox as mailbox_module
from imap_bouncer.mailbox import Capabilities, Mailbox, MailboxError


def test_capabilities_are_parsed_once_from_any_case():
    caps = Capabilities.parse([b"IMAP4rev1", b"move", "UIDPLUS", b"IDLE"])
    assert (caps.move, caps.uidplus, caps.idle, caps.namespace) == (True, True, True, False)
    assert not Capabilities.parse([b"IMAP4REV1"]).move


@pytest.mark.parametrize("prefix, delimiter, name, full", [
    ("", "/", "Processed", "Processed"),
    ("", "/", "Bounces/Processed", "Bounces/Processed"),
    ("", ".", "Bounces/Processed", "Bounces.Processed"),
    ("INBOX.", ".", "Processed", "INBOX.Processed"),
    ("INBOX.", ".", "Bounces/Processed", "INBOX.Bounces.Processed"),
    ("INBOX.", ".", "INBOX.Processed", "INBOX.Processed"),
    ("INBOX.", ".", "INBOX/Processed", "INBOX.Processed"),
    ("INBOX.", ".", "inbox", "INBOX"),
    ("INBOX/", "/", "Error", "INBOX/Error"),
])
def test_folder_names(prefix, delimiter, name, full):
    mailbox = Mailbox("imap.example.test")
    mailbox.prefix, mailbox.delimiter = prefix, delimiter
    assert mailbox.folder(name) == full


def test_flat_namespace_has_no_sub_folders():
    mailbox = Mailbox("imap.example.test")
    mailbox.delimiter = None
    assert mailbox.folder("Processed") == "Processed"
    with pytest.raises(MailboxError, match="flat"):
        mailbox.folder("Bounces/Processed")


def test_security_and_default_ports():
    assert Mailbox("h").port == 993
    assert Mailbox("h", security="STARTTLS").port == 143
    assert Mailbox("h", 1143, security="none").port == 1143
    with pytest.raises(ValueError):
        Mailbox("h", security="ssl")


class FakeImapServer:
    """Just enough IMAP for login, select and one IDLE; IDLE's continuation and an EXISTS
    leave in one send(), so the EXISTS sits in the client's read buffer, not in the socket."""

    CAPS = b"IMAP4rev1 IDLE NAMESPACE UIDPLUS"

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"* OK [CAPABILITY " + self.CAPS + b"] fake ready\r\n")
            idle_tag = b""
            for line in lines:
                if line.strip() == b"DONE":
                    conn.sendall(idle_tag + b" OK Idle completed\r\n")
                    continue
                tag, command = line.split()[:2]
                command = command.upper()
                if command == b"CAPABILITY":
                    conn.sendall(b"* CAPABILITY " + self.CAPS + b"\r\n" + tag + b" OK done\r\n")
                elif command == b"LOGIN":
                    conn.sendall(tag + b" OK [CAPABILITY " + self.CAPS + b"] Logged in\r\n")
                elif command == b"NAMESPACE":
                    conn.sendall(b'* NAMESPACE (("" "/")) NIL NIL\r\n' + tag + b" OK done\r\n")
                elif command == b"SELECT":
                    conn.sendall(b"* 0 EXISTS\r\n* OK [UIDVALIDITY 42] UIDs valid\r\n"
                                 + tag + b" OK [READ-WRITE] Select completed\r\n")
                elif command == b"IDLE":
                    idle_tag = tag
                    conn.sendall(b"+ idling\r\n* 1 EXISTS\r\n")
                elif command == b"LOGOUT":
                    conn.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                    return
                else:
                    conn.sendall(tag + b" BAD unknown\r\n")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def fake_server():
    server = FakeImapServer()
    yield server
    server.close()


def test_idle_sees_an_event_already_in_the_read_buffer(fake_server):
    mailbox = Mailbox("127.0.0.1", fake_server.port, security="none", timeout=5)
    mailbox.connect()
    mailbox.login("user", "password")
    assert mailbox.select() == 42
    started = time.monotonic()
    assert mailbox.wait_for_changes(timeout=3) is True
    assert time.monotonic() - started < 1, "the buffered EXISTS waited for the timeout"
    mailbox.logout()


def test_without_the_buffer_check_the_event_would_wait(fake_server, monkeypatch):
    """Why `_buffered` exists: polling the socket alone misses the buffered EXISTS."""
    monkeypatch.setattr(mailbox_module, "_buffered", lambda client, timeout: False)
    mailbox = Mailbox("127.0.0.1", fake_server.port, security="none", timeout=5)
    mailbox.connect()
    mailbox.login("user", "password")
    mailbox.select()
    started = time.monotonic()
    changed = mailbox.wait_for_changes(timeout=1)
    assert time.monotonic() - started >= 0.9
    assert changed is True  # only found by DONE, a whole timeout late
    mailbox.logout()
