"""The project's own sample messages against what the analyzer must find in each.

One table drives every test here: a row per sample names the kind, the analyzer allowed to
decide (a named format module or the generic reader it would otherwise fall back to), each
recipient's verdict, and the analyzers of the chain that must leave the message alone.
A row whose expectation the analyzer does not meet yet keeps the RIGHT expectation and says
why in `xfail`; strict, so a fix shows up as a failure to remove the mark.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from support import SAMPLES, sample, sample_names

from imap_bouncer import policy
from imap_bouncer.analysis import CHAIN, Options, analyze, formats
from imap_bouncer.analysis.message import parse_message
from imap_bouncer.analysis.origin import from_list, report_passed_on_by_list
from imap_bouncer.report import Action, AutoreplyType, Kind, Reason

FAILED, DELAYED, DELIVERED = Action.FAILED, Action.DELAYED, Action.DELIVERED
BOUNCE_ANALYZERS = ("arf", "formats", "dsn", "plaintext")
EVERY_ANALYZER = (*BOUNCE_ANALYZERS, "autoreply")
VERP = Options(verp_patterns=("bounces+{local}={domain}@lists.example.org",))


@dataclass(frozen=True)
class Rcpt:
    address: str
    action: Action
    reason: Reason
    permanent: bool
    status_class: str


@dataclass(frozen=True)
class Row:
    file: str
    kind: Kind
    analyzers: tuple[str, ...]  # any of these may decide; ("",) = nothing claims it
    recipients: tuple[Rcpt, ...] = ()
    not_claimed_by: tuple[str, ...] = ()  # chain entries that must return None
    message_id: str = ""  # of the original message, when the bounce carries it
    feedback_type: str = ""
    options: Options | None = None
    xfail_verdict: str = ""  # the kind/analyzer expectation is not met yet, because...
    xfail_recipients: str = ""  # the recipient expectation is not met yet, because...

    def __str__(self) -> str:
        return self.file


def userunknown(address: str) -> Rcpt:
    return Rcpt(address, FAILED, Reason.USERUNKNOWN, True, "5")


TABLE: tuple[Row, ...] = (
    # --- RFC 3464 delivery status notifications -----------------------------------------
    Row("dsn-failed-multi.eml", Kind.BOUNCE, ("dsn", "formats.postfix"),
        (userunknown("jo@example.com"),
         Rcpt("ann@nowhere.example.net", FAILED, Reason.HOSTUNKNOWN, True, "5")),
        ("arf", "autoreply"), message_id="<order-summary-20240312-8812@example.org>"),
    Row("dsn-delayed.eml", Kind.DELAY, ("dsn", "formats.postfix"),
        (Rcpt("lee@example.com", DELAYED, Reason.MAILBOXFULL, False, "4"),),
        ("arf", "autoreply"), message_id="<catalogue-20240313-lee@example.org>"),
    Row("dsn-delivered.eml", Kind.DELIVERED, ("dsn", "formats.postfix"),
        (Rcpt("pat@example.com", DELIVERED, Reason.DELIVERED, False, "2"),),
        ("arf", "autoreply"), message_id="<contract-draft-1@example.org>"),
    Row("dsn-global-utf8.eml", Kind.BOUNCE, ("dsn", "formats.postfix"),
        (userunknown("jörg@bücher.example"),), ("arf", "autoreply"),
        message_id="<versand-20417@example.org>"),
    # --- RFC 5965 feedback reports ------------------------------------------------------
    Row("arf-abuse.eml", Kind.COMPLAINT, ("arf",),
        (Rcpt("robin@isp.example.net", DELIVERED, Reason.FEEDBACK, False, "2"),),
        ("formats", "dsn", "plaintext"), message_id="<order-summary-20240318-0042@example.org>",
        feedback_type="abuse"),
    Row("arf-headers-only.eml", Kind.COMPLAINT, ("arf",),
        (Rcpt("casey@mail.example.net", DELIVERED, Reason.FEEDBACK, False, "2"),),
        ("formats", "dsn", "plaintext"),
        message_id="<free-shipping-20240319-casey@example.org>", feedback_type="abuse"),
    # --- RFC 3834 and out-of-office replies ---------------------------------------------
    Row("autoreply-rfc3834.eml", Kind.AUTOREPLY, ("autoreply",),
        (Rcpt("kim@example.com", DELIVERED, Reason.VACATION, False, "2"),), BOUNCE_ANALYZERS),
    Row("autoreply-exchange.eml", Kind.AUTOREPLY, ("autoreply",),
        (Rcpt("morgan.hale@corp.example.com", DELIVERED, Reason.VACATION, False, "2"),),
        BOUNCE_ANALYZERS),
    Row("autoreply-german.eml", Kind.AUTOREPLY, ("autoreply",),
        (Rcpt("j.mueller@example.net", DELIVERED, Reason.VACATION, False, "2"),),
        BOUNCE_ANALYZERS),
    # --- named MTA formats --------------------------------------------------------------
    Row("qmail.eml", Kind.BOUNCE, ("formats.qmail", "plaintext"),
        (userunknown("dana@example.com"),), ("arf", "dsn", "autoreply"),
        message_id="<catalogue-20240325-dana@example.org>"),
    Row("oneline-notice.eml", Kind.BOUNCE, ("plaintext",),
        (Rcpt("rosa@example.com", FAILED, Reason.MAILBOXFULL, False, "5"),),
        ("arf", "formats", "dsn", "autoreply")),
    Row("exim.eml", Kind.BOUNCE, ("formats.exim", "plaintext"),
        (userunknown("eli@example.com"),), ("arf", "dsn", "autoreply"),
        message_id="<catalogue-20240326-eli@example.org>"),
    Row("postfix.eml", Kind.BOUNCE, ("dsn", "formats.postfix"),
        (userunknown("rob@example.com"),), ("arf", "autoreply"),
        message_id="<catalogue-20240327-rob@example.org>"),
    Row("sendmail.eml", Kind.BOUNCE, ("dsn", "formats.sendmail"),
        (userunknown("fran@example.com"),), ("arf", "autoreply"),
        message_id="<catalogue-20240328-fran@example.org>"),
    Row("exchange2003.eml", Kind.BOUNCE, ("formats.exchange2003", "plaintext"),
        (userunknown("quinn@example.com"),), ("arf", "dsn", "autoreply"),
        message_id="<catalogue-20240327-quinn@example.org>"),
    Row("gmail-style.eml", Kind.BOUNCE, ("dsn", "formats.gmail"),
        (userunknown("val.brandt@example.com"),), ("arf", "autoreply"),
        message_id="<reminder-20240329-val@example.org>"),
    # --- reasons that must not suppress the address --------------------------------------
    Row("exim-delay.eml", Kind.DELAY, ("formats.exim", "plaintext"),
        (Rcpt("noor@example.com", DELAYED, Reason.SYSTEMERROR, False, "4"),),
        ("arf", "dsn", "autoreply")),
    Row("blocklist-550.eml", Kind.BOUNCE, ("dsn", "formats.postfix"),
        (Rcpt("tess@example.net", FAILED, Reason.BLOCKED, False, "5"),), ("arf", "autoreply"),
        message_id="<catalogue-20240401-tess@example.org>"),
    Row("dmarc-reject.eml", Kind.BOUNCE, ("dsn",),
        (Rcpt("uma@example.com", FAILED, Reason.AUTHFAILURE, False, "5"),), ("arf", "autoreply"),
        message_id="<invoice-20240402-uma@example.org>"),
    Row("mailbox-full.eml", Kind.BOUNCE, ("formats.exim", "plaintext"),
        (Rcpt("wes@example.org", FAILED, Reason.MAILBOXFULL, False, "5"),),
        ("arf", "dsn", "autoreply"), message_id="<catalogue-20240403-wes@example.org>"),
    Row("verp.eml", Kind.BOUNCE, ("plaintext",),
        (Rcpt("jo@example.net", FAILED, Reason.SUSPEND, False, "5"),), ("arf", "dsn", "autoreply"),
        options=VERP),
    # --- messages no bounce analyzer may claim --------------------------------------------
    Row("person-reply-undeliverable.eml", Kind.UNKNOWN, ("",), (), EVERY_ANALYZER),
    Row("newsletter-bulk.eml", Kind.UNKNOWN, ("",), (), EVERY_ANALYZER),
    Row("forwarded-rfc822.eml", Kind.UNKNOWN, ("",), (), EVERY_ANALYZER),
    # A helpdesk's receipt is an automatic reply (the issue: "ticket or other automatic
    # replies"), never a bounce.
    Row("ticket-receipt.eml", Kind.AUTOREPLY, ("autoreply",),
        (Rcpt("support@helpdesk.example.com", DELIVERED, Reason.VACATION, False, "2"),),
        BOUNCE_ANALYZERS),
    Row("spam.eml", Kind.UNKNOWN, ("",), (), EVERY_ANALYZER),
    Row("html-marketing.eml", Kind.UNKNOWN, ("",), (), EVERY_ANALYZER),
    # A list digest saved without its headers: addresses at line starts, no sender at all.
    Row("headerless-digest.eml", Kind.UNKNOWN, ("",), (), EVERY_ANALYZER),
    # --- broken input ---------------------------------------------------------------------
    Row("crlf.eml", Kind.BOUNCE, ("dsn", "formats.sendmail"),
        (userunknown("ivy@example.test"),), ("arf", "autoreply"),
        message_id="<catalogue-20240411-ivy@example.org>"),
    Row("cr-only.eml", Kind.BOUNCE, ("formats.qmail", "plaintext"),
        (userunknown("zoe@old.example.net"),), ("arf", "dsn", "autoreply"),
        message_id="<catalogue-20240412-zoe@example.org>"),
    Row("bad-charset-8bit.eml", Kind.BOUNCE, ("plaintext",),
        (userunknown("yara@example.net"),), ("arf", "dsn", "autoreply")),
    Row("encoded-subject.eml", Kind.BOUNCE, ("plaintext",),
        (userunknown("alex@example.net"),), ("arf", "dsn", "autoreply")),
    Row("truncated.eml", Kind.BOUNCE, ("dsn", "formats.postfix"),
        (userunknown("max@example.com"),), ("arf", "autoreply")),
    Row("no-boundary.eml", Kind.BOUNCE, ("dsn", "formats.sendmail"),
        (userunknown("nico@example.com"),), ("arf", "autoreply")),
    Row("bad-address-header.eml", Kind.BOUNCE, ("formats.exim", "plaintext"),
        (userunknown("omar@example.com"),), ("arf", "dsn", "autoreply")),
    Row("empty.eml", Kind.UNKNOWN, ("",), (), EVERY_ANALYZER),
    Row("garbage.eml", Kind.UNKNOWN, ("",), (), EVERY_ANALYZER),
)


def rows(xfail_field: str = "") -> list:
    """The table as pytest parameters, with the strict xfail mark a row asks for."""
    params = []
    for row in TABLE:
        reason = getattr(row, xfail_field) if xfail_field else ""
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(row, id=row.file, marks=marks))
    return params


def report_of(row: Row):
    return analyze(sample(row.file), row.options)


@pytest.mark.parametrize("row", rows("xfail_verdict"))
def test_kind_and_analyzer(row: Row) -> None:
    report = report_of(row)
    assert report.kind is row.kind, report.evidence
    assert report.analyzer in row.analyzers, report.evidence
    if row.feedback_type:
        assert report.feedback_type == row.feedback_type


@pytest.mark.parametrize("row", rows("xfail_recipients"))
def test_recipients(row: Row) -> None:
    report = report_of(row)
    found = [Rcpt(r.address, r.action, r.reason, r.permanent, r.status[:1])
             for r in report.recipients]
    assert found == list(row.recipients), [r.evidence for r in report.recipients]
    for recipient in report.recipients:
        if recipient.status:
            parts = recipient.status.split(".")
            assert len(parts) == 3 and all(p.isdigit() for p in parts), recipient.status


@pytest.mark.parametrize("row", rows())
def test_not_claimed_by(row: Row) -> None:
    message = parse_message(sample(row.file))
    chain = dict(CHAIN)
    claimed = []
    for name in row.not_claimed_by:
        if name == "formats":  # every known format module, so a failure names the culprit
            claimed += [f"formats.{m.NAME}" for m in formats.KNOWN if m.analyze(message)]
        elif chain[name](message) is not None:
            claimed.append(name)
    assert claimed == []


@pytest.mark.parametrize("row", [r for r in rows() if r.values[0].message_id])
def test_original_message_found(row: Row) -> None:
    assert report_of(row).original.message_id == row.message_id


@pytest.mark.parametrize("row", rows())
def test_report_is_json(row: Row) -> None:
    report = report_of(row)
    data = json.loads(json.dumps(report.to_dict(explain=True)))
    assert data["kind"] == str(report.kind)
    assert len(data["recipients"]) == len(report.recipients)
    assert all(isinstance(error, str) for error in data["errors"])


def test_table_covers_every_sample() -> None:
    assert sorted(row.file for row in TABLE) == sample_names()


def test_verp_recipient_decoded() -> None:
    report = analyze(sample("verp.eml"), VERP)
    assert report.original.envelope_recipient == "bounces+jo=example.net@lists.example.org"
    assert report.original.verp_recipient == "jo@example.net"


def test_line_endings_do_not_change_the_verdict() -> None:
    crlf = sample("crlf.eml")
    assert b"\r\n" in crlf
    lf = crlf.replace(b"\r\n", b"\n")
    cr = crlf.replace(b"\r\n", b"\r")
    assert analyze(crlf).to_dict() == analyze(lf).to_dict() == analyze(cr).to_dict()


def test_empty_message_says_why() -> None:
    assert "no headers found" in analyze(sample("empty.eml")).errors


def test_bad_address_sample_trips_the_stdlib() -> None:
    """The sample is what it claims: the stdlib's modern policy cannot read its headers."""
    parsed = email.message_from_bytes(sample("bad-address-header.eml"), policy=email.policy.default)
    with pytest.raises(IndexError):
        str(parsed["To"])


