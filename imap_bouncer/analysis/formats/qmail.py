"""qmail (and netqmail, qmail-ldap, indimail): the qmail-send bounce message format (QSBMF).

A plain-text notice: "Hi. This is the qmail-send program at HOST.", then one paragraph per
recipient that opens with "<address>:" and holds qmail's own sentence (which names the SMTP
stage: "does not like recipient", "sender was rejected", ...), the remote server's words
after "Remote host said:" and qmail's status in "(#5.1.1)". The copy of the message follows
"--- Below this line is a copy of the message." (indimail: "--- Enclosed is a copy ...").
"""

from __future__ import annotations

from ...report import Action, Kind
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..literals import prefiltered
from ..message import Part, header_block_of
from ..text import notice_text, original_headers
from ._lib.common import looks_like_bounce
from ._lib.smtp_reply import leading_code
from ._lib.textreport import findings_of

NAME = "qmail"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

# qmail-send's greeting; qmail's own bounce Received line ("(qmail 123 invoked for bounce)").
_GREETING = "qmail-send program at"
_INVOKED_FOR_BOUNCE = re.compile(r"invoked for bounce", re.I)
_INVOKED_FOR_BOUNCE = prefiltered(_INVOKED_FOR_BOUNCE)  # searched only in texts holding its words
# Where the copy of the message starts (qmail, indimail).
_ORIGINAL = re.compile(r"^-{2,} ?(?:Below this line is|Enclosed is) a copy of the message",
                       re.I | re.M)
# A recipient paragraph opens with "<address>:" on a line of its own (QSBMF section 3);
# some patched qmail-send write the first sentence on the same line.
_RECIPIENT = re.compile(r"^<([^<>\s]+@[^<>\s]+)>:[ \t]*", re.M)
# qmail's status: "(#5.1.1)".
_STATUS = re.compile(r"\(#([245]\.\d{1,3}\.\d{1,3})\)")
# The remote server's words: "Remote host said: 550 ..." (qmail-remote) or
# "remote host 192.0.2.1 said: 550 ..." (the "no SMTP connection got far enough" summary).
_SAID = re.compile(r"remote host (?:\S+ )?said:\s*", re.I)
# Where the remote words end: qmail's own trailers.
_SAID_END = re.compile(
    r"\s*(?:\(#[245]\.\d{1,3}\.\d{1,3}\)|giving up on \S+|i'm not going to try again|"
    r"\(other mxes tried:|$)", re.I)
# qmail's own trailer sentences, not part of any server's words.
_TRAILERS = re.compile(
    r"i'm not going to try again; this message has been in the queue too long\.?|"
    r"giving up on \S+?\.?(?=\s|$)|\(other mxes tried:[^)]*\)|\(#[245]\.\d{1,3}\.\d{1,3}\)",
    re.I)
_QUEUE_TOO_LONG = re.compile(r"in the queue too long", re.I)

# qmail-remote's sentence says which SMTP command the remote reply answered.
_COMMANDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"but greeting failed", re.I), "CONN"),
    (re.compile(r"but my name was rejected", re.I), "HELO"),
    (re.compile(r"but sender was rejected", re.I), "MAIL"),
    (re.compile(r"does not like recipient|most progress was RCPT TO", re.I), "RCPT"),
    (re.compile(r"failed after I sent the message|failed on DATA command|"
                r"most progress was DATA", re.I), "DATA"),
)
# qmail's own error sentences that name a reason by themselves.
_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    # qmail-remote: no MX and no A record at all: the domain takes no mail.
    (re.compile(r"couldn't find a mail exchanger or IP address", re.I), "notaccept"),
    # qmail-remote: the domain does not resolve.
    (re.compile(r"couldn't find any host (?:named|by that name)", re.I), "hostunknown"),
    # qmail-smtpd/qmail-send: relaying refused.
    (re.compile(r"isn't in my list of allowed rcpthosts|not in my control/rcpthosts", re.I),
     "norelaying"),
    # qmail-local: delivery loop.
    (re.compile(r"message is looping", re.I), "networkerror"),
    # qmail-remote: the connection dropped mid-session.
    (re.compile(r"but connection died|connection to \S+ died", re.I), "networkerror"),
    # vpopmail / vdelivermail.
    (re.compile(r"user is over quota|mailbox is full|over quota", re.I), "mailboxfull"),
)


def analyze(message: Part) -> Findings | None:
    if not _is_qmail(message):
        return None
    notice = notice_text(message)
    end = _ORIGINAL.search(notice)
    body = notice[:end.start()] if end else notice
    failures = _failures(body)
    evidence = f"qmail-send bounce with {len(failures)} recipient paragraph(s)"
    original = original_headers(message) or _inline_headers(notice, end)
    return findings_of(NAME, evidence, failures, message, body, kind=Kind.BOUNCE,
                       original=original)


def _is_qmail(message: Part) -> bool:
    """Cheap: a delivery report whose Received lines or notice show qmail-send's bounce."""
    # One search over the Received values joined (the words cannot span a line break): the
    # pre-filter lowers one text, not one per header.
    if _INVOKED_FOR_BOUNCE.search("\n".join(message.get_all("received"))):
        return True
    return _GREETING in notice_text(message)[:2000] and looks_like_bounce(message)


def _failures(body: str) -> list[Failure]:
    matches = list(_RECIPIENT.finditer(body))
    failures: list[Failure] = []
    for index, match in enumerate(matches):
        address = normalize_address(match.group(1))
        if not address:
            continue
        stop = matches[index + 1].start() if index + 1 < len(matches) else len(body)
        paragraph = body[match.end():stop].split("\n\n", 1)[0]
        failures.append(_failure(address, " ".join(paragraph.split())))
    return failures


def _failure(address: str, text: str) -> Failure:
    status_match = _STATUS.search(text)
    status = status_match.group(1) if status_match else ""
    said = _SAID.search(text)
    if said:
        rest = text[said.end():]
        end = _SAID_END.search(rest)
        diagnostic = rest[:end.start() if end else len(rest)].rstrip(" .")
    else:
        diagnostic = " ".join(_TRAILERS.sub(" ", text).split())
    code = leading_code(diagnostic)
    command = next((name for pattern, name in _COMMANDS if pattern.search(text)), "")
    hint = next((reason for pattern, reason in _HINTS if pattern.search(text)), "")
    if not hint and not said and not status and _QUEUE_TOO_LONG.search(text):
        hint = "expired"
    return Failure(
        address=address,
        action=Action.FAILED,  # qmail-send bounces only when it has given up
        status=status,
        smtp_code=code,
        diagnostic=diagnostic or text,
        reason_hint=hint,
        command=command,
    )


def _inline_headers(notice: str, end: re.Match[str] | None) -> list[tuple[str, str]] | None:
    if end is None:
        return None
    headers = header_block_of(notice[end.end():].split("\n", 1)[-1].lstrip())
    return headers or None
