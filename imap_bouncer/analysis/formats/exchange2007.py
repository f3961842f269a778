"""Microsoft Exchange 2007 and later, Exchange Online (Office 365) and Outlook.com.

These write a non-delivery report (NDR) with an RFC 3464 status part and a human-readable
part (text and HTML) that ends with a section "Diagnostic information for administrators":
per recipient, the address on a line of its own, then the reply that ended delivery:

    kijitora@example.com
    Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found'
    3/09/2016 8:05:56 PM - Remote Server at mx.example.org (192.0.2.3) returned '550 4.4.7 ...'
    #550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##           (Exchange's own verdict)
    #< #5.1.1 smtp;550 5.1.1 User unknown> #SMTP#                  (Exchange 2007 relaying)

The status part often lacks the remote words, and copies come without a status part at all
(truncated, forwarded), so the section is read in every case: it completes the status part
or replaces it. The section's headings are localised; the replies in quotes are not.
"""

from __future__ import annotations

from ...report import Action
from .. import lazy_re as re
from ..addresses import ADDRESS_IN_TEXT, normalize_address
from ..findings import Failure, Findings
from ..literals import prefiltered
from ..message import Part
from ..reasons import find_status
from ..text import notice_text
from ._lib import dsnplus
from ._lib.common import DELAY_WORDS, looks_like_bounce, own_addresses
from ._lib.smtp_reply import CODES

NAME = "exchange2007"

# Exchange 2010 and later mark every NDR with this header (empty value).
NDR_HEADER = "x-ms-exchange-message-is-ndr"

# Headings of the administrators' section, in the languages Exchange ships.
ADMIN_SECTION = re.compile(
    r"^[ \t]*(?:Diagnostic information for administrators"  # en
    r"|Diagnoseinformationen für Administratoren"  # de
    r"|Informations de diagnostic pour les administrateurs"  # fr
    r"|Información de diagnóstico para administradores"  # es
    r"|Informazioni di diagnostica per gli amministratori"  # it
    r"|Informações de diagnóstico para administradores"  # pt
    r"|Diagnostische gegevens voor beheerders"  # nl
    r"|管理者向けの診断情報"  # ja
    r")[ \t]*[:：]?[ \t]*$",
    re.I | re.M,
)
# The inline copy of the original message's headers that ends the section.
ORIGINAL_HEADERS = re.compile(
    r"^[ \t]*(?:Original message headers|Ursprüngliche Nachrichtenkopfzeilen"
    r"|En-têtes de message d'origine|Encabezados del mensaje original"
    r"|Intestazioni originali del messaggio|Cabeçalhos da mensagem original"
    r"|Oorspronkelijke berichtkoppen|元のメッセージ ヘッダー)[ \t]*[:：]?[ \t]*$",
    re.I | re.M,
)
# "Receiving server: mx.example.org (192.0.2.3)": the remote host, for all recipients.
RECEIVING_SERVER = re.compile(
    r"^[ \t]*(?:Receiving server|Empfangender Server|Serveur de réception"
    r"|Servidor de recepción|Server di ricezione|受信サーバー)[ \t]*[:：][ \t]*([^\s(]+)",
    re.I | re.M,
)
# Headings of the list of recipients in the friendly part, and what they mean.
FAILED_HEADING = re.compile(
    r"Delivery has failed to these recipients or (?:groups|distribution lists)"
    r"|Your message (?:to .{1,200}? )?(?:couldn't|could not|can't|cannot) be delivered"
    r"|Your message wasn't delivered"
    r"|Die Zustellung an folgende Empfänger oder Gruppen ist fehlgeschlagen"
    r"|La remise aux destinataires ou groupes suivants a échoué"
    r"|Error en la entrega a estos destinatarios o grupos"
    r"|Recapito non riuscito a questi destinatari o gruppi"
    r"|Falha na entrega para estes destinatários ou grupos"
    r"|Bezorging is mislukt voor deze ontvangers of groepen"
    r"|次の受信者またはグループへの配信に失敗しました",
    re.I,
)
FAILED_HEADING = prefiltered(FAILED_HEADING)  # searched only in texts holding its words
DELAYED_HEADING = re.compile(
    r"Delivery is delayed to these recipients or (?:groups|distribution lists)"
    r"|Die Zustellung an folgende Empfänger oder Gruppen ist verzögert"
    r"|La remise aux destinataires ou groupes suivants est retardée"
    r"|次の受信者またはグループへの配信が遅延しています",
    re.I,
)
DELAYED_HEADING = prefiltered(DELAYED_HEADING)  # searched only in texts holding its words
# Words of the section heading, one per language family, to skip the regex on other mail.
ADMIN_WORDS = ("inistrat", "beheerders", "管理者")
# A reply quoted in single quotes: "returned '550 5.1.1 ...'", "hat '550 ...' zurückgegeben".
QUOTED_REPLY = re.compile(
    r"'(\s*(?:<[^'<>#]*)?#?\s*(?:[245]\d\d(?:[ -]|$)|[245]\.\d{1,3}\.\d{1,3}\b).*)'")
