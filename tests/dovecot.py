"""A real Dovecot 2.3 for the IMAP integration tests, run from a private config in a temp dir.

Why a real server: the parts of IMAP that break in production (capabilities, namespaces,
UIDPLUS, IDLE after a disconnect) are exactly the parts a fake gets wrong.

How it runs
    `DovecotServer` writes a dovecot.conf into a fresh directory under the system temp dir and
    runs `dovecot -F -c dovecot.conf` as a child process: IMAP on 127.0.0.1 on a free port,
    implicit TLS (a self-signed cert made with `openssl` for the run) on a second free port,
    STARTTLS on the first, users in a passwd-file with plaintext passwords, Maildir storage
    under the same directory, everything logged to `dovecot.log` there (its tail is put into
    start-up errors). `base_dir` and `state_dir` are private too, so nothing under /run or
    /var/lib is touched and several servers can run at once.

    As root: Dovecot refuses root for mail (uid 0) and for login processes, so mail runs as
    `nobody`, logins as `dovenull` (or `nobody`), the auth process as root; the temp dir is
    made world-traversable (0755) for that reason. As another user: every process runs as
    that user and the chroots are switched off (Dovecot's "unprivileged" mode).

    Variants (`DovecotOptions`): capabilities hidden with `imap_capability` (the advertised
    list minus MOVE, IDLE or UIDPLUS: Dovecot still executes the commands, the client must
    not use them), and the personal namespace either "" with separator "/" (the default)
    or "INBOX." with separator "." (Courier/Cyrus style, so folders are INBOX.Processed).

    Each test gets a fresh user on a server shared per variant (a passwd-file per user, named
    by %u, so a new user works at once), so tests don't see each other's mail. `stop()`,
    `start()` and `restart()` act on the server, on the same ports, keeping the mail; the
    fixture starts a stopped server again after the test.

Missing Dovecot
    The binary is IMAP_BOUNCER_TEST_DOVECOT if set, else `dovecot` on PATH or in /usr/sbin.
    With CI=true (any value but "", "0", "false") a missing `dovecot` binary FAILS the tests;
    elsewhere they are skipped with the apt-get command to run. Dovecot 2.4 reads a different
    config language and is treated the same way (skip, or fail in CI).

An external server instead (e.g. a GreenMail container)
    IMAP_BOUNCER_TEST_IMAP_HOST      host name; setting it switches to external mode
    IMAP_BOUNCER_TEST_IMAP_PORT      port (default 143, or 993 with SECURITY=tls)
    IMAP_BOUNCER_TEST_IMAP_USER      user name (default "bouncer")
    IMAP_BOUNCER_TEST_IMAP_PASSWORD  password (default "bouncer")
    IMAP_BOUNCER_TEST_IMAP_SECURITY  none | starttls | tls (default none)
    IMAP_BOUNCER_TEST_IMAP_CA_FILE   CA bundle to verify the server's certificate (optional)
    The account is EMPTIED before each test (INBOX expunged, test folders deleted): use a
    throw-away account. Tests that need a Dovecot variant, the Maildir, or to stop/restart
    the server are skipped in this mode.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import imapclient
import pytest

ENV_PREFIX = "IMAP_BOUNCER_TEST_IMAP_"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0

# Folder names the tests create; an external account is cleaned of these before each test.
# ("Review" and its "Hard", "Soft", "Ignore": the review folders, created like the others.)
TEST_FOLDERS = ("Processed", "Unknown", "Error", "Bounces", "Review", "Hard", "Soft", "Ignore")


@dataclass(frozen=True)
class DovecotOptions:
    """One server variant."""

    hide_capabilities: frozenset[str] = frozenset()
    separator: str = "/"
    prefix: str = ""

    @property
    def label(self) -> str:
        parts = [f"no-{cap.lower()}" for cap in sorted(self.hide_capabilities)]
        if self.prefix or self.separator != "/":
            parts.append(f"ns-{self.prefix or 'root'}{self.separator}")
        return ",".join(parts) or "normal"


NORMAL = DovecotOptions()
NO_MOVE = DovecotOptions(hide_capabilities=frozenset({"MOVE"}))
NO_IDLE = DovecotOptions(hide_capabilities=frozenset({"IDLE"}))
NO_MOVE_NO_UIDPLUS = DovecotOptions(hide_capabilities=frozenset({"MOVE", "UIDPLUS"}))
DOT_NAMESPACE = DovecotOptions(separator=".", prefix="INBOX.")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def external_configured() -> bool:
    return bool(os.environ.get(ENV_PREFIX + "HOST"))


def dovecot_binary() -> str | None:
    configured = os.environ.get("IMAP_BOUNCER_TEST_DOVECOT")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")


def require_dovecot() -> str:
    """The dovecot binary, or skip (fail in CI) saying how to get it."""
    binary = dovecot_binary()
    if binary is None:
        message = ("Dovecot is not installed: apt-get install -y dovecot-imapd "
                   f"(or point the tests at a server with {ENV_PREFIX}HOST/PORT/USER/PASSWORD)")
        _unavailable(message)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    if not version.startswith("2.3."):
        _unavailable(f"these tests write a Dovecot 2.3 config; found Dovecot {version!r}")
    return binary


def _unavailable(message: str) -> None:
    if in_ci():
        pytest.fail(message + " [CI is set, so this is a failure, not a skip]", pytrace=False)
    pytest.skip(message)


@dataclass
class Account:
    """What a test needs to reach one IMAP account.

    `security` is how to reach `port`: "none", "starttls" or "tls". For Dovecot, `tls_port`
    serves implicit TLS with `ca_file` as the trust anchor (both None without openssl).
    """

    host: str
    port: int
    user: str
    password: str
    security: str = "none"
    maildir: Path | None = None
    tls_port: int | None = None
    ca_file: Path | None = None
    options: DovecotOptions = NORMAL
    server: DovecotServer | None = field(default=None, repr=False)

    def _require_server(self) -> DovecotServer:
        if self.server is None:
            pytest.skip("needs the local Dovecot (an external server can't be restarted)")
        return self.server

    def stop(self) -> None:
        self._require_server().stop()

    def start(self) -> None:
        self._require_server().start()

    def restart(self) -> None:
        self._require_server().restart()

    def over_tls(self) -> Account:
        """The same account reached over implicit TLS (skips when the server has none)."""
        if self.security != "none":
            return self
        if self.tls_port is None:
            pytest.skip("no TLS port (openssl missing?)")
        return dataclasses.replace(self, port=self.tls_port, security="tls")

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.ca_file is not None:
            context.load_verify_locations(cafile=str(self.ca_file))
        return context

    def client(self, timeout: float = 10.0) -> imapclient.IMAPClient:
        """A separate, logged-in IMAPClient for setting up test data (APPEND etc.)."""
        client = imapclient.IMAPClient(
            self.host, self.port, ssl=self.security == "tls",
            ssl_context=self.ssl_context() if self.security == "tls" else None,
            timeout=timeout)
        if self.security == "starttls":
            client.starttls(self.ssl_context())
        client.login(self.user, self.password)
        return client


class DovecotServer:
    """One Dovecot instance in its own directory; see the module docstring."""

    def __init__(self, options: DovecotOptions = NORMAL) -> None:
        self.binary = require_dovecot()
        self.options = options
        self.workdir = Path(tempfile.mkdtemp(prefix="imap-bouncer-dovecot-"))
        self.log_path = self.workdir / "dovecot.log"
        # One passwd-file per user: Dovecot re-reads a changed passwd-file at most once a
        # second, a new file at once.
        self.passwd_dir = self.workdir / "passwd.d"
        self.mail_root = self.workdir / "mail"
        self.config_path = self.workdir / "dovecot.conf"
        self.host = "127.0.0.1"
        self.port = 0
        self.tls_port: int | None = None
        self.ca_file: Path | None = None
        self.users: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._root = os.geteuid() == 0
        _LIVE.add(self)  # closed at interpreter exit even if a fixture's teardown never ran
        self._prepare_dirs()
        self._make_certificate()
        self.passwd_dir.mkdir()

    # -- set-up ----------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        self.mail_root.mkdir()
        if self._root:
            # Mail processes run as nobody: they must traverse the temp dir and own mail/.
            self.workdir.chmod(0o755)
            _check_traversable(self.workdir)
            nobody = pwd.getpwnam("nobody")
            os.chown(self.mail_root, nobody.pw_uid, nobody.pw_gid)
            self.mail_uid, self.mail_gid = nobody.pw_uid, nobody.pw_gid
        else:
            self.mail_uid, self.mail_gid = os.getuid(), os.getgid()

    def _make_certificate(self) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            return
        cert, key = self.workdir / "cert.pem", self.workdir / "key.pem"
        result = subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            capture_output=True, text=True, check=False)
        if result.returncode == 0:
            self.ca_file = cert

    def add_user(self, user: str | None = None, password: str | None = None) -> Account:
        """A fresh account with its own passwd-file and Maildir, usable at once."""
        user = user or f"user{len(self.users) + 1}-{secrets.token_hex(3)}"
        password = password or secrets.token_urlsafe(12)
        if ":" in user + password or "\n" in user + password:
            raise ValueError("':' and newlines can't be written to a passwd-file")
        if user in self.users or "/" in user or user.startswith("."):
            raise ValueError(f"user name {user!r} is taken or unusable as a file name")
        self.users[user] = password
        temporary = self.passwd_dir / f".{user}.tmp"
        temporary.write_text(f"{user}:{{PLAIN}}{password}::::::\n", encoding="utf-8")
        temporary.replace(self.passwd_dir / user)
        return Account(host=self.host, port=self.port, user=user, password=password,
                       security="none", maildir=self.mail_root / user / "Maildir",
                       tls_port=self.tls_port, ca_file=self.ca_file, options=self.options,
                       server=self)

    def _write_config(self, capabilities: str | None) -> None:
        if self._root:
            login_user = "dovenull" if _user_exists("dovenull") else "nobody"
            users = f"default_internal_user = root\ndefault_login_user = {login_user}\n"
            chroots = ""
        else:
            me = pwd.getpwuid(os.getuid()).pw_name
            group = grp.getgrgid(os.getgid()).gr_name
            users = (f"default_internal_user = {me}\ndefault_login_user = {me}\n"
                     f"default_internal_group = {group}\n")
            chroots = "service imap-urlauth-login {\n  chroot =\n}\n"
        login_chroot = anvil_chroot = "" if self._root else "  chroot =\n"
        if self.ca_file is not None:
            ssl_lines = (f"ssl = yes\nssl_cert = <{self.ca_file}\n"
                         f"ssl_key = <{self.workdir / 'key.pem'}\n")
            imaps_port = self.tls_port
        else:
            ssl_lines, imaps_port = "ssl = no\n", 0
        capability_line = f"imap_capability = {capabilities}\n" if capabilities else ""
        w = self.workdir
        self.config_path.write_text(f"""\
