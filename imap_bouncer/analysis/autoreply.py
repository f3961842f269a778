"""RFC 3834 automatic replies: out-of-office, vacation, ticket and other robots' answers.

Runs after the bounce analyzers (a bounce is automatic too), and claims a message on its
headers (RFC 3834 `Auto-Submitted: auto-replied` from a person's address, the X- headers
that mail programs add) or on its subject's out-of-office phrasing in the common languages.
The recipient reported is the one who replied: the mail did reach them.
"""

from __future__ import annotations

import re

from ..report import Action, Kind, Reason
from .addresses import normalize_address
from .findings import Failure, Findings
from .message import Part
from .origin import from_list

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

# Subjects of automatic replies, in the languages most bounce mailboxes see.
_SUBJECT_WORDS = (
    r"^\s*(?:"
    r"auto(?:matic|matische|matique|matica|mático)?[ -]?(?:reply|response|respons|antwort|"
    # English, German, French, Italian, Spanish, Portuguese, Swedish, Polish, Dutch
    r"réponse|reponse|risposta|respuesta|resposta|svar|odpowiedź|antwoord)"
    # the Romance languages and Dutch put the adjective after the noun
    r"|(?:réponse|reponse|respuesta|risposta|resposta)\s+autom[aá]ti(?:que|ca|co)"
    r"|automatische? antwoord"
    r"|out of (?:the )?office(?: auto-?reply)?"  # Exchange 5.5-2003 "Out of Office AutoReply:"
    r"|away from (?:the )?office|away from (?:my )?(?:e-?)?mail"
    r"|on vacation|on leave|on holiday"
    r"|abwesenheit|abwesend|nicht im büro|außer haus"  # German
    r"|absence|absent|en congé|en vacances|hors du bureau"  # French
    r"|fuera de la oficina|ausente|fuera de oficina"  # Spanish
    r"|fuori (?:sede|ufficio)|assente"  # Italian
    r"|afwezig|niet aanwezig"  # Dutch
    r"|ausência|fora do escritório"  # Portuguese
    r"|frånvaro|ej på kontoret|fravær"  # Swedish, Norwegian
    r"|不在|自動応答|自动回复|自動回覆"  # Japanese, Chinese
    r"|автоответ|отпуск"  # Russian
    r")"
)
# As a prefix ("Out of Office: ...", "Abwesenheitsnotiz: ...") or the whole subject; a subject
# that only starts with the words ("Out of office party on Friday") is a topic, not a reply,
# unless the message answers another one (In-Reply-To, References).
AUTOREPLY_SUBJECTS = re.compile(_SUBJECT_WORDS + r"(?=\w*\s*(?:[:：]|$))"
                                r"|\bis out of the office\.?\s*$",  # Lotus Notes: "<Name> is ..."
                                re.I)
SUBJECT_OF_A_REPLY = re.compile(_SUBJECT_WORDS, re.I)
# A subject that is only these words is also how a person tells colleagues of an absence
# ("Out of office", "On vacation"): alone, it takes a reference to the message answered.
BARE_ABSENCE = re.compile(
    r"^\s*(?:out of (?:the )?office|on vacation|on leave|on holiday|absence|absent|abwesend|"
    r"abwesenheit|ausente|assente|afwezig)\s*[.!]*\s*$", re.I)
# What an automatic reply says to the one who wrote: first person, or about "your message".
# A subject's words without these are a topic ("Out of office: facilities closed Friday").
FIRST_PERSON = re.compile(
    r"\b(?:i am|i'm|i will|i'll|i shall|i won't|i have limited|when i return|until i return|"
    r"your (?:mail|message|e-?mail)|ich bin|ihre (?:e-?mail|nachricht)|je suis|je serai|"
    r"votre (?:message|courriel)|estaré|estoy|su (?:mensaje|correo)|sono|sarò|ik ben|"
    r"uw (?:e-?mail|bericht)|jag är|thank you for your|thanks for your)\b", re.I)
# Bodies that announce an absence: only trusted on a message marked auto-generated.
ABSENCE_PHRASES = re.compile(
    r"out of (?:the )?office|i am (?:currently )?away|i'm (?:currently )?away|on vacation|"
    r"on annual leave|on leave until|will be back|limited access to (?:my )?e-?mail|"
    r"will respond (?:to your (?:message|e-?mail) )?(?:as soon as|when|upon)|"
    r"i am (?:currently )?travel?ling|i'm (?:currently )?travel?ling|"
    r"bin (?:bis|ab) .{0,30} (?:nicht|abwesend)|je suis absent",
    re.I,
)
# Senders that are delivery systems, never people: their messages are bounces or notices.
SYSTEM_SENDERS = re.compile(r"mailer-daemon|postmaster|mail delivery|mail-daemon", re.I)

# Notifications (trackers, forums, newsletters) are auto-generated too, and quote people.
BULK_PRECEDENCE = re.compile(r"^\s*(?:bulk|list)\b", re.I)


def analyze(message: Part) -> Findings | None:
    sender = message.get("from")
    if SYSTEM_SENDERS.search(sender):
        return None
    evidence = ""
    for name, pattern in AUTOREPLY_HEADERS:
        value = message.get(name) if name in message else None
        if value is not None and (pattern is None or pattern.search(value)):
            evidence = f"header {name}: {value[:60]}"
            break
    subject = message.decoded("subject")
    answers = "in-reply-to" in message or "references" in message
    if not evidence and (AUTOREPLY_SUBJECTS.search(subject) or (
            answers and SUBJECT_OF_A_REPLY.search(subject))) and (answers or (
            not BARE_ABSENCE.match(subject) and FIRST_PERSON.search(_plain_body(message)))):
        evidence = f"subject {subject[:60]!r}"
    if not evidence and message.get("auto-submitted").lower().startswith("auto-generated") \
            and not message.is_multipart and ABSENCE_PHRASES.search(message.text[:2000]) \
            and not BULK_PRECEDENCE.match(message.get("precedence")) and not from_list(message):
        evidence = "auto-generated message announcing an absence"
    if not evidence:
        return None
    address = normalize_address(sender or message.get("reply-to"))
    failures = [Failure(address=address, action=Action.DELIVERED, reason_hint=Reason.VACATION)]
    return Findings(kind=Kind.AUTOREPLY, analyzer="autoreply", evidence=evidence,
                    failures=failures if address else [])


def _plain_body(message: Part) -> str:
    """The opening of the message's own text, where an auto-reply speaks to the sender."""
    if not message.is_multipart:
        return message.text[:2000]
    return " ".join(part.text[:2000] for part in message.walk()
                    if part.content_type == "text/plain")
