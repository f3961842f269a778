"""Postfix: RFC 3464 reports whose notice says more than the status fields, and older plain ones.

The notice ("This is the mail system at host X." / older "This is the Postfix program at
host X.") has one paragraph per recipient: "<address> (expanded from <alias>): host
mx.example[192.0.2.1] said: 550 5.1.1 ... (in reply to RCPT TO command)", continued on
indented lines. The report part (X-Postfix-Queue-ID, X-Postfix-Sender) repeats it in
Diagnostic-Code but gives only a coarse Status; old Postfix and some ISPs send the notice
alone. Also read: the "Postfix SMTP server: errors from ..." transcript sent to postmaster.
"""

from __future__ import annotations

from ...report import Action, Kind
from .. import dsn
from .. import lazy_re as re
from ..addresses import find_addresses, normalize_address
from ..findings import Failure, Findings
from ..literals import prefiltered
from ..message import Part, parse_message
from ..text import notice_text, original_headers
from ._lib.smtp_reply import command_of, leading_code, unfold_reply
from ._lib.textreport import findings_of

NAME = "postfix"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

# Postfix's notice greeting (bounce templates, old and new) and its report fields.
_GREETING = re.compile(r"This is the (?:mail system|Postfix program) at host", re.I)
_GREETING = prefiltered(_GREETING)  # searched only in texts holding its words
_POSTFIX_FIELDS = re.compile(r"^X-Postfix-(?:Queue-ID|Sender)\s*:", re.I | re.M)
_POSTFIX_FIELDS = prefiltered(_POSTFIX_FIELDS)  # searched only in texts holding its words
_SUBJECTS = re.compile(r"^(?:Undelivered Mail Returned to Sender|Delayed Mail \(still being "
                       r"retried\)|Mail Delivery Status Report)", re.I)
_WARNING = re.compile(r"THIS IS A WARNING ONLY|Delayed Mail \(still being retried\)", re.I)
_WARNING = prefiltered(_WARNING)  # searched only in texts holding its words
# A recipient paragraph: "<a@b>" or "<a@b> (expanded from <c@d>)", a colon, the words.
_PARAGRAPH = re.compile(
    r"^<(?P<address>[^<>\s]+@[^<>\s]+|[^<>\s]+)>(?:\s+\(expanded from\s+<(?P<alias>[^<>]*)>\))?"
    r":\s*(?P<text>.*)", re.S)
# "host mx.example[192.0.2.1] said:" and friends: who spoke, and at which stage.
_SAID = re.compile(r"(?:delivery temporarily suspended:\s*)?host (?P<host>\S+?)\[[^\]]*\]"
                   r"(?::\d+)? (?P<verb>said|refused to talk to me):\s*", re.I)
_IN_REPLY = re.compile(r"\s*\(in reply to (?P<command>.+?) command\)\s*$", re.I | re.S)
# Postfix's own words for a local delivery program that failed (local(8), pipe(8)).
_LOCAL_COMMAND = re.compile(r"\bCommand output:|\bCommand died with status|"
                            r"\bCommand time limit exceeded", re.I)
_LOCAL_COMMAND = prefiltered(_LOCAL_COMMAND)  # searched only in texts holding its words
_UNAVAILABLE = re.compile(r"Delivery report unavailable", re.I)
# The postmaster notice of the SMTP server: a transcript with " In:" and " Out:" lines.
_SERVER_REPORT = re.compile(r"^Postfix SMTP server: errors from", re.I)
_TRANSCRIPT_LINE = re.compile(r"^\s*(In|Out):\s+(.*)$")
# An ISP that pastes the whole Postfix bounce into a text/plain notice.
_EMBEDDED = re.compile(r"^Content-Type:\s*multipart/report\b", re.I | re.M)


def analyze(message: Part) -> Findings | None:
    if _SERVER_REPORT.match(message.decoded("subject")):
        return _server_report(message)
    report = dsn.status_part(message)
    if report is not None:
        if not _POSTFIX_FIELDS.search(report.text[:2000]):
            return None
    elif not _SUBJECTS.match(message.decoded("subject")) and \
            "mailer-daemon" not in message.get("from").lower():
        return None
    notice = notice_text(message)
    if report is None:
        embedded = _embedded(notice)
        if embedded is not None:
            return analyze(embedded)
        if not _GREETING.search(notice[:3000]):
            return None
    paragraphs = _paragraphs(notice)
    delayed = bool(_WARNING.search(notice[:3000]) or _WARNING.search(message.decoded("subject")))
    findings = dsn.analyze(message) if report is not None else None
    if findings is not None:
        failures = [_enrich(f, paragraphs) for f in findings.failures]
    else:
        action = Action.DELAYED if delayed else Action.FAILED
        failures = [_from_paragraph(address, text, action) for address, text in paragraphs.items()]
    if not failures and _UNAVAILABLE.search(notice):
        failures = _unavailable(message, Action.DELAYED if delayed else Action.FAILED)
    return findings_of(NAME, f"Postfix notice with {len(failures)} recipient(s)", failures, message,
                       notice)