# "Remote Server at mx.example.org (192.0.2.3) returned ...": the host that replied.
REMOTE_AT = re.compile(r"\bat ([A-Za-z0-9][\w.-]*\.[A-Za-z0-9-]+) \(")
# Exchange's own verdict: "#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##".
OWN_VERDICT = re.compile(r"^\s*#\s*(<.*|(?:[245]\d\d|[245]\.\d).*?)\s*#*\s*$")
# The older relay form inside either: "< #5.0.0 smtp;550 5.1.1 User unknown> #SMTP#".
RELAY_FORM = re.compile(
    r"^\s*#?\s*<?\s*(?:[^\s#<>]+\s+)?#(?P<status>[245]\.\d{1,3}\.\d{1,3})\s+"
    r"(?:smtp|x-[\w-]+)\s*;\s*(?P<reply>.*?)\s*>?\s*(?:#SMTP#?)?\s*$",
    re.I,
)
# A line holding only an address, as the section lists recipients ("a@b", "a@b<mailto:a@b>").
ADDRESS_LINE = re.compile(r"^\s*<?(?:mailto:)?([^\s<>@'\"]+@[^\s<>'\"]+?)>?(?:<mailto:[^>]*>)?\s*$")


def analyze(message: Part) -> Findings | None:
    marked = NDR_HEADER in message
    if not marked and not (looks_like_bounce(message)
                           and dsnplus.sent_by_mail_system(message, "microsoftexchange")):
        return None
    notice = notice_text(message)
    has_words = any(word in notice for word in ADMIN_WORDS)
    admin = ADMIN_SECTION.search(notice) if has_words else None
    if not marked and admin is None and not (
            "microsoftexchange" in message.get("from").lower() and _template_with_reply(notice)):
        return None
    delayed_subject = bool(DELAY_WORDS.search(message.decoded("subject")))
    facts, original = read_notice(notice, admin, own_addresses(message), delayed_subject)
    findings = dsnplus.standard_report(message, NAME, "Exchange NDR")
    if findings is not None:
        if not findings.original_headers:
            findings.original_headers = original
        return dsnplus.complete(findings, facts)
    evidence = "Exchange NDR without a status part: administrators' section"
    return dsnplus.from_text(NAME, evidence, facts, notice, original)


def read_notice(notice: str, admin: re.Match[str] | None, exclude: set[str],
                delayed_subject: bool = False,
                ) -> tuple[list[Failure], list[tuple[str, str]] | None]:
    """Per-recipient facts from the notice, and the inline copy of the original's headers."""
    action = Action.FAILED
    head = notice[:admin.start()] if admin else notice
    failed_heading = FAILED_HEADING.search(head)
    if not failed_heading and (delayed_subject or DELAYED_HEADING.search(head)):
        action = Action.DELAYED
    original = dsnplus.headers_after(notice, ORIGINAL_HEADERS)
    end = ORIGINAL_HEADERS.search(notice, admin.end()) if admin else None
    facts: list[Failure] = []
    if admin is not None:
        section = notice[admin.end():end.start() if end else len(notice)]
        facts = _admin_section(section, action)
    if not facts:
        facts = _friendly_list(head, action, exclude)
        reply = best_reply_line(head)
        if reply and len(facts) == 1 and not dsnplus.reply_code(facts[0].diagnostic):
            # Microsoft 365's current template has no administrators' section: the remote
            # reply is a table row ("Error: 550 5.1.10 ...") far below the headline.
            facts[0].diagnostic, facts[0].status = reply, find_status(reply)
    elif not (FAILED_HEADING.search(head) or DELAYED_HEADING.search(head)):
        # A heading in a language not listed: only replies that refused count as failures
        # (a relay or delivery notice must not become a bounce).
        facts = [f for f in facts
                 if (f.status or dsnplus.reply_code(f.diagnostic))[:1] in ("4", "5")]
    return facts, original


