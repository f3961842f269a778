"""Hostile mail within the size cap: every cut is recorded, no recipient is lost silently, the
work is bounded, and nothing the mail holds reaches a terminal raw (issue 9, findings 1, 3, 8).

Sizes are smaller than bench/hostile.py's (which measures time and memory at 25 MB) but large
enough that a quadratic walk or an unbounded cut would show: the only timing here is a
generous hang guard.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import hostile_mail
import pytest
from click.testing import CliRunner

from imap_bouncer import cli
from imap_bouncer.analysis import analyze
from imap_bouncer.analysis import message as mime
from imap_bouncer.ledger import Ledger, MessageItem
from imap_bouncer.report import Action, Kind, Recipient, Report
from imap_bouncer.service import folder_for
from imap_bouncer.settings import Folders

HANG_GUARD = 30.0  # seconds: far above any of these on a loaded machine; catches hangs only
# What a terminal acts on: C0 controls but line feed and tab, DEL, C1 controls, and the
# bidirectional overrides.
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
FOLDERS = Folders()


def analyzed(raw: bytes) -> Report:
    start = time.monotonic()
    report = analyze(raw)
    assert time.monotonic() - start < HANG_GUARD
    return report


# -- recipients: all of them, or a recorded cut ------------------------------------------------

def test_a_status_part_of_100000_recipients_yields_every_one() -> None:
    """Finding 3: the 512 KB cut of other parts kept 4,306 of them, silently."""
    raw = hostile_mail.many_recipients(100_000)
    assert len(raw) > 20 * mime.MAX_PART_BYTES
    report = analyzed(raw)
    assert report.kind is Kind.BOUNCE
    assert [r.address for r in report.recipients] == [
        hostile_mail.recipient_address(i) for i in range(100_000)]
    # Noted, not a cut: past the first recipients the notice is not searched for words.
    assert report.errors == [f"100000 recipients: the notice read for the first "
                             f"{mime.MAX_NOTICE_SEARCHES} only, the others from their own fields"]
    assert not report.partial
    assert folder_for(report, FOLDERS) == FOLDERS.processed


def test_recipients_named_in_a_long_notice_cost_one_search_each_at_most() -> None:
    """Each recipient without words searched the whole notice, twice: 100,000 took minutes."""
    report = analyzed(hostile_mail.many_recipients_named_in_the_notice(20_000))
    assert len(report.recipients) == 20_000
    assert report.recipients[0].diagnostic == "host mx.example.com said: 550 no"
    assert any("the notice searched for the first" in e for e in report.errors)
    assert not report.partial


def test_recipients_past_the_cap_are_a_recorded_cut_and_the_report_goes_to_error() -> None:
    report = analyzed(hostile_mail.many_recipients(mime.MAX_RECIPIENTS + 5))
    assert len(report.recipients) == mime.MAX_RECIPIENTS
    assert report.partial
    assert any(f"more than {mime.MAX_RECIPIENTS} recipients" in e for e in report.errors)
    assert folder_for(report, FOLDERS) == FOLDERS.error


def test_a_status_part_cut_short_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its own (large) limit a status part is cut too, and the cut is in the errors."""
    monkeypatch.setattr(mime, "MAX_STATUS_PART_BYTES", 10_000)
    report = analyzed(hostile_mail.many_recipients(1000))
    assert 0 < len(report.recipients) < 1000
    assert report.partial and folder_for(report, FOLDERS) == FOLDERS.error
    assert any("message/delivery-status part of" in e and "cut at 10000 bytes" in e
               for e in report.errors)
    assert any("status part was cut" in e for e in report.errors)


def test_a_text_part_cut_at_512_kb_says_so() -> None:
    report = analyzed(hostile_mail.zero_bytes(mime.MAX_PART_BYTES + 100))
    assert any(e.startswith("text/plain part of") and f"cut at {mime.MAX_PART_BYTES}" in e
               for e in report.errors)