def test_truncated_sample_is_cut_mid_part() -> None:
    raw = sample("truncated.eml")
    assert not raw.endswith(b"\n") and b"--C0FFEE42.1713132880/mx3.example.net--" not in raw


# --- two collections with their expectations in a manifest beside them ---------------------
# ordinary/: mail a bounce mailbox also receives (list posts, people writing about bounces,
# forwards, notifications, phishing dressed as a mail system, worms' fake bounces) and the
# automatic replies it must tell apart from them (out-of-office in many languages, ticket
# receipts, challenge-response); none may yield a failed or delayed recipient.
# mta/: reports of MTAs and providers the analyzer was not built on (localized Microsoft 365,
# hMailServer, CommuniGate, QQ, legacy gateways...), written to check that the rules
# generalise.
# reports/: complaints from many feedback loops (ARF, pre-ARF, X-ARF, SpamCop, JMRP, ESP
# webhooks), success notices, and their look-alikes (read receipts, DMARC and TLS reports,
# forwards): kind, feedback type and every recipient's action and reason.
ORDINARY = SAMPLES / "ordinary"
REPORTS = SAMPLES / "reports"


def manifest(folder) -> dict:
    return json.loads((folder / "expected.json").read_text(encoding="utf-8"))


# Known misses, with why; strict, so a fix shows up as a failure to remove the entry.
ORDINARY_MISSES = {
    "y2k-046-university-postmaster-announcement-aol-block.eml":
        "a postmaster's own note quoting a Sendmail notice: its headers are a report's",
    "auto-22-groupwise-rule-reply-re-subject.eml":
        "a GroupWise rule's reply: no automatic header, a plain 'Re:' subject, no In-Reply-To",
    "auto-66-person-asks-it-about-auto-reply.eml":
        "a person's question titled 'Auto-reply: ...' reads like a mail program's prefix",
}


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=ORDINARY_MISSES[name]))
    if name in ORDINARY_MISSES else name for name in sorted(manifest(ORDINARY))])
