"""Start-up stays lazy: a real interpreter runs the command, then lists what it imported.

The MTA starts one process per message (`ingest -`, `analyze -`): `--version` and `analyze`
must not load the settings, the database layer, the IMAP client or the scheduler, and a
SQLite `ingest` not PostgreSQL's driver. Nothing here is timed (bench/startup.py is).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import BASICS, SAMPLES

from imap_bouncer.analysis import CHAIN, why_unclaimed

HEAVY = ("peewee", "playhouse", "pydantic", "pydantic_settings", "imapclient", "psycopg",
         "apscheduler")
# Runs the command in this interpreter, then prints the modules it imported.
PROBE = """
import json, sys
from imap_bouncer.cli import main
sys.argv = ["imap-bouncer", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as done:
    code = done.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def imported_by(args: list[str], stdin: bytes = b"", *,
                top_level: bool = True) -> tuple[int, set[str], str]:
    """The command's exit code, the (top-level) modules it imported, its output."""
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], input=stdin,
                          capture_output=True, timeout=120, check=False)
    *_, last = done.stderr.decode().strip().splitlines()
    found = json.loads(last)
    modules = {m.split(".")[0] if top_level else m for m in found["modules"]}
    return found["code"], modules, done.stdout.decode()


@pytest.mark.parametrize("args", [
    ["--version"],
    ["analyze", str(BASICS / "qmail.eml")],
    ["analyze", "--json", "--explain", str(BASICS / "dsn-global-utf8.eml"),
     str(BASICS / "spam.eml")],
    ["analyze", "--json", "-"],
], ids=["version", "analyze", "analyze-json-explain", "analyze-stdin"])
def test_version_and_analyze_import_nothing_heavy(args: list[str]) -> None:
    code, modules, out = imported_by(args, stdin=(BASICS / "exim.eml").read_bytes())
    assert code in (None, 0), out
    assert out.strip()  # the command did its work: the version, or its reports
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
    if args != ["--version"]:
        assert "imap_bouncer" in modules and "multiprocessing" not in modules  # inline
    if "dsn-global-utf8.eml" not in " ".join(args):  # plain ASCII addresses need no validator
        assert "email_validator" not in modules
    else:
        assert "email_validator" in modules  # jörg@bücher.example does


def test_the_auto_reply_analyzer_loads_only_when_the_chain_reaches_it() -> None:
    _, modules, out = imported_by(["analyze", str(BASICS / "qmail.eml")], top_level=False)
    assert ": bounce (" in out and "imap_bouncer.analysis.autoreply" not in modules
    _, modules, out = imported_by(["analyze", str(BASICS / "autoreply-german.eml")],
                                  top_level=False)
    assert ": autoreply (autoreply)" in out and "imap_bouncer.analysis.autoreply" in modules


def test_the_probe_sees_what_a_command_imports(tmp_path: Path) -> None:
    """The same probe on a command that needs the settings and the database sees them."""
    config = tmp_path / "settings.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "b.db"}"\n', encoding="utf-8")
    code, modules, _ = imported_by(["events", "-c", str(config)])
    assert code in (None, 0)
    assert {"pydantic_settings", "peewee"} <= modules


def test_sqlite_ingest_loads_no_postgres_driver_nor_imap_nor_scheduler(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "b.db"}"\n', encoding="utf-8")
    code, modules, out = imported_by(["ingest", "-c", str(config), "-"],
                                     stdin=(BASICS / "qmail.eml").read_bytes())
    assert code in (None, 0) and "recorded bounce" in out
    assert "peewee" in modules
    assert not modules & {"psycopg", "psycopg2", "imapclient", "apscheduler"}


def test_a_sqlite_process_refuses_postgres_plainly() -> None:
    """After the SQLite-only load, opening PostgreSQL says why instead of failing oddly."""
    code = ("from imap_bouncer import drivers; drivers.load_for('sqlite:///x.db')\n"
            "from imap_bouncer import models\n"
            "try:\n    models.connect('postgresql://u@127.0.0.1/db')\n"
            "except models.SchemaError as err:\n    print(err)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert "for SQLite only" in done.stdout, done.stderr


# -- explain: why no analyzer claimed a message ---------------------------------------------

ORDINARY = SAMPLES / "ordinary"


def notes(path: Path) -> dict[str, str]:
    return dict(why_unclaimed(path.read_bytes()))


def test_every_analyzer_of_the_chain_has_a_note() -> None:
    found = why_unclaimed((BASICS / "spam.eml").read_bytes())
    assert [name for name, _ in found] == [name for name, _ in CHAIN]
    assert all(note and "no note" not in note for _, note in found)


def test_a_persons_message() -> None:
    assert notes(BASICS / "spam.eml") == {
        "arf": "no message/feedback-report part, no feedback loop's marks",
        "formats": "no known MTA's marks (those known only by their words: not tried, no mail "
                   "system sent it)",
        "dsn": "no message/delivery-status part",
        "plaintext": "not from a mail system (From is a person, return path not null)",
        "autoreply": "no RFC 3834 header, no auto-reply subject or words",
    }


def test_a_persons_forward_of_a_report() -> None:
    found = notes(ORDINARY / "05-fwd-ndr-o365-as-attachment.eml")
    assert found["arf"].startswith("a person's reply or forward")
    assert found["dsn"].startswith("a person's reply or forward")


def test_a_mailing_list_post() -> None:
    found = notes(ORDINARY / "16-mailman-plain-digest.eml")
    assert found["plaintext"] == "a mailing list's message"


def test_a_mail_systems_notice_that_names_no_failure() -> None:
    found = notes(ORDINARY / "24-isp-maintenance-from-postmaster.eml")
    assert found["formats"] == "no known MTA's marks"
    assert found["plaintext"] == "a mail system's notice, but no failed recipient in its words"
    assert found["autoreply"].startswith("from a mail system")
