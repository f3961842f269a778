"""The analyzer's shortcuts give the answers of the plain code they replace.

Each shortcut (the phrase tables' literal pre-filter, pre-filtered patterns, the plain-address
path past email-validator, the regex-free mention and white-space helpers) is checked against
the straightforward version on the project's own sample texts and on generated texts built
from the pieces that matter (the tables' own words, case changes, the characters whose case
folding is special). Derandomized, so a failure reproduces.
"""

from __future__ import annotations

import random
import re

import pytest
from support import sample, sample_names

from imap_bouncer.analysis import arf, dsn, origin, phrases, reasons
from imap_bouncer.analysis import text as text_module
from imap_bouncer.analysis.addresses import _validated, normalize_address, strip_address
from imap_bouncer.analysis.formats import exchange2007, x400
from imap_bouncer.analysis.formats._lib import common
from imap_bouncer.analysis.literals import (
    Prefiltered,
    alternatives_words,
    required_words,
    top_level_alternatives,
)
from imap_bouncer.analysis.message import parse_message
from imap_bouncer.analysis.text import notice_text


def sample_texts() -> list[str]:
    texts = []
    for name in sample_names():
        message = parse_message(sample(name))
        texts.append(notice_text(message))
        texts += [part.text[:3000] for part in message.walk() if part.content_type.startswith(
            ("text/", "message/delivery-status"))]
    return [text for text in texts if text]


SAMPLE_TEXTS = sample_texts()


def generated_texts(words: list[str], count: int, seed: int) -> list[str]:
    """Texts made of the given words, pieces of them, codes and filler, in odd cases."""
    rng = random.Random(seed)
    fillers = ["550", "5.1.1", "the", "user", "x", "mail", "<a@example.com>", "\n", "  ",
               "K", "\u212a", "\u017f", "\u0130", "http://www.example.com/a", ":", "-"]
    texts = []
    for _ in range(count):
        pieces = []
        for _ in range(rng.randint(1, 10)):
            word = rng.choice(words + fillers)
            if rng.random() < 0.3:
                word = word[:rng.randint(0, len(word))]
            if rng.random() < 0.3:
                word = word.upper()
            pieces.append(word)
        texts.append(rng.choice(["", " ", "\n"]).join(pieces))
    return texts


def plain_first(table: list, text: str):
    """What the phrase table promises: the first row, in order, whose pattern matches."""
    lowered = phrases.fold_spaces(text).lower()
    for index, (_reason, pattern) in enumerate(table):
        flags = re.I if phrases._HAS_UPPER.search(pattern) else 0
        found = re.search(pattern, lowered, flags)
        if found:
            return index, found.span()
    return None


@pytest.mark.parametrize(("table", "compiled"), [(phrases.PHRASES, phrases._PHRASES),
                                                 (phrases.GAVE_UP, phrases._GAVE_UP)])
def test_the_phrase_pre_filter_finds_the_first_matching_row(table, compiled) -> None:
    if not compiled.built:
        compiled.build()  # built on a process's first texts otherwise (WARM_UP)
    words = list(compiled.needing)
    texts = SAMPLE_TEXTS + generated_texts(words, 6000, seed=1)
    matched = 0
    for text in texts:
        lowered = phrases.fold_spaces(text).lower()
        expected = plain_first(table, text)
        for found in (compiled.first_by_words(lowered), compiled.first_by_rows(lowered)):
            got = None if found is None else (found[0], found[1].span())
            assert got == expected, text
        matched += expected is not None
    assert matched > len(texts) // 4  # the texts reach the rows, not only the misses


def test_a_row_split_at_its_alternatives_rejoins_to_itself() -> None:
    for _reason, pattern in phrases.PHRASES:
        pieces = top_level_alternatives(pattern)
        assert "|".join(pieces) == pattern
        for piece in pieces:
            re.compile(piece)
    assert top_level_alternatives(r"a(?:b|c)|[|]d|\|e") == ["a(?:b|c)", "[|]d", r"\|e"]
    assert top_level_alternatives(r"(a)|\1") == [r"(a)|\1"]  # a reference: kept whole


