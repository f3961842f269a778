"""Published replies: the classifier against what providers, vendors and RFCs document.

The rows live in tests/replies/published.csv, each with the source it came from, so the reason
tables are checked against text that is independent of the development corpus. To add a case,
add a row there (the conventions are written at the top of the file).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import NamedTuple

import pytest

from imap_bouncer.analysis.reasons import classify
from imap_bouncer.report import ADDRESS_REASONS, Reason

TABLE = Path(__file__).parent / "replies" / "published.csv"
COLUMNS = ["status", "smtp_code", "reason", "permanent", "reply", "source"]


class Published(NamedTuple):
    line: int
    status: str
    smtp_code: str
    reason: str
    permanent: str
    reply: str
    source: str


def _load() -> list[Published]:
    """The table's rows with their line numbers; "#" lines are comments."""
    numbered = [(n, text) for n, text in enumerate(TABLE.read_text("utf-8").splitlines(), 1)
                if text.strip() and not text.startswith("#")]
    reader = csv.reader(text for _, text in numbered)
    header = next(reader)
    assert header == COLUMNS, header
    rows = []
    for (line, _), fields in zip(numbered[1:], reader, strict=True):
        assert len(fields) == len(COLUMNS), f"line {line}: {fields}"
        rows.append(Published(line, *(field.strip() for field in fields)))
    return rows


ROWS = _load()


def _source_of(source: str) -> str:
    """The document a source names: an RFC, a site, or a product manual."""
    rfc = re.match(r"RFC \d+", source)
    if rfc:
        return rfc.group(0)
    site = re.match(r"https?://(?:www\.)?([^/]+)", source)
    if site:
        return site.group(1).lower()
    return source.split(":")[0].split("(")[0].strip().lower()


def test_table_is_large_and_every_row_names_its_source():
    assert len(ROWS) >= 300
    assert all(row.source for row in ROWS), [row.line for row in ROWS if not row.source]
    assert len({_source_of(row.source) for row in ROWS}) >= 20


def test_rows_use_the_vocabulary_and_the_permanent_rule():
    """`permanent` is only for a bad address: never for a refused message, whatever the code."""
    for row in ROWS:
        reason = Reason(row.reason)  # raises on a word outside the vocabulary
        assert row.permanent in ("true", "false"), row
        klass = (row.status or row.smtp_code)[:1]
        expected = reason in ADDRESS_REASONS and (reason is not Reason.NOTACCEPT or klass == "5")
        assert (row.permanent == "true") == expected, f"line {row.line}: {row}"


@pytest.mark.parametrize("row", ROWS, ids=[f"line{row.line}" for row in ROWS])
def test_published_reply(row: Published):
    verdict = classify(status=row.status, smtp_code=row.smtp_code, diagnostic=row.reply)
    got = (verdict.reason.value, verdict.permanent)
    assert got == (row.reason, row.permanent == "true"), (
        f"line {row.line}: {row.reply!r} from {row.source}: got {got} ({verdict.evidence})")