def test_an_address_of_100000_characters_is_refused_with_a_note() -> None:
    report = analyzed(hostile_mail.long_address(100_000))
    assert report.recipients == []
    [note] = report.errors
    assert "100012 characters" in note and "refused" in note and len(note) < 200
    assert report.partial and folder_for(report, FOLDERS) == FOLDERS.error


def test_nul_characters_never_reach_the_report() -> None:
    """PostgreSQL refuses a text with NUL, and the batch with it: the report holds none."""
    report = analyzed(hostile_mail.controls_everywhere())
    text = json.dumps(report.to_dict(explain=True), ensure_ascii=False)
    assert "\x00" not in text and "\\u0000" not in text
    assert "\ufffd" in report.recipients[0].diagnostic
    encoded_only = analyzed(hostile_mail.controls_everywhere().replace(b"\x00", b""))
    assert "\x00" not in json.dumps(encoded_only.to_dict(explain=True), ensure_ascii=False)
    assert "\ufffd" in encoded_only.original.from_  # =00 in an encoded word


def test_an_address_with_control_characters_is_refused_the_others_kept() -> None:
    report = analyzed(hostile_mail.controls_everywhere())
    assert [r.address for r in report.recipients] == ["clean@example.com"]
    assert any("control characters refused" in e and "\\x1b" in e for e in report.errors)
    assert not any(RAW_CONTROL.search(e) for e in report.errors)


def test_a_refused_address_is_not_stored(test_db) -> None:
    raw = hostile_mail.long_address(100_000)
    ledger = Ledger.open(test_db.url)
    try:
        report = analyze(raw)
        ledger.record_batch([MessageItem(mailbox="bounces", uidvalidity=1, uid=1, raw=raw,
                                         target_folder=folder_for(report, FOLDERS),
                                         report=report, message_id=report.message_id)])
        assert ledger.list_addresses((), limit=10) == []
        assert ledger.events(limit=10) == []
        [explained] = ledger.explain(report.message_id)
        assert explained.target_folder == FOLDERS.error
        assert any("refused" in e for e in explained.errors)
    finally:
        ledger.close()


# -- parts, headers, encoded words: bounded, each cut recorded ------------------------------

def test_200000_parts_finish_and_the_cut_is_recorded() -> None:
    """Finding 1: 100,000 parts took 9 s (a quadratic walk), 700,000 over five minutes."""
    report = analyzed(hostile_mail.many_parts(200_000))
    assert any(f"more than {mime.MAX_PARTS} MIME parts" in e for e in report.errors)
    assert folder_for(report, FOLDERS) == FOLDERS.error


def test_walking_a_wide_message_lists_each_part_once() -> None:
    message = mime.parse_message(hostile_mail.many_typed_parts(5000))
    walked = list(message.walk())
    assert len(walked) == mime.MAX_PARTS and len({id(p) for p in walked}) == mime.MAX_PARTS
    assert message.walk().__next__() is message and list(message.walk()) == walked


@pytest.mark.parametrize("raw", [hostile_mail.nested_parts(500),
                                 hostile_mail.nested_messages(500)],
                         ids=["multiparts", "messages"])
def test_nesting_past_the_depth_limit_is_recorded(raw: bytes) -> None:
    report = analyzed(raw)
    assert any(f"nested more than {mime.MAX_DEPTH} deep" in e for e in report.errors)


@pytest.mark.parametrize("raw", [hostile_mail.long_header(3_000_000),
                                 hostile_mail.folded_header(1_000_000),
                                 hostile_mail.long_subject(3_000_000)],
                         ids=["one line", "folded", "subject"])
def test_a_huge_header_is_read_up_to_its_cap_and_the_cut_recorded(raw: bytes) -> None:
    report = analyzed(raw)
    assert any("header block of" in e and f"read up to {mime.MAX_HEADER_BYTES} bytes" in e
               for e in report.errors)
    part = mime.parse_message(raw)
    assert sum(len(name) + len(value) for name, value in part.headers) \
        <= mime.MAX_HEADER_BYTES
    assert part.text.startswith("Delivery failed.")  # the body is still where it was