def test_words_read_from_one_parse_are_each_alternatives_own() -> None:
    for _reason, pattern in phrases.PHRASES + phrases.GAVE_UP + phrases.STOCK_PHRASES:
        pieces = top_level_alternatives(pattern)
        assert alternatives_words(pattern, pieces) == [required_words(p) for p in pieces]
    # A common prefix the parser takes out of the branch: read piece by piece instead.
    pieces = top_level_alternatives("user unknown|user gone")
    assert alternatives_words("user unknown|user gone", pieces) == [("user unknown",),
                                                                   ("user gone",)]


def test_required_words_are_in_every_match() -> None:
    for _reason, pattern in phrases.PHRASES:
        for piece in top_level_alternatives(pattern):
            words = required_words(piece)
            for text in SAMPLE_TEXTS:
                found = re.search(piece, phrases.fold_spaces(text).lower())
                if found and words:
                    assert any(word in found.group(0) for word in words), (piece, words)


CASELESS = [
    re.compile(r"^Report-Type:[ \t]*(\S+)", re.I | re.M),
    re.compile(r"THIS IS A WARNING ONLY|Delayed Mail \(still being retried\)", re.I),
    re.compile(r"(?:no-?reply|postmaster|mailer-daemon)@(?:[\w-]+\.)*dion\.ne\.jp\b", re.I),
    re.compile(r"ma\u212ae sure|\u017fend", re.I),  # Kelvin sign, long s: match ASCII text
    re.compile(r"Empf\u00e4nger|recipient", re.I),
    origin.LIST_ROLE_SENDER.pattern,
    phrases.MAILBOX_MISSING.pattern,
    phrases.FILTER_WORDS.pattern,
    origin.MAILER_SENDERS.pattern,
    arf.LEGACY_FBL_SENDERS.pattern,
    common.DELAY_WORDS.pattern,
    x400._TITLE.pattern,
    exchange2007.FAILED_HEADING.pattern,
]


def test_prefiltered_reads_its_pattern_on_first_use_only() -> None:
    # Parsing at construction would be start-up work for every module constant.
    quick = Prefiltered(re.compile(r"spam|block(?:ed)?", re.I))
    assert quick._words is False
    assert quick.search("Blocked by policy") and not quick.search("all fine")
    assert quick.words == ("block", "spam")


@pytest.mark.parametrize("pattern", CASELESS, ids=lambda p: p.pattern[:30])
def test_prefiltered_patterns_find_what_the_pattern_finds(pattern) -> None:
    quick = Prefiltered(pattern)
    words = re.findall(r"[A-Za-z\u00e4\u212a\u017f:-]{2,}", pattern.pattern)
    for text in SAMPLE_TEXTS + generated_texts(words, 5000, seed=2):
        expected = pattern.search(text)
        got = quick.search(text)
        assert (got and got.span()) == (expected and expected.span()), text
        assert [m.span() for m in quick.finditer(text)] == \
            [m.span() for m in pattern.finditer(text)]


def plain_addresses() -> list[str]:
    rng = random.Random(3)
    atom = "abcXYZ0189!#$%&'*+/=?^_`{|}~-"
    labels = "abcdefghijXYZ0123456789-"
    found = ["jo@example.com", "Jo.Doe@EXAMPLE.COM", "a@localhost", "a..b@x.com", ".a@x.com",
             "a@-x.com", "a@x.com.", "a@123.45", "a@example.invalid", "x" * 65 + "@x.com"]
    for _ in range(3000):
        local = ".".join("".join(rng.choice(atom) for _ in range(rng.randint(1, 12)))
                         for _ in range(rng.randint(1, 3)))
        domain = ".".join("".join(rng.choice(labels) for _ in range(rng.choice([1, 3, 10, 63,
                                                                               64])))
                          for _ in range(rng.randint(1, 4)))
        found.append(f"{local}@{domain}")
    return found


def test_plain_addresses_skip_the_validator_with_its_answer() -> None:
    for address in plain_addresses():
        local, domain = _validated(strip_address(address))  # what every address was given
        expected = f"{local.lower() if local.isascii() else local}@{domain.lower()}" \
            if local and domain else ""
        assert normalize_address.__wrapped__(address) == expected, address
    assert normalize_address("jo@xn--bcher-kva.example") == "jo@bücher.example"  # asked


