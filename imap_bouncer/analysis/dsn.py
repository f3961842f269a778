"""RFC 3464 / RFC 6522 delivery status notifications (and RFC 6533 global ones).

Lenient on purpose: real MTAs send reports with the wrong top-level type, indented fields,
`Final-Recipient` missing (only `Original-Recipient`), the status part as text/plain, a
multipart/report whose boundary never appears (Sun/Oracle Messaging Server, old Sendmail),
or the fields pasted into a plain-text notice. The claim is made only when a block of
delivery-status fields with at least one per-recipient group exists.

When the machine-readable fields are thin (no Diagnostic-Code, a bare x.0.0 status) the
human-readable part often says more: the status comment, the server's words about that
recipient, or the session transcript. Those are taken as the diagnostic.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import fields, replace
from itertools import accumulate

from ..report import Action
from . import lazy_re as re
from .addresses import normalize_address
from .findings import Failure, Findings, kind_of
from .message import MAX_NOTICE_SEARCHES, MAX_RECIPIENTS, Part, parse_field_groups
from .origin import from_mail_system, machine_sent, passed_on_by_person
from .text import ORIGINAL_MARKERS, notice_text, original_headers, split_at_original

STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_ACTIONS = {a.value: a for a in Action}
# Actions some MTAs write instead of the RFC 3464 words.
_ACTION_ALIASES = {
    "deliverable": Action.DELIVERED,  # Postfix "sendmail -bv" address verification reports
    "deferred": Action.DELAYED,
    "delay": Action.DELAYED,
    "failure": Action.FAILED,
    "fail": Action.FAILED,
    "bounced": Action.FAILED,
}
_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})")
# A status written inside the server's words: "550 5.1.1 ...", "550 #5.1.0 ...", "(#4.4.1)".
_STATUS_IN_WORDS = re.compile(r"(?<![\d.])#?([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_SMTP_CODE = re.compile(r"([245]\d\d)\b")
# "Status: 5.4.4 (Illegal host/domain name found)": the comment is the server's words.
_STATUS_COMMENT = re.compile(r"\(([^()]{4,})\)\s*$")
# Some reports put the status part under a text type; recognise it by its fields.
_LOOKS_LIKE_STATUS = re.compile(r"^(?:Reporting-MTA|Final-Recipient|Original-Recipient)\s*:",
                                re.I | re.M)
# Where the fields begin when a report is pasted into one text body.
_FIELDS_START = re.compile(
    r"^(?:Original-Envelope-Id|Reporting-MTA|Final-Recipient|Original-Recipient)[ \t]*:",
    re.I | re.M)
_RECIPIENT_FIELD = re.compile(r"^(?:Final|Original)-Recipient[ \t]*:", re.I | re.M)
_ACTION_OR_STATUS = re.compile(r"^(?:Action|Status)[ \t]*:", re.I | re.M)
# ISO-2022-JP escape sequences left raw in a field of a part without a charset.
_JIS_ESCAPE = "\x1b$B"
# Sendmail's transcript of the SMTP session, in the human-readable part.
_TRANSCRIPT = re.compile(r"^[ \t]*-+ ?Transcript of session follows ?-+[ \t]*\n(.*?)(?:\n[ \t]*\n|"
                         r"\n[ \t]*-{3,}|\Z)", re.I | re.M | re.S)


def status_part(message: Part) -> Part | None:
    """The part holding the per-recipient fields, if the message has one.

    Formats that also carry RFC 3464 fields ask for it, and so does the chain after them:
    looked up once per message."""
    if "dsn.status_part" not in message.derived:
        message.derived["dsn.status_part"] = _find_status_part(message)
    return message.derived["dsn.status_part"]  # type: ignore[return-value]


def _find_status_part(message: Part) -> Part | None:
    # A person's forward carries the report as an attachment: only a mail system's message is
    # read through to the reports it wraps (relays that return a report inside their own).
    if machine_sent(message):
        part = message.find(*STATUS_TYPES)
    elif passed_on_by_person(message):  # an inline forward re-attaches the report's parts
        return None
    else:
        part = message.find_outside_attached(*STATUS_TYPES)
    if part is not None:
        return part
    report_type = message.params.get("report-type", "delivery-status").strip().lower()
    # A read receipt (report-type=disposition-notification, RFC 8098) has Final-Recipient too.
    if message.content_type == "multipart/report" and report_type.endswith("delivery-status"):
        for child in message.parts:
            if child.content_type.startswith("text/") and child is not message.parts[0] \
                    and _LOOKS_LIKE_STATUS.search(child.text[:2000]):
                return child
    return None


def analyze(message: Part) -> Findings | None:
    """The message's RFC 3464 report. Read once per message (several formats and the chain
    ask); each caller gets its own copy, free to complete or rename."""
    if "dsn.analyze" not in message.derived:
        message.derived["dsn.analyze"] = _analyze(message)
    found: Findings | None = message.derived["dsn.analyze"]  # type: ignore[assignment]
    if found is None:
        return None
    return replace(found, failures=[_copy(failure) for failure in found.failures])


_FAILURE_FIELDS = tuple(f.name for f in fields(Failure))


def _copy(failure: Failure) -> Failure:
    """A Failure's copy (dataclasses.replace is several times slower)."""
    return Failure(*[getattr(failure, name) for name in _FAILURE_FIELDS])


