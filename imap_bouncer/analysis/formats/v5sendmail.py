"""Sendmail V5 (and other pre-MIME Sendmail) returned mail.

A plain-text notice: "----- Transcript of session follows -----" with the SMTP session
("While talking to host:", ">>> command", "<<< reply") and one line per failed recipient
("550 <a@b>... User unknown"), then "----- Unsent message follows -----" and the message.
Recipients that failed at the host level ("421 host (smtp)... Deferred: ...") have no line
of their own; the recipients of the unsent message are then the failed ones.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import find_addresses, normalize_address
from ..findings import Failure, Findings
from ..message import Part, header_block_of
from ._lib.smtp_reply import leading_code
from ._lib.textreport import findings_of, unfold

NAME = "v5sendmail"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_TRANSCRIPT = re.compile(r"^[ \t]*-+ ?Transcript of session follows ?-+[ \t]*$", re.I | re.M)
_UNSENT = re.compile(r"^[ \t]*-+ ?Unsent message follows ?-+[ \t]*$", re.I | re.M)
_TALKING = re.compile(r"^While talking to ([^\s:]+):?\s*$", re.I)
_COMMAND = re.compile(r"^>>> ?(\S+)(.*)$")
_REPLY = re.compile(r"^<<< ?(.*)$")
# "550 <a@b>... User unknown" (a recipient) and "421 host (smtp)... Deferred: ..." (a host).
_RECIPIENT_LINE = re.compile(r"^([245]\d\d) <?([^\s<>]+@[^\s<>]+?)>?\.\.\.\s*(.*)$")
_HOST_LINE = re.compile(r"^([245]\d\d) ([^\s@]+) \([^)]*\)\.\.\.\s*(.*)$")
# Subjects of warnings, which V5 sent while it kept trying.
_WARNING_SUBJECT = re.compile(r"^\s*(?:warning|waiting mail)\b", re.I)


def analyze(message: Part) -> Findings | None:
    if message.is_multipart:
        return None
    text = message.text
    transcript = _TRANSCRIPT.search(text[:20000])
    unsent = _UNSENT.search(text, transcript.end()) if transcript else None
    if transcript is None or unsent is None:
        return None
    delayed = bool(_WARNING_SUBJECT.search(message.decoded("subject")))
    action = Action.DELAYED if delayed else Action.FAILED
    session = _read(text[transcript.end():unsent.start()], action)
    failures = session.failures
    if not failures:
        failures = _unsent_recipients(text[unsent.end():], session.all_words, action)
    # The notice handed on is what precedes the transcript: each recipient already has its
    # own words and command, and the transcript as a whole would mix up the hosts.
    return findings_of(NAME, "Sendmail V5 transcript and unsent message", failures, message,
                       text[:transcript.start()])


class _Session:
    """What the transcript says: per recipient lines and the host they were talking to."""

    def __init__(self) -> None:
        self.host = ""
        self.command = ""
        self.replies: list[str] = []
        self.failures: list[Failure] = []
        self.all_words: list[str] = []

    def talk_to(self, host: str) -> None:
        self.host, self.command, self.replies = host.lower().rstrip("."), "", []


def _read(transcript: str, action: Action) -> _Session:
    session = _Session()
    for raw in transcript.split("\n"):
        line = raw.strip()
        if not line:
            continue
        session.all_words.append(line)
        talking = _TALKING.match(line)
        if talking:
            session.talk_to(talking.group(1))
            continue
        command = _COMMAND.match(line)
        if command:
            session.command = command.group(1).upper().rstrip(":")
            continue
        reply = _REPLY.match(line)
        if reply:
            session.replies.append(reply.group(1))
            continue
        host_line = _HOST_LINE.match(line)
        if host_line:
            host = host_line.group(2).lower().rstrip(".")
            if host != session.host:  # a new delivery attempt, to another host
                session.talk_to(host)
                session.replies = [host_line.group(3)]
            continue
        recipient = _RECIPIENT_LINE.match(line)
        if recipient:
            address = normalize_address(recipient.group(2))
            if not address:
                continue
            domain = address.partition("@")[2]
            ours = session.host and (session.host == domain or session.host.endswith("." + domain)
                                     or domain.endswith("." + session.host))
            words = [*session.replies, recipient.group(3)] if ours else [recipient.group(3)]
            session.failures.append(Failure(
                address=address, action=action, smtp_code=recipient.group(1),
                diagnostic=unfold(" ".join(words)),
                command=session.command if ours else "",
            ))
    return session


def _unsent_recipients(unsent: str, words: list[str], action: Action) -> list[Failure]:
    """No recipient line: the recipients of the unsent message failed, for the whole reason."""
    headers = header_block_of(unsent)
    addresses: list[str] = []
    for name, value in headers:
        if name in ("to", "cc"):
            addresses.extend(find_addresses(value))
    diagnostic = unfold(" ".join(words))
    code = leading_code(diagnostic)
    return [Failure(address=a, action=action, diagnostic=diagnostic,
                    smtp_code=code) for a in dict.fromkeys(addresses)]
