"""`imap-bouncer ingest -`: the real command in a subprocess, a message on its standard input,
as an MTA's pipe delivery runs it, against both databases. What the MTA sees is the exit
status (sysexits); what must hold is what the database holds afterwards."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import clean_env, command, rows, table_counts
from support import sample

from imap_bouncer import ingest
from imap_bouncer.ledger import Ledger
from imap_bouncer.models import Message, Transition

VERP = "bounces+{local}={domain}@lists.example.org"


def settings(path: Path, database_url: str, extra: str = "") -> Path:
    path.write_text(f'[database]\nurl = {json.dumps(database_url)}\n'
                    f'[analysis]\nverp_patterns = [{json.dumps(VERP)}]\n{extra}',
                    encoding="utf-8")
    return path


def run_ingest(config: Path, data: bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*command(), "ingest", "-c", str(config), "-"], input=data, cwd=cwd,
                          env=clean_env(), capture_output=True, timeout=60, check=False)


@contextlib.contextmanager
def _opened(url: str) -> Iterator[Ledger]:
    """A ledger on the test database for the assertions, closed afterwards."""
    ledger = Ledger.open(url)
    try:
        yield ledger
    finally:
        ledger.close()


def test_a_bounce_is_recorded_with_its_events_and_state(test_db, tmp_path):
    config = settings(tmp_path / "settings.toml", test_db.url)

    done = run_ingest(config, sample("postfix.eml"), tmp_path)

    assert done.returncode == ingest.EX_OK, done.stderr
    with _opened(test_db.url) as ledger:
        [row] = rows(ledger)
        assert (row.uidvalidity, row.kind, row.events, row.target_folder) == (0, "bounce", 1, "")
        message = Message.get()
        assert message.mailbox == "pipe" and message.analyzer == "formats.postfix"
        assert row.sha256 == ingest.read_message(io.BytesIO(sample("postfix.eml")),
                                                 1 << 20).sha256
        state = ledger.address_state("rob@example.com")
        assert state is not None and state.state == "invalid" and state.suppressed
        [event] = ledger.events(address="rob@example.com")
        assert event.reason == "userunknown" and event.mailbox == "pipe"


def test_an_mta_retry_of_the_same_message_is_recorded_once(test_db, tmp_path):
    config = settings(tmp_path / "settings.toml", test_db.url)
    raw = sample("dsn-failed-multi.eml")
    # Postfix's command delivery starts with a "From sender date" line holding the time of
    # the attempt: a retry differs there, and only there.
    first = b"From MAILER-DAEMON  Tue Mar  2 09:44:33 2021\n" + raw
    retry = b"From MAILER-DAEMON  Wed Mar  3 11:02:07 2021\n" + raw

    outcomes = [run_ingest(config, data, tmp_path) for data in (first, retry, raw)]

    assert [o.returncode for o in outcomes] == [0, 0, 0], [o.stderr for o in outcomes]
    assert b"already recorded" in outcomes[1].stdout and b"already recorded" in outcomes[2].stdout
    with _opened(test_db.url) as ledger:
        assert table_counts(ledger) == (1, 2)
        assert Transition.select().count() == 2  # one per recipient: active -> invalid
        assert {ledger.address_state(a).state for a in
                ("jo@example.com", "ann@nowhere.example.net")} == {"invalid"}


def test_unrecognised_mail_is_recorded_and_exits_0(test_db, tmp_path):
    config = settings(tmp_path / "settings.toml", test_db.url)

    done = run_ingest(config, sample("spam.eml"), tmp_path)

    assert done.returncode == 0, done.stderr
    with _opened(test_db.url) as ledger:
        [row] = rows(ledger)
        assert (row.kind, row.events) == ("unknown", 0)


def test_the_verp_patterns_of_the_settings_name_the_recipient(test_db, tmp_path):
    config = settings(tmp_path / "settings.toml", test_db.url)

    done = run_ingest(config, sample("verp.eml"), tmp_path)

    assert done.returncode == 0, done.stderr
    with _opened(test_db.url) as ledger:
        [event] = ledger.events()
        assert event.address == "jo@example.net"


def test_empty_input_exits_66_and_records_nothing(test_db, tmp_path):
    config = settings(tmp_path / "settings.toml", test_db.url)

    for data in (b"", b"\n\n", b"From MAILER-DAEMON  Tue Mar  2 09:44:33 2021\n"):
        done = run_ingest(config, data, tmp_path)
        assert done.returncode == ingest.EX_NOINPUT, (data, done.stderr)
        assert b"empty" in done.stderr


def _down_url(test_db, tmp_path: Path) -> str:
    if test_db.backend == "sqlite":
        return f"sqlite:///{tmp_path / 'no-such-directory' / 'ledger.db'}"
    return "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1


def test_database_down_exits_75_and_the_retry_records_it(test_db, tmp_path):
    down = settings(tmp_path / "down.toml", _down_url(test_db, tmp_path))
    raw = sample("postfix.eml")

    failed = run_ingest(down, raw, tmp_path)

    assert failed.returncode == ingest.EX_TEMPFAIL, failed.stderr
    assert b"not recorded: try again later" in failed.stderr
    with _opened(test_db.url) as ledger:
        assert table_counts(ledger) == (0, 0)

    # The MTA kept the message and delivers it again once the database is back.
    retried = run_ingest(settings(tmp_path / "up.toml", test_db.url), raw, tmp_path)

    assert retried.returncode == 0, retried.stderr
    with _opened(test_db.url) as ledger:
        assert table_counts(ledger) == (1, 1)
        assert ledger.address_state("rob@example.com").state == "invalid"


@pytest.mark.parametrize("extra", [
    '[ingest]\nmailbox = "default"\n',  # the IMAP mailbox's name
    '[ingest]\nmailbox = "no spaces"\n',
    '[ingest]\nmax_message_size = "huge"\n',
    '[policy]\nsoft_threshold = 0\n',
])
def test_bad_settings_exit_78_and_record_nothing(test_db, tmp_path, extra):
    config = settings(tmp_path / "settings.toml", test_db.url, extra)

    done = run_ingest(config, sample("postfix.eml"), tmp_path)

    assert done.returncode == ingest.EX_CONFIG, done.stderr
    assert b"error:" in done.stderr
    with _opened(test_db.url) as ledger:
        assert table_counts(ledger) == (0, 0)


# -- the pure parts ---------------------------------------------------------------------------


def test_reading_keeps_a_prefix_and_hashes_everything():
    body = b"Subject: x\n\n" + b"y" * 200_000
    piped = ingest.read_message(io.BytesIO(body), 1024)
    assert piped.raw == body[:1024] and piped.size == len(body) and piped.truncated
    whole = ingest.read_message(io.BytesIO(body), 1 << 20)
    assert whole.sha256 == piped.sha256 and not whole.truncated and whole.raw == body


def test_arrival_is_the_topmost_received_date():
    raw = (b"Received: from a by mx.example.org; Tue, 2 Mar 2021 09:44:33 +0100\n"
           b"Received: from b by a; Mon, 1 Mar 2021 00:00:00 +0000\nSubject: x\n\nbody\n")
    when = ingest.arrival(raw)
    assert when is not None and when.isoformat() == "2021-03-02T09:44:33+01:00"
    assert ingest.arrival(b"Received: nonsense\n\nx") is None
    assert ingest.arrival(b"Subject: x\n\nx") is None


def test_uids_are_stable_positive_and_distinct():
    a = "f" * 64
    assert ingest.uid_for(a) == ingest.uid_for(a) and 0 <= ingest.uid_for(a) < 2 ** 63
    assert ingest.uid_for(a, 1) != ingest.uid_for(a)
