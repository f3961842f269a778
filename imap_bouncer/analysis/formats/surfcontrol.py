"""SurfControl E-mail Filter (later Websense) reports (X-SEF-Processed, X-Mailer).

A transcript, then usually an RFC 3464 status part:

    Your message could not be sent.
    A transcript of the attempts to send the message follows.
    Addressed To: kijitora@example.org
    Failed to send to identified host,
    kijitora@example.org: [192.0.2.244], 554 Service currently unavailable
    --- Message non-deliverable.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import notice_text, original_headers
from ._lib import dsnplus
from ._lib.precheck import Precheck

NAME = "surfcontrol"

OPENING = re.compile(r"Your message could not be sent\.|A transcript of the attempts to send",
                     re.I)
# "a@b: [192.0.2.244], 554 reply"
ATTEMPT = re.compile(r"^\s*([^\s<>:]+@[^\s<>:]+):\s*\[([^\]]*)\],\s*(.+)$", re.M)
ADDRESSED_TO = re.compile(r"^\s*Addressed To:\s*<?([^\s<>]+@[^\s<>]+?)>?\s*$", re.I | re.M)
TEMPORARY = re.compile(r"will (?:retry|try again|continue)|Message (?:is )?delayed", re.I)


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(headers=frozenset({"x-sef-processed", "x-mailer"}))


def analyze(message: Part) -> Findings | None:
    if "x-sef-processed" not in message and "SurfControl" not in message.get("x-mailer"):
        return None
    if not dsnplus.sent_by_mail_system(message):
        return None
    notice = notice_text(message)
    if not OPENING.search(notice[:2000]):
        return None
    action = Action.DELAYED if TEMPORARY.search(notice[:3000]) else Action.FAILED
    facts: dict[str, Failure] = {}
    for attempt in ATTEMPT.finditer(notice):
        address = normalize_address(attempt.group(1))
        if address:  # the last attempt is the one that counts
            facts[address] = Failure(address=address, action=action,
                                     diagnostic=attempt.group(3).strip(),
                                     remote_mta=attempt.group(2).strip())
    for addressed in ADDRESSED_TO.finditer(notice):
        address = normalize_address(addressed.group(1))
        if address and address not in facts:
            facts[address] = Failure(address=address, action=action)
    findings = dsnplus.standard_report(message, NAME, "SurfControl report")
    if findings is not None:
        return dsnplus.complete(findings, list(facts.values()))
    return dsnplus.from_text(NAME, "SurfControl report: attempts to send", list(facts.values()),
                             notice, original_headers(message))