def _analyze(message: Part) -> Findings | None:
    found = _fields_text(message)
    if found is None:
        return None
    fields, notice, evidence = found
    failures = _failures(fields)
    if not failures:
        return None
    cuts = []
    part = status_part(message)
    if part is not None and part.cut:
        cuts.append("the status part was cut: recipients after the cut not read")
    notes = _enrich(failures, notice)
    return Findings(
        cuts=cuts,
        notes=notes,
        kind=kind_of(failures),
        analyzer="dsn",
        evidence=f"{evidence} with {len(failures)} recipient group(s)",
        failures=failures,
        original_headers=original_headers(message),
        notice=notice,
    )


def _fields_text(message: Part) -> tuple[str, str, str] | None:
    """(the delivery-status fields, the human-readable notice, evidence), if any."""
    part = status_part(message)
    if part is not None:
        return part.text, notice_text(message), f"{part.content_type} part"
    # A multipart/report whose parts cannot be split, or a plain-text body with the fields
    # pasted in: the fields start at a line of their own, after the notice.
    unsplit = message.content_type == "multipart/report" and not message.parts
    # Fields pasted into a text body count only from a mail system's sender.
    pasted = message.content_type == "text/plain" and from_mail_system(message)
    if not (unsplit or pasted):
        return None
    body = message.text
    start = _FIELDS_START.search(body)
    if start is None:
        return None
    fields = body[start.start():]
    if not (_RECIPIENT_FIELD.search(fields) and _ACTION_OR_STATUS.search(fields)):
        return None
    if pasted and _prose_after_fields(fields):
        return None  # a person quoting a report, then explaining it
    return fields, body[:start.start()], "delivery-status fields in the message body"


_ORIGINAL_HEADER = re.compile(r"^(?:Received|Return-Path|Message-Id|Subject|From|Date)[ \t]*:",
                              re.I | re.M)
_FIELD_LINE = re.compile(r"^(?:[!-9;-~]+[ \t]*:|[ \t])")


def _prose_after_fields(fields: str) -> bool:
    """A paragraph of prose after the fields: machine reports end with fields or with the
    returned message's headers; a person's explanation goes on in sentences."""
    for block in re.split(r"\n[ \t]*\n", fields.strip()):
        lines = [line for line in block.split("\n") if line.strip()]
        if lines and not all(_FIELD_LINE.match(line) for line in lines):
            return not ORIGINAL_MARKERS.match(lines[0].strip())
        if _ORIGINAL_HEADER.search(block):
            return False  # the returned message's headers: what follows is its body
    return False


def _failures(text: str) -> list[Failure]:
    # Blocks enough for the cap and one more (a per-message group, a stray blank line).
    groups = parse_field_groups(text, MAX_RECIPIENTS + 8)
    # Reports that put the recipient fields in the first (per-message) group too.
    if groups and any(name in ("final-recipient", "original-recipient") for name, _ in groups[0]):
        groups = [*groups, groups[0]]
    # One more than the cap, so that the chain can tell a cut list from a full one.
    return [f for group in groups[1:MAX_RECIPIENTS + 2] if (f := _failure(group)) is not None]


def _failure(fields: list[tuple[str, str]]) -> Failure | None:
    values: dict[str, str] = {}
    for name, value in fields:
        values.setdefault(name, _decode_jis(value))
    recipient = values.get("final-recipient") or values.get("original-recipient") or ""
    address = normalize_address(recipient)
    if not address and "x-actual-recipient" in values:
        address = normalize_address(values["x-actual-recipient"])
    action_word = values.get("action", "").strip().lower().split(" ")[0].rstrip(";,.")
    if not address and not action_word:
        return None
    if not address and "status" not in values and "diagnostic-code" not in values:
        return None  # an Action field alone (a quoted header, a form) names no recipient
    status_field = values.get("status", "")
    status_match = _STATUS.match(status_field)
    status = ".".join(status_match.groups()) if status_match else ""
    action = _ACTIONS.get(action_word) or _ACTION_ALIASES.get(action_word)
    if action is None:
        action = _action_from_status(status)
    diagnostic = values.get("diagnostic-code", "")
    diag_type, sep, diag_text = diagnostic.partition(";")
    if sep and " " not in diag_type.strip():
        diagnostic = diag_text
    diagnostic = diagnostic.strip()
    if not diagnostic:
        comment = _STATUS_COMMENT.search(status_field)
        if comment and not comment.group(1).lower().startswith("undefined"):
            diagnostic = comment.group(1).strip()
    smtp_code = ""
    if diag_type.strip().lower() == "smtp" or not sep:
        code = _SMTP_CODE.match(diagnostic)
        smtp_code = code.group(1) if code else ""
    remote = values.get("remote-mta", "")
    remote = remote.partition(";")[2].strip() if ";" in remote else remote.strip()
    return Failure(
        address=address,
        action=action,
        status=_refined_status(status, diagnostic),
        smtp_code=smtp_code,
        diagnostic=diagnostic,
        remote_mta=remote.split(" ")[0] if remote else "",
    )


