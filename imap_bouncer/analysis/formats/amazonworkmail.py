"""Amazon WorkMail delivery failures: RFC 3464 fields written into the text part.

multipart/mixed with `X-Mailer: Amazon WorkMail`: "An error occurred while trying to deliver
the mail to the following recipients:", the addresses, then "Technical report:" followed by
Reporting-MTA / Action / Final-Recipient / Diagnostic-Code / Status lines, and the original
as message/rfc822. A message that expired carries the last remote reply in angle brackets:
"554 4.4.7 Message expired: unable to deliver in 840 minutes.<421 4.4.2 Connection timed out>".
"""

from __future__ import annotations

from ...report import Action, Kind
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part, parse_header_lines
from ..text import notice_text, original_headers
from ._lib.precheck import Precheck
from ._lib.smtp_reply import leading_code

NAME = "amazonworkmail"

TECHNICAL_REPORT = re.compile(r"^Technical report:\s*$", re.I | re.M)
STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})")
LAST_REPLY = re.compile(r"<([245]\d\d)[ -][^<>]*>\s*$")
ACTIONS = {a.value: a for a in Action}


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("mailer-daemon",))


def analyze(message: Part) -> Findings | None:
    mailer = message.get("x-mailer") or message.get("x-original-mailer")
    if "amazon workmail" not in mailer.lower():
        return None
    if "mailer-daemon" not in message.get("from").lower():
        return None
    text = notice_text(message)
    report = TECHNICAL_REPORT.search(text)
    if report is None:
        return None
    failures: list[Failure] = []
    fields: dict[str, str] = {}
    # Each recipient's fields start at its Final-Recipient or Action line.
    for name, value in [*parse_header_lines(text[report.end():]), ("final-recipient", "")]:
        if name in ("final-recipient", "action") and name in fields:
            failure = _failure(fields)
            if failure:
                failures.append(failure)
            fields = {}
        fields.setdefault(name, value)
    if not failures:
        return None
    actions = {f.action for f in failures}
    kind = Kind.BOUNCE if Action.FAILED in actions else Kind.DELAY
    return Findings(
        kind=kind,
        analyzer=f"formats.{NAME}",
        evidence="Amazon WorkMail technical report",
        failures=failures,
        original_headers=original_headers(message),
        notice=text[:report.start()],
    )


def _failure(fields: dict[str, str]) -> Failure | None:
    address = normalize_address(fields.get("final-recipient", "")
                                or fields.get("original-recipient", ""))
    if not address:
        return None
    status_match = STATUS.match(fields.get("status", ""))
    status = ".".join(status_match.groups()) if status_match else ""
    diagnostic = fields.get("diagnostic-code", "")
    kind, sep, words = diagnostic.partition(";")
    if sep and " " not in kind.strip():
        diagnostic = words.strip()
    smtp_code = leading_code(diagnostic)
    last = LAST_REPLY.search(diagnostic)
    if last:  # the remote's own reply, not WorkMail's summary code
        smtp_code = last.group(1)
    action = ACTIONS.get(fields.get("action", "").strip().lower(), Action.FAILED)
    remote = fields.get("remote-mta", "")
    return Failure(address=address, action=action, status=status, smtp_code=smtp_code,
                   diagnostic=diagnostic, remote_mta=remote.partition(";")[2].strip() or remote)
