"""Shared by the formats of mail servers and gateways that write two reports in one message.

Exchange, McAfee, SurfControl and others send an RFC 3464 status part whose fields are thin
(no Diagnostic-Code, a bare 5.0.0) next to a human-readable part in their own words that
names the remote server's reply. These helpers let a format module start from the standard
report when there is one, complete it from its own reading of the text, and build findings
from the text alone when the status part is missing (truncated or forwarded copies).
"""

from __future__ import annotations

from ... import dsn
from ... import lazy_re as re
from ...findings import Failure, Findings, kind_of
from ...message import Part, header_block_of
from ...origin import from_mail_system, is_reply_or_forward

# The reply code of a quoted SMTP reply: at its start ("550 5.1.1 ...", "<550 ...>") or just
# before an enhanced status anywhere ("... said: 550 5.1.1 ...").
REPLY_CODE = re.compile(r"^[\s<#'\"(]*([245][0-5]\d)(?=[\s-]|$)|"
                        r"(?<![\d.])([245][0-5]\d)[ -][245]\.\d{1,3}\.\d{1,3}\b")



def sent_by_mail_system(message: Part, *more_senders: str) -> bool:
    """The report comes from a mail system, not from a person quoting or forwarding one.

    Gateways stamp their headers on every message they pass, so a header alone never tells
    their own reports from a person's mail; the sender and the subject do.
    """
    if is_reply_or_forward(message.decoded("subject")):
        return False
    sender = message.get("from").lower()
    return from_mail_system(message) or any(word in sender for word in more_senders)


def reply_code(diagnostic: str) -> str:
    """The SMTP reply code of the server's words, when they are an SMTP reply."""
    match = REPLY_CODE.search(diagnostic)
    return (match.group(1) or match.group(2)) if match else ""


def with_reply_codes(failures: list[Failure]) -> list[Failure]:
    """Each failure's SMTP code, read from its diagnostic where the format gave none."""
    for failure in failures:
        if not failure.smtp_code:
            failure.smtp_code = reply_code(failure.diagnostic)
    return failures


def standard_report(message: Part, name: str, evidence: str) -> Findings | None:
    """The message's RFC 3464 report, claimed in the name of the format that wrote it."""
    findings = dsn.analyze(message)
    if findings is None:
        return None
    findings.analyzer = f"formats.{name}"
    findings.evidence = f"{evidence}; {findings.evidence}"
    return findings


def complete(findings: Findings, facts: list[Failure]) -> Findings:
    """Fill the report's empty fields with what the format's own text says per recipient.

    The status part's values win where present (they are the structured statement); the
    text only adds what they lack. A report without any recipient address takes the text's.
    """
    by_address = {f.address: f for f in facts if f.address}
    for failure in findings.failures:
        extra = by_address.get(failure.address)
        if extra is None and len(facts) == 1 == len(findings.failures):
            extra = facts[0]
        if extra is None:
            continue
        if not failure.address:
            failure.address = extra.address
        if not failure.diagnostic.strip() or _says_less(failure.diagnostic, extra.diagnostic):
            failure.diagnostic = extra.diagnostic
        for name in ("status", "smtp_code", "remote_mta", "reason_hint", "hint_evidence"):
            if not getattr(failure, name) and getattr(extra, name):
                setattr(failure, name, getattr(extra, name))
    with_reply_codes(findings.failures)
    return findings


def _says_less(structured: str, text: str) -> bool:
    """A Diagnostic-Code that is only a code ("smtp; 550") says less than the server's words."""
    words = re.sub(r"[\d.;#<>\s-]|smtp", "", structured, flags=re.I)
    return not words and bool(text.strip())


def from_text(name: str, evidence: str, failures: list[Failure], notice: str,
              original: list[tuple[str, str]] | None) -> Findings | None:
    """Findings built from a format's own text, when there is no status part to start from."""
    if not failures:
        return None
    return Findings(kind=kind_of(failures), analyzer=f"formats.{name}", evidence=evidence,
                    failures=with_reply_codes(failures), original_headers=original, notice=notice)


def headers_after(text: str, marker: re.Pattern[str]) -> list[tuple[str, str]] | None:
    """Headers of an inline copy of the original message that follows a marker line."""
    match = marker.search(text)
    if not match:
        return None
    return header_block_of(text[match.end():].lstrip("\n")) or None
