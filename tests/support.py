"""Helpers the test modules share: where the project's own sample messages live."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).parent
SAMPLES = TESTS / "samples"
BASICS = SAMPLES / "basics"  # one sample of each kind, and broken input
REPO = TESTS.parent


def sample(name: str) -> bytes:
    """The raw bytes of one of the project's basic sample messages (tests/samples/basics)."""
    return (BASICS / name).read_bytes()


def sample_names() -> list[str]:
    return sorted(path.name for path in BASICS.glob("*.eml"))
