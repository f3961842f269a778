"""The IMAP side: a small class over imapclient with only the verbs the service needs.

Why a wrapper at all: capabilities are decided in one place (MOVE, UIDPLUS, IDLE), folder
names are made full in one place (namespace prefix and delimiter), every imapclient, imaplib,
socket and TLS error leaves as a `MailboxError` chained to its cause, and an IDLE connection
the server has dropped is reported as `DisconnectedError` instead of imapclient 4.1's empty
`idle_check()` result, which otherwise turns an IDLE loop into a busy loop.

Messages are only ever read with BODY.PEEK, so nothing is marked \\Seen here.
This module imports nothing else of the project's.
"""

from __future__ import annotations

import contextlib
import imaplib
import io
import logging
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import imapclient
from imapclient.exceptions import CapabilityError as _ImapCapabilityError
from imapclient.exceptions import LoginError as _ImapLoginError
from imapclient.imapclient import _parse_untagged_response

log = logging.getLogger(__name__)

# RFC 2177: servers may drop an IDLE after 30 minutes of silence; renew well before that.
MAX_IDLE_SECONDS = 25 * 60
# Untagged responses that mean "the selected folder changed: look again".
_CHANGE_RESPONSES = frozenset({b"EXISTS", b"RECENT", b"EXPUNGE", b"FETCH", b"VANISHED"})


class MailboxError(Exception):
    """Anything that went wrong talking IMAP; the cause is chained."""


class ConnectError(MailboxError):
    """No IMAP session: DNS, TCP, TLS (including certificate verification) or STARTTLS."""


class LoginError(MailboxError):
    """The server refused the credentials, or the login can't be attempted safely."""


class DisconnectedError(MailboxError):
    """The connection is gone (BYE, EOF, socket error, timeout): reconnect and start over."""


class CapabilityError(MailboxError):
    """The server lacks what an operation needs (e.g. IDLE: poll instead)."""


class Security(StrEnum):
    TLS = "tls"  # implicit TLS, usually port 993
    STARTTLS = "starttls"  # plain connect, then STARTTLS before login, usually port 143
    NONE = "none"  # plain text: tests and localhost only


_DEFAULT_PORTS = {Security.TLS: 993, Security.STARTTLS: 143, Security.NONE: 143}


@dataclass(frozen=True)
class Capabilities:
    """The few server capabilities that change what we do, decided once after login."""

    move: bool
    uidplus: bool
    idle: bool
    namespace: bool

    @classmethod
    def parse(cls, raw: Iterable[bytes | str]) -> Capabilities:
        names = {(c.decode() if isinstance(c, bytes) else c).upper() for c in raw}
        return cls(move="MOVE" in names, uidplus="UIDPLUS" in names, idle="IDLE" in names,
                   namespace="NAMESPACE" in names)


@dataclass(frozen=True)
class FetchedMessage:
    """One message as fetched. `truncated`: only the first `size_cap` bytes are in `raw`."""

    uid: int
    raw: bytes
    size: int
    internaldate: datetime | None
    truncated: bool = False


