"""Lotus (HCL) Domino delivery failure reports.

The notice reads "Your message\n\n  Subject: ...\n\nwas not delivered to:\n\n  a@b\n\n
because:\n\n  <reason>", often next to an RFC 3464 status part whose Diagnostic-Code
("X-Notes; ...") repeats the reason, sometimes in ISO-2022-JP.
"""

from __future__ import annotations

from ...report import Action, Reason
from .. import lazy_re as re
from ..addresses import find_addresses
from ..findings import Failure, Findings
from ..literals import prefiltered
from ..message import Part
from ._lib.dsnplus import standard_report
from ._lib.textreport import findings_of, hint_for, plain_notice, unfold

NAME = "domino"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_NOTICE = re.compile(r"^\s*was not delivered to:\s*\n(.*?)^\s*because:\s*\n(.*?)(?:\n[ \t]*\n|\Z)",
                     re.I | re.M | re.S)
_NOTICE = prefiltered(_NOTICE)  # searched only in texts holding its words
# Domino's own words for a recipient its directory does not know.
_HINTS = (
    (Reason.USERUNKNOWN, re.compile(r"not listed in (?:the )?(?:Domino Directory|public Name "
                                    r"(?:&|and) Address Book)|"
                                    r"Domino ディレクトリには見つかりません", re.I)),
    # The router knows no route to the recipient's domain: no such Notes or Internet domain.
    (Reason.HOSTUNKNOWN, re.compile(r"No route found to domain", re.I)),
)


# Domino's delivery confirmation ("Delivery Report", asked for by the sender):
# "Your document: <subject>\nwas delivered to: <recipient>\n  on: <date>".
_DELIVERED = re.compile(r"^\s*Your document:.*\n\s*was delivered to:[ \t]*(.+)$", re.I | re.M)
_DELIVERED = prefiltered(_DELIVERED)  # searched only in texts holding its words
# Notes' own "Delivery Failure Report" form (R4-R6, mail between Notes domains and from its
# SMTP gateway): the same three fields side by side with their values, the reason running on
# over indented lines: "Your document: <subject>\nwas not delivered to: <recipient>\n
# because: <reason>".
_FAILURE_REPORT = re.compile(r"^[ \t]*Your document:[^\n]*\n[ \t]*was not delivered to:[ \t]*"
                             r"(?P<who>[^\n]+)\n[ \t]*because:[ \t]*(?P<why>[^\n]*(?:\n[ \t]+\S"
                             r"[^\n]*){0,10})", re.I | re.M)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    found = _NOTICE.search(notice[:5000])
    if found is None or not notice.lstrip().startswith("Your message"):
        return _failure_report(message, notice) or _delivered(message, notice)
    reason = unfold(found.group(2))
    findings = standard_report(message, NAME, "Domino notice")
    if findings is not None:
        for failure in findings.failures:
            failure.diagnostic = failure.diagnostic or reason
            failure.reason_hint = hint_for(f"{failure.diagnostic} {reason}", _HINTS)
        return findings
    # One notice per group of recipients with the same reason, several in one message.
    failures = [Failure(address=address, action=Action.FAILED, diagnostic=reason,
                        reason_hint=hint_for(reason, _HINTS))
                for each in _NOTICE.finditer(notice[:10000])
                for reason in (unfold(each.group(2)),)
                for address in find_addresses(each.group(1))]
    return findings_of(NAME, "Domino notice: was not delivered to ... because", failures,
                       message, notice)


def _failure_report(message: Part, notice: str) -> Findings | None:
    """Notes' Delivery Failure Report form: each recipient with the reason beside it."""
    if "was not delivered to:" not in notice[:10000]:
        return None
    failures = [Failure(address=address, action=Action.FAILED, diagnostic=reason,
                        reason_hint=hint_for(reason, _HINTS))
                for each in _FAILURE_REPORT.finditer(notice[:10000])
                for reason in (unfold(each.group("why")),)
                for address in find_addresses(each.group("who"))]
    if not failures:
        return None
    findings = standard_report(message, NAME, "Notes Delivery Failure Report")
    if findings is not None:
        return findings
    return findings_of(NAME, "Notes Delivery Failure Report: your document was not delivered "
                       "to ... because", failures, message, notice)


def _delivered(message: Part, notice: str) -> Findings | None:
    """A delivery confirmation: the recipient it names (an address; a Notes name is none)."""
    found = _DELIVERED.search(notice[:5000])
    if found is None:
        return None
    findings = standard_report(message, NAME, "Domino delivery report")
    if findings is not None:
        return findings
    failures = [Failure(address=address, action=Action.DELIVERED)
                for address in find_addresses(found.group(1))]
    return findings_of(NAME, "Domino delivery report: Your document ... was delivered to",
                       failures, message, notice)