def test_many_header_fields_are_capped() -> None:
    part = mime.parse_message(hostile_mail.many_headers(20_000))
    assert len(part.headers) == mime.MAX_HEADER_FIELDS
    assert any("header fields: the first" in e for e in part.errors)


def test_encoded_words_past_the_cap_are_left_as_written_and_noted() -> None:
    count = mime.MAX_ENCODED_WORDS * 20
    raw = hostile_mail.encoded_words(count)
    part = mime.parse_message(raw)
    subject = part.decoded("subject")
    assert subject.count("ABC") == mime.MAX_ENCODED_WORDS
    assert subject.count("=?x-unknown-") == count - mime.MAX_ENCODED_WORDS
    report = analyzed(raw)
    assert any(f"more than {mime.MAX_ENCODED_WORDS} encoded words" in e for e in report.errors)


def test_encoded_words_in_the_original_are_capped_and_noted() -> None:
    report = analyzed(hostile_mail.encoded_words_from(mime.MAX_ENCODED_WORDS * 3))
    assert report.original.from_.count("=?x-bogus?") == mime.MAX_ENCODED_WORDS * 2
    assert any("encoded words" in e for e in report.errors)


def test_ordinary_encoded_words_are_unaffected() -> None:
    assert mime.decode_words("=?utf-8?Q?J=C3=B6rg?= =?utf-8?B?w6Q=?=", []) == "Jörgä"


@pytest.mark.parametrize("name", ["zero_bytes", "bad_charsets", "bare_newlines"])
def test_zero_bytes_bad_charsets_and_bare_newlines_never_raise(name: str) -> None:
    raw = {"zero_bytes": lambda: hostile_mail.zero_bytes(100_000),
           "bad_charsets": lambda: hostile_mail.bad_charsets(2000),
           "bare_newlines": lambda: hostile_mail.bare_newlines(1_000_000)}[name]()
    report = analyzed(raw)
    assert not any(e.startswith("analysis failed") or "analyzer failed" in e
                   for e in report.errors)


# -- terminal-safe output ----------------------------------------------------------------------

def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own, as a person's terminal would run it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("IMAP_BOUNCER_")}
    return subprocess.run([sys.executable, "-m", "imap_bouncer", *args], cwd=cwd,
                          capture_output=True, text=True, encoding="utf-8", timeout=60,
                          env=environment, check=False)


