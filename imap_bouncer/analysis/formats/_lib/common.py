"""Helpers the format modules share: is it a bounce at all, and where are the recipients."""

from __future__ import annotations

from collections.abc import Set

from ... import lazy_re as re
from ...addresses import ADDRESS_IN_TEXT, PUNCTUATION, normalize_address
from ...literals import prefiltered
from ...message import Part
from ...origin import (
    carries_program,
    from_list,
    from_mail_system,
    is_reply_or_forward,
    machine_sent,
    null_return_path,
    once_per_message,
    relayed_report,
)

# Subjects of delivery reports, in the common languages.
BOUNCE_SUBJECTS = re.compile(
    r"undeliver|undelivered|not (?:be )?delivered|delivery (?:status notification|failure|"
    r"failed|problem|report|notification)|failure notice|returned mail|mail delivery failed|"
    r"delivery has failed|could not be delivered|returned to sender|non-?delivery|"
    r"nondeliverable|mail system error|delivery error|warning: could not send|"
    r"delayed mail|delivery delayed|message delayed|unzustellbar|nicht zustellbar|"
    r"non remis|non recapitabile|no entregado|onbestelbaar|配信|不達|送信失敗|未送达|"
    r"notification d'état de la remise|delivery incomplete|permanent error|"
    r"message you sent|failed delivery|bounce|rejected|error sending|"
    r"virus (?:alert|found|detected|warning)|viruses detected|detected a virus|"  # scanners
    r"\bnot sent\b|could not be sent|not deliverable",  # fax/SMS gateways, cc:Mail
    re.I,
)
DELAY_WORDS = re.compile(
    r"\bdelay(?:ed)?\b(?!=)|will (?:continue|keep) (?:to )?(?:try|trying|attempting)|"
    r"will be retried|not yet been delivered|has not been delivered yet|still trying|"
    r"warning: message .{0,40} still undelivered|temporarily deferred|"
    r"non (?:è|e'|e) ancora stato (?:recapitato|consegnato)|continuer(?:à|a') a tentare|"  # it
    r"noch nicht zugestellt|pas encore (?:été|ete) (?:remis|délivré|delivre)|"  # de, fr
    r"(?:todavía|aún) no (?:ha sido|se ha) entregado|ainda não foi entregue",  # es, pt
    re.I,
)
DELAY_WORDS = prefiltered(DELAY_WORDS)  # searched only in texts holding its words
# Local parts that belong to mail systems, never to a recipient that failed.
SYSTEM_LOCALS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "root", "abuse",
                           "noreply", "no-reply", "daemon", "bounce", "bounces"})


@once_per_message
def looks_like_bounce(message: Part) -> bool:
    """A cheap look at the headers: sent by a mail system, about a failed delivery.

    A bounce-like subject alone is not enough when it is a person's reply or forward. List
    mail is a list's post unless it is a mail system's report the list passed on unchanged.
    """
    if carries_program(message):
        return False
    if from_list(message) and not null_return_path(message) and not relayed_report(message):
        return False
    if "x-failed-recipients" in message:
        return True
    if from_mail_system(message):
        return True
    subject = message.decoded("subject")
    # A subject alone is not enough either: parcels, invoices and tickets are "not delivered"
    # too. It takes a sign of a mail system as well.
    return bool(BOUNCE_SUBJECTS.search(subject)) and not is_reply_or_forward(subject) \
        and machine_sent(message)


def own_addresses(message: Part) -> set[str]:
    """Addresses of the bounce itself (its sender and recipient): never failed recipients."""
    found = set()
    for name in ("from", "to", "delivered-to", "x-original-to", "return-path", "reply-to",
                 "sender", "envelope-to"):
        for value in message.get_all(name):
            for match in ADDRESS_IN_TEXT.finditer(value):
                address = normalize_address(match.group(0))
                if address:
                    found.add(address)
    return found


def is_system_address(address: str) -> bool:
    return address.partition("@")[0] in SYSTEM_LOCALS


# A line that opens a recipient's block: the address first, maybe in <>, maybe followed by
# a colon or the server's words (qmail "<a@b>:", Postfix "<a@b>: host ... said", Exim
# "  a@b", Sendmail "<a@b>... User unknown").
_BLOCK_START = re.compile(
    r"^\s*(?:(?:RCPT To|To|Recipient(?:\(s\))?(?: address)?|Original-Recipient|Failed recipient|"
    r"Address|Empfänger|Destinataire|Destinatario|Destinatário|Ontvanger|Odbiorca|Получатель|"
    r"宛先|送信先|受信者|收件人|收信人|收件者|收件地址|수신자)"  # zh-Hant 收件者, ko 수신자
    r"\s*[:：]\s*)?"  # the label in the common languages
    r"(?:\"[^\"]*\"\s*)?[<\[']?(?:mailto:|smtp:)?"
    rf"([^\s<>@\"{PUNCTUATION}]+@[^\s<>\"(),;:\]'{PUNCTUATION}]*[^\s<>\"(),;:.\]'{PUNCTUATION}])"
    r"[>\]']?(?:[\s:;,.(]|\.\.\.|$)",
    re.I,
)


def recipient_blocks(text: str, exclude: Set[str] = frozenset()) -> list[tuple[str, str]]:
    """(address, the text about it) for each address that opens a block of lines.

    A block runs from a line that starts with an address to the next blank line or the next
    such line. Addresses in `exclude` and mail-system addresses are skipped.
    """
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in text.split("\n"):
        match = _BLOCK_START.match(line)
        address = normalize_address(match.group(1)) if match else ""
        if match and address and address not in exclude and not is_system_address(address):
            current = [line[match.end(1):].lstrip(">:;. \t")]
            blocks.append((address, current))
            continue
        if current is None:
            continue
        if not line.strip():
            if any(piece.strip() for piece in current):
                current = None
            continue
        current.append(line.strip())
    merged: dict[str, str] = {}
    for address, lines in blocks:
        text_of = " ".join(piece for piece in lines if piece).strip()
        merged[address] = (merged.get(address, "") + " " + text_of).strip()
    return list(merged.items())