def test_ordinary_mail_and_auto_replies(name: str) -> None:
    report = analyze((ORDINARY / name).read_bytes())
    failed = [r.address for r in report.recipients if r.action in (FAILED, DELAYED)]
    assert (str(report.kind), failed) == (manifest(ORDINARY)[name], []), report.evidence


# Sets whose manifest gives each file's kind and every failed or delayed recipient's action,
# reason and permanence (an empty address: a report that names no recipient).
# mta/: see above. forwarded/: reports passed on by a list manager or a forwarder.
# legacy/: the formats of 1995-2008. autoreplies/: automatic replies in more languages and
# shapes, challenge-response requests among them (no failed recipient). norecipient/: reports
# that name no recipient (a local MTA refusing a submission).
RECIPIENT_SETS = ("mta", "forwarded", "legacy", "autoreplies", "norecipient")


def recipient_cases() -> list[tuple[str, str]]:
    return [(folder, name) for folder in RECIPIENT_SETS if (SAMPLES / folder).is_dir()
            for name in sorted(manifest(SAMPLES / folder))]


@pytest.mark.parametrize(("folder", "name"), recipient_cases())
def test_reports_of_other_mtas(folder: str, name: str) -> None:
    expected = manifest(SAMPLES / folder)[name]
    report = analyze((SAMPLES / folder / name).read_bytes())
    found = sorted((r.address.lower(), str(r.action), str(r.reason), r.permanent)
                   for r in report.recipients if r.action in (FAILED, DELAYED))
    wanted = sorted((r["address"].lower(), r["action"], r["reason"], r["permanent"])
                    for r in expected["recipients"])  # case as the corpus scorer compares it
    assert (str(report.kind), found) == (expected["kind"], wanted), \
        [r.evidence for r in report.recipients]
    if "autoreply_type" in expected:
        assert report.autoreply_type == expected["autoreply_type"], report.evidence
    elif report.kind is not Kind.AUTOREPLY:
        assert report.autoreply_type == ""


