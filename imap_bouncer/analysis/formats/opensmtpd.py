"""OpenSMTPD: a plain-text notice (since 6.x also wrapped with an RFC 3464 report).

"Hi!  This is the MAILER-DAEMON, please DO NOT REPLY to this e-mail.", then a sentence
saying whether the message failed ("An error has occurred while attempting to deliver a
message for the following list of recipients:") or is delayed ("A message is delayed for
more than ... for the following list of recipients:"), then one line per recipient:
"address: the error" (the remote reply, or OpenSMTPD's own words), then "Below is a copy
of the original message:". The report part, when there is one, only says 5.0.0 or 4.0.0;
the line in the notice holds the server's words and its real status.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import normalize_address
from ..dsn import status_part
from ..findings import Failure, Findings, kind_of
from ..message import Part, parse_field_groups
from ..text import notice_text, original_headers
from ._lib.smtp_reply import leading_code

NAME = "opensmtpd"

# OpenSMTPD's greeting line (bounce.c); no other MTA words it so.
_GREETING = re.compile(r"This is the MAILER-DAEMON, please DO NOT REPLY to this e-?mail", re.I)
_RECEIVED = "(OpenSMTPD)"
# The sentences that open the recipient list.
_FAILED_INTRO = re.compile(r"An error has occurred while attempting to deliver a message", re.I)
_DELAYED_INTRO = re.compile(r"A message is delayed for more than|temporary failure report",
                            re.I)
# Success notices (bounce.c notice_success / notice_relay), when the sender asked for them.
_SUCCESS_INTRO = re.compile(r"was (?P<how>successfully delivered|relayed) to these recipients",
                            re.I)
_LIST_START = re.compile(r"(?:following|list of|to these) recipients[:.]\s*$", re.I | re.M)
_LIST_END = re.compile(r"^\s*(?:Below is a copy of the original message|"
                       r"Please note that this is only a temporary failure report)", re.I | re.M)
# One recipient per line: "address: error".
_LINE = re.compile(r"^\s*<?([^\s<>:]+@[^\s<>:]+?)>?:\s*(.*)$")

# OpenSMTPD's own error texts (mta.c, queue.c) that name a reason by themselves.
_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Network error on destination MXs", re.I), "networkerror"),
    (re.compile(r"^Temporary failure in MX lookup", re.I), "networkerror"),
    (re.compile(r"^Loop detected", re.I), "networkerror"),
    (re.compile(r"^(?:No MX found for (?:domain|destination)|Permanent failure in MX lookup|"
                r"Invalid domain name|Domain does not exist)", re.I), "hostunknown"),
    (re.compile(r"^Could not retrieve source address", re.I), "systemerror"),
    (re.compile(r"^Envelope expired", re.I), "expired"),
)
# queue.c: an expired envelope is bounced as an error and deleted, whatever template says.
_EXPIRED = re.compile(r"^Envelope expired", re.I)


def analyze(message: Part) -> Findings | None:
    if not (any(_RECEIVED in v for v in message.get_all("received"))
            or "mailer-daemon" in message.get("from").lower()):
        return None
    notice = notice_text(message)
    if "DO NOT REPLY" not in notice[:1000] or not _GREETING.search(notice[:1000]):
        return None
    delayed = bool(_DELAYED_INTRO.search(notice)) and not _FAILED_INTRO.search(notice)
    success = _SUCCESS_INTRO.search(notice[:1500])
    start = _LIST_START.search(notice)
    if start is None:
        return None
    end = _LIST_END.search(notice, start.end())
    listing = notice[start.end():end.start() if end else len(notice)]
    statuses = _report_statuses(message)
    failures = [f for line in listing.split("\n")
                if (f := _failure(line, delayed, statuses)) is not None]
    if not failures:
        return None
    if success:
        done = Action.RELAYED if success.group("how").lower() == "relayed" else Action.DELIVERED
        for failure in failures:
            failure.action, failure.reason_hint = done, ""
    return Findings(
        kind=kind_of(failures),
        analyzer=f"formats.{NAME}",
        evidence=f"OpenSMTPD notice with {len(failures)} recipient line(s)",
        failures=failures,
        original_headers=original_headers(message),
        notice=notice[:start.end()],
    )


def _failure(line: str, delayed: bool, statuses: dict[str, str]) -> Failure | None:
    match = _LINE.match(line)
    if not match:
        return None
    address = normalize_address(match.group(1))
    if not address:
        return None
    diagnostic = match.group(2).strip()
    code = leading_code(diagnostic)
    action = Action.DELAYED if delayed else Action.FAILED
    status = statuses.get(address, "")
    if _EXPIRED.match(diagnostic):
        action, status = Action.FAILED, "5.4.7"
    hint = next((reason for pattern, reason in _HINTS if pattern.match(diagnostic)), "")
    return Failure(
        address=address,
        action=action,
        status="" if code else status,  # the reply's own status beats the report's 5.0.0
        smtp_code=code,
        diagnostic=diagnostic,
        reason_hint=hint,
    )


def _report_statuses(message: Part) -> dict[str, str]:
    """Status per recipient from the RFC 3464 part, when OpenSMTPD added one."""
    part = status_part(message)
    if part is None:
        return {}
    found: dict[str, str] = {}
    for group in parse_field_groups(part.text):
        values = dict(group)
        address = normalize_address(values.get("final-recipient", ""))
        status = values.get("status", "").strip()
        if address and re.match(r"[245]\.\d{1,3}\.\d{1,3}$", status):
            found[address] = status
    return found
