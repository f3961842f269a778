"""The plain-text fallback: a bounce in words, from an MTA no format module names.

Claims a message only when its headers say it is a delivery report (`looks_like_bounce`)
and its notice names at least one recipient, by `X-Failed-Recipients` or by a block of
lines that opens with an address.
"""

from __future__ import annotations

from ...report import Action, Kind
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import notice_text, original_headers, split_at_original
from .common import DELAY_WORDS, looks_like_bounce, own_addresses, recipient_blocks

NAME = "generic"


def analyze(message: Part) -> Findings | None:
    if not looks_like_bounce(message):
        return None
    notice, _ = split_at_original(notice_text(message))
    subject = message.decoded("subject")
    delayed = bool(DELAY_WORDS.search(subject) or DELAY_WORDS.search(notice[:3000]))
    action = Action.DELAYED if delayed else Action.FAILED
    blocks = recipient_blocks(notice, own_addresses(message))
    failed_header = [normalize_address(v.strip()) for value in message.get_all("x-failed-recipients")
                     for v in value.split(",")]
    failed_header = [a for a in failed_header if a]
    if failed_header:
        words = dict(blocks)
        failures = [Failure(address=a, action=action, diagnostic=words.get(a, "")) for a in failed_header]
        evidence = "X-Failed-Recipients header"
    elif blocks:
        failures = [Failure(address=a, action=action, diagnostic=t) for a, t in blocks]
        evidence = "recipient blocks in a bounce notice"
    else:
        return None
    return Findings(
        kind=Kind.DELAY if delayed else Kind.BOUNCE,
        analyzer="plaintext",
        evidence=evidence,
        failures=failures,
        original_headers=original_headers(message),
        notice=notice,
    )
