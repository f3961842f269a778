"""Commands for people: `addresses list|show|reset|hold|release|persist|export`, `events`,
`explain`, against a database named in a settings file (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support import SAMPLES, sample

from imap_bouncer import cli
from imap_bouncer.analysis import analyze
from imap_bouncer.ledger import Ledger, MessageItem
from imap_bouncer.models import Transition
from imap_bouncer.settings import load_settings


@pytest.fixture
def config(test_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A settings file naming the test database, which holds a few recorded bounces:
    dana@example.com (qmail, user unknown: invalid), tess@example.net (blocklisted: active),
    and jo@example.org (held by a person); and a person's message no analyzer claims."""
    for name in list(os.environ):
        if name.upper().startswith("IMAP_BOUNCER_"):
            monkeypatch.delenv(name)
    path = tmp_path / "settings.toml"
    path.write_text(f'[database]\nurl = "{test_db.url}"\nstore_raw = true\n\n'
                    '[policy]\nhard_threshold = 1\nstorm_refusals = 50\n', encoding="utf-8")
    ledger = Ledger.open(test_db.url, store_raw=True)
    try:
        ledger.record_batch([
            MessageItem(mailbox="bounces", uidvalidity=1, uid=uid, target_folder="Processed",
                        raw=raw, report=analyze(raw), message_id=f"<bounce{uid}@mx.example>",
                        internal_date=datetime.now(UTC) - timedelta(hours=3 - uid))
            for uid, raw in ((1, sample("qmail.eml")), (2, sample("blocklist-550.eml")),
                             (3, sample("spam.eml")))])
        ledger.manual_change("jo@example.org", "hold", "asked us to pause", "ops")
    finally:
        ledger.close()
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli.main, [*args[:2], "--config", str(config), *args[2:]]
                              if args[0] == "addresses" else
                              [args[0], "--config", str(config), *args[1:]])


def lines(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_the_policy_comes_from_the_settings(config: Path) -> None:
    ledger = cli.open_ledger(load_settings(config))
    try:
        assert ledger.policy.storm_refusals == 50 and ledger.policy.soft_threshold == 5
    finally:
        ledger.close()


def test_list(config: Path) -> None:
    result = run(config, "addresses", "list")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["ADDRESS", "STATE", "SOFT"]
    states = {row.split()[0]: row.split()[1] for row in rows}
    assert states == {"dana@example.com": "invalid", "tess@example.net": "active",
                      "jo@example.org": "held"}

    result = run(config, "addresses", "list", "--state", "invalid,held", "--json")
    assert result.exit_code == 0, result.output
    assert sorted((r["address"], r["state"], r["suppressed"]) for r in lines(result)) == [
        ("dana@example.com", "invalid", True), ("jo@example.org", "held", True)]

    assert "no addresses in state complained" in run(
        config, "addresses", "list", "--state", "complained").stdout
    result = run(config, "addresses", "list", "--state", "gone")
    assert result.exit_code == 2 and "unknown state gone" in result.output


def test_show(config: Path) -> None:
    result = run(config, "addresses", "show", "Dana@Example.com")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("dana@example.com: invalid (suppressed)")
    assert "userunknown" in text
    bounce_id = "<bounce1@mx.example>"
    assert bounce_id in text  # the bounce that said so
    assert ["active", "invalid", "event", "userunknown"] in [
        line.split()[2:6] for line in text.splitlines()]  # the change, after its time

    data = json.loads(run(config, "addresses", "show", "dana@example.com", "--json").stdout)
    assert data["recorded"] and data["state"]["state"] == "invalid"
    [event] = data["events"]
    assert (event["reason"], event["bounce_message_id"], event["analyzer"]) == (
        "userunknown", bounce_id, "formats.qmail")
    assert [(t["from_state"], t["to_state"]) for t in data["transitions"]] == [
        ("active", "invalid")]

    unknown = run(config, "addresses", "show", "new@example.com", "--json")
    assert unknown.exit_code == 0
    assert json.loads(unknown.stdout)["recorded"] is False
    assert "nothing recorded" in run(config, "addresses", "show", "new@example.com").stdout
    assert run(config, "addresses", "show", "not an address").exit_code == 2


def test_manual_changes(config: Path) -> None:
    result = run(config, "addresses", "release", "jo@example.org", "--reason", "resumed",
                 "--actor", "alice")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("jo@example.org: held -> active (release")
    last = Transition.select().order_by(Transition.id.desc()).get()
    assert (last.address, last.cause, last.actor, last.note) == (
        "jo@example.org", "manual", "alice", "resumed")

    result = run(config, "addresses", "hold", "dana@example.com")
    assert result.exit_code == 2 and "--reason" in result.output  # a reason is required
    result = run(config, "addresses", "release", "dana@example.com", "--reason", "x")
    assert result.exit_code == 1 and "not held" in result.output
    result = run(config, "addresses", "reset", "dana@example.com", "--reason", "fixed")
    assert result.exit_code == 0 and "invalid -> active" in result.stdout
    result = run(config, "addresses", "persist", "dana@example.com", "--reason", "vip")
    assert result.exit_code == 0 and "active -> persistent" in result.stdout


def test_export(config: Path, tmp_path: Path) -> None:
    result = run(config, "addresses", "export")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["address"], r["state"], r["reason"]) for r in rows] == [
        ("dana@example.com", "invalid", "userunknown")]

    target = tmp_path / "out" / "suppress.json"
    target.parent.mkdir()
    result = run(config, "addresses", "export", "--state", "invalid,held", "--format", "json",
                 "--output", str(target))
    assert result.exit_code == 0, result.output
    data = json.loads(target.read_text(encoding="utf-8"))
    assert [(r["address"], r["state"]) for r in data] == [("dana@example.com", "invalid"),
                                                          ("jo@example.org", "held")]
    assert data[1]["note"] == "asked us to pause"
    assert not list(target.parent.glob(".*.tmp"))


