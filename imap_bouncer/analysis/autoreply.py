"""RFC 3834 automatic replies: out-of-office, vacation, ticket and other robots' answers.

Runs after the bounce analyzers (a bounce is automatic too), and claims a message on its
headers (RFC 3834 `Auto-Submitted: auto-replied` from a person's address, the X- headers
that mail programs add), on its subject (a mail program's auto-reply prefix in the common
languages, or out-of-office words with a sign that the message answers one), or on its
words when the message is marked automatic: an absence or a departure stated by the
mailbox's owner, a receipt of "your message" (helpdesks, CRMs, role accounts), a
challenge-response system's request to confirm the sender.
The recipient reported is the one who replied: the mail did reach them.
"""

from __future__ import annotations

import re

from ..report import Action, Kind, Reason
from .addresses import normalize_address
from .findings import Failure, Findings
from .message import Part
from .origin import (
    MAILER_SENDERS,
    auto_submitted,
    from_list,
    from_mail_system,
    null_return_path,
)
from .text import html_to_text, text_parts

# Headers that mark an automatic reply, with the value that does (None: any value).
AUTOREPLY_HEADERS: list[tuple[str, re.Pattern | None]] = [
    ("auto-submitted", re.compile(r"^\s*auto-replied", re.I)),  # RFC 3834
    ("x-autoreply", None),  # many webmail vacation programs
    ("x-autorespond", None),  # cPanel, various
    ("x-autoresponder", None),  # various
    # (not X-MS-Exchange-Inbox-Rules-Loop: Exchange inbox rules also forward and redirect)
    ("x-vacation", None),  # vacation(1)
    ("x-mailer", re.compile(r"vacation|autorespond|auto-?reply", re.I)),
    ("precedence", re.compile(r"^\s*auto[_-]?reply", re.I)),  # old vacation programs
    ("x-precedence", re.compile(r"^\s*auto[_-]?reply", re.I)),
]

# What mail programs put before the subject they answer, in the languages of their users
# (Outlook/Exchange "Automatic reply:" and its translations, Outlook 2003 "Abwesenheitsnotiz:",
# Exchange 5.5 "Out of Office AutoReply:", RT "AutoReply:", Yahoo "Auto Response").
# A person rarely writes these.
_PREFIX_WORDS = (
    r"auto(?:matic|matische|matique|matica|mático)?[ -]?(?:reply|response|respons|antwort|"
    r"réponse|reponse|risposta|respuesta|resposta|svar|odpowiedź|antwoord)"
    # the Romance languages and Dutch put the adjective after the noun
    r"|(?:réponse|reponse|respuesta|risposta|resposta|răspuns)\s+autom(?:[aá]ti(?:que|ca|co)|àtica|at)"
    r"|automatische? antwoord"
    r"|automatiske? svar|automatiskt svar"  # Norwegian, Danish, Swedish
    r"|automaattinen vastaus|automaatne vastus"  # Finnish, Estonian
    r"|automatyczna odpowied[źz]"  # Polish
    r"|automatick[áa] odpov[ěe]ď|automatick[áa] odpoved"  # Czech, Slovak
    r"|automatikus válasz|automatikus valasz"  # Hungarian
    r"|automatski odgovor|samodejni odgovor"  # Croatian, Serbian, Slovenian
    r"|autom[aā]tisk[aā] atbilde|automatinis atsakymas"  # Latvian, Lithuanian
    r"|otomatik (?:yan[ıi]t|cevap)"  # Turkish
    r"|αυτόματη απάντηση"  # Greek
    r"|автоматический ответ|автоответ|автоматична відповідь|автоматичен отговор"  # ru, uk, bg
    r"|תשובה אוטומטית|رد تلقائي|trả lời tự động|balasan otomatis|ตอบกลับอัตโนมัติ"
    r"|자동\s*(?:응답|회신)"  # Korean
    r"|自動応答|自動返信|自动回复|自動回覆|自動回復"  # Japanese, Chinese
    r"|abwesenheitsnotiz"  # Outlook 2003, German
    r"|out of (?:the )?office auto-?reply"  # Exchange 5.5-2003
)
# Words of an absence: a mail program's prefix in some languages, but also what a person
# writes to colleagues ("Abwesenheit: Urlaub 12.-16.8.", "Out of office: Anna (annual leave)").
_ABSENCE_WORDS = (
    r"out of (?:the )?office"
    r"|away from (?:the )?office|away from (?:my )?(?:e-?)?mail"
    r"|on vacation|on leave|on holiday"
    r"|abwesenheit|abwesend|nicht im büro|außer haus"  # German
    r"|absence|absent|en congé|en vacances|hors du bureau"  # French
    r"|fuera de la oficina|ausente|fuera de oficina"  # Spanish
    r"|fuori (?:sede|ufficio)|assente"  # Italian
    r"|afwezig|niet aanwezig"  # Dutch
    r"|ausência|fora do escritório"  # Portuguese
    r"|frånvaro|ej på kontoret|fravær"  # Swedish, Norwegian
    r"|不在"  # Japanese, Chinese
    r"|отпуск"  # Russian
)
# Tags a helpdesk or a list puts first ("[example.org #12345] AutoReply: ...").
_TAGS = r"^\s*(?:\[[^\]]{0,80}\]\s*)*"
# As a prefix ("Out of Office: ...", "Abwesenheitsnotiz: ...") or the whole subject; a subject
# that only starts with the words ("Out of office party on Friday") is a topic, not a reply,
# unless the message answers another one (In-Reply-To, References).
_AS_PREFIX = r")(?=\w*\s*(?:[:：]|$))"
PREFIX_SUBJECTS = re.compile(
    _TAGS + r"(?:" + _PREFIX_WORDS + _AS_PREFIX
    # Lotus Notes: "<Name> is out of the office." and its translations
    + r"|\b(?:is out of the office|ist außer haus|ist nicht im büro|est absente? du bureau)\.?\s*$",
    re.I)
