"""What the chain does with an analyzer's findings, whatever the format: recipients merged,
message identifiers never taken for recipients."""

from __future__ import annotations

from imap_bouncer import analysis
from imap_bouncer.analysis.findings import Failure, Findings
from imap_bouncer.report import Action, Kind


def test_a_message_id_is_never_a_recipient(monkeypatch) -> None:
    """A Message-ID alone on a line looks like "<local@host>"; a reader may take it."""
    original_id = "<f81d4fae-7dec-11d0-a765-00a0c91e6bf6@mail.example.org>"

    def reader(message):
        return Findings(kind=Kind.BOUNCE, analyzer="test", evidence="test", failures=[
            Failure(address="ann@example.com", action=Action.FAILED,
                    diagnostic="550 5.1.1 User unknown"),
            Failure(address=original_id.strip("<>"), action=Action.FAILED),
            Failure(address="20240101.abc@mx.example.net", action=Action.FAILED),
        ], original_headers=[("message-id", original_id)])

    monkeypatch.setattr(analysis, "CHAIN", (("test", reader),))
    raw = (b"From: MAILER-DAEMON@mx.example.net\nMessage-ID: <20240101.abc@mx.example.net>\n"
           b"Subject: failure\n\nbody\n")
    report = analysis.analyze(raw)
    assert report.original.message_id == original_id
    assert [r.address for r in report.recipients] == ["ann@example.com"]
