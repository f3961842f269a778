"""Formats' pre-checks (`formats._lib.precheck`): a message a format's pre-check rejects is one its
`analyze` returns None for, shown on every sample message and, when present, every corpus
message (never copied here: read in place); and the pre-checks do reject ordinary mail."""

from __future__ import annotations

from pathlib import Path

import pytest

from imap_bouncer.analysis import formats, origin
from imap_bouncer.analysis.formats._lib.precheck import Precheck, lowered_sender
from imap_bouncer.analysis.message import parse_message

SAMPLES = Path(__file__).resolve().parent / "samples"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "messages"
CHECKED = [module for module in formats.KNOWN if getattr(module, "PRECHECK", None)]


def message_files() -> list[Path]:
    found = list(SAMPLES.rglob("*.eml"))
    if CORPUS.is_dir():
        found += [p for p in CORPUS.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return sorted(found)


def test_formats_declare_prechecks() -> None:
    assert len(CHECKED) >= 15
    assert all(isinstance(module.PRECHECK, Precheck) for module in CHECKED)


@pytest.mark.parametrize("path", message_files(), ids=lambda p: p.name)
def test_rejected_means_not_claimed(path: Path) -> None:
    message = parse_message(path.read_bytes())
    wrapped = origin.report_passed_on_by_list(message)
    for subject in (message, wrapped) if wrapped is not None else (message,):
        sender = lowered_sender(subject)
        for module in CHECKED:
            if not module.PRECHECK.admits(subject, sender):
                assert module.analyze(subject) is None, module.NAME


PERSON = (b"From: Ann Example <ann@example.com>\nTo: bob@example.org\nSubject: lunch\n"
          b"Message-ID: <1@example.com>\n\nSee you at noon.\n")


def test_ordinary_mail_is_rejected_by_sender_and_header_checks() -> None:
    message = parse_message(PERSON)
    sender = lowered_sender(message)
    rejecting = {m.NAME for m in CHECKED if not m.PRECHECK.admits(message, sender)}
    assert {"yahoo", "gmail", "amazonses", "mcafee", "fml"} <= rejecting


def test_admitted_by_a_word_or_a_header() -> None:
    check = Precheck(from_words=("mailer-daemon",), headers=frozenset({"x-sample-mark"}))
    daemon = parse_message(b"From: MAILER-DAEMON@example.net\nSubject: x\n\nbody\n")
    marked = parse_message(b"From: ann@example.com\nX-Sample-Mark: 1\nSubject: x\n\nbody\n")
    person = parse_message(PERSON)
    assert check.admits(daemon, lowered_sender(daemon))
    assert check.admits(marked, lowered_sender(marked))
    assert not check.admits(person, lowered_sender(person))


def test_non_ascii_sender_is_always_admitted() -> None:
    # Case-insensitive patterns fold the Kelvin sign and others to ASCII letters: a guard
    # that is a pattern may match a sender that holds none of the words.
    message = parse_message("From: MAİLER-DAEMON@example.net\n\nbody\n".encode())
    assert lowered_sender(message) is None
    assert Precheck(from_words=("mailer-daemon",)).admits(message, None)
