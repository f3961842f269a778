"""Property tests: whatever bytes arrive, analysis returns a valid Report and nothing crashes.

Inputs are arbitrary bytes and damaged copies of the project's own samples (flipped bytes,
cuts, changed line endings, duplicated headers, swapped charsets), since damage near real
structure reaches far more code than noise does. Derandomized, so a failure reproduces.
"""

from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import sample, sample_names

from imap_bouncer.analysis import analyze
from imap_bouncer.analysis import message as message_module
from imap_bouncer.analysis import text as text_module
from imap_bouncer.analysis.literals import top_level_alternatives
from imap_bouncer.analysis.message import parse_message
from imap_bouncer.analysis.text import text_parts
from imap_bouncer.report import ADDRESS_REASONS, Action, Kind, Reason, Recipient, Report

FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
SAMPLES = {name: sample(name) for name in sample_names()}
CHARSETS = [b"utf-8", b"us-ascii", b"iso-8859-1", b"x-unknown", b"base64", b"zlib", b"utf-7",
            b"iso-2022-jp", b"shift_jis", b'"', b"", b"\xff\xfe", b"utf-16", b"cp1252"]

CHARSET_PARAM = re.compile(rb'(charset=)"?[^;\s"]*"?', re.I)
ENCODED_WORD_CHARSET = re.compile(rb"=\?[^?\s]+\?")


def assert_valid(report: Report) -> None:
    """A report every consumer can rely on, and no analyzer that crashed on the way."""
    assert isinstance(report, Report)
    assert isinstance(report.kind, Kind)
    for recipient in report.recipients:
        assert isinstance(recipient, Recipient)
        assert isinstance(recipient.action, Action) and isinstance(recipient.reason, Reason)
        assert isinstance(recipient.address, str) and isinstance(recipient.permanent, bool)
        assert not recipient.permanent or recipient.reason in ADDRESS_REASONS
    json.dumps(report.to_dict(explain=True))
    crashes = [e for e in report.errors if "failed:" in e and "analy" in e]
    assert crashes == []


@st.composite
def damaged_samples(draw) -> bytes:
    data = bytearray(SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))])
    for _ in range(draw(st.integers(1, 4))):
        data = bytearray(draw(st.sampled_from(MUTATIONS))(draw, bytes(data)))
    return bytes(data)


def flip_bytes(draw, data: bytes) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
    return bytes(buf)


def truncate(draw, data: bytes) -> bytes:
    return data[:draw(st.integers(0, len(data)))]


def line_endings(draw, data: bytes) -> bytes:
    unified = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return unified.replace(b"\n", draw(st.sampled_from([b"\r\n", b"\r", b"\n", b"\n\r"])))


def duplicate_header(draw, data: bytes) -> bytes:
    lines = data.split(b"\n")
    head = lines[:max(1, lines.index(b"") if b"" in lines else len(lines))]
    line = draw(st.sampled_from(head))
    if draw(st.booleans()):
        return line + b"\n" + data
    return data.replace(line, line + b"\n" + line, 1)


def swap_charset(draw, data: bytes) -> bytes:
    """Another charset in a Content-Type parameter or in an encoded word."""
    charset = draw(st.sampled_from(CHARSETS)).replace(b"\\", b"")
    if draw(st.booleans()):
        return CHARSET_PARAM.sub(lambda m: m.group(1) + charset, data, count=1)
    return ENCODED_WORD_CHARSET.sub(lambda m: b"=?" + charset + b"?", data, count=1)


def insert_bytes(draw, data: bytes) -> bytes:
    at = draw(st.integers(0, len(data)))
    junk = draw(st.sampled_from([b"\n", b"\n\n", b"--", b"=?", b"\x00", b"\xff\xfe", b":",
                                 b"\nContent-Type: multipart/mixed\n", b"=\n", b"<@>"]))
    return data[:at] + junk + data[at:]


MUTATIONS = [flip_bytes, truncate, line_endings, duplicate_header, swap_charset, insert_bytes]


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(raw: bytes) -> None:
    assert_valid(analyze(raw))


@FUZZ
@given(st.lists(st.sampled_from([b"From: ", b"Content-Type: multipart/report; boundary=b",
                                 b"--b", b"--b--", b"\n", b"\n\n", b"Action: failed",
                                 b"Final-Recipient: rfc822; a@example.com", b"Status: 5.1.1",
                                 b"message/delivery-status", b"Content-Type: ", b"=?utf-8?b?",
                                 b"X-Failed-Recipients: ", b"<>", b"@", b"\xe9"]),
                max_size=60).map(b"".join))