ABSENCE_SUBJECTS = re.compile(_TAGS + r"(?:" + _ABSENCE_WORDS + _AS_PREFIX, re.I)
AUTOREPLY_SUBJECTS = re.compile(PREFIX_SUBJECTS.pattern + "|" + ABSENCE_SUBJECTS.pattern, re.I)
SUBJECT_OF_A_REPLY = re.compile(r"^\s*(?:" + _PREFIX_WORDS + "|" + _ABSENCE_WORDS + ")", re.I)
# A subject that is only these words is also how a person tells colleagues of an absence
# ("Out of office", "On vacation"): alone, it takes a reference to the message answered.
BARE_ABSENCE = re.compile(
    r"^\s*(?:out of (?:the )?office|on vacation|on leave|on holiday|absence|absent|abwesend|"
    r"abwesenheit|ausente|assente|afwezig)\s*[.!]*\s*$", re.I)
# What an automatic reply says to the one who wrote: first person, or about "your message".
# A subject's words without these are a topic ("Out of office: facilities closed Friday").
REPLY_PHRASES = (
    r"your (?:mail|message|e-?mail)|thank(?:s| you) for your (?:mail|message|e-?mail|note|"
    r"enquiry|inquiry)|ihre (?:e-?mail|nachricht)|votre (?:message|courriel)|su (?:mensaje|correo)|"
    r"uw (?:e-?mail|bericht)|(?:il )?suo messaggio|sua mensagem|seu e-?mail"
)
TO_THE_SENDER = re.compile(r"\b(?:" + REPLY_PHRASES + r")\b", re.I)
FIRST_PERSON = re.compile(
    r"\b(?:i am|i'm|i will|i'll|i shall|i won't|i have limited|when i return|until i return|"
    r"ich bin|je suis|je serai|estaré|estoy|sono|sarò|ik ben|jag är|jeg er|estou|estarei|jestem|"
    r"będę|" + REPLY_PHRASES + r")\b", re.I)
