"""Bytes in, report out: the analysis of one raw message. No I/O, no database, no network.

The chain of analyzers is written down here, in order; the first that claims a message
decides its kind and recipients. Then one classifier (`reasons.classify`) names each
recipient's reason, so every format is judged by the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

from ..report import Action, Kind, Original, Recipient, Report
from . import arf, dsn, formats, origin, phrases, plaintext, reasons, unclaimed
from . import lazy_re as re
from .addresses import normalize_address
from .findings import Failure, Findings
from .message import MAX_NOTICE_SEARCHES, MAX_RECIPIENTS, Part, decode_words, parse_message

ANALYZER_VERSION = "5"  # raised when verdicts change, so `reprocess` can tell old ones

Analyzer = Callable[[Part], Findings | None]


def _autoreply(message: Part) -> Findings | None:
    """autoreply.analyze, the module imported when the chain first gets this far: a bounce
    is claimed before, and the patterns of its many languages take some 25 ms to compile,
    which a process per message (`ingest -`) would otherwise pay every time."""
    from . import autoreply

    return autoreply.analyze(message)


# The chain, in order. Specific before generic: a feedback report is unmistakable; a known
# MTA's format says more than the generic RFC 3464 fields it may also carry; the generic
# plain-text reader only runs when nothing else understood the message; auto-replies last,
# because bounces are automatic replies too.
CHAIN: tuple[tuple[str, Analyzer], ...] = (
    ("arf", arf.analyze),  # RFC 5965 feedback reports and provider variants
    ("formats", formats.analyze_known),  # non-standard formats of named MTAs and providers
    ("dsn", dsn.analyze),  # RFC 3464 / 6522 / 6533 delivery status notifications
    ("plaintext", plaintext.analyze),  # unnamed plain-text bounces
    ("autoreply", _autoreply),  # RFC 3834 and out-of-office replies
)

# Headers that carry the bounce's own envelope recipient, most trustworthy first.
ENVELOPE_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to")

# The header imap-bouncer marks its own delivery reports to senders with.
DSN_MARKER = "X-Imap-Bouncer-DSN"
# Headers of the ORIGINAL message that say it was itself automatic (or asks for no automatic
# answer): a report back to its sender could start a loop. (header, value pattern), in order.
AUTOMATIC_MARKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Auto-Submitted", re.compile(r"^(?!no\b)\S", re.I)),  # RFC 3834: anything but "no"
    ("Precedence", re.compile(r"^(?:bulk|junk|list)\b", re.I)),  # RFC 3834 section 2
    ("Return-Path", re.compile(r"^<\s*>$")),  # a null sender: itself a notification
    (DSN_MARKER, re.compile(r"\S")),  # one of our own reports to a sender
    # Microsoft Exchange: the sender asks for no delivery reports (DR) or no answers at all.
    ("X-Auto-Response-Suppress", re.compile(r"\b(?:all|dr)\b", re.I)),
)


@dataclass(frozen=True, slots=True)
class Options:
    """What analysis may be told by settings; everything else it finds out itself."""

    # VERP address patterns, e.g. "bounces+{local}={domain}@lists.example.org".
    verp_patterns: Sequence[str] = ()


def analyze(raw: bytes, options: Options | None = None) -> Report:
    """Analyze one raw message. Never raises: the worst case is kind `unknown` with errors."""
    options = options or Options()
    try:
        report = _analyze(raw, options)
        _replace_nul(report)  # raw NUL bytes, and encoded ones (=00 in an encoded word, QP)
        return report
    except Exception as err:  # a bug in an analyzer must not lose the message
        return Report(kind=Kind.UNKNOWN, analyzer="", evidence="analysis failed",
                      errors=[f"analysis failed: {type(err).__name__}: {err}"])


def why_unclaimed(raw: bytes) -> list[tuple[str, str]]:
    """For a message the chain left unknown: each analyzer's name and why it passed, from
    the same guards it starts with (`unclaimed`), for people reading an Unknown verdict."""
    return unclaimed.notes(parse_message(raw), tuple(name for name, _ in CHAIN))


def prepare_for_many() -> None:
    """Ready the analyzers for many messages: what a process reading one would not pay for
    (the phrase tables' pre-filters) is built now, before workers are forked."""
    phrases.prepare()


def compile_everything() -> tuple[int, int, object]:
    """Import every analyzer, build what `prepare_for_many` builds, and keep every pattern
    compiled in the pattern store (`imap-bouncer prepare`): (patterns, new, store path)."""
    import importlib
    import pkgutil

    from . import lazy_re, pattern_store

    for package in (formats, formats._lib):
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{info.name}")
    from . import autoreply  # noqa: F401  (imported late by the chain otherwise)

    prepare_for_many()
    return pattern_store.build(lazy_re.every_pattern())


def analyze_many(raws: Sequence[bytes], options: Options | None = None) -> list[Report]:
    """Analyze several messages: the unit of work handed to an analysis worker process."""
    return [analyze(raw, options) for raw in raws]


def _analyze(raw: bytes, options: Options) -> Report:
    message = parse_message(raw)
    errors: list[str] = []
    if not message.headers:
        errors.append("no headers found")
    findings: Findings | None = None
    # A list manager's notice that passes on a bounce: the attached report is the one to read.
    wrapped = origin.report_passed_on_by_list(message)
    subject = wrapped if wrapped is not None else message
    for name, analyzer in CHAIN:
        try:
            findings = analyzer(subject)
        except Exception as err:
            errors.append(f"{name} analyzer failed: {type(err).__name__}: {err}")
            findings = None
        if findings is not None:
            break
    errors.extend(dict.fromkeys(message.all_errors))
    report = Report(errors=errors, message_id=message.get("message-id").strip())
    report.original = _original(message, findings, options, report.errors)
    if findings is None:
        report.evidence = "no analyzer recognised the message"
        return report
    report.analyzer = findings.analyzer
    report.evidence = findings.evidence
    if wrapped is not None:
        report.evidence = f"the bounce a list manager passed on: {findings.evidence}"
    report.feedback_type = findings.feedback_type
    report.user_agent = findings.user_agent
    report.autoreply_type = findings.autoreply_type
    errors.extend(findings.notes)
    cuts = list(findings.cuts)
    report.recipients = _recipients(findings, report.original, (report.message_id,), cuts,
                                    report.errors)
    report.kind = _kind(findings.kind, report.recipients)
    if cuts:
        report.partial = True
        report.errors.extend(dict.fromkeys(cuts))
    return report


# RFC 5321 4.5.3.1.3: a path is at most 256 octets with its angle brackets. A longer
# "address" is an attack on whatever stores or shows it, not a mailbox.
MAX_ADDRESS_LENGTH = 254


_TEXT_SLOTS: dict[type, tuple[str, ...]] = {
    kind: tuple(f.name for f in fields(kind) if f.type in ("str", str))
    for kind in (Report, Original, Recipient)}


def _replace_nul(report: Report) -> None:
    """NUL characters the message held become U+FFFD in every text of the report: no text
    means anything by a NUL, and PostgreSQL refuses to store one (the whole batch with it)."""
    items: tuple[object, ...] = (report, report.original, *report.recipients)
    for item in items:
        for name in _TEXT_SLOTS[type(item)]:
            value = getattr(item, name)
            if "\x00" in value:
                setattr(item, name, value.replace("\x00", "\ufffd"))
    report.errors = [error.replace("\x00", "\ufffd") for error in report.errors]
    report.original.signed_addresses = [
        (where, address.replace("\x00", "\ufffd"))
        for where, address in report.original.signed_addresses]


def _recipients(findings: Findings, original: Original, message_ids: Sequence[str] = (),
                cuts: list[str] | None = None,
                notes: list[str] | None = None) -> list[Recipient]:
    """The report's recipients, classified. What could not be taken (a recipient lost) is
    noted in `cuts`, what was not done in full (no recipient lost) in `notes`."""
    cuts = [] if cuts is None else cuts
    notes = [] if notes is None else notes
    recipients: list[Recipient] = []
    seen: dict[tuple[str, Action], Recipient] = {}
    # A Message-ID on a line of its own looks like an address in angle brackets; the report's
    # and the original's own are never a recipient.
    ids = {normalize_address(i) for i in (*message_ids, original.message_id)} - {""}
    failures = [f for f in findings.failures if not f.address or f.address not in ids]
    if len(failures) > MAX_RECIPIENTS:
        cuts.append(f"more than {MAX_RECIPIENTS} recipients: those after the first "
                    f"{MAX_RECIPIENTS} not read")
        del failures[MAX_RECIPIENTS:]
    # Controls (C0, DEL, C1) and other unprintable characters are in no mailbox's name, and
    # a terminal acts on them: str.isprintable is the one cheap test for all of them.
    if not all(len(f.address) <= MAX_ADDRESS_LENGTH and f.address.isprintable()
               for f in failures):
        failures = _refuse_bad_addresses(failures, cuts)
    if findings.kind in (Kind.BOUNCE, Kind.DELAY) and original.verp_recipient:
        # A report that says a delivery failed but not for whom: the VERP address says it.
        if not failures:
            action = Action.DELAYED if findings.kind is Kind.DELAY else Action.FAILED
            failures = [Failure(address="", action=action)]
        failures = [f if f.address else replace(f, address=original.verp_recipient)
                    for f in failures]
    notice = findings.notice
    if notice and len(failures) > MAX_NOTICE_SEARCHES:
        notes.append(f"{len(failures)} recipients: the notice read for the first "
                     f"{MAX_NOTICE_SEARCHES} only, the others from their own fields")
    for index, failure in enumerate(failures):
        if index == MAX_NOTICE_SEARCHES:
            notice = ""
        diagnostic = " ".join(failure.diagnostic.split())
        verdict = reasons.classify(
            status=failure.status, smtp_code=failure.smtp_code, diagnostic=diagnostic,
            hint=failure.reason_hint, action=failure.action, notice=notice,
            command=failure.command, address=failure.address,
        )
        smtp_code = failure.smtp_code or reasons.reply_code_in(diagnostic, failure.action)
        recipient = Recipient(
            address=failure.address, action=failure.action, status=verdict.status,
            smtp_code=smtp_code, diagnostic=diagnostic, remote_mta=failure.remote_mta,
            # No address, nothing to suppress: a report that names no recipient is about the
            # message, whatever its words say.
            reason=verdict.reason, permanent=verdict.permanent and bool(failure.address),
            evidence=failure.hint_evidence or verdict.evidence,
        )
        key = (recipient.address, recipient.action)
        if recipient.address and key in seen:
            _merge(seen[key], recipient)
            continue
        seen[key] = recipient
        recipients.append(recipient)
    return recipients


def _refuse_bad_addresses(failures: list[Failure], cuts: list[str]) -> list[Failure]:
    """Drop recipients whose address is too long or holds control characters: not stored,
    but noted (with a short, escaped sample) so that nobody loses them silently."""
    kept = []
    for failure in failures:
        address = failure.address
        if len(address) > MAX_ADDRESS_LENGTH:
            cuts.append(f"a recipient address of {len(address)} characters (more than "
                        f"{MAX_ADDRESS_LENGTH}) refused: {address[:40]!r}...")
        elif not address.isprintable():
            cuts.append(f"a recipient address with control characters refused: "
                        f"{address[:80]!r}")
        else:
            kept.append(failure)
    return kept


def _merge(kept: Recipient, extra: Recipient) -> None:
    """The same recipient reported twice (two groups, two hops): keep the fuller facts."""
    for name in ("status", "smtp_code", "diagnostic", "remote_mta"):
        if not getattr(kept, name) and getattr(extra, name):
            setattr(kept, name, getattr(extra, name))


def _kind(claimed: Kind, recipients: list[Recipient]) -> Kind:
    """Bounce or delay follows the recipients: any failure makes a bounce."""
    if claimed not in (Kind.BOUNCE, Kind.DELAY, Kind.DELIVERED) or not recipients:
        return claimed
    actions = {r.action for r in recipients}
    if Action.FAILED in actions:
        return Kind.BOUNCE
    if Action.DELAYED in actions:
        return Kind.DELAY
    return Kind.DELIVERED if claimed is Kind.DELIVERED else claimed


def _original(message: Part, findings: Findings | None, options: Options,
              errors: list[str]) -> Original:
    headers = findings.original_headers if findings and findings.original_headers else []
    values: dict[str, str] = dict(reversed(headers))  # each header's first value
    envelope = ""
    for name in ENVELOPE_HEADERS:
        envelope = normalize_address(message.get(name))
        if envelope:
            break
    original = Original(
        message_id=values.get("message-id", "").strip()[:_MAX_PROOF_TEXT],
        from_=decode_words(values.get("from", ""), errors).strip(),
        to=decode_words(values.get("to", ""), errors).strip(),
        subject=decode_words(values.get("subject", ""), errors).strip(),
        date=values.get("date", "").strip(),
        list_id=decode_words(values.get("list-id", ""), errors).strip(),
        envelope_recipient=envelope,
        automatic=_automatic(values),
        signed_addresses=_signed_addresses(message, values),
        correlation_id=" ".join(values.get("x-imap-bouncer-id", "").split())[:_MAX_PROOF_TEXT],
    )
    if options.verp_patterns:
        candidates = [envelope, normalize_address(message.get("to"))]
        original.verp_recipient = decode_verp(candidates, options.verp_patterns)
    return original


def _signed_addresses(message: Part, values: dict[str, str]) -> list[tuple[str, str]]:
    """Where a signed VERP address may stand, as (header, address): the bounce's envelope
    headers and To, then the original's Return-Path (a complaint's original was delivered).
    Only gathered here; verp.prove checks them. A few, each short: it is hostile input."""
    found: list[tuple[str, str]] = []
    for name in (*ENVELOPE_HEADERS, "to"):
        for value in message.get_all(name)[:_MAX_SIGNED_EACH]:
            address = normalize_address(value)
            if address and len(address) <= _MAX_PROOF_TEXT:
                found.append((_HEADER_NAMES.get(name, name), address))
    return_path = normalize_address(values.get("return-path", ""))
    if return_path and len(return_path) <= _MAX_PROOF_TEXT:
        found.append(("the original's Return-Path", return_path))
    return list(dict.fromkeys(found))[:_MAX_SIGNED]


_HEADER_NAMES = {"delivered-to": "Delivered-To", "x-original-to": "X-Original-To",
                 "envelope-to": "Envelope-To", "x-envelope-to": "X-Envelope-To", "to": "To"}
_MAX_SIGNED_EACH = 4  # values of one header looked at
_MAX_SIGNED = 12  # candidates in all
_MAX_PROOF_TEXT = 600  # characters of an address, a Message-ID or an X-Imap-Bouncer-Id


def _automatic(values: dict[str, str]) -> str:
    """The original's header that marks it as automatic, as "Name: value"; "" for none."""
    for name, pattern in AUTOMATIC_MARKS:
        value = " ".join(values.get(name.lower(), "").split())
        if value and pattern.search(value):
            return f"{name}: {value}"[:200]
    return ""


def decode_verp(candidates: Sequence[str], patterns: Sequence[str]) -> str:
    """The recipient encoded in a VERP address, e.g. `bounces+jo=example.com@lists.example.org`."""
    for pattern in patterns:
        regex = verp_regex(pattern)
        for candidate in candidates:
            match = regex.fullmatch(candidate) if candidate else None
            if match:
                return normalize_address(f"{match.group('local')}@{match.group('domain')}")
    return ""


def verp_regex(pattern: str) -> re.Pattern[str]:
    """A VERP pattern with `{local}` and `{domain}` placeholders -> a regular expression."""
    if "{local}" not in pattern or "{domain}" not in pattern:
        raise ValueError(f"VERP pattern {pattern!r} needs both {{local}} and {{domain}}")
    escaped = re.escape(pattern.lower())
    escaped = escaped.replace(r"\{local\}", r"(?P<local>.+?)").replace(
        r"\{domain\}", r"(?P<domain>[^@=+]+\.[^@=+]+|[^@=+]+)")
    # A signed pattern's token ([verp] address): its shape only, the ledger checks it.
    escaped = escaped.replace(r"\{token\}", r"[0-9a-z]{21}")
    return re.compile(escaped, re.I)


__all__ = ["ANALYZER_VERSION", "AUTOMATIC_MARKS", "CHAIN", "DSN_MARKER", "Options", "analyze",
           "analyze_many", "decode_verp", "prepare_for_many", "why_unclaimed"]
