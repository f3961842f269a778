"""Address clean-up: bounces quote recipients in every way imaginable."""

from __future__ import annotations

from functools import lru_cache

from . import lazy_re as re

# Non-ASCII letters may be in an address (RFC 6531); punctuation never is: Chinese and
# Japanese notices write "收件人：a@b" with a full-width colon, and quotes like "“a@b”".
NON_ASCII = "\u0080-\u009f\u00c0-\u1fff\u2070-\u2fff\u3040-\ufefe\uff10-\uff19\uff21-\uff3a" \
    "\uff41-\uff5a\uff66-\uffff"
# The punctuation left out of NON_ASCII, for patterns that exclude rather than include.
PUNCTUATION = "\u00a0-\u00bf\u2000-\u206f\u3000-\u303f\uff01-\uff0f\uff1a-\uff20" \
    "\uff3b-\uff40\uff5b-\uff65"
# Every other non-ASCII character: NON_ASCII's complement outside ASCII is this and PUNCTUATION.
_NEITHER = "\ufeff\uff00\U00010000-\U0010ffff"


def _with_non_ascii(ascii_class: str) -> str:
    """The character class `[{ascii_class}{NON_ASCII}]`, written as its complement.

    The same characters (tests/test_addresses_charset.py compares every code point), but `re`
    walks a class's ranges one code point at a time when it compiles it: NON_ASCII's ranges
    cost milliseconds per class at every start, the complement's short ones nothing.
    """
    ascii_set = re.compile(f"[{ascii_class}]")
    outside = "".join(f"\\x{code:02x}" for code in range(128)
                      if not ascii_set.fullmatch(chr(code)))
    return f"[^{outside}{PUNCTUATION}{_NEITHER}]"


_WORD = _with_non_ascii("A-Za-z0-9")
_WORD_OR_HYPHEN = _with_non_ascii("A-Za-z0-9-")
_LOCAL = _with_non_ascii("A-Za-z0-9!#$%&'*+/=?^_`{|}~.-")

# Something that looks like an address inside free text.
ADDRESS_IN_TEXT = re.compile(
    rf"{_LOCAL}+@"
    rf"(?:\[[0-9A-Fa-f:.]+\]|{_WORD}(?:{_WORD_OR_HYPHEN}*{_WORD})?"
    rf"(?:\.{_WORD}(?:{_WORD_OR_HYPHEN}*{_WORD})?)*)"
)
# A plain ASCII address (dot-atom local part, LDH domain, no IDNA label): email-validator
# would give back the same parts, so it is not asked (nor imported, for most messages).
_PLAIN_ASCII = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?![Xx][Nn]--)[A-Za-z0-9-]+(?:\.(?![Xx][Nn]--)[A-Za-z0-9-]+)*")
_ADDRESS_TYPE = re.compile(r"^\s*(?:rfc822|utf-8|x400|unknown)\s*;", re.I)
# RFC 6533 section 3: a "utf-8" address in a plain message/delivery-status part is written as
# utf-8-addr-xtext, each non-ASCII character as \x{HEXPOINT}: j\x{F6}rg@b\x{FC}cher.example.
_EMBEDDED_UNICODE = re.compile(r"\\x\{([0-9A-Fa-f]{2,6})\}")
# Exchange and MailEnable write the address type before the address: "[SMTP:a@b]".
_ADDRESS_PREFIX = re.compile(r"^(?:mailto|smtp|sip):", re.I)


def strip_address(value: str) -> str:
    """`rfc822; <User@Example.COM>` -> `User@Example.COM`, no validation."""
    value = _ADDRESS_TYPE.sub("", value).strip()
    if "\\x{" in value:
        value = _EMBEDDED_UNICODE.sub(_unicode_char, value)
    if "<" in value:
        inner = value[value.find("<") + 1:]
        value = inner.split(">", 1)[0]
    value = value.strip().strip("'<>(){},;:.").strip()
    if not value.startswith('"'):
        value = value.strip('"')
    if value.startswith("[") or (value.endswith("]") and "@[" not in value):
        value = value.strip("[]")
    return _ADDRESS_PREFIX.sub("", value)


def _unicode_char(match: re.Match[str]) -> str:
    point = int(match.group(1), 16)
    return chr(point) if point <= 0x10FFFF else match.group(0)


@lru_cache(maxsize=4096)
def normalize_address(value: str) -> str:
    """A clean, comparable address, or "" when there is none.

    Syntax only (never DNS); the domain is lower-cased, the local part kept as written except
    that plain-ASCII local parts are lower-cased, as every real mailbox provider treats them.
    Internationalised addresses are kept. Addresses email-validator refuses for policy
    reasons (special-use domains, quoted local parts) are still kept when they look like one.
    """
    value = strip_address(value)
    if "@" not in value or (" " in value and not value.startswith('"')):
        match = ADDRESS_IN_TEXT.search(value)
        if not match:
            return ""
        value = match.group(0).strip(".")
    if _PLAIN_ASCII.fullmatch(value):
        local, _, domain = value.partition("@")
    else:
        local, domain = _validated(value)
        if not local or not domain:
            return ""
    if local.isascii():
        local = local.lower()
    return f"{local}@{domain.lower()}"


def _validated(value: str) -> tuple[str, str]:
    """(local part, domain) as email-validator normalises them (Unicode NFC, IDNA labels
    decoded), or as written when it refuses the address."""
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(
            value, check_deliverability=False, allow_smtputf8=True,
            allow_quoted_local=True, allow_domain_literal=True, test_environment=True,
        )
    except EmailNotValidError:
        local, _, domain = value.rpartition("@")
        return local, domain
    return checked.local_part, checked.domain


def find_addresses(text: str) -> list[str]:
    """Every distinct address in a text, in order, normalised."""
    seen: dict[str, None] = {}
    for match in ADDRESS_IN_TEXT.finditer(text):
        address = normalize_address(_unquoted(match.group(0).strip(".")))
        if address:
            seen.setdefault(address, None)
    return list(seen)


def _unquoted(candidate: str) -> str:
    """An address that a reply quotes right after other text ("550-'jo@example.com... No
    such user'") without that text; an apostrophe inside a name (o'brien@) stays."""
    local, _, domain = candidate.rpartition("@")
    before, quote, after = local.rpartition("'")
    if quote and after and (not before or not before[-1].isalpha()):
        return f"{after}@{domain}"
    return candidate