# Bodies that announce an absence in the first person, or that the address is gone: trusted
# on a message marked automatic (Auto-Submitted, X-Auto-Response-Suppress, Precedence: junk).
ABSENCE_PHRASES = re.compile(
    r"\b(?:i am|i'm|i will be|i'll be|i shall be)\s+(?:currently\s+|now\s+)?"
    r"(?:out of (?:the )?office|away|on (?:vacation|holiday|leave|annual leave|parental leave|"
    r"maternity leave|sick leave|a business trip)|travel?ling|at a conference|off work|"
    r"not in the office)|"
    r"limited access to (?:my )?e-?mail|"
    r"will respond (?:to your (?:message|e-?mail) )?(?:as soon as|when|upon)|"
    r"(?:when|until|once) i(?:'m| am) back|(?:when|until) i return|upon my return|on my return|"
    r"ich bin (?:bis|ab|vom|seit) .{0,40}(?:nicht|abwesend|urlaub)|ich werde .{0,40}nicht im büro|"
    r"je suis absente?|je serai absente?|"
    r"(?:estaré|estoy|me encuentro) (?:ausente|fuera|de vacaciones)|"
    r"(?:sono|sarò) (?:fuori|assente|in ferie)|ik ben (?:afwezig|met vakantie)|"
    r"(?:estou|estarei) (?:de férias|ausente|fora)",
    re.I,
)
# An address that is gone or moved, in the words of its owner's auto-responder.
DEPARTURE_PHRASES = re.compile(
    r"(?:mailbox|address|account|inbox) (?:is|will be) no longer (?:monitored|in use|active|"
    r"checked|read|used)|is no longer (?:monitored|in use)|"
    r"(?:my|our|the) (?:e-?mail )?address has changed|my new (?:e-?mail )?address is|"
    r"adresse hat sich geändert|wird nicht mehr (?:genutzt|gelesen|abgerufen)|"
    r"n'est plus (?:utilisée|consultée|active)|ya no (?:se utiliza|se revisa|está activa)",
    re.I,
)
# A receipt of the sender's message (helpdesks, CRMs, role accounts)...
RECEIPT_PHRASES = re.compile(
    r"\b(?:we|i)(?: have|'ve)? (?:(?:successfully|just|now) )?received your "
    r"(?:message|e-?mail|mail|request|enquiry|inquiry|query|report|letter|submission|ticket)|"
    r"\byour (?:message|e-?mail|mail|request|enquiry|inquiry|report)\b[^.\n]{0,80}? "
    r"(?:has been|was|is being) (?:received|filed|logged)|"
    r"acknowledge (?:that we have received|(?:the )?receipt of) your|"
    r"nous avons (?:bien )?reçu votre|wir haben ihre (?:nachricht|anfrage|e-?mail) erhalten|"
    r"hemos recibido su|abbiamo ricevuto (?:il suo|la sua)|we hebben uw (?:bericht|e-?mail|vraag) "
    r"ontvangen|recebemos (?:a )?sua",
    re.I,
)
# ...counts with the message's word that a program wrote it, or a ticket it opened.
AUTOMATED_PHRASES = re.compile(
    r"\b(?:this is an?|an?|this) (?:automated|automatic|automatically generated|auto-?generated) "
    r"(?:response|reply|acknowledge?ment|confirmation|answer)|automatically generated in response|"
    r"\b(?:ticket|case|request|incident)(?: (?:number|no\.?|id))?(?: is)?\s*[:#(]?\s*"
    r"(?:[A-Z]+-)?\d{3,}|\bticket has been (?:created|opened|logged)",
    re.I,
)
# Role accounts (RFC 2142 and the usual business ones): what they send in answer to a
# message, saying they received it, is an acknowledgement whoever pressed the button.
ROLE_SENDER = re.compile(
    r"^(?:support|help|helpdesk|service|customerservice|customer-service|care|info|contact|"
    r"hello|sales|enquiries|inquiries|office|billing|accounts|kundenservice|kontakt|vertrieb)@",
    re.I)
RECEIPT_OF_MAIL = re.compile(
    r"\b(?:we|i)(?: have|'ve)? (?:(?:successfully|just|now) )?received your "
    r"(?:message|e-?mail|mail|enquiry|inquiry|letter)\b", re.I)
# Challenge-response anti-spam (TMDA, Boxbe, SpamArrest, ChoiceMail and the like): the
# owner's list of senders, or the sender's held message to release. Only with words to the
# sender about their message (TO_THE_SENDER).
CHALLENGE_PHRASES = re.compile(
    r"\bapproved senders\b|\b(?:add yourself to|not on) (?:my|her|his|their) guest list|"
    r"\bto release your message|\byour message\b.{0,80}\b(?:is being held|is waiting|"
    r"has been held|is held)\b.{0,120}\b(?:confirm|verify|verification)",
    re.I,
)
# A reply that quotes the message it answers: written by a person.
QUOTED_ORIGINAL = re.compile(
    r"^>|^-+ ?original message ?-+|^\s*(?:on|am|le|el|il|op) .{0,80}(?:wrote|schrieb|a écrit|"
    r"escribió|ha scritto|schreef):\s*$|^from: .+\n(?:sent|date): ", re.I | re.M)
# Notifications (trackers, forums, newsletters) are auto-generated too, and quote people.
BULK_PRECEDENCE = re.compile(r"^\s*(?:bulk|list)\b", re.I)
CALENDAR_TYPES = ("text/calendar", "application/ics")


