"""PowerMTA (Port25 / Bird) delivery reports.

Standard RFC 3464 reports with one extra per-recipient field, `X-PowerMTA-BounceCategory`:
PowerMTA's own classification of the remote reply, used here as the reason the format
states when the server's words name none.
"""

from __future__ import annotations

from ...report import Reason
from .. import dsn
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Findings
from ..message import Part, parse_field_groups

NAME = "powermta"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

# PowerMTA bounce categories (its documented list) -> reasons.
CATEGORIES = {
    "bad-mailbox": Reason.USERUNKNOWN,
    "bad-domain": Reason.HOSTUNKNOWN,
    "inactive-mailbox": Reason.SUSPEND,
    "quota-issues": Reason.MAILBOXFULL,
    "message-expired": Reason.EXPIRED,
    "no-answer-from-host": Reason.NETWORKERROR,
    "bad-connection": Reason.NETWORKERROR,
    "routing-errors": Reason.NETWORKERROR,
    "spam-related": Reason.SPAMDETECTED,
    "virus-related": Reason.VIRUSDETECTED,
    "content-related": Reason.CONTENTERROR,
    "policy-related": Reason.POLICYVIOLATION,
    "invalid-sender": Reason.REJECTED,
    "relaying-issues": Reason.NORELAYING,
    "message-too-large": Reason.MESGTOOBIG,
    "protocol-errors": Reason.SYNTAXERROR,
    "bad-configuration": Reason.SYSTEMERROR,
}
_CATEGORY = re.compile(r"^X-PowerMTA-BounceCategory\s*:", re.I | re.M)


def analyze(message: Part) -> Findings | None:
    part = dsn.status_part(message)
    if part is None or not _CATEGORY.search(part.text):
        return None
    findings = dsn.analyze(message)
    if findings is None:
        return None
    findings.analyzer = f"formats.{NAME}"
    findings.evidence = f"PowerMTA report; {findings.evidence}"
    categories: dict[str, str] = {}
    for group in parse_field_groups(part.text):
        values = dict(reversed(group))
        address = values.get("final-recipient") or values.get("original-recipient") or ""
        category = values.get("x-powermta-bouncecategory", "").strip().lower()
        if address and category in CATEGORIES:
            categories[normalize_address(address)] = str(CATEGORIES[category])
    for failure in findings.failures:
        failure.reason_hint = failure.reason_hint or categories.get(failure.address, "")
    return findings
