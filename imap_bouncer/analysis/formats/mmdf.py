"""MMDF (the Multichannel Memorandum Distribution Facility; SCO, universities, 1985-2000).

Its failure notice ("Failed mail (was: ...)") reads "Your message could not be delivered to
'a@b (Name)' for the following reason: '<the channel's words>'"; after days of retries it
writes "After N days (H hours), your message could not be fully delivered. It failed to be
received by the following address(es):" and, in its warning ("Waiting mail"), "... has not
yet been fully delivered. ... Delivery attempts are still pending for the following
address(es):", each address followed by "(host: ...) (queue: ...)". The message follows
"Your message begins as follows:".
"""

from __future__ import annotations

from ...report import Action, Reason
from .. import lazy_re as re
from ..addresses import ADDRESS_IN_TEXT, normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..origin import carries_program, from_list
from ._lib import dsnplus
from ._lib.textreport import findings_of, plain_notice, unfold

NAME = "mmdf"

# 'a@b (Name)' ... for the following reason: 'words' (double quotes inside, maybe wrapped).
_FOR_REASON = re.compile(r"could not be delivered to\s+'(?P<who>[^'\n]{3,300})'\s+"
                         r"for the following reason:\s*'(?P<why>[^']{0,600})'", re.I)
_AFTER_DAYS = re.compile(r"(?P<failed>failed to be received by|"
                         r"(?P<pending>delivery attempts are still pending for)) "
                         r"the following address\(es\):", re.I)
_QUEUED = re.compile(r"^[ \t]+(?P<address>" + ADDRESS_IN_TEXT.pattern +
                     r")(?P<where>[ \t]+\(host:[^\n]*)?[ \t]*$")
_BEGINS = re.compile(r"^\s*Your message begins as follows:", re.I | re.M)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    head = notice[:20000]
    if "for the following reason" not in head and "following address(es)" not in head:
        return None  # neither of MMDF's sentences: skip the rest
    # "MMDF Mail System <mmdf@host>" is no mail-system name the chain knows, so this module
    # asks what `origin.machine_sent` would: no list's post, no program attached.
    if not dsnplus.sent_by_mail_system(message, "mmdf") or from_list(message) \
            or carries_program(message):
        return None
    begins = _BEGINS.search(notice)
    body = notice[:begins.start()] if begins else notice[:20000]
    failures = [Failure(address=address, action=Action.FAILED, diagnostic=unfold(m.group("why")))
                for m in _FOR_REASON.finditer(body)
                for address in (normalize_address(m.group("who")),) if address]
    after = _AFTER_DAYS.search(body)
    if after is not None:
        pending = bool(after.group("pending"))
        started = False
        for line in body[after.end():].split("\n")[1:200]:
            queued = _QUEUED.match(line)
            if queued is None:
                if started and line.strip():
                    break
                started = started or bool(line.strip())
                continue
            started = True
            failures.append(Failure(
                address=normalize_address(queued.group("address")),
                action=Action.DELAYED if pending else Action.FAILED,
                diagnostic=unfold(body[:after.start()])[-300:],
                reason_hint="" if pending else str(Reason.EXPIRED)))
    return findings_of(NAME, "MMDF notice", failures, message, notice)