def test_analyze_and_explain_print_no_raw_control(tmp_path: Path) -> None:
    path = tmp_path / "controls.eml"
    path.write_bytes(hostile_mail.controls_everywhere())
    for args in (["analyze", str(path)], ["analyze", "--explain", str(path)]):
        done = run_cli(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert not RAW_CONTROL.search(done.stdout), done.stdout
        assert "\\x1b[31m" in done.stdout and "clean@example.com" in done.stdout
    lines = done.stdout.splitlines()
    assert not any(line.startswith("Bcc:") for line in lines)  # no line forged by a CR LF
    assert "partial" in done.stdout


def test_analyze_json_stays_json_with_every_control_escaped(tmp_path: Path) -> None:
    path = tmp_path / "controls.eml"
    path.write_bytes(hostile_mail.controls_everywhere())
    done = run_cli("analyze", "--json", "--explain", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not RAW_CONTROL.search(done.stdout)
    [line] = done.stdout.splitlines()
    record = json.loads(line)
    assert "\x1b[31m" in record["recipients"][0]["diagnostic"]  # the value itself is kept
    assert record["partial"] is True


@pytest.fixture
def hostile_config(test_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database holding the controls message as recorded, and an address with controls
    recorded before analysis refused such addresses (or written by another tool)."""
    for name in list(os.environ):
        if name.upper().startswith("IMAP_BOUNCER_"):
            monkeypatch.delenv(name)
    path = tmp_path / "settings.toml"
    path.write_text(f'[database]\nurl = "{test_db.url}"\nstore_raw = true\n\n'
                    '[policy]\nhard_threshold = 1\n', encoding="utf-8")
    raw = hostile_mail.controls_everywhere()
    report = analyze(raw)
    old = Report(kind=Kind.BOUNCE, message_id="<old\x1b]0;x\x07@mx.example>", recipients=[
        Recipient(address="ev\x1b[2Jil\u202e@example.com", action=Action.FAILED,
                  status="5.1.1", reason="userunknown", permanent=True,
                  diagnostic="550 \x1b[31mgone\x08", evidence="x\ny")])
    ledger = Ledger.open(test_db.url, store_raw=True)
    try:
        ledger.record_batch([
            MessageItem(mailbox="bounces", uidvalidity=1, uid=1, target_folder="Error",
                        raw=raw, report=report, message_id=report.message_id),
            MessageItem(mailbox="bounces", uidvalidity=1, uid=2, target_folder="Processed",
                        raw=None, report=old, message_id=old.message_id)])
    finally:
        ledger.close()
    return path


@pytest.mark.parametrize("args", [("addresses", "list"), ("events",),
                                  ("explain", "<hostile@mx.example.net>"),
                                  ("explain", "<old\x1b]0;x\x07@mx.example>"),
                                  ("addresses", "show", "clean@example.com")],
                         ids=["addresses list", "events", "explain", "explain old",
                              "addresses show"])
def test_commands_reading_the_database_print_no_raw_control(hostile_config: Path,
                                                            args: tuple[str, ...]) -> None:
    command = ([*args[:2], "--config", str(hostile_config), *args[2:]]
               if args[0] == "addresses" else [args[0], "--config", str(hostile_config),
                                               *args[1:]])
    result = CliRunner().invoke(cli.main, command)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()
    assert not RAW_CONTROL.search(result.stdout), result.stdout
    if args[0] != "addresses" or args[1] == "list":
        assert "\\x1b" in result.stdout  # shown, escaped


# -- through the service: a real Dovecot, both databases -----------------------------------

@pytest.mark.dovecot
def test_the_service_files_partial_reports_in_error_and_records_what_was_read(
        imap_server, test_db) -> None:
    """A message with 100,005 recipients, one with a 100,000-character address and one of
    700,000-part width go to Error with their notes; the full 100,000-recipient one and the
    controls one's clean recipient are recorded (nothing lost, nothing stored raw)."""
    from service_support import append, counts, imap_settings

    from imap_bouncer.service import MailboxService

    messages = [hostile_mail.many_recipients(mime.MAX_RECIPIENTS + 5),
                hostile_mail.long_address(100_000),
                hostile_mail.many_parts(50_000),
                hostile_mail.controls_everywhere(),
                hostile_mail.many_recipients(3)]
    append(imap_server, [raw.replace(b"<hostile@", b"<hostile-%d@" % i)
                         for i, raw in enumerate(messages)])
    ledger = Ledger.open(test_db.url)
    try:
        service = MailboxService(imap_settings(imap_server), ledger)
        with service.connected() as mailbox:
            service.run_pass(mailbox)
        assert counts(imap_server, ("INBOX", "Error", "Processed", "Unknown")) == {
            "INBOX": 0, "Error": 4, "Processed": 1, "Unknown": 0}
        [capped] = ledger.explain("<hostile-0@mx.example.net>")
        assert capped.target_folder == "Error" and len(capped.events) == mime.MAX_RECIPIENTS
        assert any("more than 100000 recipients" in e for e in capped.errors)
        [refused] = ledger.explain("<hostile-1@mx.example.net>")
        assert refused.events == () and any("refused" in e for e in refused.errors)
        [controls] = ledger.explain("<hostile-3@mx.example.net>")
        assert [e.address for e in controls.events] == ["clean@example.com"]
        assert not any(RAW_CONTROL.search(e.address) for e in controls.events)
    finally:
        ledger.close()