def _refined_status(status: str, diagnostic: str) -> str:
    """A bare x.0.0 status gives way to a more precise one of the same class in the words."""
    if status and not status.endswith(".0.0"):
        return status
    found = _STATUS_IN_WORDS.search(diagnostic)
    if not found:
        return status
    precise = ".".join(found.groups())
    if status and precise[0] != status[0]:
        return status
    return precise


def _enrich(failures: list[Failure], notice: str) -> list[str]:
    """Recipients without the server's words: take them from the human-readable notice.
    Returns a note when more recipients lack words than are looked for."""
    if not notice or all(f.diagnostic for f in failures):
        return []
    notice, _ = split_at_original(notice)
    transcript = _TRANSCRIPT.search(notice)
    single = len({f.address for f in failures}) == 1
    wanting = [f for f in failures if not f.diagnostic and f.address]
    notes = []
    if len(wanting) > MAX_NOTICE_SEARCHES:
        notes.append(f"{len(wanting)} recipients without the server's words: the notice "
                     f"searched for the first {MAX_NOTICE_SEARCHES} only")
        del wanting[MAX_NOTICE_SEARCHES:]
    lines = _NoticeLines(notice)
    for failure in wanting:
        words = notice_words(lines, failure.address)
        if single and transcript:
            words = " ".join(transcript.group(1).split())
        if words:
            failure.diagnostic = words
            failure.status = _refined_status(failure.status, words)
    return notes


class _NoticeLines:
    """A notice split into lines once, for the look-ups of many recipients: which lines name
    an address is found by one search of the lower-cased text, not a test per line."""

    def __init__(self, notice: str) -> None:
        self.lines = notice.split("\n")
        self.lowered = notice.lower()
        self.starts = list(accumulate((len(line) + 1 for line in self.lines[:-1]), initial=0))
        # Lower-casing changes the length of a few characters ("İ"): offsets then differ.
        self.exact = len(self.lowered) == len(notice)

    def naming(self, lowered: str) -> list[int]:
        """The indexes of the lines that hold `lowered` (any case), in order."""
        if not self.exact:
            return [i for i, line in enumerate(self.lines) if lowered in line.lower()]
        found: list[int] = []
        position = 0
        while (at := self.lowered.find(lowered, position)) >= 0:
            index = bisect_right(self.starts, at) - 1
            found.append(index)
            position = (self.starts[index + 1] if index + 1 < len(self.starts)
                        else len(self.lowered))
        return found


def notice_words(notice: _NoticeLines, address: str) -> str:
    """What a notice says about one recipient: the lines that name it and their continuation.

    The address itself and list markers are dropped, so "<a@b>: host x said: 550 ..." gives
    "host x said: 550 ..."; a line that only names the address contributes what follows it.
    """
    lines = notice.lines
    lowered = address.lower()
    pieces: list[str] = []
    used: set[int] = set()
    for index in notice.naming(lowered):
        line = lines[index]
        if index in used:
            continue
        rest = _without_mentions(line, address).strip(" \t<>:;,.*-\"'()[]")
        if rest:
            pieces.append(rest)
        for offset, following in enumerate(lines[index + 1:index + 8], start=index + 1):
            if not following.strip() or lowered in following.lower():
                break
            if not following[:1].isspace() and rest:
                break  # an unindented line after a full one starts something else
            pieces.append(following.strip())
            used.add(offset)
    return " ".join(" ".join(pieces).split())


def _without_mentions(line: str, address: str) -> str:
    """The line with each mention of the address (maybe in <>) replaced by a space: what
    `re.sub(r"<?" + re.escape(address) + r">?", " ", line, flags=re.I)` gives, without
    compiling a pattern per address. (On ASCII text re.I is ASCII case folding; other text
    goes to the regex.)"""
    if not (line.isascii() and address.isascii() and address):
        return re.sub(r"<?" + re.escape(address) + r">?", " ", line, flags=re.I)
    lowered, wanted = line.lower(), address.lower()
    pieces: list[str] = []
    position = 0
    while (found := lowered.find(wanted, position)) >= 0:
        start = found - 1 if found > position and line[found - 1] == "<" else found
        end = found + len(wanted)
        if line.startswith(">", end):
            end += 1
        pieces += (line[position:start], " ")
        position = end
    pieces.append(line[position:])
    return "".join(pieces)


def _decode_jis(value: str) -> str:
    """ISO-2022-JP text in a field of a part that declared no charset."""
    if _JIS_ESCAPE not in value:
        return value
    try:
        return value.encode("latin-1").decode("iso-2022-jp")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _action_from_status(status: str) -> Action:
    """A report without a usable Action field: the status class says it."""
    if status.startswith("2"):
        return Action.DELIVERED
    if status.startswith("4"):
        return Action.DELAYED
    return Action.FAILED