def test_mime_shaped_noise(raw: bytes) -> None:
    assert_valid(analyze(raw))


@FUZZ
@given(damaged_samples())
def test_damaged_samples(raw: bytes) -> None:
    assert_valid(analyze(raw))


@FUZZ
@given(damaged_samples())
def test_reader_reads_every_part_of_damaged_samples(raw: bytes) -> None:
    message = parse_message(raw)
    for part in message.walk():
        assert isinstance(part.text, str)
        assert isinstance(part.decoded("subject"), str)
    assert all(isinstance(error, str) for error in message.all_errors)


# --- wide messages: bounded work whatever the number of parts ---------------------------------

def wide_message(parts: int, nested: bool = False) -> bytes:
    """A bounce-looking multipart with `parts` tiny text parts (inside one nested multipart
    when `nested`), the shape a hostile sender uses to make a reader quadratic."""
    body = b"".join(b"--b\nContent-Type: text/plain\n\npart %d\n" % i for i in range(parts))
    inner = b"Content-Type: multipart/mixed; boundary=b\n\n" + body + b"--b--\n"
    if nested:
        inner = b"Content-Type: multipart/mixed; boundary=outer\n\n--outer\n" + inner \
            + b"--outer--\n"
    return b"From: MAILER-DAEMON@example.org\nSubject: Undelivered Mail\n" + inner


def count_parts_made(monkeypatch) -> list[int]:
    """Counts every MIME part the reader builds, at any depth."""
    made = [0]
    real_init = message_module.Part.__init__

    def counting_init(self, *args, **kwargs):
        made[0] += 1
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(message_module.Part, "__init__", counting_init)
    return made


def test_a_hundred_thousand_parts_are_capped_and_the_cap_is_noted(monkeypatch) -> None:
    made = count_parts_made(monkeypatch)
    report = analyze(wide_message(100_000))
    assert_valid(report)
    # Every analyzer walked the message, yet no part was built twice and none past the cap.
    assert made[0] == message_module.MAX_PARTS
    assert any(f"more than {message_module.MAX_PARTS} MIME parts" in e for e in report.errors)


def test_the_cap_counts_parts_at_every_depth(monkeypatch) -> None:
    made = count_parts_made(monkeypatch)
    message = parse_message(wide_message(5000, nested=True))
    parts = list(message.walk())
    assert len(parts) == made[0] == message_module.MAX_PARTS
    assert len({id(part) for part in parts}) == len(parts)  # each part visited once
    assert any("MIME parts" in e for e in message.all_errors)


def test_below_the_cap_every_part_is_read_in_order() -> None:
    count = message_module.MAX_PARTS - 2  # the root and the multipart itself are parts too
    message = parse_message(wide_message(count))
    texts = [part.text.strip() for part in text_parts(message)]
    assert texts == [f"part {i}" for i in range(count)]
    assert not any("MIME parts" in e for e in message.all_errors)
    found = message.find_outside_attached("text/html")
    assert found is None  # searched all of them, and there is none


def test_walks_of_a_wide_tree_visit_each_part_once() -> None:
    """text_parts, find_outside_attached and walk read a wide, deep tree (built here without
    the reader's cap) in document order, each part looked at once."""

    class Node:
        looks = 0

        def __init__(self, ctype: str, parts: list | None = None) -> None:
            self._ctype, self.parts = ctype, parts or []

        @property
        def content_type(self) -> str:
            Node.looks += 1
            return self._ctype

    leaves = [Node("text/plain") for _ in range(100_000)]
    tree = Node("multipart/mixed", [Node("multipart/alternative", leaves[:50_000]),
                                    *leaves[50_000:]])
    assert message_module.Part.find_outside_attached(tree, "text/html") is None
    assert Node.looks <= 2 * (len(leaves) + 2)  # at most two looks per part
    Node.looks = 0
    found = text_module._text_parts(tree)
    assert found == leaves  # in document order
    assert Node.looks <= len(leaves) + 2


def test_no_line_marker_reads_past_its_line() -> None:
    """A marker tried at every line start that may run over blank lines (a leading \\s*) costs
    the rest of the text at each line: quadratic on a notice of blank lines."""
    pattern = text_module.ORIGINAL_MARKERS.pattern
    alternatives = top_level_alternatives(pattern[len("^(?:"):pattern.rindex(")")])
    assert len(alternatives) > 10
    assert not [a for a in alternatives if a.startswith(("\\s", "[\\s"))]
