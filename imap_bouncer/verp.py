"""Signed VERP addresses and the signed correlation header: proof that a bounce or a
complaint is about mail we sent. PURE: no I/O, no clock (callers pass the day or the time).

The bounce mailbox is writable by anyone, so a bounce on its own proves nothing: anyone can
write "jo@example.net: user unknown". The sending side therefore signs what it sends, with a
secret shared with imap-bouncer (`[verp] secret`), and a bounce that carries a good signature
for an address is about mail that really went to that address. The format, exactly, so that
a sender in any language can produce it (docs/security.md repeats it with examples):

- key: the secret's UTF-8 bytes, as written in `[verp] secret` (or the first line of
  `secret_file`, without its line end);
- day: whole days since 1970-01-01 UTC (unix time // 86400), written as 5 decimal digits;
- address: `local@domain` with ASCII A-Z lowered to a-z (nothing else changed), UTF-8;
- mac(label, fields): HMAC-SHA256(key, label + "\\n" + "\\n".join(fields)), its first 10
  bytes in base32 (RFC 4648), lower case, no padding: 16 characters of a-z and 2-7.

Signed VERP (envelope sender of a message to one recipient):
    token = day + mac("imap-bouncer verp 1", [day, address])            # 21 characters
    `[verp] address`, e.g. "bounces+{token}-{local}={domain}@bounce.example.org", with
    {token}, {local} and {domain} (the recipient's local part and domain) filled in.

Correlation header (any message; the original's headers come back in DSNs and complaints):
    X-Imap-Bouncer-Id: 1.<day>.<mac("imap-bouncer id 1", [day, sender, message_id,
                                                          recipient])>
    sender: the From address (bare, lowered as above); message_id: the Message-ID header's
    value, angle brackets included, all white space removed; recipient: the one recipient
    (lowered), or "" for a message sent to several at once, which then proves the message
    and its sender but no recipient.

Lower case everywhere because mail systems change the case of envelope addresses; base32
because it survives that. Every comparison is `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

VERP_LABEL = "imap-bouncer verp 1"
ID_LABEL = "imap-bouncer id 1"
ID_HEADER = "X-Imap-Bouncer-Id"
ID_VERSION = "1"
MAC_BYTES = 10  # 80 bits: 16 base32 characters
MAC_CHARS = 16
DAY_DIGITS = 5
TOKEN_CHARS = DAY_DIGITS + MAC_CHARS
MIN_SECRET = 16  # characters: a shorter one can be guessed offline from one signed address
PLACEHOLDERS = ("{token}", "{local}", "{domain}")

# What an event's proof is (models.Event.signed):
VERP = "verp"  # a signed VERP address for this very recipient
ID = "id"  # a correlation header signed for this recipient, its message and sender
ID_MESSAGE = "id-message"  # a correlation header for the message and sender, no recipient
UNSIGNED = ""
ADDRESS_PROOFS = frozenset({VERP, ID})  # those that prove the recipient (state changes)
SENT_PROOFS = frozenset({VERP, ID, ID_MESSAGE})  # those that prove we sent it (reports)

_ID_SHAPE = re.compile(r"^1\.(\d{5})\.([a-z2-7]{16})$")


class VerpError(ValueError):
    """An address or a pattern that cannot be signed (the message says why)."""


@dataclass(frozen=True, slots=True)
class Proof:
    """What the signatures found in a message prove about one recipient.

    `kind`: VERP, ID, ID_MESSAGE or UNSIGNED; `day`: the day it was signed (0 when
    unsigned); `note`: one line for `explain`, what was found or why nothing counts.
    """

    kind: str = UNSIGNED
    day: int = 0
    note: str = ""


def day_of(moment: datetime) -> int:
    """Whole days since 1970-01-01 UTC."""
    return int(moment.astimezone(UTC).timestamp() // 86400)


def fold_case(address: str) -> str:
    """ASCII A-Z to a-z, nothing else: what every language does the same way."""
    return address.strip().translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def mac(key: bytes, label: str, fields: Sequence[str]) -> str:
    """The spec's mac(): HMAC-SHA256 over label and fields, 10 bytes, base32, lower case."""
    data = "\n".join((label, *fields)).encode("utf-8")
    digest = hmac.new(key, data, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.b32encode(digest).decode("ascii").lower()


def verp_token(key: bytes, address: str, day: int) -> str:
    """The {token} of the signed VERP address for mail to `address` sent on `day`."""
    stamp = f"{day:0{DAY_DIGITS}d}"
    return stamp + mac(key, VERP_LABEL, [stamp, fold_case(address)])


@lru_cache(maxsize=64)
def check_pattern(pattern: str) -> str:
    """The pattern itself, or VerpError: each placeholder once, and an @ after them."""
    for name in PLACEHOLDERS:
        if pattern.count(name) != 1:
            raise VerpError(f"needs {name} exactly once, as in "
                            "'bounces+{token}-{local}={domain}@bounce.example.org'")
    if "@" not in pattern.rpartition("}")[2] or any(c.isspace() for c in pattern):
        raise VerpError("must end in @ and the bounce domain, after the placeholders, "
                        "without spaces")
    return pattern


def sign(address: str, key: bytes, pattern: str, day: int) -> str:
    """The envelope sender (Return-Path) to use for mail to `address` sent on `day`."""
    local, at, domain = address.strip().rpartition("@")
    if not (local and at and domain) or any(c.isspace() or c in "<>" for c in address.strip()):
        raise VerpError(f"not an address: {address!r}")
    check_pattern(pattern)
    token = verp_token(key, f"{local}@{domain}", day)
    return (pattern.replace("{token}", token).replace("{local}", local)
            .replace("{domain}", domain))


def correlation_id(key: bytes, sender: str, message_id: str, recipient: str, day: int) -> str:
    """The X-Imap-Bouncer-Id value for a message (recipient "" for several at once)."""
    stamp = f"{day:0{DAY_DIGITS}d}"
    fields = [stamp, fold_case(sender), _compact(message_id), fold_case(recipient)]
    return f"{ID_VERSION}.{stamp}.{mac(key, ID_LABEL, fields)}"


@lru_cache(maxsize=64)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A signed VERP pattern -> a regular expression with token, local and domain groups."""
    escaped = re.escape(fold_case(check_pattern(pattern)))
    escaped = (escaped.replace(r"\{token\}", rf"(?P<token>[0-9a-z]{{{TOKEN_CHARS}}})")
               .replace(r"\{local\}", r"(?P<local>[^@\s]+)")
               .replace(r"\{domain\}", r"(?P<domain>[^@=+\s]+)"))
    return re.compile(escaped, re.I)


def decode(candidate: str, pattern: str) -> tuple[str, str] | None:
    """(recipient address, token) when `candidate` has the pattern's shape, else None.
    Says nothing about the signature (see `verify_verp`)."""
    if not candidate or len(candidate) > 600:
        return None
    match = pattern_regex(pattern).fullmatch(candidate.strip())
    if not match:
        return None
    return f"{match.group('local')}@{match.group('domain')}", match.group("token").lower()


def verify_verp(candidate: str, key: bytes, pattern: str) -> tuple[str, int] | None:
    """(signed address, day) when `candidate` is a signed VERP address with a good token."""
    decoded = decode(candidate, pattern)
    if decoded is None:
        return None
    address, token = decoded
    stamp = token[:DAY_DIGITS]
    if not stamp.isdigit():
        return None
    expected = verp_token(key, address, int(stamp))
    if not hmac.compare_digest(expected.encode(), token.encode()):
        return None
    return fold_case(address), int(stamp)


def verify_id(value: str, key: bytes, sender: str, message_id: str,
              recipient: str) -> tuple[str, int] | None:
    """(ID or ID_MESSAGE, day) when `value` is a good X-Imap-Bouncer-Id for this sender and
    message, signed for `recipient` (ID) or for no one recipient (ID_MESSAGE); else None."""
    match = _ID_SHAPE.match(fold_case(value)) if len(value) < 100 else None
    if not match or not sender or not message_id:
        return None
    day = int(match.group(1))
    for kind, who in ((ID, recipient), (ID_MESSAGE, "")):
        if kind == ID and not recipient:
            continue
        expected = correlation_id(key, sender, message_id, who, day)
        if hmac.compare_digest(expected.encode(), fold_case(value).encode()):
            return kind, day
    return None


def prove(address: str, *, envelope: Sequence[tuple[str, str]], correlation: str,
          sender: str, message_id: str, key: bytes, pattern: str,
          old_keys: Sequence[bytes] = ()) -> Proof:
    """What the message's signatures prove about `address` (one of its recipients).

    `envelope`: (header, address) pairs the bounce was delivered to (Delivered-To,
    X-Original-To, Envelope-To, To) and the original's Return-Path; `correlation`: the
    original's X-Imap-Bouncer-Id; `sender`, `message_id`: the original's From address and
    Message-ID. A signed VERP address for another recipient proves nothing about this one.
    `old_keys`: keys signatures are still accepted with while a secret is being replaced.
    """
    if not key:
        return Proof(UNSIGNED, 0, "not checked: no [verp] secret")
    keys = (key, *old_keys)
    wanted = fold_case(address)
    other = ""
    if pattern:
        for header, candidate in envelope:
            found = next(filter(None, (verify_verp(candidate, k, pattern) for k in keys)),
                         None)
            if found is None:
                continue
            if found[0] == wanted and wanted:
                return Proof(VERP, found[1], f"signed VERP address in {header}")
            other = f"{header} holds a signed VERP address for another recipient"
    id_found = next(filter(None, (verify_id(correlation, k, sender, message_id, wanted)
                                  for k in keys)), None) if correlation else None
    if id_found is not None:
        kind, day = id_found
        what = ("for this recipient" if kind == ID
                else "for the message and its sender, not one recipient")
        return Proof(kind, day, f"signed {ID_HEADER} {what}")
    why = [other] if other else []
    if correlation:
        why.append(f"{ID_HEADER} present but its signature does not match this message's "
                   "sender, Message-ID and recipient")
    if pattern and not other:
        shaped = [header for header, candidate in envelope if decode(candidate, pattern)]
        why.append(f"bad VERP signature in {', '.join(shaped)}" if shaped else
                   "no signed VERP address (Delivered-To, X-Original-To, Envelope-To, To)")
    if not correlation:
        why.append(f"no {ID_HEADER}")
    return Proof(UNSIGNED, 0, "unsigned: " + "; ".join(why))


def age_problem(day: int, at: datetime, max_age_days: int) -> str:
    """Why a signature of `day` no longer counts at `at` ("" when it does): older than
    max_age_days, or dated more than a day ahead (clocks differ by hours, not days)."""
    today = day_of(at)
    if day > today + 1:
        return f"signed on day {day}, in the future"
    if today - day > max_age_days:
        return f"signed {today - day} days before the bounce arrived (max_age_days = " \
               f"{max_age_days})"
    return ""


def hold_reason(signed: str, day: int, note: str, at: datetime, max_age_days: int) -> str:
    """Why, with require_signed, an event may change no address state ("" when it may):
    no signature proves its recipient, or the signature is too old (the state gate)."""
    if signed not in ADDRESS_PROOFS:
        what = note or "unsigned"
        if signed == ID_MESSAGE:
            what = "the X-Imap-Bouncer-Id proves the message, not this recipient"
        return f"require_signed: not proven for this address ({what})"
    problem = age_problem(day, at, max_age_days)
    return f"require_signed: {problem}" if problem else ""


def _compact(value: str) -> str:
    return "".join(value.split())


__all__ = [
    "ADDRESS_PROOFS",
    "ID",
    "ID_HEADER",
    "ID_MESSAGE",
    "SENT_PROOFS",
    "UNSIGNED",
    "VERP",
    "Proof",
    "VerpError",
    "age_problem",
    "check_pattern",
    "correlation_id",
    "day_of",
    "decode",
    "fold_case",
    "hold_reason",
    "mac",
    "pattern_regex",
    "prove",
    "sign",
    "verify_id",
    "verify_verp",
    "verp_token",
]