# Written by tests/dovecot.py for one test run; see its docstring.
base_dir = {w}/run
state_dir = {w}/state
instance_name = imap-bouncer-test-{w.name}
protocols = imap
listen = {self.host}
log_path = {self.log_path}
info_log_path = {self.log_path}
{users}first_valid_uid = 1
mail_location = maildir:~/Maildir
{ssl_lines}disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2
# No delay after a failed login, and no growing penalty for repeated failures from one IP
# (with mode 0 the anvil-auth-penalty socket isn't created at all, so auth skips penalties).
auth_failure_delay = 0
{capability_line}
namespace inbox {{
  inbox = yes
  separator = {self.options.separator}
  prefix = {self.options.prefix}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u
}}
userdb {{
  driver = static
  args = uid={self.mail_uid} gid={self.mail_gid} home={self.mail_root}/%u
}}
service imap-login {{
{login_chroot}  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{anvil_chroot}}}
{chroots}""", encoding="utf-8")
        for sub in ("run", "state"):
            (w / sub).mkdir(exist_ok=True)

    # -- life cycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start on the same ports as before (fresh free ports the first time)."""
        if self.running:
            return
        first = self.port == 0
        for attempt in range(3):
            if first:
                self.port = _free_port(self.host)
                self.tls_port = _free_port(self.host) if self.ca_file else None
            self._write_config(self._capabilities())
            try:
                self._spawn()
                return
            except RuntimeError as err:
                if not first or "in use" not in str(err) or attempt == 2:
                    raise

    def _capabilities(self) -> str | None:
        if not self.options.hide_capabilities:
            return None
        advertised = _default_capabilities(self.binary)
        hidden = {cap.upper() for cap in self.options.hide_capabilities}
        return " ".join(cap for cap in advertised if cap.upper() not in hidden)

    def _spawn(self) -> None:
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace") if \
                    self._process.stderr else ""
                self._process = None
                raise RuntimeError(f"dovecot exited at start-up: {stderr.strip()}\n"
                                   f"{self.log_tail(log_start)}")
            if _greets(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not answer on {self.host}:{self.port} within "
                           f"{START_TIMEOUT:.0f}s\n{self.log_tail(log_start)}")

    def stop(self) -> None:
        """SIGTERM every Dovecot process at once, as systemd does, and wait until all are gone.

        Signalling only the master is not enough: its IDLE-ing imap processes then linger for
        ~10 s before saying BYE, and keep serving their clients meanwhile. They run in the
        master's process group (started with a session of its own), so killpg reaches them.
        """
        process, self._process = self._process, None
        if process is None:
            return
        group = process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _group_alive(group, process):
            time.sleep(0.02)
        if _group_alive(group, process):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        process.wait()
        if process.stderr:
            process.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove the directory (kept when KEEP_DOVECOT_DIR is set, for debugging)."""
        _LIVE.discard(self)
        self.stop()
        if not os.environ.get("KEEP_DOVECOT_DIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, start: int = 0, limit: int = 4000) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(start)
                text = handle.read().decode(errors="replace")
        except OSError:
            return "(no dovecot.log)"
        return f"--- {self.log_path} ---\n{text[-limit:]}"


class DovecotPool:
    """One server per variant for the whole session, started on first use."""

    def __init__(self) -> None:
        self.servers: dict[DovecotOptions, DovecotServer] = {}

    def get(self, options: DovecotOptions = NORMAL) -> DovecotServer:
        server = self.servers.get(options)
        if server is None:
            server = DovecotServer(options)
            self.servers[options] = server
            server.start()
        elif not server.running:
            server.start()
        return server

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
        self.servers.clear()


def external_account() -> Account:
    """The account named by the IMAP_BOUNCER_TEST_IMAP_* variables, emptied for a test."""
    env = os.environ
    security = env.get(ENV_PREFIX + "SECURITY", "none").strip().lower() or "none"
    if security not in ("none", "starttls", "tls"):
        raise pytest.UsageError(f"{ENV_PREFIX}SECURITY must be none, starttls or tls")
    port = int(env.get(ENV_PREFIX + "PORT") or (993 if security == "tls" else 143))
    ca_file = env.get(ENV_PREFIX + "CA_FILE")
    account = Account(
        host=env[ENV_PREFIX + "HOST"], port=port,
        user=env.get(ENV_PREFIX + "USER", "bouncer"),
        password=env.get(ENV_PREFIX + "PASSWORD", "bouncer"),
        security=security, ca_file=Path(ca_file) if ca_file else None)
    empty_account(account)
    return account


def empty_account(account: Account) -> None:
    """Expunge INBOX and delete the folders tests create (external servers only)."""
    with contextlib.closing(_LoggedOut(account.client())) as holder:
        client = holder.client
        names = [name for _flags, _delim, name in client.list_folders()]
        for name in sorted(names, key=len, reverse=True):
            leaf = name.rsplit("/", 1)[-1].rsplit(".", 1)[-1]
            if name.upper() != "INBOX" and leaf in TEST_FOLDERS:
                with contextlib.suppress(imapclient.exceptions.IMAPClientError):
                    client.delete_folder(name)
        client.select_folder("INBOX")
        uids = client.search("ALL")
        if uids:
            client.delete_messages(uids)
            client.expunge()


class _LoggedOut:
    def __init__(self, client: imapclient.IMAPClient) -> None:
        self.client = client

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.logout()


# -- helpers -------------------------------------------------------------------------------

_LIVE: set[DovecotServer] = set()


@atexit.register
def _close_all() -> None:
    """Dovecot runs in a session of its own, so nothing else would stop it after a crash."""
    for server in list(_LIVE):
        server.close()


_DEFAULT_CAPABILITIES: list[str] | None = None


def _default_capabilities(binary: str) -> list[str]:
    """What this Dovecot advertises after login, asked once from a throw-away server."""
    global _DEFAULT_CAPABILITIES
    if _DEFAULT_CAPABILITIES is None:
        probe = DovecotServer(NORMAL)
        try:
            probe.start()
            account = probe.add_user()
            with contextlib.closing(_LoggedOut(account.client())) as holder:
                caps = [cap.decode() for cap in holder.client.capabilities()]
        finally:
            probe.close()
        # imap_capability is the post-login list; AUTH= entries belong to the login process.
        _DEFAULT_CAPABILITIES = [cap for cap in caps if not cap.upper().startswith("AUTH=")]
    return _DEFAULT_CAPABILITIES


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _greets(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.settimeout(2.0)
            return sock.recv(64).startswith(b"* OK")
    except OSError:
        return False


def _group_alive(group: int, master: subprocess.Popen[bytes]) -> bool:
    """Any live (non-zombie) process left in Dovecot's process group?

    Zombies don't count: children orphaned by the master wait for init to reap them, which
    in a container can take seconds.
    """
    master.poll()  # reap the master itself
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        state, pgrp = fields[0], int(fields[2])
        if pgrp == group and state != "Z":
            return True
    return False


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _check_traversable(path: Path) -> None:
    """As root, mail runs as nobody: every parent of the temp dir must be o+x."""
    for parent in [path, *path.parents]:
        if not parent.stat().st_mode & 0o001:
            raise RuntimeError(
                f"{parent} is not traversable by other users, so Dovecot's mail processes "
                f"(running as nobody) can't reach {path}; point TMPDIR elsewhere")