def test_events(config: Path) -> None:
    result = run(config, "events")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["WHEN", "VERDICT", "REASON", "STATUS", "ADDRESS", "SENDER",
                              "BOUNCE", "MESSAGE-ID"]
    # WHEN is "YYYY-MM-DD HH:MM": the verdict and the reason follow, the address after them
    assert [row.split()[2:7] for row in rows] == [
        ["message", "refused", "blocked", "5.7.1", "550"],
        ["address", "bad", "userunknown", "5.1.1", "550"]]
    assert ["tess@example.net" in rows[0], "dana@example.com" in rows[1]] == [True, True]
    columns = [header.index("REASON"), header.index("STATUS"), header.index("ADDRESS")]
    for row in rows:  # every row's cells start under their heading
        assert all(row[column - 2:column] == "  " and row[column] != " "
                   for column in columns)

    records = lines(run(config, "events", "--address", "tess@example.net", "--json"))
    assert [(r["address"], r["reason"], r["permanent"]) for r in records] == [
        ("tess@example.net", "blocked", False)]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert "no events" in run(config, "events", "--since", tomorrow).stdout
    assert len(lines(run(config, "events", "--limit", "1", "--json"))) == 1


def test_events_and_explain_of_a_report_naming_no_recipient(config: Path) -> None:
    """Recorded, listed and explained with "(no recipient named)"; no address is added."""
    raw = (SAMPLES / "norecipient" / "12-m365-too-many-recipients.eml").read_bytes()
    ledger = cli.open_ledger(load_settings(config))
    try:
        ledger.record_batch([MessageItem(
            mailbox="bounces", uidvalidity=1, uid=9, target_folder="Processed", raw=raw,
            report=analyze(raw), message_id="<anon9@mx.example>")])
    finally:
        ledger.close()
    _header, newest, *_ = run(config, "events").stdout.splitlines()
    assert "(no recipient named)" in newest and "toomanyconn" in newest
    [record, *_] = lines(run(config, "events", "--json"))
    assert (record["address"], record["reason"], record["permanent"]) == (
        "", "toomanyconn", False)
    text = run(config, "explain", "<anon9@mx.example>").stdout
    assert "message refused, toomanyconn, 5.5.3 550: (no recipient named)" in text
    assert "changed" not in text
    listed = run(config, "addresses", "list").stdout
    assert "(no recipient named)" not in listed and "\n " not in listed


def test_explain(config: Path) -> None:
    bounce_id = "<bounce1@mx.example>"
    result = run(config, "explain", bounce_id)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "bounce by formats.qmail" in text
    assert "address bad, userunknown, 5.1.1 550: dana@example.com" in text
    assert "why:" in text and "changed dana@example.com: active -> invalid" in text
    assert "analyzed again now: bounce by formats.qmail" in text
    assert "differs" not in text

    [record] = lines(run(config, "explain", bounce_id.strip("<>"), "--json"))
    assert record["kind"] == "bounce" and record["raw_stored"]
    assert record["events"][0]["evidence"]
    assert record["analysis_now"]["recipients"][0]["reason"] == "userunknown"
    [by_id] = lines(run(config, "explain", str(record["id"]), "--json"))
    assert by_id["message_id"] == bounce_id

    assert "unclaimed" not in record["analysis_now"]

    missing = run(config, "explain", "<nothing@example.org>")
    assert missing.exit_code == 1 and "no recorded message" in missing.output


def test_explain_of_an_unknown_message_says_why_each_analyzer_passed(config: Path) -> None:
    text = run(config, "explain", "<bounce3@mx.example>").stdout
    assert "analyzed again now: unknown" in text
    notes = [line.strip() for line in text.splitlines() if line.startswith("      ")
             and line.split(":")[0].strip() in ("arf", "formats", "dsn", "plaintext",
                                                 "autoreply")]
    assert [note.split(":")[0] for note in notes] == ["arf", "formats", "dsn", "plaintext",
                                                      "autoreply"]
    assert "plaintext: not from a mail system (From is a person, return path not null)" in notes
    [record] = lines(run(config, "explain", "<bounce3@mx.example>", "--json"))
    assert [name for name, _note in record["analysis_now"]["unclaimed"]] == [
        "arf", "formats", "dsn", "plaintext", "autoreply"]