def bounce_cases() -> list[tuple[str, str]]:
    return [(folder, name) for folder, name in recipient_cases()
            if manifest(SAMPLES / folder)[name]["kind"] in ("bounce", "delay")]


@pytest.mark.parametrize(("folder", "name"), bounce_cases())
def test_no_bounce_is_an_auto_reply(folder: str, name: str) -> None:
    """Bounces are automatic replies too, and earlier in the chain: the auto-reply rules
    alone must leave every one of them alone, so that no chain order could turn one."""
    message = parse_message((SAMPLES / folder / name).read_bytes())
    assert dict(CHAIN)["autoreply"](message) is None


@pytest.mark.parametrize("name", sorted(
    name for name, entry in manifest(SAMPLES / "autoreplies").items()
    if entry.get("autoreply_type") == "challenge"))
def test_challenge_never_changes_a_send_state(name: str) -> None:
    """A challenge asks the sender to act; the address it answers for is fine: every event
    the ledger would record of it has no effect on the address's send state."""
    report = analyze((SAMPLES / "autoreplies" / name).read_bytes())
    events = [SimpleNamespace(kind=str(report.kind), action=str(r.action), reason=str(r.reason),
                              permanent=r.permanent) for r in report.recipients]
    assert events and all(policy.effect(event) is policy.Effect.NONE for event in events)


