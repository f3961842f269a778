"""Helpers for the service tests (test_service.py, test_cli_service.py): putting mail into a
Dovecot account, looking at its folders from a separate connection, writing a settings file,
running the real `imap-bouncer` command, reading the ledger, and waiting with deadlines.

Everything here looks at the IMAP server and the database from the outside, the way an
operator would: the assertions are about where messages are and what rows exist.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import dovecot
import imapclient
from support import sample

from imap_bouncer.ledger import Ledger
from imap_bouncer.models import Event, Message
from imap_bouncer.settings import ImapSettings

FOLDERS = ("Processed", "Unknown", "Error")

_T = TypeVar("_T")


@dataclass(frozen=True)
class Expected:
    folder: str
    kind: str
    recipients: int  # event rows the message gives


# What each sample must become: bounces, a delay, complaints, auto-replies (Processed), mail
# that is not a bounce (Unknown) and a message with no headers at all (Error).
SAMPLES: dict[str, Expected] = {
    "postfix.eml": Expected("Processed", "bounce", 1),
    "qmail.eml": Expected("Processed", "bounce", 1),  # has no Message-ID of its own
    "dsn-failed-multi.eml": Expected("Processed", "bounce", 2),
    "dsn-delayed.eml": Expected("Processed", "delay", 1),
    "arf-abuse.eml": Expected("Processed", "complaint", 1),
    "arf-headers-only.eml": Expected("Processed", "complaint", 1),
    "autoreply-rfc3834.eml": Expected("Processed", "autoreply", 1),
    "autoreply-german.eml": Expected("Processed", "autoreply", 1),
    "newsletter-bulk.eml": Expected("Unknown", "unknown", 0),
    "person-reply-undeliverable.eml": Expected("Unknown", "unknown", 0),
    "spam.eml": Expected("Unknown", "unknown", 0),
    "garbage.eml": Expected("Error", "unknown", 0),
}


def numbered(raw: bytes, number: int) -> bytes:
    """The message with a last line "[test message N]": distinct bytes, a number to find it
    by in any folder, and the same analysis (a header would give garbage.eml headers)."""
    newline = b"\r\n" if b"\r\n" in raw else b"\n"
    if raw and not raw.endswith(newline):
        raw += newline
    return raw + b"[test message %d]" % number + newline


# -- the IMAP account, seen from a separate connection -------------------------------------


@contextlib.contextmanager
def client(account: dovecot.Account) -> Iterator[imapclient.IMAPClient]:
    connection = account.client()
    try:
        yield connection
    finally:
        with contextlib.suppress(Exception):
            connection.logout()


def append(account: dovecot.Account, messages: Iterable[bytes], folder: str = "INBOX",
           flags: tuple[bytes, ...] = (), msg_time: datetime | None = None,
           chunk: int = 200) -> None:
    """APPEND the messages in order (MULTIAPPEND, in chunks), so UIDs follow that order."""
    extra: dict[str, Any] = {"flags": flags}
    if msg_time is not None:
        extra["date"] = msg_time
    messages = [{"msg": raw, **extra} for raw in messages]
    with client(account) as c:
        for start in range(0, len(messages), chunk):
            c.multiappend(folder, messages[start:start + chunk])


def append_samples(account: dovecot.Account, names: Iterable[str] = SAMPLES,
                   folder: str = "INBOX") -> list[str]:
    names = list(names)
    append(account, (sample(name) for name in names), folder)
    return names


def counts(account: dovecot.Account, folders: Iterable[str] = ("INBOX", *FOLDERS)
           ) -> dict[str, int]:
    """Messages per folder (0 for a folder that does not exist)."""
    result = {}
    with client(account) as c:
        for folder in folders:
            if c.folder_exists(folder):
                result[folder] = c.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"]
            else:
                result[folder] = 0
    return result


def contents(account: dovecot.Account, folders: Iterable[str] = ("INBOX", *FOLDERS)
             ) -> dict[str, dict[int, dict[bytes, Any]]]:
    """Per folder: UID -> FLAGS and the raw bytes (read with BODY.PEEK, changing nothing)."""
    result: dict[str, dict[int, dict[bytes, Any]]] = {}
    with client(account) as c:
        for folder in folders:
            if not c.folder_exists(folder):
                result[folder] = {}
                continue
            c.select_folder(folder, readonly=True)
            uids = c.search("ALL")
            result[folder] = c.fetch(uids, ["FLAGS", "BODY.PEEK[]"]) if uids else {}
    return result


def seq_numbers(account: dovecot.Account, folder: str) -> list[int]:
    """The numbers `numbered` gave the messages in a folder."""
    with client(account) as c:
        if not c.folder_exists(folder):
            return []
        c.select_folder(folder, readonly=True)
        uids = c.search("ALL")
        numbers = []
        for start in range(0, len(uids), 500):
            for data in c.fetch(uids[start:start + 500], ["BODY.PEEK[]"]).values():
                found = re.findall(rb"\[test message (\d+)\]", data[b"BODY[]"])
                numbers.append(int(found[-1]))
        return numbers


def uidvalidity(account: dovecot.Account, folder: str = "INBOX") -> int:
    with client(account) as c:
        return c.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"]


# -- settings and the real command ---------------------------------------------------------


def imap_settings(account: dovecot.Account, **overrides: Any) -> ImapSettings:
    """In-process settings for a MailboxService on this account (plain IMAP on loopback)."""
    values: dict[str, Any] = dict(host=account.host, port=account.port, security="none",
                                  username=account.user, password=account.password,
                                  timeout=10)
    values.update(overrides)
    return ImapSettings(**values)


def write_settings(path: Path, account: dovecot.Account, database_url: str, *,
                   level: str = "INFO", analysis: dict[str, Any] | None = None,
                   **imap: Any) -> Path:
    """A settings file for `imap-bouncer -c path`; `imap` keys override the defaults."""
    values: dict[str, Any] = dict(host=account.host, port=account.port, security="none",
                                  username=account.user, password=account.password,
                                  timeout=10)
    values.update(imap)
    folders = values.pop("folders", None)
    lines = ["[imap]", *(f"{key} = {_toml(value)}" for key, value in values.items())]
    if folders:
        lines += ["[imap.folders]", *(f"{k} = {_toml(v)}" for k, v in folders.items())]
    lines += ["[database]", f"url = {_toml(database_url)}"]
    if analysis:
        lines += ["[analysis]", *(f"{k} = {_toml(v)}" for k, v in analysis.items())]
    lines += ["[logging]", f"level = {_toml(level)}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)  # strings, numbers and lists read the same in TOML


def command() -> list[str]:
    """The installed `imap-bouncer` script of this interpreter's environment."""
    script = Path(sys.executable).parent / "imap-bouncer"
    return [str(script)] if script.exists() else [sys.executable, "-m", "imap_bouncer"]


