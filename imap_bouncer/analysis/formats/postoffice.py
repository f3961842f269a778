"""Software.com Post.Office (1996-2001; mail.com, many ISPs) and the servers that kept its
wording (Netscape Mail/Messaging Server 2-3, Openwave InterMail): "Mail System Error -
Returned Mail" notices.

"This Message was undeliverable due to the following reason:" then one fixed paragraph that
states the cause, and either one block per recipient ("Recipient: <a@b>" and "Reason: <the
remote server's words>", when a remote server rejected them) or the recipients alone on
their lines under the paragraph ("The following destination addresses were unknown ...:",
"The following recipients did not receive this message:"), then "Please reply to
Postmaster@... if you feel this message to be in error."
"""

from __future__ import annotations

from ...report import Action, Reason
from .. import lazy_re as re
from ..addresses import ADDRESS_IN_TEXT, normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ._lib import dsnplus
from ._lib.textreport import findings_of, hint_for, plain_notice, unfold

NAME = "postoffice"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

_OPENING = re.compile(r"This Message was undeliverable due to the following reason:", re.I)
_CLOSING = re.compile(r"^\s*Please reply to \S+\s*$", re.I | re.M)
_FIELD = re.compile(r"^[ \t]*(Recipient|Reason):[ \t]*(.*)$", re.I)
_ALONE = re.compile(r"^[ \t]*<?(" + ADDRESS_IN_TEXT.pattern + r")>?[ \t]*$")
# Post.Office's fixed paragraphs, each naming one cause.
_HINTS = (
    (Reason.USERUNKNOWN, re.compile(r"destination addresses were unknown", re.I)),
    (Reason.HOSTUNKNOWN, re.compile(r"destination (?:hosts|domains) (?:were|was) unknown|"
                                    r"host names? (?:was|were) not found", re.I)),
    (Reason.EXPIRED, re.compile(r"not reachable within the allowed queue period|"
                                r"could not be delivered within \d+ days", re.I)),
    (Reason.MAILBOXFULL, re.compile(r"account is temporarily over quota", re.I)),
    (Reason.REJECTED, re.compile(r"return address was refused", re.I)),
)


def analyze(message: Part) -> Findings | None:
    notice = plain_notice(message)
    if "due to the following reason" not in notice[:3000]:
        return None
    opening = _OPENING.search(notice[:3000])
    if opening is None or not dsnplus.sent_by_mail_system(message):
        return None
    closing = _CLOSING.search(notice, opening.end())
    body = notice[opening.end():closing.start() if closing else opening.end() + 20000]
    failures = _blocks(body) or _listed(body)
    return findings_of(NAME, "Post.Office returned mail", failures, message, notice)


def _blocks(body: str) -> list[Failure]:
    """"Recipient:" / "Reason:" pairs: the remote server's words per recipient."""
    failures: list[Failure] = []
    for line in body.split("\n"):
        field = _FIELD.match(line)
        if field is None:
            continue
        name, value = field.group(1).lower(), field.group(2).strip()
        if name == "recipient":
            address = normalize_address(value)
            if address:
                failures.append(Failure(address=address, action=Action.FAILED))
        elif failures and not failures[-1].diagnostic:
            failures[-1].diagnostic = value
    return failures


def _listed(body: str) -> list[Failure]:
    """Recipients alone on their lines; the cause is every other line of the paragraph."""
    addresses: list[str] = []
    words: list[str] = []
    for line in body.split("\n"):
        alone = _ALONE.match(line)
        address = normalize_address(alone.group(1)) if alone else ""
        if address:
            addresses.append(address)
        elif not addresses:
            words.append(line)
    cause = unfold(" ".join(words))
    hint = hint_for(cause, _HINTS)
    return [Failure(address=a, action=Action.FAILED, diagnostic=cause, reason_hint=hint)
            for a in dict.fromkeys(addresses)]