def test_autoreply_set_has_challenges_and_every_type() -> None:
    """The set keeps its breadth: each type of auto-reply, and ten challenge requests."""
    types = [entry.get("autoreply_type") for entry in manifest(SAMPLES / "autoreplies").values()]
    assert {t.value for t in AutoreplyType} <= set(types)
    assert types.count("challenge") >= 10


@pytest.mark.parametrize("name", sorted(manifest(REPORTS)))
def test_complaints_and_success_notices(name: str) -> None:
    expected = manifest(REPORTS)[name]
    report = analyze((REPORTS / name).read_bytes())
    found = sorted((r.address.lower(), str(r.action), str(r.reason)) for r in report.recipients)
    wanted = sorted((r["address"].lower(), r["action"], r["reason"])
                    for r in expected["recipients"])
    assert (str(report.kind), found) == (expected["kind"], wanted), report.evidence
    if expected["kind"] == "complaint":
        assert report.feedback_type == expected["feedback_type"]


MANIFEST_FOLDERS = ("ordinary", "reports", *RECIPIENT_SETS)


@pytest.mark.parametrize("folder", [f for f in MANIFEST_FOLDERS if (SAMPLES / f).is_dir()])
def test_manifest_covers_every_file(folder: str) -> None:
    assert sorted(manifest(SAMPLES / folder)) == sorted(
        p.name for p in (SAMPLES / folder).glob("*.eml"))


