"""Who wrote a message: a mail system, a mailing list, or a person.

A delivery report is written by an MTA (RFC 3464 section 2: sent from the null reverse-path,
RFC 5321 section 4.5.5), never by a list, and a person who pastes, quotes or forwards one
keeps every sentence of it. So the analyzers that recognise a report only by its words, or
that look inside attached messages, first ask whether a mail system sent this message.

A list or a forwarder can still pass a mail system's report on unchanged: the MTA's report to
a list's owner or -bounces address is resent with the list's headers, or a report posted to
the list goes out to its members. What tells such a report from a list post that quotes one
is who wrote the body (`relayed_report`), never the list's headers alone. A list manager's
own notice that attaches a bounce it could not use carries the report one level down
(`report_passed_on_by_list`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, wraps

from . import lazy_re as re
from .literals import prefiltered
from .message import Part
from .text import notice_text, split_at_original

# Senders of delivery reports (RFC 3464 recommends MAILER-DAEMON or postmaster).
MAILER_SENDERS = re.compile(
    r"mailer-daemon|postmaster|mail delivery (?:subsystem|system|service)|mail-daemon|"
    r"mail administrator|mailadmin|internet mail delivery|delivery ?status|"
    r"post_master|"  # Apache James
    r"microsoftexchange329e71ec88ae4615bbc36ab6ce41109e|"  # Exchange's system mailbox
    r"\bmaildelivery|no-?reply-?bounce|\bbounce[sd]?@",
    re.I,
)
MAILER_SENDERS = prefiltered(MAILER_SENDERS)  # searched only in texts holding its words
# A person answering or passing on a message: "Re:", "Fw:", German "AW:"/"WG:", French "TR:",
# Spanish "RV:", Nordic "SV:"/"VS:", Dutch "Antw:"/"Doorst:", Italian "R:"/"RIF:"/"I:",
# Portuguese "RES:"/"ENC:", Polish "Odp:"/"PD:", Turkish "Ynt:"/"İlt:", Chinese and Japanese;
# after any list tags ("[users] Re:"), and Thunderbird's old bracketed "[Fwd: ...]".
REPLY_OR_FORWARD = re.compile(
    r"^\s*(?:\[[^\]]{0,60}\]\s*)*\[?\s*(?:re|fwd?|aw|wg|tr|rv|sv|vs|antw|doorst|r|rif|i|res|"
    r"enc|odp|pd|ynt|ilt|回复|回覆|答复|转发|轉寄|返信|転送)\s*(?:\[\d+\])?\s*[:：]",
    re.I,
)
# Headers a mailing list or a bulk sender adds (RFC 2369, RFC 2919, ezmlm's Mailing-List).
LIST_HEADERS = ("list-id", "list-post", "list-unsubscribe", "list-help", "mailing-list")
# Headers only a list manager writes, on its posts and on its own notices: Mailman 2's
# notices to list owners carry no List-* headers but these; SmartList and majordomo write
# X-Mailing-List; Ecartis (Listar) its version.
LIST_MANAGER_HEADERS = ("x-list-administrivia", "x-mailman-version", "x-beenthere",
                        "x-mailing-list", "x-ecartis-version", "x-listar-version")
# Loose programs and archives: a worm's fake bounce carries one (2002-2005: MyDoom, Sober,
# Netsky); a mail system returns the original as message/rfc822 or its headers, never so.
PROGRAM_NAME = re.compile(r"\.(?:exe|pif|scr|com|bat|cmd|cpl|vbs|js|hta|lnk|zip|rar)\s*$", re.I)
PROGRAM_TYPES = ("application/x-msdownload", "application/x-msdos-program",
                 "application/zip", "application/x-zip-compressed")
_FILENAME = re.compile(r'filename\*?=\s*"?([^";]+)', re.I)
NULL_PATHS = ("<>", "<null>")
# The addresses a list manager sends its own notices from (Mailman's -bounces/-owner/-admin/
# -request, majordomo's owner-LIST, ezmlm's -help/-return-, Sympa's -owner/-request, LISTSERV
# and the managers' own names): a list speaking, not a mail system, whatever the name says.
LIST_ROLE_SENDER = re.compile(
    r"[-+.](?:bounces?|owner|owners|admin|request|errors|help|return)(?:[-+=][^@\s<>]*)?@|"
    r"(?:^|[\s<\"'])owner-[^@\s<>]+@|"
    r"(?:^|[\s<\"'])(?:mailman|majordomo|listserv|sympa|ezmlm|listproc|lyris)"
    r"(?:-[^@\s<>]*)?@", re.I)
LIST_ROLE_SENDER = prefiltered(LIST_ROLE_SENDER)  # searched only in texts holding its words


def once_per_message(question: Callable[[Part], bool]) -> Callable[[Part], bool]:
    """Every analyzer of the chain asks the same questions of a message: answer each once.

    Only for questions about the message alone (a Part never changes once read)."""
    key = f"{question.__module__}.{question.__qualname__}"

    @wraps(question)
    def answer(message: Part) -> bool:
        if key not in message.derived:
            message.derived[key] = question(message)
        return message.derived[key]  # type: ignore[return-value]

    return answer


@once_per_message
def from_mail_system(message: Part) -> bool:
    """The From header names a mail system, or is the null sender "<>" itself.

    A message with no From header at all (a bare body, a truncated file) says nothing.
    """
    if "from" not in message:
        return False
    sender = message.get("from")
    return not sender.strip(" <>\t") or bool(MAILER_SENDERS.search(sender))


@once_per_message
def from_list(message: Part) -> bool:
    """Distributed by a mailing list or a bulk sender: a post, a digest, a newsletter."""
    return message.has_any(_ANY_LIST_HEADER)


_ANY_LIST_HEADER = frozenset((*LIST_HEADERS, *LIST_MANAGER_HEADERS))


@once_per_message
def carries_program(message: Part) -> bool:
    """A part of the message itself (not of a message attached to it) is a program or an
    archive."""
    stack = list(message.parts) if message.is_multipart else []
    while stack:
        part = stack.pop()
        if part.content_type.startswith("multipart/"):
            stack.extend(part.parts)
            continue
        disposition = part.get("content-disposition")
        found = _FILENAME.search(disposition) if disposition else None
        name = part.params.get("name", "") or (found.group(1) if found else "")
        if part.content_type in PROGRAM_TYPES or (name and PROGRAM_NAME.search(name)):
            return True
    return False


@once_per_message
def machine_sent(message: Part) -> bool:
    """Some sign that a mail system wrote the message.

    The null return path is the surest (a list post never has it, while a report that passed
    through a list keeps it along with the list's headers). Otherwise, not from a list, and a
    mail system's From, X-Failed-Recipients, a top-level multipart/report, or no From at all
    (a report saved without its headers). From a list, only a mail system's report the list
    passed on unchanged (`relayed_report`). Never with a program attached: that is a worm.
    """
    if carries_program(message):
        return False
    if null_return_path(message):
        return True
    if from_list(message):
        return relayed_report(message)
    return (from_mail_system(message) or "from" not in message
            or "x-failed-recipients" in message
            or message.content_type == "multipart/report")


# The block a mail program writes above the message a person forwards inline (Thunderbird,
# Apple Mail, Gmail, Outlook). Inline forwards re-attach the forwarded message's own parts
# with their own types, so a report part can sit directly in a person's forward.
FORWARD_BLOCK = re.compile(
    r"^[ \t>]*(?:-{3,} ?(?:Forwarded message|Original Message|Mensaje reenviado|"
    r"Weitergeleitete Nachricht|Message transf[ée]r[ée]) ?-{3,}|Begin forwarded message:)",
    re.I | re.M)


@once_per_message
def passed_on_by_person(message: Part) -> bool:
    """A person's reply or forward: not a mail system's message, and its subject says
    "Fwd:"/"Re:" or its text opens a forwarded message. A report part in it (attached or
    re-attached inline) is the forwarded report, not this message's."""
    if machine_sent(message):
        return False
    if is_reply_or_forward(message.decoded("subject")):
        return True
    part = message.find_outside_attached("text/plain")
    return part is not None and bool(FORWARD_BLOCK.search(part.text[:20000]))


# What a mail system's report says first, in its opening lines: the MTA names itself, or
# states that delivery failed or is delayed (Postfix, Exim, Sendmail, qmail, Exchange, Gmail,
# Yahoo, Courier, Lotus, and the generic wordings of smaller MTAs), in the common languages.
REPORT_OPENING = re.compile(
    r"\bthis is the (?:mail system|mail delivery|[\w.-]{2,30} program|[\w.-]{2,30} mail system)\b|"
    r"created automatically by mail delivery|mail delivery (?:software|subsystem|system)|"
    r"original message was received|delivery status notification|"
    r"(?:could not|couldn't|can ?not|wasn't|was not|were not|has not been|have not been|"
    r"not yet been) (?:be )?(?:delivered|sent)|"
    r"\bundeliver|(?:unable|failed) to deliver|delivery (?:to the following|has failed|failed|"
    r"of your message|is delayed|incomplete|problem|error)|\*\* ?[\w ]{3,40} ?\*\*|"
    r"\b(?:address|message|recipients?) (?:not found|not delivered|blocked|rejected)|"
    r"returned mail|non-?delivery|will (?:continue|keep) trying|did not reach|"
    r"could not be reached|"
    r"(?:temporary|permanent|fatal) (?:error|failure)|"
    r"unzustellbar|nicht zugestellt|zugestellt werden (?:konnte|kann)|mailprogramm auf|"
    r"non (?:remis|recapitabile)|n'a pas pu (?:être|etre) (?:remis|distribu)|"
    r"non (?:è|e') stat[oa] (?:possibile )?recapitat|no (?:se )?(?:ha podido|pudo) "
    r"(?:ser )?entregar|n[aã]o (?:foi|pôde ser) entregue|onbestelbaar|配信|不達|未送达|无法投递",
    re.I)
# A person's words around a report: a quoted line ("> ", not Sendmail's ">>> " transcript),
# a salutation alone on the first line, or a closing before a signature.
_QUOTED_LINE = re.compile(r"^[ \t]*>(?:[ \t]|$)", re.M)
_SALUTATION = re.compile(
    r"^(?:dear|hi|hello|hey|hallo|liebe[rs]?|bonjour|hola|ciao|greetings|good (?:morning|"
    r"afternoon|evening))\b(?:[ \t]+[^\s.,;:!?]+){0,3}[ \t]*[,;:!]?$", re.I)
_CLOSING = re.compile(
    r"^[ \t]*(?:(?:best|kind|warm)?\s*regards|thanks?(?: you)?(?: in advance)?|cheers|"
    r"sincerely|mit freundlichen gr(?:ü|ue)(?:ß|ss)en|cordialement|saludos)[,.!]?[ \t]*$",
    re.I | re.M)
_OPENING_LINES = 6  # non-blank lines of the body in which the report states itself
_HEAD_CHARS = 3000  # of the notice, where a person's words would show


def opens_as_report(message: Part) -> bool:
    """The body is a mail system's report from its first line: a multipart/report of its own
    (a list's footer may sit beside it), or a text whose opening lines state a delivery
    failure or name the MTA, with no quoting, salutation or closing of a person in it."""
    if message.find_outside_attached("multipart/report") is not None:
        return True
    notice, _ = split_at_original(notice_text(message))
    head = notice[:_HEAD_CHARS]
    lines = [line.strip() for line in head.split("\n") if line.strip()][:_OPENING_LINES]
    if not lines or _SALUTATION.match(lines[0]):
        return False
    if _QUOTED_LINE.search(head) or _CLOSING.search(head) or FORWARD_BLOCK.search(head):
        return False
    return bool(REPORT_OPENING.search("\n".join(lines)))


# Where a list that rewrites From (DMARC mitigation: "Name via List" <list@...>) keeps the
# author: Google Groups' X-Original-Sender, the X-Original-From of Mailman 3 and Sympa.
ORIGINAL_AUTHOR_HEADERS = ("x-original-from", "x-original-sender")


def written_by_mail_system(message: Part) -> bool:
    """A mail system's From, or a list's rewritten From over a mail system's address."""
    return from_mail_system(message) or any(
        MAILER_SENDERS.search(message.get(name)) for name in ORIGINAL_AUTHOR_HEADERS)


def from_list_role(message: Part) -> bool:
    """The From is one of a list manager's own addresses (its -bounces, -owner, LISTSERV)."""
    return bool(LIST_ROLE_SENDER.search(message.get("from")))


@once_per_message
def relayed_report(message: Part) -> bool:
    """A mail system's report that a list passed on unchanged (to its owners or members).

    The list's headers say who distributed it, not who wrote it: the From still names the
    mail system (not one of the list's own addresses), the subject is not a person's "Re:" or
    "Fwd:", and the body opens as the report itself (`opens_as_report`). A person's post
    quoting a bounce, a digest and a list's own notices all fail one of these. Each test is
    one the same report would pass had no list touched it, so a list's headers never make a
    message more of a report. (A forwarder that adds no list headers needs no such question:
    its From and body are the report's.)
    """
    if carries_program(message) or not written_by_mail_system(message) \
            or from_list_role(message):
        return False
    if is_reply_or_forward(message.decoded("subject")):
        return False
    return opens_as_report(message)


# What a list manager writes when it passes a bounce on to the list's owners: Mailman's
# "Uncaught bounce notification" (the attached message "was received as a bounce" it could
# not use) and "Bounce action notification" ("The triggering bounce notice is attached"),
# LISTSERV's error report (the enclosed message "has been identified as a possible delivery
# error"), and the like.
PASSES_ON_BOUNCE = re.compile(
    r"received\s+as\s+a\s+bounce|bounce\s+action\s+notice|triggering\s+bounce|"
    r"identified\s+as\s+(?:a\s+)?(?:possible\s+)?delivery\s+error|unrecognized\s+bounce|"
    r"bounce\s+(?:message|notice)s?\s+(?:is|are)\s+(?:attached|enclosed)|"
    r"attached\s+(?:is|are)\s+the\s+bounce", re.I)
_ATTACHED_TYPES = ("message/rfc822", "message/global")
_MAX_ATTACHED = 3  # attached messages of one notice looked at


def report_passed_on_by_list(message: Part) -> Part | None:
    """The mail system's report a list manager's notice attaches, if it is one.

    The notice is the list manager's (its headers or its sender say so), not a person's
    reply or forward, and its own words say it passes on a bounce; the attached message must
    itself be a mail system's (`machine_sent`): a person's auto-reply or post that the list
    mistook for a bounce is not a report. Only the notice's own top-level attachments count.
    """
    if not (from_list(message) or from_list_role(message)) or not message.is_multipart:
        return None
    if is_reply_or_forward(message.decoded("subject")):
        return None
    text = message.find_outside_attached("text/plain")
    if text is None or not PASSES_ON_BOUNCE.search(text.text[:_HEAD_CHARS]):
        return None
    attached = [part for part in message.parts if part.content_type in _ATTACHED_TYPES]
    for part in attached[:_MAX_ATTACHED]:
        inner = part.parts[0] if part.parts else None
        if inner is not None and inner.headers and machine_sent(inner):
            return inner
    return None


def null_return_path(message: Part) -> bool:
    """Sent from the null reverse-path, as every delivery report is (RFC 5321 4.5.5)."""
    return message.get("return-path").strip() in NULL_PATHS


@lru_cache(maxsize=64)  # many guards ask it of the same subject
def is_reply_or_forward(subject: str) -> bool:
    return bool(REPLY_OR_FORWARD.match(subject))


@once_per_message
def passed_on_or_listed(message: Part) -> bool:
    """A person's reply or forward by its subject, or a list's post: never a report itself."""
    return is_reply_or_forward(message.decoded("subject")) or from_list(message)


def auto_submitted(message: Part) -> str:
    """The RFC 3834 Auto-Submitted value ("auto-replied", "auto-generated"...), lower-cased;
    "" for none or "no"."""
    value = message.get("auto-submitted").strip().lower()
    return "" if value == "no" else value