# A line that holds an SMTP reply with an enhanced status, maybe after a short label in any
# language ("Error:", "Status code:", "Fehler:"): the reply is group 1.
_REPLY_LINE = re.compile(r"^[ \t]*(?:[^\s:：]{1,30}(?:[ \t][^\s:：]{1,30}){0,2}[ \t]*[:：][ \t]*)?"
                         r"((?:[245]\d\d[ -])?[245]\.\d{1,3}\.\d{1,3}\b.*?)[ \t]*$", re.M)


def best_reply_line(text: str) -> str:
    """The reply line of a notice that says the most (codes alone say least)."""
    replies = [m.group(1) for m in _REPLY_LINE.finditer(text)]
    if not replies:
        return ""
    return max(replies, key=lambda r: sum(c.isalpha() for c in CODES.sub("", r)))


def _template_with_reply(notice: str) -> bool:
    """Microsoft 365's current NDR, without its marking header (a gateway passed it on): the
    headline naming the recipient and a reply line in the body."""
    head = notice[:6000]
    return bool((FAILED_HEADING.search(head) or DELAYED_HEADING.search(head))
                and best_reply_line(head))


def _admin_section(section: str, action: Action) -> list[Failure]:
    receiving = RECEIVING_SERVER.search(section)
    remote_default = receiving.group(1) if receiving else ""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in section.split("\n"):
        match = ADDRESS_LINE.match(line)
        address = normalize_address(match.group(1)) if match else ""
        if address:
            current = entries.setdefault(address, [])
            continue
        if current is not None and line.strip():
            current.append(line.strip())
    failures = []
    for address, lines in entries.items():
        diagnostic, status, remote = _verdict(lines)
        failures.append(Failure(address=address, action=action, status=status,
                                diagnostic=diagnostic, remote_mta=remote or remote_default))
    return failures


def _verdict(lines: list[str]) -> tuple[str, str, str]:
    """(diagnostic, status, remote host) from a recipient's lines; the first reply is the last
    attempt, so it wins."""
    for line in lines:
        quoted = QUOTED_REPLY.search(line)
        own = OWN_VERDICT.match(line) if quoted is None else None
        said = quoted or own
        if said is None:
            continue
        reply = said.group(1).strip()
        status = ""
        relay = RELAY_FORM.match(reply)
        if relay:
            reply = relay.group("reply")
            status = find_status(reply) or relay.group("status")
        remote = REMOTE_AT.search(line[:quoted.start()]) if quoted else None
        return reply, status or find_status(reply), remote.group(1) if remote else ""
    return " ".join(lines), "", ""


def _friendly_list(head: str, action: Action, exclude: set[str]) -> list[Failure]:
    """No administrators' section: the recipients listed under the friendly heading, each
    followed by Exchange's sentence about it."""
    heading = FAILED_HEADING.search(head) or DELAYED_HEADING.search(head)
    if heading is None:
        return []
    failures: list[Failure] = []
    named = ADDRESS_IN_TEXT.search(heading.group(0))  # "Your message to a@b couldn't be ..."
    if named and normalize_address(named.group(0)):
        failures.append(Failure(address=normalize_address(named.group(0)), action=action,
                                diagnostic=head[heading.end():].strip().split("\n")[0]))
    lines = head[heading.end():].split("\n")
    for index, line in enumerate(lines):
        found = ADDRESS_IN_TEXT.search(line)
        if not found or found.start() > 2:
            continue
        address = normalize_address(found.group(0))
        if not address or address in exclude or any(f.address == address for f in failures):
            continue
        words = ""
        for following in lines[index + 1:index + 4]:
            if following.strip():
                words = following.strip()
                break
        failures.append(Failure(address=address, action=action, diagnostic=words))
    return failures
