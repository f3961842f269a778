"""Patterns compiled on first use (analysis/lazy_re.py): the same answers as `re`, every
pattern of the analyzers valid, and the phrase tables' two ways of reading agree."""

from __future__ import annotations

import csv
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import imap_bouncer.analysis as analysis
from imap_bouncer.analysis import lazy_re, phrases

REPLIES = Path(__file__).parent / "replies" / "published.csv"


def analysis_modules():
    yield analysis
    for info in pkgutil.walk_packages(analysis.__path__, "imap_bouncer.analysis."):
        yield importlib.import_module(info.name)


def test_compiled_on_first_use_only() -> None:
    pattern = lazy_re.compile(r"(?P<code>[245]\d\d) (?P<words>.+)", re.I)
    assert pattern._compiled is None and pattern.pattern.startswith("(?P<code>")
    assert pattern.flags == re.compile(pattern.pattern, re.I).flags  # before compiling
    found = pattern.search("said: 550 User unknown")
    assert pattern._compiled is not None and found.group("code") == "550"
    assert pattern.groupindex == {"code": 1, "words": 2}
    assert lazy_re.sub(pattern, "<\\g<code>>", "x 421 later") == "x <421>"
    assert lazy_re.compile(pattern) is pattern


def test_a_bad_pattern_fails_when_used() -> None:
    pattern = lazy_re.compile(r"(unclosed")
    with pytest.raises(re.error):
        pattern.search("text")


def test_every_pattern_of_the_analyzers_compiles() -> None:
    """Compiling late must not hide a broken pattern until a message happens to need it."""
    seen = 0
    for module in analysis_modules():
        for value in vars(module).values():
            candidates = value if isinstance(value, list | tuple) else (value,)
            for candidate in candidates:
                if isinstance(candidate, lazy_re.LazyPattern):
                    candidate.compiled()
                    seen += 1
    for table in (phrases._PHRASES, phrases._GAVE_UP, phrases._STOCK):
        for row in table.rows:
            row.compiled()
            seen += 1
    assert seen > 300  # the walk found them (about 400 today)


def replies() -> list[str]:
    lines = [line for line in REPLIES.read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    return [row["reply"] for row in csv.DictReader(lines)]


def test_rows_and_words_give_the_same_answer() -> None:
    """A process reads its first texts row by row, then through the words' pre-filter."""
    texts = [phrases.fold_spaces(text).lower() for text in replies()]
    assert len(texts) >= 300
    table = phrases._Table(phrases.PHRASES)
    table.build()
    for text in texts:
        by_rows, by_words = table.first_by_rows(text), table.first_by_words(text)
        assert (by_rows and (by_rows[0], by_rows[1].span())) == (
            by_words and (by_words[0], by_words[1].span())), text


def test_a_long_text_is_read_through_the_pre_filter_at_once() -> None:
    """Row by row, every row would scan all of a long text (a hostile notice)."""
    table = phrases._Table(phrases.PHRASES)
    assert table.first("550 no such user here") is not None and not table.built
    long_text = "<a@b.example> " * 1000 + "mailbox full"
    found = table.first(long_text)
    assert table.built and found is not None
    assert found[0] == table.first_by_rows(long_text)[0]
    assert table.reasons[found[0]] == "mailboxfull"
