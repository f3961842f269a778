"""Why no analyzer of the chain claimed a message: a short note per chain entry, for people.

Each note is built from the answers the analyzers themselves start from (their guards:
`arf.feedback_part`, `dsn.status_part`, `common.looks_like_bounce`) and from `origin`'s
answers about who wrote the message; nothing here decides anything the chain does not.
"""

from __future__ import annotations

from collections.abc import Callable

from . import arf, dsn
from .formats._lib.common import looks_like_bounce
from .message import Part
from .origin import (
    MAILER_SENDERS,
    carries_program,
    from_list,
    from_mail_system,
    machine_sent,
    null_return_path,
    passed_on_by_person,
)

PERSON = "a person's reply or forward (a report inside is theirs, not this message's)"


def _sender(message: Part) -> str:
    """Who the headers say sent it, in a few words."""
    if "from" not in message:
        who = "no From"
    elif from_mail_system(message):
        who = "From is a mail system"
    else:
        who = "From is a person"
    if "return-path" not in message:
        path = "no return path"
    else:
        path = "return path null" if null_return_path(message) else "return path not null"
    return f"{who}, {path}"


def _arf(message: Part) -> str:
    if passed_on_by_person(message):
        return PERSON
    if arf.feedback_part(message) is None:
        return "no message/feedback-report part, no feedback loop's marks"
    return "a message/feedback-report part it could not read"


def _formats(message: Part) -> str:
    if carries_program(message):
        return "a program or archive attached: a worm's fake bounce, no MTA's"
    if machine_sent(message):
        return "no known MTA's marks"
    return "no known MTA's marks (those known only by their words: not tried, no mail " \
           "system sent it)"


def _dsn(message: Part) -> str:
    if dsn.status_part(message) is None:
        return PERSON if passed_on_by_person(message) else "no message/delivery-status part"
    return "a message/delivery-status part naming no recipient it could read"


def _plaintext(message: Part) -> str:
    if looks_like_bounce(message):
        return "a mail system's notice, but no failed recipient in its words"
    if carries_program(message):
        return "a program or archive attached: never a mail system's notice"
    if from_list(message) and not null_return_path(message):
        return "a mailing list's message"
    return f"not from a mail system ({_sender(message)})"


def _autoreply(message: Part) -> str:
    if MAILER_SENDERS.search(message.get("from")):
        return "from a mail system: its messages are reports, never auto-replies"
    return "no RFC 3834 header, no auto-reply subject or words"


# One note per entry of the chain (analysis.CHAIN), under the same name.
NOTES: dict[str, Callable[[Part], str]] = {
    "arf": _arf,
    "formats": _formats,
    "dsn": _dsn,
    "plaintext": _plaintext,
    "autoreply": _autoreply,
}


def notes(message: Part, chain: tuple[str, ...]) -> list[tuple[str, str]]:
    """(analyzer, why it did not claim the message), in the chain's order."""
    found = []
    for name in chain:
        note = NOTES.get(name)
        try:
            found.append((name, note(message) if note else "no note for this analyzer"))
        except Exception as err:  # a note must never cost the report
            found.append((name, f"could not tell ({type(err).__name__})"))
    return found
