"""Alt-N MDaemon (Windows mail server, 1996-) delivery failure and warning notices.

"The attached message had PERMANENT fatal delivery errors!" (or, in a warning, "... has not
yet been delivered ... YOU DO NOT NEED TO RESEND"), then the session log between
"--- Session Transcript ---" and "--- End Transcript ---": timestamped lines that name the
message ("*  To: a@b"), the commands MDaemon sent ("--> RCPT To:<a@b>") and the replies it
got ("<-- 550 5.1.1 ..."), or a local error ("*  Error: 10060 Connection timed out").
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..origin import carries_program, from_list
from ._lib import dsnplus
from ._lib.precheck import Precheck
from ._lib.textreport import findings_of, plain_notice

NAME = "mdaemon"

_TRANSCRIPT = re.compile(r"^-{2,} ?Session Transcript ?-{2,}[ \t]*\n(.*?)"
                         r"(?:^-{2,} ?End Transcript ?-{2,}|\Z)", re.I | re.M | re.S)
_WARNING = re.compile(r"has not (?:yet )?been delivered|YOU DO NOT NEED TO RESEND|"
                      r"will continue to attempt", re.I)
# A final notice can still say "YOU DO NOT NEED TO RESEND YOUR MESSAGE": its first sentence
# decides.
_PERMANENT = re.compile(r"PERMANENT fatal|permanent(?:ly)? (?:fatal|fail)", re.I)
# A log line: "Thu 2004-08-19 10:36:00: " then the entry.
_STAMP = re.compile(r"^[ \t]*(?:\w{3} )?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?:?[ \t]*")
_NAMED = re.compile(r"^\*[ \t]+To:[ \t]*<?([^\s<>]+@[^\s<>]+?)>?[ \t]*$", re.I)
_RCPT = re.compile(r"^-->[ \t]*RCPT TO:[ \t]*<([^<>\s]+)>", re.I)
_COMMAND = re.compile(r"^-->[ \t]*(\S+)")
_REPLY = re.compile(r"^<--[ \t]*([245]\d\d)[ -](.*)$")
_ERROR = re.compile(r"^\*[ \t]+(?:Error|Unable|Socket error)\b:?[ \t]*(.*)$", re.I)


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("mdaemon",), headers=frozenset({"x-mdaemon-deliver-to"}))


def analyze(message: Part) -> Findings | None:
    if "x-mdaemon-deliver-to" not in message and "mdaemon" not in message.get("from").lower():
        return None
    # Its own sender (MDaemon@host) is no mail-system name the chain knows, so this module
    # asks what `origin.machine_sent` would: no list's post, no program attached.
    if not dsnplus.sent_by_mail_system(message, "mdaemon") or from_list(message) \
            or carries_program(message):
        return None
    notice = plain_notice(message)
    transcript = _TRANSCRIPT.search(notice[:100000])
    if transcript is None:
        return None
    before = notice[:transcript.start()]
    delayed = _WARNING.search(before) and not _PERMANENT.search(before)
    action = Action.DELAYED if delayed else Action.FAILED
    failures = _read(transcript.group(1), action)
    return findings_of(NAME, "MDaemon notice with its session transcript", failures, message,
                       notice)


def _read(transcript: str, action: Action) -> list[Failure]:
    """Each recipient with the reply that refused it: its RCPT reply when that failed, else
    the first failure after it (DATA), else the session's last error."""
    named: list[str] = []
    replies: dict[str, str] = {}
    accepted: list[str] = []
    last_error = ""
    command, rcpt = "", ""
    for raw in transcript.split("\n")[:2000]:
        line = _STAMP.sub("", raw).strip()
        if found := _NAMED.match(line):
            named.append(normalize_address(found.group(1)))
        elif found := _RCPT.match(line):
            command, rcpt = "RCPT", normalize_address(found.group(1))
        elif found := _COMMAND.match(line):
            command, rcpt = found.group(1).upper(), ""
        elif found := _REPLY.match(line):
            said = f"{found.group(1)} {found.group(2).strip()}"
            if found.group(1)[0] == "2":
                if command == "RCPT" and rcpt:
                    accepted.append(rcpt)
                continue
            if command == "RCPT" and rcpt:
                replies.setdefault(rcpt, said)
            elif command != "QUIT":
                last_error = said
                for address in accepted:
                    replies.setdefault(address, said)
        elif found := _ERROR.match(line):
            last_error = found.group(1).strip() or line
    recipients = list(dict.fromkeys(a for a in [*named, *replies] if a))
    return [Failure(address=address, action=action,
                    diagnostic=replies.get(address, last_error),
                    command="RCPT" if address in replies and address not in accepted else "")
            for address in recipients
            if address in replies or address not in accepted]
