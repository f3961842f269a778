"""Review folders and `reprocess`, end to end: a real Dovecot, both databases, the real command
where a person would use it (`once`, `reprocess`), the service in this process where a fault
has to be injected. Assertions are about where messages are and what the database holds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dovecot
import pytest
from service_support import (
    append,
    client,
    counts,
    imap_settings,
    rows,
    run_cli,
    table_counts,
    uidvalidity,
    write_settings,
)
from support import sample

from imap_bouncer import analysis, review
from imap_bouncer.ledger import Ledger, MessageItem
from imap_bouncer.mailbox import Mailbox, MailboxError
from imap_bouncer.models import Event, Message, Transition
from imap_bouncer.policy import Policy, SendState, State
from imap_bouncer.report import Kind, Recipient, Report
from imap_bouncer.service import MailboxService

pytestmark = pytest.mark.dovecot

VERP = "bounces+{local}={domain}@lists.example.org"
REVIEWS = ("Review/Hard", "Review/Soft", "Review/Ignore")
# Not a bounce to the analyzer (a person's reply), but sent to a VERP address: its recipient.
VERP_REPLY = (b"From: Kim <kim@example.com>\r\nTo: bounces+kim=example.com@lists.example.org\r\n"
              b"Subject: Re: your newsletter\r\nMessage-ID: <reply-1@example.com>\r\n"
              b"Date: Thu, 4 Apr 2024 06:30:01 +0000\r\n\r\n"
              b"I no longer work here; this mailbox is closed.\r\n")


def settings_file(tmp_path: Path, account: dovecot.Account, test_db) -> Path:
    return write_settings(tmp_path / "settings.toml", account, test_db.url,
                          analysis={"workers": 0, "verp_patterns": [VERP]})


def create(account: dovecot.Account, *folders: str) -> None:
    with client(account) as c:
        for folder in folders:
            c.create_folder(folder)


@contextlib.contextmanager
def opened(url: str) -> Iterator[Ledger]:
    ledger = Ledger.open(url)
    try:
        yield ledger
    finally:
        ledger.close()


def state_of(ledger: Ledger, address: str) -> str | None:
    info = ledger.address_state(address)
    return None if info is None else info.state


# -- review folders ----------------------------------------------------------------------------


def test_review_folders_record_each_verdict_and_file_the_messages(imap_server, test_db,
                                                                   tmp_path):
    config = settings_file(tmp_path, imap_server, test_db)
    create(imap_server, *REVIEWS)
    # Hard: a delay (the analyzer would change nothing) and a reply naming only its VERP
    # recipient; and a newsletter, which names nobody.
    append(imap_server, [sample("dsn-delayed.eml"), VERP_REPLY, sample("newsletter-bulk.eml")],
           "Review/Hard")
    append(imap_server, [sample("mailbox-full.eml")], "Review/Soft")
    append(imap_server, [sample("postfix.eml")], "Review/Ignore")  # a bounce, ignored

    done = run_cli("once", "-c", str(config), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "reviewed:  hard 3, ignore 1, soft 1" in done.stdout
    assert "names no address" in done.stdout
    assert counts(imap_server, [*REVIEWS, "Processed", "Error"]) == {
        "Review/Hard": 0, "Review/Soft": 0, "Review/Ignore": 0, "Processed": 4, "Error": 1}
    with opened(test_db.url) as ledger:
        assert state_of(ledger, "lee@example.com") == "invalid"
        assert state_of(ledger, "kim@example.com") == "invalid"
        soft = ledger.address_state("wes@example.org")
        assert soft is not None and (soft.state, soft.soft_count) == ("soft_bouncing", 1)
        assert state_of(ledger, "rob@example.com") is None  # ignored: nothing changed

        [change] = ledger.transitions("lee@example.com")
        assert (change.from_state, change.to_state, change.cause, change.reason) == (
            "active", "invalid", "review", "review.hard")
        assert change.note == "filed in Review/Hard" and change.event_id is not None
        [event] = ledger.events(address="lee@example.com")
        assert (event.kind, event.action, event.permanent) == ("bounce", "failed", True)
        # The analyzer's facts are kept; its reason (a full mailbox) is no address reason.
        assert (event.status, event.reason) == ("4.2.2", "undefined")
        assert event.mailbox == "default#Review/Hard" and event.analyzer == "review.hard"

        by_place = {(m.mailbox, m.analyzer): m for m in Message.select()}
        ignored = by_place[("default#Review/Ignore", "review.ignore")]
        assert ignored.kind == "bounce" and ignored.target_folder == "Processed"
        assert Event.select().where(Event.message == ignored.id).count() == 0
        nobody = [m for m in Message.select() if m.target_folder == "Error"]
        assert len(nobody) == 1 and "names no address" in " ".join(nobody[0].errors)
        assert all(m.moved for m in Message.select())
        before = (table_counts(ledger), Transition.select().count())

    again = run_cli("once", "-c", str(config), cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert "reviewed" not in again.stdout
    with opened(test_db.url) as ledger:
        assert (table_counts(ledger), Transition.select().count()) == before


def test_a_review_recorded_but_not_moved_is_only_moved_next_time(imap_server, test_db):
    create(imap_server, *REVIEWS)
    append(imap_server, [sample("mailbox-full.eml")], "Review/Soft")
    failures = []

    class MoveFailsOnce(Mailbox):
        def move(self, uids, folder):
            if not failures:
                failures.append(folder)
                raise MailboxError("injected: the connection broke during MOVE")
            super().move(uids, folder)

    with opened(test_db.url) as ledger:
        service = MailboxService(imap_settings(imap_server), ledger,
                                 analysis.Options(verp_patterns=(VERP,)),
                                 mailbox_factory=MoveFailsOnce)
        with pytest.raises(MailboxError, match="injected"), service.connected() as mailbox:
            service.run_pass(mailbox)

        # Recorded (one transaction), not moved: still in the review folder.
        assert counts(imap_server, ["Review/Soft", "Processed"]) == {
            "Review/Soft": 1, "Processed": 0}
        assert [(r.events, r.moved) for r in rows(ledger)] == [(1, False)]
        assert ledger.address_state("wes@example.org").soft_count == 1

        with service.connected() as mailbox:
            summary = service.run_pass(mailbox)

        assert summary.reviewed == {"soft": 1}
        assert counts(imap_server, ["Review/Soft", "Processed"]) == {
            "Review/Soft": 0, "Processed": 1}
        assert [(r.events, r.moved) for r in rows(ledger)] == [(1, True)]
        assert Transition.select().count() == 1  # the verdict was applied once


def test_a_missing_review_folder_never_stops_the_source_folder(imap_server, test_db):
    append(imap_server, [sample("postfix.eml")])
    with opened(test_db.url) as ledger:
        service = MailboxService(imap_settings(imap_server), ledger)
        with service.connected(create_folders=False) as mailbox:
            mailbox.ensure_folders(["Processed", "Unknown", "Error"])
            summary = service.run_pass(mailbox)
        assert summary.processed == 1 and not summary.reviewed
    assert counts(imap_server, ["INBOX", "Processed"]) == {"INBOX": 0, "Processed": 1}


# -- reprocess ---------------------------------------------------------------------------------


def record_as_unknown(ledger: Ledger, account: dovecot.Account, raw: bytes, uid: int) -> None:
    """What an older analyzer did: the message, as the server gives it (CRLF), recorded as
    unknown (from INBOX UID `uid`) and filed in Unknown."""
    append(account, [raw], "Unknown")
    [recorded] = ledger.record_batch([MessageItem(
        mailbox="default", uidvalidity=uidvalidity(account), uid=uid, target_folder="Unknown",
        raw=_only_message(account, "Unknown"), report=Report(kind=Kind.UNKNOWN),
        analyzer_version="0", internal_date=datetime.now(UTC))])
    ledger.mark_moved("default", recorded.uidvalidity, [uid])


def test_reprocess_records_and_files_what_is_recognised_now(imap_server, test_db, tmp_path):
    config = settings_file(tmp_path, imap_server, test_db)
    create(imap_server, "Processed", "Unknown", "Error")
    with opened(test_db.url) as ledger:
        record_as_unknown(ledger, imap_server, sample("postfix.eml"), uid=7)
    append(imap_server, [sample("dsn-failed-multi.eml"), sample("spam.eml")], "Unknown")

    dry = run_cli("reprocess", "--folder", "Unknown", "--dry-run", "-c", str(config),
                  cwd=tmp_path)

    assert dry.returncode == 0, dry.stderr
    assert "3 message(s) in Unknown, 2 recognised now, would file in Processed; 1 stay" \
        in dry.stdout
    lines = dry.stdout.splitlines()
    assert any("unknown" in line and "-> " in line and "bounce" in line
               and "rob@example.com" in line for line in lines)
    assert any("not recorded" in line and "jo@example.com, ann@nowhere.example.net" in line
               for line in lines)
    assert counts(imap_server, ["Unknown", "Processed"]) == {"Unknown": 3, "Processed": 0}
    with opened(test_db.url) as ledger:
        assert [(r.kind, r.events) for r in rows(ledger)] == [("unknown", 0)]
        assert state_of(ledger, "rob@example.com") is None

    done = run_cli("reprocess", "--folder", "Unknown", "-c", str(config), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "2 recognised now, filed in Processed; 1 stay" in done.stdout
    assert counts(imap_server, ["Unknown", "Processed"]) == {"Unknown": 1, "Processed": 2}
    assert b"promo.example.net" in _only_message(imap_server, "Unknown")
    with opened(test_db.url) as ledger:
        recorded = rows(ledger)
        # The old record took the new analysis (no second row for the same bytes) ...
        assert [(r.uid, r.kind, r.target_folder, r.events, r.moved) for r in recorded] == [
            (7, "bounce", "Processed", 1, True), (2, "bounce", "Processed", 2, True)]
        old = Message.get(Message.uid == 7)
        assert old.analyzer == "formats.postfix" and old.analyzer_version != "0"
        # ... and the policy followed, for both.
        assert state_of(ledger, "rob@example.com") == "invalid"
        assert state_of(ledger, "jo@example.com") == "invalid"
        assert Message.get(Message.uid == 2).mailbox == "default#Unknown"
        before = (table_counts(ledger), Transition.select().count())

    again = run_cli("reprocess", "-c", str(config), cwd=tmp_path)  # the unknown folder

    assert again.returncode == 0, again.stderr
    assert "1 message(s) in Unknown, 0 recognised now" in again.stdout
    with opened(test_db.url) as ledger:
        assert (table_counts(ledger), Transition.select().count()) == before


def test_reprocess_refuses_the_source_processed_and_review_folders(imap_server, test_db,
                                                                   tmp_path):
    config = settings_file(tmp_path, imap_server, test_db)
    for folder in ("INBOX", "processed", "Review/Soft"):
        done = run_cli("reprocess", "--folder", folder, "-c", str(config), cwd=tmp_path)
        assert done.returncode == 2, done.stdout
        assert "--folder" in done.stderr


def _only_message(account: dovecot.Account, folder: str) -> bytes:
    with client(account) as c:
        c.select_folder(folder, readonly=True)
        [uid] = c.search("ALL")
        return c.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]


# -- the verdict rules (pure) ------------------------------------------------------------------

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RULES = Policy()


@pytest.mark.parametrize(("start", "verdict", "expected"), [
    (State.ACTIVE, review.Verdict.HARD, State.INVALID),
    (State.SOFT_BOUNCING, review.Verdict.HARD, State.INVALID),
    (State.ACTIVE, review.Verdict.SOFT, State.SOFT_BOUNCING),
    (State.ACTIVE, review.Verdict.IGNORE, State.ACTIVE),
    (State.HELD, review.Verdict.HARD, State.HELD),
    (State.PERSISTENT, review.Verdict.HARD, State.PERSISTENT),
    (State.PERSISTENT, review.Verdict.SOFT, State.PERSISTENT),
    (State.COMPLAINED, review.Verdict.HARD, State.COMPLAINED),
    (State.INVALID, review.Verdict.SOFT, State.INVALID),
])
def test_verdicts(start, verdict, expected):
    counting = NOW.replace(day=1) if start is State.SOFT_BOUNCING else None  # not expired
    state, changes = review.judge(SendState(state=start, last_soft_at=counting), verdict,
                                  RULES, NOW, "filed")
    assert state.state is expected
    assert [(c.cause, c.to_state) for c in changes] == (
        [] if expected is start else [("review", expected)])


def test_a_soft_verdict_counts_like_a_soft_bounce():
    state, _ = review.judge(SendState(), review.Verdict.SOFT, RULES, NOW)
    again, changes = review.judge(state, review.Verdict.SOFT, RULES, NOW)
    assert again.soft_count == 1 and changes == []  # one a day, like any soft bounce
    for day in range(1, RULES.soft_threshold):
        again, _ = review.judge(again, review.Verdict.SOFT, RULES,
                                NOW.replace(day=2 + day))
    assert again.state is State.UNREACHABLE and again.reason == "review.soft"


def test_an_expired_state_expires_before_the_verdict():
    unreachable = SendState(state=State.UNREACHABLE, suppressed_until=NOW.replace(day=1))
    state, changes = review.judge(unreachable, review.Verdict.IGNORE, RULES, NOW)
    assert state.state is State.ACTIVE and [c.cause for c in changes] == ["expiry"]


def test_the_addresses_of_a_message():
    report = Report(kind=Kind.BOUNCE, recipients=[
        Recipient("a@example.org"), Recipient("b@example.org", action="delivered"),
        Recipient("")])
    assert review.addresses(report) == ("a@example.org",)
    report.recipients = []
    report.original.verp_recipient = "v@example.org"
    assert review.addresses(report) == ("v@example.org",)
    assert review.addresses(Report()) == ()


def test_the_verdict_report_keeps_only_reasons_that_agree():
    report = Report(kind=Kind.BOUNCE, analyzer="dsn", recipients=[
        Recipient("a@example.org", reason="blocked", status="5.7.1"),
        Recipient("b@example.org", reason="userunknown", permanent=True)])
    hard = review.verdict_report(report, review.Verdict.HARD,
                                 ("a@example.org", "b@example.org"), "Review/Hard")
    assert [(r.reason, r.permanent, r.status) for r in hard.recipients] == [
        ("undefined", True, "5.7.1"), ("userunknown", True, "")]
    assert hard.analyzer == "review.hard" and hard.kind is Kind.BOUNCE
    soft = review.verdict_report(report, review.Verdict.SOFT, ("a@example.org",), "R")
    assert [(r.reason, r.permanent) for r in soft.recipients] == [("undefined", False)]
    ignored = review.verdict_report(report, review.Verdict.IGNORE, ("a@example.org",), "R")
    assert ignored.recipients == [] and ignored.kind is Kind.BOUNCE
