"""Who wrote a message: a mail system, a mailing list, or a person.

A delivery report is written by an MTA (RFC 3464 section 2: sent from the null reverse-path,
RFC 5321 section 4.5.5), never by a list, and a person who pastes, quotes or forwards one
keeps every sentence of it. So the analyzers that recognise a report only by its words, or
that look inside attached messages, first ask whether a mail system sent this message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps

from .message import Part

# Senders of delivery reports (RFC 3464 recommends MAILER-DAEMON or postmaster).
MAILER_SENDERS = re.compile(
    r"mailer-daemon|postmaster|mail delivery (?:subsystem|system|service)|mail-daemon|"
    r"mail administrator|mailadmin|internet mail delivery|delivery ?status|"
    r"post_master|"  # Apache James
    r"\bmaildelivery|no-?reply-?bounce|\bbounce[sd]?@",
    re.I,
)
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


def _once_per_message(question: Callable[[Part], bool]) -> Callable[[Part], bool]:
    """Every analyzer of the chain asks the same questions of a message: answer each once."""
    key = f"origin.{question.__name__}"

    @wraps(question)
    def answer(message: Part) -> bool:
        if key not in message.derived:
            message.derived[key] = question(message)
        return message.derived[key]  # type: ignore[return-value]

    return answer


def from_mail_system(message: Part) -> bool:
    """The From header names a mail system, or is the null sender "<>" itself.

    A message with no From header at all (a bare body, a truncated file) says nothing.
    """
    if "from" not in message:
        return False
    sender = message.get("from")
    return not sender.strip(" <>\t") or bool(MAILER_SENDERS.search(sender))


def from_list(message: Part) -> bool:
    """Distributed by a mailing list or a bulk sender: a post, a digest, a newsletter."""
    return any(name in message for name in (*LIST_HEADERS, *LIST_MANAGER_HEADERS))


@_once_per_message
def carries_program(message: Part) -> bool:
    """A part of the message itself (not of a message attached to it) is a program or an
    archive."""
    stack = list(message.parts) if message.is_multipart else []
    while stack:
        part = stack.pop()
        if part.content_type.startswith("multipart/"):
            stack.extend(part.parts)
            continue
        found = _FILENAME.search(part.get("content-disposition"))
        name = part.params.get("name", "") or (found.group(1) if found else "")
        if part.content_type in PROGRAM_TYPES or PROGRAM_NAME.search(name):
            return True
    return False


@_once_per_message
def machine_sent(message: Part) -> bool:
    """Some sign that a mail system wrote the message.

    The null return path is the surest (a list post never has it, while a report that passed
    through a list keeps it along with the list's headers). Otherwise, not from a list, and a
    mail system's From, X-Failed-Recipients, a top-level multipart/report, or no From at all
    (a report saved without its headers). Never with a program attached: that is a worm.
    """
    if carries_program(message):
        return False
    if null_return_path(message):
        return True
    if from_list(message):
        return False
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


@_once_per_message
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


def null_return_path(message: Part) -> bool:
    """Sent from the null reverse-path, as every delivery report is (RFC 5321 4.5.5)."""
    return message.get("return-path").strip() in NULL_PATHS


def is_reply_or_forward(subject: str) -> bool:
    return bool(REPLY_OR_FORWARD.match(subject))


def passed_on_or_listed(message: Part) -> bool:
    """A person's reply or forward by its subject, or a list's post: never a report itself."""
    return is_reply_or_forward(message.decoded("subject")) or from_list(message)


def auto_submitted(message: Part) -> str:
    """The RFC 3834 Auto-Submitted value ("auto-replied", "auto-generated"...), lower-cased;
    "" for none or "no"."""
    value = message.get("auto-submitted").strip().lower()
    return "" if value == "no" else value
