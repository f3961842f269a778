"""`imap-bouncer analyze`: every kind of input, both output forms, and errors that name the
bad path without stopping the other inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support import BASICS, SAMPLES, sample

from imap_bouncer.cli import main
from imap_bouncer.sources import iter_messages

REPORT_FIELDS = {"kind", "message_id", "recipients", "original", "feedback_type", "user_agent",
                 "autoreply_type", "analyzer", "errors"}
RECIPIENT_FIELDS = {"address", "action", "status", "smtp_code", "diagnostic", "remote_mta",
                    "reason", "permanent"}


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, ["analyze", *args], input=stdin)


def records(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture
def mbox(tmp_path: Path) -> Path:
    """Two messages; the second's body has a line quoted as `>From ` (mboxrd)."""
    reply = sample("autoreply-rfc3834.eml").replace(
        b"Kim\n", b"Kim\n\n>From the office of Kim Lindqvist\n")
    path = tmp_path / "bounces.mbox"
    path.write_bytes(b"From MAILER-DAEMON Mon Mar 25 07:44:19 2024\n" + sample("qmail.eml")
                     + b"\nFrom kim@example.com Wed Mar 20 08:00:12 2024\n" + reply + b"\n")
    return path


def test_one_file_as_text() -> None:
    path = str(BASICS / "qmail.eml")
    result = run(path)
    assert result.exit_code == 0, result.output
    first, recipient = result.stdout.splitlines()[:2]
    assert first.startswith(f"{path}: bounce (")
    assert recipient.split() == ["address", "bad", "userunknown", "5.1.1", "550",
                                 "dana@example.com"]
    assert "why:" not in result.stdout


def test_a_report_naming_no_recipient_says_so() -> None:
    """A local MTA's refusal of the whole message: the text names the missing recipient in
    words, the JSON keeps the address empty."""
    path = str(SAMPLES / "norecipient" / "02-exim-too-many-recipients.eml")
    first, recipient = run(path).stdout.splitlines()[:2]
    assert first.startswith(f"{path}: bounce (")
    assert recipient.split() == ["message", "refused", "toomanyconn", "5.5.3", "(no",
                                 "recipient", "named)"]
    record, = records(run("--json", path))
    assert [(r["address"], r["reason"], r["permanent"]) for r in record["recipients"]] == [
        ("", "toomanyconn", False)]


def test_explain_adds_evidence() -> None:
    path = str(BASICS / "blocklist-550.eml")
    text = run("--explain", path).stdout
    assert "  why: " in text and "      said: 550 5.7.1" in text and "      why:  " in text
    record, = records(run("--json", "--explain", path))
    assert record["evidence"]
    assert record["recipients"][0]["evidence"]
    plain, = records(run("--json", path))
    assert "evidence" not in plain and "evidence" not in plain["recipients"][0]


def test_json_fields() -> None:
    path = str(BASICS / "dsn-failed-multi.eml")
    result = run("--json", path)
    assert result.exit_code == 0
    record, = records(result)
    assert set(record) == {"source", *REPORT_FIELDS}
    assert record["source"] == path
    assert record["kind"] == "bounce" and record["analyzer"]
    assert [r["address"] for r in record["recipients"]] == ["jo@example.com",
                                                            "ann@nowhere.example.net"]
    assert all(set(r) == RECIPIENT_FIELDS for r in record["recipients"])
    assert record["original"]["message_id"] == "<order-summary-20240312-8812@example.org>"


def test_challenge_says_so_and_fails_no_one() -> None:
    """A challenge-response request is an auto-reply whose type says it asks the sender to
    act; it names no failed or delayed recipient, in JSON and in the readable form."""
    path = str(SAMPLES / "autoreplies" / "c06-qurb-awaiting-confirmation.eml")
    record, = records(run("--json", path))
    assert (record["kind"], record["autoreply_type"]) == ("autoreply", "challenge")
    assert all(r["action"] == "delivered" for r in record["recipients"])
    assert ": autoreply (autoreply), autoreply-type challenge\n" in run(path).stdout
    bounce, = records(run("--json", str(BASICS / "qmail.eml")))
    assert bounce["autoreply_type"] == ""


def test_json_keeps_non_ascii() -> None:
    result = run("--json", str(BASICS / "dsn-global-utf8.eml"))
    assert "jörg@bücher.example" in result.stdout


def test_directory(tmp_path: Path) -> None:
    for name in ("exim.eml", "spam.eml"):
        shutil.copy(BASICS / name, tmp_path / name)
    (tmp_path / ".hidden").write_bytes(b"Subject: skipped\n\n")
    found = records(run("--json", str(tmp_path)))
    assert [(Path(r["source"]).name, r["kind"]) for r in found] == [("exim.eml", "bounce"),
                                                                   ("spam.eml", "unknown")]