def test_mentions_are_dropped_as_the_pattern_would() -> None:
    rng = random.Random(4)
    for _ in range(20000):
        address = "".join(rng.choice("aA@.b") for _ in range(rng.randint(1, 4)))
        line = "".join(rng.choice(["<", ">", "a", "A", "@", ".", " ", address, f"<{address}>",
                                   "\u0130"]) for _ in range(rng.randint(0, 8)))
        expected = re.sub(r"<?" + re.escape(address) + r">?", " ", line, flags=re.I)
        assert dsn._without_mentions(line, address) == expected, (line, address)


def test_addresses_in_a_window_are_the_patterns_matches() -> None:
    rng = random.Random(5)
    for _ in range(20000):
        text = "".join(rng.choice(["a", "b", "@", ".", "+", "=", "-", " ", "\u00e9", "x@y.z"])
                       for _ in range(rng.randint(0, 14)))
        start = rng.randint(0, len(text))
        end = rng.randint(start, len(text))
        assert [m.span() for m in reasons._addresses(text, start, end)] == \
            [m.span() for m in reasons._ADDRESS.finditer(text, start, end)], (text, start, end)


def test_white_space_folds_as_the_regex_folds() -> None:
    rng = random.Random(6)
    for _ in range(20000):
        text = "".join(rng.choice(" \t\n\xa0\u2003\x1cab") for _ in range(rng.randint(0, 8)))
        assert phrases.fold_spaces(text) == re.sub(r"\s+", " ", text), repr(text)


def test_addresses_are_replaced_as_the_pattern_replaces() -> None:
    rng = random.Random(7)
    for _ in range(20000):
        line = "".join(rng.choice(["a", "b", "@", ".", "+", "-", " ", "<", ">", "x@y.z"])
                       for _ in range(rng.randint(0, 14)))
        assert reasons._replace_addresses(line, "x@x.x") == \
            reasons._ADDRESS.sub("x@x.x", line), line


def test_ruled_headers_are_found_where_the_search_finds_them() -> None:
    rng = random.Random(8)
    lines = ["", "  ", "text", "-- x --", "---- Kopie der Kopfzeilen ----", "== x ==", " -- x --",
             "--", "---", "-x-", "=- y -=", "From: a@b.example", "Subject: x", "To: c@d.example",
             "Date: now", " folded", "X-Other: y", "----\t", "\t== z =="]
    texts = SAMPLE_TEXTS + ["\n".join(rng.choice(lines) for _ in range(rng.randint(0, 12)))
                            for _ in range(20000)]
    texts += ["--\n" * count + "-- x --\nFrom: a@b.example\nTo: c@d.example\n"
              for count in (199, 200, 201, 500)]
    found = 0
    for body in texts:
        expected = text_module.RULED_HEADERS.search(body)
        got = text_module._ruled_headers(body)
        assert (got and got.span()) == (expected and expected.span()), body
        found += expected is not None
    assert found > 100


def test_original_markers_are_found_where_the_search_finds_them() -> None:
    rng = random.Random(9)
    lines = ["", "text", "--- Original message follows ---", "------ Original message follows",
             "Original message follows.", "  The original message was received at noon",
             "-----Original Message-----", "From jo@example.com Mon Jan  1 00:00:00 2001", "x",
             "A copy of the original message below this line:", "---", " ", "\t"]
    texts = SAMPLE_TEXTS + ["\n".join(rng.choice(lines) for _ in range(rng.randint(0, 10)))
                            for _ in range(20000)]
    texts += ["\n" * count + "--- Original message follows ---" for count in (199, 200, 201, 500)]
    found = 0
    for body in texts:
        expected = text_module.ORIGINAL_MARKERS.search(body)
        got = text_module._at_a_line_start(text_module.ORIGINAL_MARKERS, body)
        assert (got and got.span()) == (expected and expected.span()), body
        found += expected is not None
    assert found > 1000
