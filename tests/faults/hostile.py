"""A few hostile message shapes for the fault suite's content row, kept modest in size so
that the row runs in CI in seconds (bench/faults.py can scale them up). Engineer A's
generator (tests/hostile_mail.py) is meant to replace this list later: `shapes` is the one
place the row takes its messages from.

Every message ends in "[test message N]" (service_support.numbered), N its index, so that
the invariants find it in whatever folder it lands.
"""

from __future__ import annotations

from service_support import numbered

DSN_HEAD = (b"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.org\r\n"
            b"Subject: Undelivered Mail Returned to Sender\r\n"
            b"Message-ID: <hostile-%d@mx.example.net>\r\nMIME-Version: 1.0\r\n")


def _dsn(number: int, status_part: bytes, subject_extra: bytes = b"") -> bytes:
    return (DSN_HEAD % number + subject_extra +
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n"
            b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
            b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.example.net\r\n\r\n" + status_part +
            b"\r\n--b--\r\n")


def many_parts(number: int, parts: int) -> bytes:
    body = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i
                    for i in range(parts))
    return numbered(DSN_HEAD % number +
                    b"Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n" + body +
                    b"--p--\r\n", number)


def nested_parts(number: int, depth: int) -> bytes:
    opening = b"".join(b"--n%d\r\nContent-Type: multipart/mixed; boundary=\"n%d\"\r\n\r\n"
                       % (i, i + 1) for i in range(depth))
    closing = b"".join(b"--n%d--\r\n" % i for i in reversed(range(depth + 1)))
    return numbered(DSN_HEAD % number +
                    b"Content-Type: multipart/mixed; boundary=\"n0\"\r\n\r\n" + opening +
                    closing, number)


def huge_header(number: int, size: int) -> bytes:
    return numbered(DSN_HEAD % number + b"X-Huge: " + b"a" * size + b"\r\n\r\nbody\r\n",
                    number)


def folded_header(number: int, lines: int) -> bytes:
    return numbered(DSN_HEAD % number + b"X-Folded: start" + b"\r\n x" * lines +
                    b"\r\n\r\nbody\r\n", number)


def encoded_words(number: int, words: int) -> bytes:
    subject = b" ".join(b"=?x-unknown-%d?B?QUJD?=" % (i % 50) for i in range(words))
    return numbered(DSN_HEAD.replace(b"Subject: Undelivered", b"X-Subject: Undelivered")
                    % number + b"Subject: " + subject + b"\r\n\r\nbody\r\n", number)


def controls(number: int) -> bytes:
    """CR, LF, ESC, BEL, BS and NUL in the fields and the status part."""
    nasty = b"\x1b[2J\x1b]0;owned\x07\x08\x00\rBcc: victim@example.com"
    status = (b"Final-Recipient: rfc822; a\x1b[31m@example.com\r\n"
              b"Action: failed\r\nStatus: 5.1.1\r\n"
              b"Diagnostic-Code: smtp; 550 =?utf-8?Q?x=0D=0ABcc:_victim@example.com?= " +
              nasty + b"\r\n")
    return numbered(_dsn(number, status, b"X-Note: " + nasty + b"\r\n"), number)


def zero_bytes(number: int, size: int) -> bytes:
    status = (b"Final-Recipient: rfc822; z\x00ero@example.com\r\nAction: failed\x00\r\n"
              b"Status: 5.1.1\r\n" + b"\x00" * size + b"\r\n")
    return numbered(_dsn(number, status), number)


def many_recipients(number: int, recipients: int) -> bytes:
    status = b"".join(b"Final-Recipient: rfc822; r%d@example.com\r\nAction: failed\r\n"
                      b"Status: 5.1.1\r\n\r\n" % i for i in range(recipients))
    return numbered(_dsn(number, status), number)


def shapes(scale: float = 1.0) -> list[tuple[str, bytes]]:
    """(name, raw) of each shape; `scale` multiplies the sizes (1: CI, modest)."""
    def n(value: int) -> int:
        return max(1, int(value * scale))
    makers = [
        (f"{n(20_000)} parts", lambda i: many_parts(i, n(20_000))),
        (f"{n(200)} nested multiparts", lambda i: nested_parts(i, n(200))),
        (f"{n(2_000_000)}-byte header line", lambda i: huge_header(i, n(2_000_000))),
        (f"header folded {n(200_000)} times", lambda i: folded_header(i, n(200_000))),
        (f"{n(50_000)} unknown-charset encoded words", lambda i: encoded_words(i, n(50_000))),
        ("CR/LF, ESC, BEL, BS, NUL in fields", controls),
        (f"{n(100_000)} zero bytes in a status part", lambda i: zero_bytes(i, n(100_000))),
        (f"{n(10_000)} recipients", lambda i: many_recipients(i, n(10_000))),
    ]
    return [(name, make(index)) for index, (name, make) in enumerate(makers)]


def recipients(name: str) -> int | None:
    """How many failed recipients the shape of this name names (None: not that shape)."""
    count, _, rest = name.partition(" ")
    return int(count) if rest == "recipients" else None