def _paragraphs(notice: str) -> dict[str, str]:
    """Recipient paragraphs of the notice by address (and by alias), text unfolded."""
    found: dict[str, str] = {}
    for block in re.split(r"\n[ \t]*\n", notice):
        block = block.strip("\n")
        if not block.startswith("<"):
            continue
        match = _PARAGRAPH.match(" ".join(block.split()))
        if not match:
            continue
        text = match.group("text").strip()
        for key in (match.group("address"), match.group("alias") or ""):
            address = normalize_address(key) if "@" in key else ""
            if address:
                found.setdefault(address, text)
    return found


def _parse_words(text: str) -> tuple[str, str, str]:
    """(the remote server's words or Postfix's own, remote host, SMTP command)."""
    command = ""
    in_reply = _IN_REPLY.search(text)
    if in_reply:
        command = command_of(in_reply.group("command"))
        text = text[:in_reply.start()]
    host = ""
    said = _SAID.search(text)
    if said:
        host = said.group("host")
        if said.group("verb").lower().startswith("refused"):
            command = "CONN"
        text = text[said.end():]
    return unfold_reply(text), host, command


def _enrich(failure: Failure, paragraphs: dict[str, str]) -> Failure:
    """The report's facts, with the words and the stage from the notice's paragraph."""
    text = paragraphs.get(failure.address, "")
    words, host, command = _parse_words(text or failure.diagnostic)
    if words:
        failure.diagnostic = words
    failure.remote_mta = failure.remote_mta or host
    failure.command = failure.command or command
    code = leading_code(failure.diagnostic)
    if code and not failure.smtp_code:
        failure.smtp_code = code
    if _LOCAL_COMMAND.search(text or failure.diagnostic) and not failure.reason_hint:
        failure.reason_hint = "mailererror"
    return failure


def _from_paragraph(address: str, text: str, action: Action) -> Failure:
    words, host, command = _parse_words(text)
    code = leading_code(words)
    return Failure(
        address=address,
        action=action,
        smtp_code=code,
        diagnostic=words,
        remote_mta=host,
        command=command,
        reason_hint="mailererror" if _LOCAL_COMMAND.search(text) else "",
    )


def _unavailable(message: Part, action: Action) -> list[Failure]:
    """"Delivery report unavailable": the returned message's only recipient, if it has one."""
    headers = original_headers(message) or []
    recipients = [a for name, value in headers if name in ("to", "cc")
                  for a in find_addresses(value)]
    if len(recipients) != 1:
        return []
    return [Failure(address=recipients[0], action=action)]


def _embedded(notice: str) -> Part | None:
    """A Postfix report pasted whole into a text notice (an ISP forwarding it)."""
    content_type = _EMBEDDED.search(notice) if "/report" in notice else None
    if content_type is None or not _POSTFIX_FIELDS.search(notice):
        return None
    begin = notice.rfind("\n\n", 0, content_type.start())  # the header block has no blank line
    embedded = parse_message(notice[begin + 2 if begin >= 0 else 0:].encode("utf-8", "replace"))
    return embedded if dsn.status_part(embedded) is not None else None


def _server_report(message: Part) -> Findings | None:
    """Postfix smtpd's notice to postmaster: the recipients of a refused session."""
    text = notice_text(message)
    if "Transcript of session follows" not in text:
        return None
    recipients: list[str] = []
    last_command, error, error_command = "", "", ""
    for line in text.split("\n"):
        match = _TRANSCRIPT_LINE.match(line)
        if match is None:
            continue
        side, words = match.groups()
        if side == "In":
            last_command = words.split(":", 1)[0].split(" ", 1)[0].upper()
            if words.upper().startswith("RCPT TO:"):
                address = normalize_address(words[8:].split(" ", 1)[0])
                if address:
                    recipients.append(address)
        elif words[:1] in "45" and re.match(r"[45]\d\d\b", words):
            error, error_command = words, last_command
    if not recipients or not error:
        return None
    action = Action.DELAYED if error.startswith("4") else Action.FAILED
    command = {"RCPT": "RCPT", "MAIL": "MAIL", "DATA": "DATA", "EHLO": "HELO",
               "HELO": "HELO"}.get(error_command, "")
    failures = [Failure(address=a, action=action, smtp_code=error[:3], diagnostic=error,
                        command=command) for a in dict.fromkeys(recipients)]
    return Findings(
        kind=Kind.BOUNCE if action is Action.FAILED else Kind.DELAY,
        analyzer=f"formats.{NAME}",
        evidence="Postfix SMTP server error transcript",
        failures=failures,
        notice=text,
    )
