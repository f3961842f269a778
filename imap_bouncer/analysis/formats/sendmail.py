"""Sendmail (8.x): RFC 3464 reports whose notice holds the SMTP transcript.

The notice lists the recipients ("----- The following addresses had permanent fatal errors
-----", each with "(reason: 550 ...)" and maybe "(expanded from: <alias>)"), then
"----- Transcript of session follows -----": "... while talking to HOST.:", the command sent
(">>> RCPT To:<a@b>") and the reply, one "<<< " line per reply line. The report part cuts a
multi-line reply to its first line and never says which command the reply answered; the
transcript has both. Some copies lose the top Content-Type: the parts are then found by the
boundary line under "This is a MIME-encapsulated message".
"""

from __future__ import annotations

from ...report import Action
from .. import dsn
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..literals import prefiltered
from ..message import Part
from ..text import notice_text
from ._lib.common import looks_like_bounce
from ._lib.smtp_reply import command_of, smtp_code_of, unfold_reply
from ._lib.textreport import findings_of

NAME = "sendmail"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

# Sendmail's section rulers (deliver.c / savemail.c).
_RULER = re.compile(r"^\s*-----\s*(?P<title>The following addresses had (?P<kind>permanent "
                    r"fatal|transient non-fatal) errors|Transcript of session follows)\s*-----\s*$",
                    re.I | re.M)
_RULER = prefiltered(_RULER)  # searched only in texts holding its words
_ANY_RULER = re.compile(r"^\s*-----.*-----\s*$", re.M)
_WARNING = re.compile(r"THIS IS A WARNING MESSAGE ONLY|transient non-fatal errors", re.I)
_WARNING = prefiltered(_WARNING)  # searched only in texts holding its words
_MIME_PREAMBLE = re.compile(rb"^This is a MIME-encapsulated message\s*\n+--(\S+)\s*$", re.M)
_TALKING = re.compile(r"^\.\.\. while talking to (?P<host>[^:]+?)\.?:\s*$", re.I)
_REASON = re.compile(r"\(reason:\s*(.*?)\)\s*$", re.I)
_ADDRESS_LINE = re.compile(r'^(?:<[^<>]*>|[^\s<>@]+@[^\s<>]+|"[^"]*"|\|\S+|/\S+)(?:\.\.\.|\s|$)')
_EXPANDED = re.compile(r"\(expanded from:\s*(.*?)\)\s*$", re.I)


def analyze(message: Part) -> Findings | None:
    if not looks_like_bounce(message):
        return None
    message = _with_lost_type(message)
    notice = notice_text(message)
    if "-----" not in notice or ("The following addresses had" not in notice
                                 and "Transcript of session follows" not in notice):
        return None
    rulers = list(_RULER.finditer(notice))
    if not rulers:
        return None
    listed = _listed(notice, rulers)
    exchanges = _transcript(notice, rulers)
    delayed = bool(_WARNING.search(notice[:4000]))
    findings = dsn.analyze(message)
    if findings is not None:
        failures = findings.failures
    else:
        action = Action.DELAYED if delayed else Action.FAILED
        failures = [Failure(address=address, action=action, diagnostic=reason)
                    for address, reason in listed.items()]
    for failure in failures:
        _enrich(failure, listed, exchanges, len(failures))
    evidence = f"Sendmail notice with {len(failures)} recipient(s)"
    return findings_of(NAME, evidence, failures, message, notice)


def _with_lost_type(message: Part) -> Part:
    """A report whose top Content-Type got lost: read it as the multipart it is."""
    if "content-type" in message:
        return message
    match = _MIME_PREAMBLE.search(message.raw_body[:2000])
    if match is None:
        return message
    boundary = match.group(1)
    return Part(b'Content-Type: multipart/report; boundary="' + boundary + b'"\n\n'
                + message.raw_body)


def _section(notice: str, ruler: re.Match[str]) -> str:
    following = _ANY_RULER.search(notice, ruler.end())
    return notice[ruler.end():following.start() if following else len(notice)]


def _listed(notice: str, rulers: list[re.Match[str]]) -> dict[str, str]:
    """Recipients of the address sections: address -> the "(reason: ...)" text.

    A section is its lines up to the first blank line; a recipient line holds an address
    alone (or a program or file Sendmail delivered to). Prose after it ends the section: a
    person quoting a notice goes on writing, and signatures hold addresses too.
    """
    found: dict[str, str] = {}
    for ruler in rulers:
        if not ruler.group("kind"):
            continue
        current, reason, alias = "", "", ""
        started = False
        for line in [*_section(notice, ruler).split("\n"), ""]:
            stripped = line.strip()
            if not stripped:
                if started:
                    break
                continue
            started = True
            if line[:1] not in (" ", "\t") and not _ADDRESS_LINE.match(stripped):
                break
            if line[:1] not in (" ", "\t"):
                _keep(found, current, reason, alias)
                current, reason, alias = stripped, "", ""
            elif said := _REASON.match(stripped):
                reason = said.group(1)
            elif expanded := _EXPANDED.match(stripped):
                alias = expanded.group(1)
        _keep(found, current, reason, alias)
    return found


def _keep(found: dict[str, str], head: str, reason: str, alias: str) -> None:
    address = normalize_address(head) if "@" in head and not head.startswith('"|') else ""
    address = address or (normalize_address(alias) if "@" in alias else "")
    if address:
        found.setdefault(address, reason)


def _transcript(notice: str, rulers: list[re.Match[str]]) -> list[tuple[str, str, str]]:
    """(command, reply, remote host) for each reply in the transcript.

    A reply answers the command line right above it; a reply right after "... while
    talking to" answers the greeting. Replies that follow another reply (pipelined RCPTs
    answered after DATA was sent) get no command: the transcript does not say which.
    """
    exchanges: list[tuple[str, str, str]] = []
    for ruler in rulers:
        if ruler.group("kind"):
            continue
        host, command, reply = "", "", []
        pending = ""  # the command a reply would answer
        for line in _section(notice, ruler).split("\n"):
            talking = _TALKING.match(line.strip())
            if line.startswith("<<<"):
                reply.append(line[3:].strip())
                continue
            if reply:
                exchanges.append((command, unfold_reply(" ".join(reply)), host))
                reply, pending = [], ""
            if talking:
                host, pending = talking.group("host"), "CONN"
            elif line.startswith(">>>"):
                pending = command_of(line[3:].split(":", 1)[0]) or "OTHER"
            command = pending
        if reply:
            exchanges.append((command, unfold_reply(" ".join(reply)), host))
    return [(c if c != "OTHER" else "", r, h) for c, r, h in exchanges
            if smtp_code_of(r)[:1] in ("4", "5")]


def _enrich(failure: Failure, listed: dict[str, str],
            exchanges: list[tuple[str, str, str]], count: int) -> None:
    """The full reply and its command from the transcript, for one recipient."""
    local = failure.address.partition("@")[0]
    mine = [e for e in exchanges if failure.address in e[1].lower()] or \
        [e for e in exchanges if f"<{local}@" in e[1].lower()]
    if not mine and count == 1:
        mine = exchanges[-1:]
    if not failure.diagnostic and failure.address in listed:
        failure.diagnostic = listed[failure.address]
    if not mine:
        return
    command, reply, host = mine[0]
    shown = " ".join(failure.diagnostic.split())
    if not smtp_code_of(shown) or smtp_code_of(reply) == smtp_code_of(shown):
        failure.diagnostic = reply
        failure.command = failure.command or command
    failure.remote_mta = failure.remote_mta or host
    if not failure.smtp_code:
        failure.smtp_code = smtp_code_of(failure.diagnostic)