def clean_env() -> dict[str, str]:
    """The environment without any IMAP_BOUNCER_* setting: only the settings file counts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAP_BOUNCER_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, cwd: Path, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command(), *args], cwd=cwd, env=env or clean_env(),
                          capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def start_cli(*args: str, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """The command in the background, in a session of its own (so that a test can signal
    it and any worker processes together), standard error going to `log`."""
    with log.open("wb") as err:
        return subprocess.Popen([*command(), *args], cwd=cwd, env=clean_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Kill what a test left running: the process's own group, by its id."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        process.wait(timeout=10)


def sigterm_and_wait(process: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, float]:
    """SIGTERM as systemd sends it: (the exit code, seconds from the signal to the exit)."""
    stopping = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=timeout)
    return code, time.monotonic() - stopping


# -- the ledger ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    uidvalidity: int
    uid: int
    message_id: str
    sha256: str
    kind: str | None
    target_folder: str
    moved: bool
    errors: tuple[str, ...]
    events: int


def rows(ledger: Ledger) -> list[Row]:
    """Every message row with its number of events, in id order."""
    events: dict[int, int] = {}
    for event in Event.select(Event.message):
        events[event.message_id] = events.get(event.message_id, 0) + 1
    return [Row(m.uidvalidity, m.uid, m.message_id, m.sha256, m.kind, m.target_folder,
                bool(m.moved), tuple(m.errors or ()), events.get(m.id, 0))
            for m in Message.select().order_by(Message.id)]


def table_counts(ledger: Ledger) -> tuple[int, int]:
    """(message rows, event rows)."""
    return Message.select().count(), Event.select().count()


# -- waiting -------------------------------------------------------------------------------


def wait_for(check: Callable[[], _T], timeout: float, what: str,
             interval: float = 0.05, log: Path | None = None) -> _T:
    """Poll `check` until it returns something true; fail naming `what` (and showing the
    end of `log`) at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = ""
            if log is not None and log.exists():
                tail = "\n" + log.read_text(encoding="utf-8", errors="replace")[-4000:]
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{tail}")
        time.sleep(interval)


def log_count(path: Path, text: str) -> int:
    try:
        return path.read_text(encoding="utf-8", errors="replace").count(text)
    except FileNotFoundError:
        return 0


# -- processes -----------------------------------------------------------------------------

WORKER_HOOKS = Path(__file__).parent / "worker_hooks"  # sitecustomize: X-Test-Analysis faults


def hooked_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """An environment whose Python processes load tests/worker_hooks/sitecustomize.py."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(WORKER_HOOKS),
                                                    env.get("PYTHONPATH", "")) if p)
    return env


def hostile(name: str, how: str, number: int) -> bytes:
    """A sample with an `X-Test-Analysis: how` header (see tests/worker_hooks)."""
    raw = sample(name)
    newline = b"\r\n" if b"\r\n" in raw else b"\n"
    return numbered(b"X-Test-Analysis: " + how.encode() + newline + raw, number)


def session_processes(session: int) -> list[tuple[int, str]]:
    """The live processes (pid, command line) of a session, zombies left out: a command
    started with start_new_session and everything it started, even once re-parented."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[3]) == session and fields[0] != "Z":
            found.append((int(entry.name), cmdline.strip()))
    return found


def start_cli_env(*args: str, cwd: Path, log: Path,
                  env: dict[str, str]) -> subprocess.Popen[bytes]:
    """start_cli with an environment of the test's own (e.g. hooked_env(clean_env()))."""
    with log.open("wb") as err:
        return subprocess.Popen([*command(), *args], cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