class Mailbox:
    """One IMAP connection to the bounce mailbox.

    Use: `connect()`, `login()`, `ensure_folders()`, `select()`, `search_uids()`, `fetch()`,
    `move()`, then `wait_for_changes()` (IDLE) or `noop()` (polling), `logout()`.
    `allow_plain_expunge`: without MOVE and UIDPLUS the only way to remove moved messages
    is a plain EXPUNGE, which also removes messages other clients marked \\Deleted; that is
    refused unless this is True.
    """

    def __init__(self, host: str, port: int | None = None, *,
                 security: Security | str = Security.TLS, timeout: float = 60.0,
                 ca_file: str | None = None, verify_certificate: bool = True,
                 allow_plain_expunge: bool = False) -> None:
        self.security = Security(str(security).lower())
        self.host = host
        self.port = port or _DEFAULT_PORTS[self.security]
        self.timeout = timeout
        self.ca_file = ca_file
        self.verify_certificate = verify_certificate
        self.allow_plain_expunge = allow_plain_expunge
        self.user: str | None = None
        self.capabilities: Capabilities | None = None
        self.prefix = ""
        self.delimiter: str | None = "/"
        self.selected: str | None = None
        self.uidvalidity: int | None = None
        self._client: imapclient.IMAPClient | None = None
        self._idling = False

    def __repr__(self) -> str:
        return f"<Mailbox {self.user or '-'}@{self.host}:{self.port} {self.security}>"

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logout()

    # -- connection --------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        """Verification on unless the settings turn it off; `ca_file` replaces the system
        trust store (private CAs)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.verify_certificate:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def connect(self) -> None:
        if self._client is not None:
            self.logout()
        where = f"{self.host}:{self.port} ({self.security})"
        if self.security is Security.NONE and self.host not in ("localhost", "127.0.0.1", "::1"):
            log.warning("connecting to %s without TLS: the password travels in clear", where)
        try:
            context = None if self.security is Security.NONE else self._ssl_context()
            client = imapclient.IMAPClient(
                self.host, self.port, ssl=self.security is Security.TLS, ssl_context=context,
                timeout=imapclient.SocketTimeout(connect=self.timeout, read=self.timeout))
        except (OSError, imaplib.IMAP4.error) as err:
            raise ConnectError(f"can't connect to {where}: {_describe(err)}") from err
        client.normalise_times = False  # timezone-aware INTERNALDATE
        if self.security is Security.STARTTLS:
            try:
                client.starttls(context)
            except (OSError, imaplib.IMAP4.error) as err:
                with contextlib.suppress(Exception):
                    client.shutdown()
                raise ConnectError(f"STARTTLS with {where} failed: {_describe(err)}") from err
        self._client = client
        log.debug("connected to %s", where)

    def login(self, user: str, password: str | None = None, *,
              oauth2_token: str | None = None) -> None:
        """Password (LOGIN; AUTHENTICATE PLAIN for non-ASCII) or an OAuth 2 token (XOAUTH2).

        Neither secret ever appears in an exception or a log line: server texts are searched
        for it and the chain is cut when found.
        """
        if (password is None) == (oauth2_token is None):
            raise ValueError("give exactly one of password and oauth2_token")
        secret = password if password is not None else oauth2_token
        assert secret is not None
        client = self._require_client()
        method = "XOAUTH2" if oauth2_token is not None else "LOGIN"
        try:
            if oauth2_token is not None:
                if not client.has_capability("AUTH=XOAUTH2"):
                    raise LoginError(f"{self.host} doesn't offer AUTH=XOAUTH2")
                client.oauth2_login(user, oauth2_token)
            elif secret.isascii():
                client.login(user, secret)
            else:
                # imaplib sends LOGIN arguments as ASCII; SASL PLAIN carries UTF-8.
                if not client.has_capability("AUTH=PLAIN"):
                    raise LoginError("the password has non-ASCII characters and "
                                     f"{self.host} doesn't offer AUTH=PLAIN")
                method = "AUTHENTICATE PLAIN"
                client.plain_login(user, secret)
        except _ImapLoginError as err:
            text = _describe(err)
            if secret and secret in text:
                raise LoginError(f"{self.host} refused {method} as {user!r}") from None
            raise LoginError(f"{self.host} refused {method} as {user!r}: {text}") from err
        except (OSError, imaplib.IMAP4.abort) as err:
            self._drop()
            raise DisconnectedError(f"connection to {self.host} lost during login") from err
        except imaplib.IMAP4.error as err:
            text = _describe(err)
            if secret and secret in text:
                raise LoginError(f"{method} as {user!r} failed") from None
            raise LoginError(f"{method} as {user!r} failed: {text}") from err
        self.user = user
        log.info("logged in to %s:%s as %s", self.host, self.port, user)
        with self._errors("reading capabilities and namespace"):
            self.capabilities = Capabilities.parse(client.capabilities())
            self._load_namespace(client)
        log.debug("%s: %s, personal namespace %r, delimiter %r", self.host, self.capabilities,
                  self.prefix, self.delimiter)

    def _load_namespace(self, client: imapclient.IMAPClient) -> None:
        assert self.capabilities is not None
        if self.capabilities.namespace:
            personal = client.namespace().personal
            if personal:
                prefix, delimiter = personal[0]
                self.prefix, self.delimiter = prefix or "", delimiter or None
                return
        # No NAMESPACE: LIST "" "" answers with the hierarchy delimiter alone.
        listing = client.list_folders("", "")
        delimiter = listing[0][1] if listing else b"/"
        self.prefix = ""
        self.delimiter = delimiter.decode() if isinstance(delimiter, bytes) else delimiter

    def logout(self) -> None:
        """Say goodbye if the connection still works; never raises."""
        client, self._client = self._client, None
        self._idling = False
        self.selected = None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # already gone: nothing to tell the server
            with contextlib.suppress(Exception):
                client.shutdown()

    @property
    def connected(self) -> bool:
        return self._client is not None

    # -- folders -----------------------------------------------------------------------------

    def folder(self, name: str) -> str:
        """Full server name for a configured name: "Processed" -> "INBOX.Processed".

        "/" in `name` separates levels and becomes the server's delimiter; INBOX and names
        already carrying the personal prefix ("INBOX.Processed", or "INBOX/Processed" on a
        server whose prefix is "INBOX.") are left alone.
        """
        if name.upper() == "INBOX":
            return "INBOX"
        if self.prefix and name.startswith(self.prefix):
            return name
        parts = [part for part in name.split("/") if part]
        if not parts:
            raise ValueError(f"empty folder name {name!r}")
        if len(parts) > 1 and not self.delimiter:
            raise MailboxError(f"{self.host} has a flat namespace: no sub-folders ({name!r})")
        joined = (self.delimiter or "").join(parts)
        if self.prefix and joined.startswith(self.prefix):
            return joined
        return self.prefix + joined

    def folder_exists(self, name: str) -> bool:
        full = self.folder(name)
        with self._errors(f"looking up folder {full!r}"):
            return self._require_client().folder_exists(full)

    def ensure_folders(self, names: Iterable[str], *, dry_run: bool = False) -> list[str]:
        """Create the folders that don't exist (and subscribe them); return their full names.

        With `dry_run`, only list what would be created.
        """
        client = self._require_client()
        missing = []
        for name in names:
            full = self.folder(name)
            with self._errors(f"looking up folder {full!r}"):
                exists = client.folder_exists(full)
            if exists:
                continue
            missing.append(full)
            if dry_run:
                log.info("would create folder %s", full)
                continue
            try:
                with self._errors(f"creating folder {full!r}"):
                    client.create_folder(full)
            except DisconnectedError:
                raise
            except MailboxError:
                # Another instance may have created it meanwhile; only that is fine.
                with self._errors(f"looking up folder {full!r}"):
                    if not client.folder_exists(full):
                        raise
            else:
                log.info("created folder %s", full)
            with contextlib.suppress(imaplib.IMAP4.error):
                client.subscribe_folder(full)
        return missing

    def select(self, folder: str = "INBOX") -> int:
        """Select the source folder read-write; return its UIDVALIDITY.

        UIDs are only meaningful together with UIDVALIDITY: the caller stores both.
        """
        full = self.folder(folder)
        with self._errors(f"selecting {full!r}"):
            response = self._require_client().select_folder(full)
        uidvalidity = response.get(b"UIDVALIDITY")
        if not isinstance(uidvalidity, int):
            raise MailboxError(f"{self.host} sent no UIDVALIDITY for {full!r}")
        self.selected, self.uidvalidity = full, uidvalidity
        self._announced_mail()  # SELECT's own EXISTS is no news
        log.debug("selected %s: UIDVALIDITY %s, %s messages", full, uidvalidity,
                  response.get(b"EXISTS"))
        return uidvalidity

    # -- messages ----------------------------------------------------------------------------

    def search_uids(self, *, unseen: bool = True, since: date | None = None) -> list[int]:
        """UIDs in the selected folder, ascending: unseen only by default, and/or SINCE a day.

        Messages marked \\Deleted are always left out: another client is removing them, or a
        move of ours failed after its COPY, so they are already filed.
        SINCE compares the server's INTERNALDATE by calendar day (RFC 3501), not the Date
        header.
        """
        criteria: list[Any] = ["UNSEEN", "UNDELETED"] if unseen else ["UNDELETED"]
        if since is not None:
            criteria += ["SINCE", since if not isinstance(since, datetime) else since.date()]
        with self._errors("searching"):
            uids = self._require_selected().search(criteria)
        return sorted(int(uid) for uid in uids)

    def fetch(self, uids: Sequence[int], *, size_cap: int | None = None) -> list[FetchedMessage]:
        """Fetch messages by UID with BODY.PEEK[] (never sets \\Seen), ascending by UID.

        Messages larger than `size_cap` bytes come back cut to their first `size_cap` bytes
        (BODY.PEEK[]<0.N>) with `truncated` set: enough for the headers and the DSN parts of
        a bounce without pulling a 30 MB attachment. UIDs that no longer exist are skipped.
        """
        if not uids:
            return []
        client = self._require_selected()
        uids = sorted(set(uids))
        body = "BODY.PEEK[]" if size_cap is None else f"BODY.PEEK[]<0.{size_cap}>"
        with self._errors(f"fetching {len(uids)} messages"):
            # One command: a partial fetch returns whole messages up to the cap, and the
            # size says which ones were cut.
            response = client.fetch(uids, ["RFC822.SIZE", "INTERNALDATE", body])
        big = set() if size_cap is None else {
            uid for uid, data in response.items() if data.get(b"RFC822.SIZE", 0) > size_cap}
        return self._messages(response, uids, big)

    def _messages(self, response: dict[int, dict[bytes, Any]], uids: list[int],
                  truncated: set[int]) -> list[FetchedMessage]:
        messages = []
        for uid in uids:
            data = response.get(uid)
            raw = None if data is None else _body(data)
            if raw is None:
                log.warning("%s UID %s: not returned by FETCH (expunged meanwhile?)",
                            self.selected, uid)
                continue
            messages.append(FetchedMessage(
                uid=uid, raw=raw, size=int(data.get(b"RFC822.SIZE", len(raw))),
                internaldate=data.get(b"INTERNALDATE"), truncated=uid in truncated))
        return messages

    def move(self, uids: Sequence[int], folder: str) -> None:
        """Move messages out of the selected folder.

        UID MOVE when offered; else UID COPY + \\Deleted + UID EXPUNGE (UIDPLUS), which only
        expunges these UIDs; else plain EXPUNGE, only with `allow_plain_expunge`. Checked before
        anything is copied, so a refusal leaves no duplicates behind.
        """
        if not uids:
            return
        client = self._require_selected()
        how = self.move_method()
        target = self.folder(folder)
        uids = sorted(set(uids))
        with self._errors(f"moving UIDs {_uid_text(uids)} from {self.selected} to {target}"):
            if how == "MOVE":
                client.move(uids, target)
            else:
                client.copy(uids, target)
                client.add_flags(uids, [imapclient.DELETED], silent=True)
                if how == "COPY + UID EXPUNGE":
                    client.uid_expunge(uids)
                else:
                    client.expunge()
        log.info("moved UIDs %s from %s to %s (%s)", _uid_text(uids), self.selected, target, how)

    def move_method(self) -> str:
        """How `move` moves: "MOVE", "COPY + UID EXPUNGE" or "COPY + EXPUNGE"; CapabilityError
        when it may not. Ask before recording anything, so that a refusal leaves nothing
        recorded and waiting for a move that can't happen."""
        caps = self._require_capabilities()
        if caps.move:
            return "MOVE"
        if caps.uidplus:
            return "COPY + UID EXPUNGE"
        if self.allow_plain_expunge:
            return "COPY + EXPUNGE"
        raise CapabilityError(
            f"{self.host} offers neither MOVE nor UIDPLUS, so moved messages could only be "
            "removed with a plain EXPUNGE, which also removes messages other clients "
            "marked \\Deleted; allow that explicitly (allow_plain_expunge) to go on")

    # -- waiting for mail --------------------------------------------------------------------

    def noop(self) -> list[Any]:
        """Keep-alive and change check for polling (servers without IDLE)."""
        with self._errors("NOOP"):
            _text, responses = self._require_client().noop()
        self._raise_on_bye(responses)
        return responses

    def idle_start(self) -> None:
        caps = self._require_capabilities()
        if not caps.idle:
            raise CapabilityError(f"{self.host} doesn't offer IDLE: poll instead")
        with self._errors("starting IDLE"):
            self._require_selected().idle()
        self._idling = True

    def idle_check(self, timeout: float) -> list[Any]:
        """Wait up to `timeout` seconds for untagged responses while idling.

        Raises DisconnectedError on BYE, on socket errors, and at EOF: imapclient 4.1's own
        idle_check() reports EOF as an empty list, at once, forever (a busy loop), so the
        socket is watched here and EOF is confirmed with a peek at the raw connection.
        """
        client = self._require_client()
        if not self._idling:
            raise MailboxError("idle_check() outside IDLE")
        deadline = time.monotonic() + max(timeout, 0)
        try:
            while True:
                remaining = max(deadline - time.monotonic(), 0)
                if _buffered(client, self.timeout) or _poll(client.socket(), remaining):
                    responses = _read_lines(client, self.timeout)
                    if responses:
                        break
                    if _at_eof(client.socket()):
                        raise EOFError("the server closed the connection")
                    time.sleep(0.05)  # half a line or a TLS record: let the rest arrive
                if time.monotonic() >= deadline:
                    return []
        except (OSError, ValueError, EOFError, imaplib.IMAP4.error) as err:
            # ValueError: poll on a socket imaplib already closed (fileno -1).
            self._drop()
            raise DisconnectedError(f"{self.host}: connection lost while idling: "
                                    f"{_describe(err)}") from err
        self._raise_on_bye(responses)
        return responses

    def idle_done(self) -> list[Any]:
        """Leave IDLE; return the responses that arrived in the meantime."""
        if not self._idling:
            return []
        self._idling = False
        with self._errors("ending IDLE"):
            _text, responses = self._require_client().idle_done()
        self._raise_on_bye(responses)
        return responses

    def wait_for_changes(self, timeout: float = MAX_IDLE_SECONDS,
                         should_stop: Callable[[], bool] | None = None) -> bool:
        """IDLE until the selected folder changes or `timeout` passes (capped at 25 minutes).

        Returns True when the folder changed (new, flagged or expunged mail), False on timeout;
        either way the connection is back out of IDLE and ready for commands. Keep-alives
        ("OK Still here") don't end the wait. Mail the server announced since the last
        select, in a reply to another command (it arrived during a pass), counts as a change
        at once: the server will not announce it again. `should_stop` is asked every second,
        so a shutdown never waits for the server.
        """
        deadline = time.monotonic() + min(timeout, MAX_IDLE_SECONDS)
        if self._announced_mail():
            return True
        self.idle_start()
        changed = False
        try:
            while not changed:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (should_stop is not None and should_stop()):
                    break
                slice_ = remaining if should_stop is None else min(remaining, 1.0)
                changed = any(_is_change(r) for r in self.idle_check(slice_))
        finally:
            if self._idling and self._client is not None:
                changed = any(_is_change(r) for r in self.idle_done()) or changed
        return changed

    # -- internals ---------------------------------------------------------------------------

    def _require_client(self) -> imapclient.IMAPClient:
        if self._client is None:
            raise DisconnectedError(f"not connected to {self.host}")
        return self._client

    def _require_selected(self) -> imapclient.IMAPClient:
        client = self._require_client()
        if self.selected is None:
            raise MailboxError("no folder selected")
        return client

    def _require_capabilities(self) -> Capabilities:
        if self.capabilities is None:
            raise MailboxError("not logged in")
        return self.capabilities

    def _announced_mail(self) -> bool:
        """Whether an EXISTS came with the replies to our commands since the last look (and
        forget it). imaplib keeps such unsolicited responses aside; nobody else reads them."""
        client = self._client
        if client is None:
            return False
        return bool(client._imap.untagged_responses.pop("EXISTS", None))

    def _drop(self) -> None:
        """Forget a dead connection so later calls fail fast instead of spinning."""
        client, self._client = self._client, None
        self._idling = False
        self.selected = None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()

    def _raise_on_bye(self, responses: list[Any]) -> None:
        for response in responses:
            if isinstance(response, tuple) and response and response[0] == b"BYE":
                self._drop()
                text = b" ".join(p for p in response[1:] if isinstance(p, bytes))
                raise DisconnectedError(
                    f"{self.host} said BYE: {text.decode(errors='replace')}".rstrip(": "))

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """imapclient/imaplib/socket errors -> MailboxError (DisconnectedError when fatal)."""
        try:
            yield
        except MailboxError:
            raise
        except (OSError, imaplib.IMAP4.abort) as err:
            # Includes timeouts and TLS errors: the protocol state is unknown, start over.
            self._drop()
            raise DisconnectedError(f"{action}: connection to {self.host} lost: "
                                    f"{_describe(err)}") from err
        except _ImapCapabilityError as err:
            raise CapabilityError(f"{action}: {_describe(err)}") from err
        except imaplib.IMAP4.error as err:
            if self._client is not None and self._client._imap.untagged_responses.get("BYE"):
                # The server said goodbye instead of answering (imapclient's idle() reports
                # "* BYE" as an unexpected reply, not as the end of the connection).
                self._drop()
                raise DisconnectedError(f"{action}: {self.host} closed the connection: "
                                        f"{_describe(err)}") from err
            raise MailboxError(f"{action} failed: {_describe(err)}") from err