def test_maildir(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    for folder in ("cur", "new", "tmp"):
        (maildir / folder).mkdir(parents=True)
    shutil.copy(BASICS / "qmail.eml", maildir / "cur" / "1712000000.M1P1.host:2,S")
    shutil.copy(BASICS / "arf-abuse.eml", maildir / "new" / "1712000001.M2P1.host")
    (maildir / "tmp" / "1712000002.M3P1.host").write_bytes(b"half written")
    found = records(run("--json", str(maildir)))
    assert [(Path(r["source"]).parent.name, r["kind"]) for r in found] == [
        ("cur", "bounce"), ("new", "complaint")]


def test_mbox_with_two_messages(mbox: Path) -> None:
    found = records(run("--json", str(mbox)))
    assert [(r["source"], r["kind"]) for r in found] == [
        (f"{mbox}#1", "bounce"), (f"{mbox}#2", "autoreply")]
    assert found[0]["recipients"][0]["address"] == "dana@example.com"


def test_mbox_from_quoting_is_undone(mbox: Path) -> None:
    messages = list(iter_messages(str(mbox)))
    assert len(messages) == 2
    second = messages[1][1]
    assert b"\nFrom the office of Kim Lindqvist\n" in second
    assert b">From" not in second
    assert not messages[0][1].startswith(b"From ")


def test_standard_input() -> None:
    result = run("--json", "-", stdin=sample("exim.eml"))
    assert result.exit_code == 0
    record, = records(result)
    assert record["source"] == "-"
    assert record["recipients"][0]["address"] == "eli@example.com"


def test_missing_path_is_an_error_but_the_rest_is_analyzed(tmp_path: Path) -> None:
    missing = tmp_path / "no-such.eml"
    broken_link = tmp_path / "dangling.eml"
    broken_link.symlink_to(tmp_path / "gone")
    good = str(BASICS / "qmail.eml")
    result = run("--json", str(missing), good, str(broken_link))
    assert result.exit_code == 1
    assert [r["source"] for r in records(result)] == [good]
    assert f"imap-bouncer: error: {missing}: no such file or directory" in result.stderr
    assert str(broken_link) in result.stderr
    assert "Traceback" not in result.output


def test_unreadable_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked.eml"
    locked.write_bytes(sample("qmail.eml"))
    real_open = Path.open

    def refuse(self: Path, *args, **kwargs):  # root reads any file, whatever its mode
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    result = run(str(locked), str(BASICS / "spam.eml"))
    assert result.exit_code == 1
    assert f"{locked}: Permission denied" in result.stderr
    assert "spam.eml: unknown" in result.stdout


def test_verp_option() -> None:
    pattern = "bounces+{local}={domain}@lists.example.org"
    record, = records(run("--json", "--verp", pattern, str(BASICS / "verp.eml")))
    assert record["original"]["verp_recipient"] == "jo@example.net"
    bad = run("--verp", "bounces@lists.example.org", str(BASICS / "verp.eml"))
    assert bad.exit_code == 2 and "{local}" in bad.output


def test_no_paths_is_a_usage_error() -> None:
    assert run().exit_code == 2


def test_real_process(tmp_path: Path) -> None:
    """The installed entry point, end to end: stdout for reports, stderr and exit 1 for a bad
    path, and the other inputs still reported."""
    script = Path(sys.executable).with_name("imap-bouncer")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "imap_bouncer"]
    missing = tmp_path / "missing.eml"
    done = subprocess.run(
        [*command, "analyze", "--json", str(BASICS / "gmail-style.eml"), str(missing), "-"],
        input=sample("autoreply-german.eml"), capture_output=True, timeout=60, check=False,
    )
    assert done.returncode == 1
    found = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [(Path(r["source"]).name, r["kind"]) for r in found] == [
        ("gmail-style.eml", "bounce"), ("-", "autoreply")]
    assert f"{missing}: no such file or directory" in done.stderr.decode()


def test_rows_lead_with_the_verdict_in_aligned_columns() -> None:
    paths = [str(BASICS / name) for name in ("dsn-failed-multi.eml", "blocklist-550.eml",
                                              "dsn-delayed.eml", "arf-abuse.eml",
                                              "autoreply-german.eml")]
    text = run(*paths).stdout
    assert "arf-abuse.eml: complaint (arf), feedback-type abuse, user-agent ExampleFBL/2.1\n" \
        in text
    rows = [line for line in text.splitlines() if line.startswith("  ")]
    verdicts = [row[2:17].strip() for row in rows]
    assert verdicts == ["address bad", "address bad", "message refused", "delayed",
                        "complaint", "auto-reply"]
    reasons = [row[19:34].strip() for row in rows]
    assert reasons == ["userunknown", "hostunknown", "blocked", "mailboxfull", "feedback",
                       "vacation"]
    addresses = [row.split()[-1] for row in rows]
    assert addresses[:3] == ["jo@example.com", "ann@nowhere.example.net", "tess@example.net"]
    assert len({row.index(address) for row, address in zip(rows, addresses, strict=True)}) == 1


def test_a_report_naming_no_recipient_without_its_verp_pattern() -> None:
    row = run(str(BASICS / "verp.eml")).stdout.splitlines()[1]
    assert row.split()[:3] == ["message", "refused", "suspend"]
    assert row.endswith("(no recipient named)")


def test_explain_of_an_unknown_message_lists_each_analyzer() -> None:
    text = run("--explain", str(BASICS / "spam.eml")).stdout
    assert "    plaintext: not from a mail system (From is a person, return path not null)" \
        in text.splitlines()
    record, = records(run("--json", "--explain", str(BASICS / "spam.eml")))
    assert [name for name, _ in record["unclaimed"]] == ["arf", "formats", "dsn", "plaintext",
                                                         "autoreply"]
    plain, = records(run("--json", str(BASICS / "spam.eml")))
    assert "unclaimed" not in plain