# --- forwarded/: who wrote the body decides, not the list's headers -------------------------
FORWARDED = SAMPLES / "forwarded"
_FROM_LINE = re.compile(rb"^(From|X-Original-Sender):[^\n]*(?:\n[ \t][^\n]*)*", re.M | re.I)
_PERSON = b"Jonas Berg <jonas@workshop.example.net>"


def _failed(raw: bytes) -> list[str]:
    return [r.address for r in analyze(raw).recipients if r.action in (FAILED, DELAYED)]


def _listed_text_reports() -> list[str]:
    """forwarded/ samples a list relayed as they were, whose report is words only (no status
    part another analyzer could read whoever sent it)."""
    names = []
    for name in sorted(manifest(FORWARDED)):
        message = parse_message((FORWARDED / name).read_bytes())
        if from_list(message) and message.content_type == "text/plain":
            names.append(name)
    return names


def _with_header_block(raw: bytes, change) -> bytes:
    head, sep, body = raw.partition(b"\n\n")
    return change(head) + sep + body


@pytest.mark.parametrize("name", _listed_text_reports())
def test_listed_report_with_a_person_as_author_is_a_post(name: str) -> None:
    """The same relayed words under a person's From are a post quoting a report."""
    raw = (FORWARDED / name).read_bytes()
    assert _failed(raw)
    person = _with_header_block(raw, lambda head: _FROM_LINE.sub(
        lambda m: m.group(1) + b": " + _PERSON, head))
    assert _failed(person) == []


@pytest.mark.parametrize("name", _listed_text_reports())
def test_listed_report_with_a_persons_words_on_top_is_a_post(name: str) -> None:
    """A salutation and a sentence of a person above the report make it a person's message."""
    raw = (FORWARDED / name).read_bytes()
    head, sep, body = raw.partition(b"\n\n")
    assert _failed(head + sep + b"Hi all,\n\nlook what came back from my post:\n\n" + body) == []


def _wrapped_reports() -> list[str]:
    return [name for name in sorted(manifest(FORWARDED))
            if report_passed_on_by_list(parse_message((FORWARDED / name).read_bytes()))]


@pytest.mark.parametrize("name", _wrapped_reports())
def test_list_notice_is_read_through_only_when_it_says_it_passes_on_a_bounce(name: str) -> None:
    """A list manager's notice attaching a report is read only when its words say it passes
    on a bounce (a held post or a probe attaches one too) and the attachment is a mail
    system's (not a person's message the list mistook for one)."""
    raw = (FORWARDED / name).read_bytes()
    assert _failed(raw)
    notice = re.compile(rb"(Content-Type: text/plain[^\n]*\n(?:[^\n]+\n)*\n).*?(?=\n--)", re.S)
    held = notice.sub(lambda m: m.group(1) + b"As list administrator, your authorization is "
                      b"requested for the following mailing list posting.\n", raw, count=1)
    assert held != raw and _failed(held) == []
    boundary = raw.index(b"Content-Type: message/rfc822")
    inner = raw[boundary:]
    person = re.sub(rb"^Return-[Pp]ath: <>", b"Return-Path: <jonas@workshop.example.net>",
                    inner, count=1, flags=re.M)
    person = _FROM_LINE.sub(lambda m: m.group(1) + b": " + _PERSON, person, count=1)
    person = re.sub(rb"^(?:X-Failed-Recipients|Auto-Submitted):[^\n]*\n", b"", person, flags=re.M)
    person = person.replace(b"multipart/report", b"multipart/mixed")
    assert _failed(raw[:boundary] + person) == []