def _body(data: dict[bytes, Any]) -> bytes | None:
    """BODY[] or BODY[]<0> (the partial form), whichever the server sent."""
    for key, value in data.items():
        if isinstance(key, bytes) and key.startswith(b"BODY[]"):
            return value if isinstance(value, bytes) else None
    return None


def _is_change(response: Any) -> bool:
    return (isinstance(response, tuple) and len(response) >= 2
            and response[1] in _CHANGE_RESPONSES)


def _buffered(client: imapclient.IMAPClient, timeout: float) -> bool:
    """Lines already read from the socket but not yet parsed (imaplib's buffered file, or
    the TLS layer's buffer): a poll on the socket would not see them."""
    sock = client.socket()
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    reader = getattr(client._imap, "file", None)
    if not isinstance(reader, io.BufferedReader):
        return False
    sock.setblocking(False)
    try:
        return bool(reader.peek(1))
    except OSError:  # nothing buffered and nothing on the wire (SSLWantReadError)
        return False
    finally:
        sock.settimeout(timeout)  # back to blocking, with the read timeout


def _poll(sock: socket.socket, timeout: float) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(timeout * 1000))


def _read_lines(client: imapclient.IMAPClient, timeout: float) -> list[Any]:
    """Every complete untagged line available now, parsed like imapclient's idle_check().

    Reads through imaplib's line reader (private, as imapclient itself does): imapclient's
    idle_check() only reads when the raw socket polls readable, and so misses buffered lines.
    """
    imap = client._imap
    sock = client.socket()
    sock.setblocking(False)
    responses = []
    try:
        while True:
            try:
                line = imap._get_line()
            except OSError:  # BlockingIOError / SSLWantReadError: nothing more for now
                break
            except imaplib.IMAP4.abort as err:
                if "EOF" in str(err):  # imaplib's word for "read returned nothing"
                    break
                raise
            responses.append(_parse_untagged_response(line))
    finally:
        sock.settimeout(timeout)  # back to blocking, with the read timeout
    return responses


def _at_eof(sock: socket.socket) -> bool:
    """True when the peer closed the TCP connection. Peeks below TLS, consuming nothing."""
    try:
        return socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False


def _uid_text(uids: Sequence[int]) -> str:
    shown = ",".join(str(uid) for uid in uids[:20])
    return shown + (f",... ({len(uids)} in all)" if len(uids) > 20 else "")


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