def analyze(message: Part) -> Findings | None:
    sender = message.get("from")
    if MAILER_SENDERS.search(sender):
        return None  # delivery systems' messages are reports or notices, never auto-replies
    evidence = _header_evidence(message) or _subject_evidence(message) \
        or _body_evidence(message)
    if not evidence:
        return None
    address = normalize_address(sender or message.get("reply-to"))
    failures = [Failure(address=address, action=Action.DELIVERED, reason_hint=Reason.VACATION)]
    return Findings(kind=Kind.AUTOREPLY, analyzer="autoreply", evidence=evidence,
                    failures=failures if address else [])


def _header_evidence(message: Part) -> str:
    for name, pattern in AUTOREPLY_HEADERS:
        value = message.get(name) if name in message else None
        if value is not None and (pattern is None or pattern.search(value)):
            return f"header {name}: {value[:60]}"
    return ""


def _subject_evidence(message: Part) -> str:
    """A mail program's prefix, or absence words with a sign the message answers one.

    Never a list's or a bulk sender's message (a newsletter titled "Out of Office: ..."), nor
    an invitation (a calendar entry "Out of office: Anna")."""
    subject = message.decoded("subject")
    if not AUTOREPLY_SUBJECTS.search(subject) and not SUBJECT_OF_A_REPLY.search(subject):
        return ""
    if from_list(message) or _has_calendar(message):
        return ""
    answers = "in-reply-to" in message or "references" in message
    body = _plain_body(message)
    marked = _marked_automatic(message)
    if PREFIX_SUBJECTS.search(subject):
        if answers or marked or FIRST_PERSON.search(body):
            return f"subject {subject[:60]!r}"
    elif ABSENCE_SUBJECTS.search(subject):
        # What a person also writes: it takes the answered message, words to its sender,
        # or a program's mark with the owner's first person.
        if answers or (not BARE_ABSENCE.match(subject) and (
                TO_THE_SENDER.search(body) or (marked and FIRST_PERSON.search(body)))):
            return f"subject {subject[:60]!r}"
    elif answers:  # the words start the subject of a message that answers another
        return f"subject {subject[:60]!r}"
    return ""


def _body_evidence(message: Part) -> str:
    """The words of an automatic reply, on a message no mail system or list sent."""
    if from_list(message) or from_mail_system(message) or _has_calendar(message) \
            or message.content_type == "multipart/report" or "x-failed-recipients" in message:
        return ""
    text = _plain_body(message)[:2000]
    if QUOTED_ORIGINAL.search(text[:600]):
        return ""  # a person's reply, quoting
    body = " ".join(text.split())  # phrases broken across lines
    if CHALLENGE_PHRASES.search(body) and TO_THE_SENDER.search(body):
        return "a challenge-response system asks the sender to confirm"
    if RECEIPT_PHRASES.search(body) and AUTOMATED_PHRASES.search(body):
        return "an automatic acknowledgement of the sender's message"
    if RECEIPT_OF_MAIL.search(body) and ROLE_SENDER.match(
            normalize_address(message.get("from") or message.get("reply-to"))):
        return "a role account acknowledges the sender's message"
    # An absence in the owner's first person, or the address gone (in the opening: notices
    # end with "this mailbox is no longer monitored" too), on a message marked automatic.
    if (ABSENCE_PHRASES.search(body) or DEPARTURE_PHRASES.search(body[:200])) \
            and _marked_automatic(message, bulk=False) \
            and not BULK_PRECEDENCE.match(message.get("precedence")):
        return "automatic message announcing an absence or a new address"
    return ""


def _marked_automatic(message: Part, bulk: bool = True) -> bool:
    """Headers that say a program sent this message (RFC 3834 section 2, Exchange)."""
    if auto_submitted(message):
        return True
    if "x-auto-response-suppress" in message:
        return True
    precedence = message.get("precedence").strip().lower()
    if precedence.startswith(("junk", "auto")) or (bulk and precedence.startswith("bulk")):
        return True
    return null_return_path(message)


def _has_calendar(message: Part) -> bool:
    return any(part.content_type in CALENDAR_TYPES for part in message.walk())


def _plain_body(message: Part) -> str:
    """The opening of the message's own text (not of messages it attaches), where an
    auto-reply speaks to the sender; an HTML-only reply's text without its tags. Read once:
    the subject and the body rules both need it."""
    if "autoreply.body" not in message.derived:
        message.derived["autoreply.body"] = _read_body(message)
    return message.derived["autoreply.body"]  # type: ignore[return-value]


def _read_body(message: Part) -> str:
    texts = []
    for part in text_parts(message):
        text = part.text[:4000]
        texts.append(html_to_text(text) if part.content_type == "text/html" else text)
    return " ".join(texts)[:4000] if message.is_multipart else (
        texts[0][:2000] if texts else "")
