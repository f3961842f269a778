"""The store of compiled patterns (analysis/pattern_store.py): a pattern read from it is the
pattern `re` compiles, and a missing, damaged or foreign store only costs time."""

from __future__ import annotations

import csv
import marshal
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from imap_bouncer import analysis
from imap_bouncer.analysis import lazy_re, pattern_store

REPLIES = Path(__file__).parent / "replies" / "published.csv"


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A private, empty store in place of the package's and the user's."""
    path = tmp_path / "cache" / "patterns.bin"
    monkeypatch.setattr(pattern_store, "locations", lambda: [path])
    monkeypatch.setattr(pattern_store, "_entries", None)
    monkeypatch.setattr(pattern_store, "_added", 0)
    monkeypatch.setattr(pattern_store, "_used", set())
    return path


def fresh_process_view(monkeypatch) -> None:
    """What the next process sees: nothing in memory, only the file."""
    monkeypatch.setattr(pattern_store, "_entries", None)
    monkeypatch.setattr(pattern_store, "_added", 0)


def sample_texts() -> list[str]:
    with REPLIES.open(newline="", encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip() and not line.startswith("#")]
    texts = [row["reply"] for row in csv.DictReader(lines)]
    return [*texts[::8], "", "Delivery to the following recipients failed.\n\n  a@b.example\n",
            "550 5.1.1 <user@example.org>: Recipient address rejected"]


def test_every_analyzer_pattern_from_the_store_matches_as_re_compiles_it(
        store, monkeypatch) -> None:
    count, added, written = analysis.compile_everything()
    unique = {(p.pattern, p.flags) for p in lazy_re.every_pattern()}
    assert written == store and store.is_file() and added >= len(unique) and count > 500
    fresh_process_view(monkeypatch)
    texts = sample_texts()
    for lazy in lazy_re.every_pattern():
        stored = pattern_store.compile(lazy.pattern, lazy.flags)
        expected = re.compile(lazy.pattern, lazy.flags)
        assert (stored.pattern, stored.flags, stored.groups, stored.groupindex) == (
            expected.pattern, expected.flags, expected.groups, expected.groupindex)
        for text in texts if isinstance(lazy.pattern, str) else [t.encode() for t in texts]:
            assert [m.span() for m in stored.finditer(text)] == \
                [m.span() for m in expected.finditer(text)], lazy.pattern
    assert pattern_store._added == 0, "every pattern should have come from the store"


def test_a_pattern_compiled_once_is_read_back_by_the_next_process(store, monkeypatch) -> None:
    pattern_store.compile(r"(?P<code>[45]\d\d)[ -](?P<words>.*)", re.I)
    assert pattern_store.save() == store
    fresh_process_view(monkeypatch)
    found = pattern_store.compile(r"(?P<code>[45]\d\d)[ -](?P<words>.*)", re.I).match(
        "550 no such user")
    assert found.group("code", "words") == ("550", "no such user")
    assert pattern_store._added == 0


@pytest.mark.parametrize("content", [
    b"", b"not marshal at all \x00\xff", marshal.dumps(("another key", {})),
    marshal.dumps((pattern_store._KEY, {})),  # no magic, no checksum
    *(pattern_store._MAGIC + zlib.crc32(p).to_bytes(4, "big") + p for p in (
        marshal.dumps(("another key", {})),
        marshal.dumps((pattern_store._KEY, ["not", "a", "dict"])))),
])
def test_a_damaged_or_foreign_store_is_ignored(store, monkeypatch, content) -> None:
    store.parent.mkdir(parents=True)
    store.write_bytes(content)
    assert pattern_store.compile(r"user (unknown)", 0).search("550 user unknown").group(1) == \
        "unknown"
    assert pattern_store._added == 1  # compiled the usual way, to be stored again


def test_a_store_damaged_on_disk_is_refused_whole(store, monkeypatch) -> None:
    """One flipped byte in a code would make a pattern match something else (the engine
    accepts many a wrong code): the checksum refuses the whole store instead."""
    pattern_store.compile(r"mailbox (full|over quota)", re.I)
    pattern_store.save()
    data = bytearray(store.read_bytes())
    data[len(data) // 2] ^= 0x01
    store.write_bytes(bytes(data))
    fresh_process_view(monkeypatch)
    assert pattern_store.compile(r"mailbox (full|over quota)", re.I).search(
        "Mailbox FULL").group(1) == "FULL"
    assert pattern_store._added == 1  # compiled again, the usual way


def test_nowhere_writable_loses_nothing_but_time(tmp_path, monkeypatch) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setattr(pattern_store, "locations", lambda: [blocked / "patterns.bin"])
    monkeypatch.setattr(pattern_store, "_entries", None)
    monkeypatch.setattr(pattern_store, "_added", 0)
    assert pattern_store.compile(r"\bquota\b", 0).search("over quota")
    assert pattern_store.save() is None


def test_a_bad_pattern_still_raises_re_error(store) -> None:
    with pytest.raises(re.error):
        pattern_store.compile(r"(unclosed", 0)


def test_prepare_command_writes_a_store_that_the_next_process_reads(tmp_path) -> None:
    """`imap-bouncer prepare` (run by the setup scripts) as a user would run it."""
    run = [sys.executable, "-m", "imap_bouncer", "prepare"]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120, check=True)
    assert re.fullmatch(r"pattern store: \d{3,} patterns \((?:\d+ new, written to \S+|"
                        r"all already stored)\)\n", done.stdout), done.stdout
    again = subprocess.run(run, capture_output=True, text=True, timeout=120, check=True)
    assert "all already stored" in again.stdout


def test_a_fact_about_a_pattern_is_computed_once_across_processes(store, monkeypatch) -> None:
    calls = []

    def words() -> tuple[str, ...]:
        calls.append(1)
        return ("quota", "full")

    assert pattern_store.fact("required_words", r"mailbox (?:full|quota)", words) == \
        ("quota", "full")
    assert pattern_store.save() == store
    fresh_process_view(monkeypatch)
    assert pattern_store.fact("required_words", r"mailbox (?:full|quota)", words) == \
        ("quota", "full")
    assert calls == [1]


def test_required_words_from_the_store_are_those_the_parser_finds(store) -> None:
    """`literals` reads its words through the store: same answer as parsing now."""
    from imap_bouncer.analysis import literals

    for pattern in (r"user (?:unknown|not found)", r"\bquota\b|mailbox (?:is )?full", r"\d+"):
        assert literals.required_words(pattern) == literals._required_words(pattern)
        assert literals.required_words(pattern) == literals._required_words(pattern)
