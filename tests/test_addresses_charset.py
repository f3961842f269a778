"""The address patterns' fast forms mean what their plain forms say.

`_with_non_ascii` writes `[ascii + NON_ASCII]` as its complement (cheap to compile): every
code point must be in both or in neither. Plain ASCII addresses skip email-validator: its
answer must be the one given without it.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imap_bouncer.analysis import addresses
from imap_bouncer.analysis.addresses import NON_ASCII, normalize_address

ALL = "".join(map(chr, range(0x110000))).replace("\n", "")


@pytest.mark.parametrize("ascii_class", ["A-Za-z0-9", "A-Za-z0-9-",
                                         "A-Za-z0-9!#$%&'*+/=?^_`{|}~.-"])
def test_the_complement_holds_the_same_characters(ascii_class: str) -> None:
    plain = re.compile(f"[{NON_ASCII}{ascii_class}]")
    fast = re.compile(addresses._with_non_ascii(ascii_class))
    assert plain.pattern != fast.pattern
    assert plain.findall(ALL) == fast.findall(ALL)


NEVER = re.compile(r"(?!)")


def validated(value: str) -> str:
    """normalize_address without the shortcut: every address asked of email-validator."""
    shortcut, addresses._PLAIN_ASCII = addresses._PLAIN_ASCII, NEVER
    try:
        return normalize_address.__wrapped__(value)
    finally:
        addresses._PLAIN_ASCII = shortcut


ATOM = st.text("abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=12)
LABEL = st.one_of(st.sampled_from(["example", "com", "test", "localhost", "invalid", "123",
                                   "-a", "a-", "xn--bcher-kva", "XN--BCHER-KVA", "a" * 64]),
                  st.text("ab09-", min_size=1, max_size=10))


@settings(max_examples=400, deadline=None)
@given(st.lists(ATOM, min_size=1, max_size=3), st.lists(LABEL, min_size=1, max_size=4))
def test_plain_ascii_addresses_need_no_validator(locals_: list[str], labels: list[str]) -> None:
    value = f"{'.'.join(locals_)}@{'.'.join(labels)}"
    assert normalize_address.__wrapped__(value) == validated(value)


def test_idna_and_quoted_addresses_still_go_to_the_validator() -> None:
    assert normalize_address("jo@xn--bcher-kva.example") == "jo@bücher.example"
    assert normalize_address("Jo@XN--BCHER-KVA.example") == "jo@bücher.example"
    assert normalize_address('"jo smith"@example.com') == '"jo smith"@example.com'
