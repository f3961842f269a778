"""Hostile message shapes: what an attacker can put in the bounce mailbox within the size cap.

One generator for everyone who needs such mail: tests/test_hostile.py (small sizes that still
show linear behaviour and caps), bench/hostile.py (sizes up to the default 25 MB cap) and the
fault suite. Every function returns the raw bytes of one message (CRLF line endings, as IMAP
delivers them); sizes are parameters. `SHAPES` names each shape with its full-size call.

Nothing here comes from real mail: the addresses are under example.* (RFC 2606).
"""

from __future__ import annotations

from collections.abc import Callable

HEAD = (b"From: MAILER-DAEMON@mx.example.net\r\n"
        b"To: bounces@example.org\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
        b"Message-ID: <hostile@mx.example.net>\r\n"
        b"Auto-Submitted: auto-replied\r\n"
        b"MIME-Version: 1.0\r\n")

ORIGINAL = (b"From: sender@example.org\r\nTo: someone@example.com\r\n"
            b"Subject: hello\r\nMessage-ID: <original@example.org>\r\n\r\nhello\r\n")


def report(status: bytes, notice: bytes = b"Delivery failed.\r\n", extra_headers: bytes = b"",
           status_type: bytes = b"message/delivery-status") -> bytes:
    """A multipart/report of three parts: notice, status fields, the original message."""
    return (HEAD + extra_headers +
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
            b"\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + notice +
            b"--b\r\nContent-Type: " + status_type + b"\r\n\r\n"
            b"Reporting-MTA: dns; mx.example.net\r\n\r\n" + status +
            b"\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n" + ORIGINAL +
            b"--b--\r\n")


def recipient_group(address: bytes, status: bytes = b"5.1.1",
                    diagnostic: bytes = b"smtp; 550 5.1.1 no such user") -> bytes:
    return (b"Final-Recipient: rfc822; " + address + b"\r\nAction: failed\r\n"
            b"Status: " + status + b"\r\nDiagnostic-Code: " + diagnostic + b"\r\n")


def recipient_address(index: int) -> str:
    """The address `many_recipients` writes as its `index`th recipient."""
    return f"r{index}@example.com"


def many_recipients(count: int) -> bytes:
    """A delivery-status part with `count` recipient groups (about 100 bytes each)."""
    groups = b"\r\n".join(recipient_group(recipient_address(i).encode())
                          for i in range(count))
    return report(groups)


def many_recipients_named_in_the_notice(count: int) -> bytes:
    """`count` recipient groups without a Diagnostic-Code, each address also on a line of the
    notice: the notice is searched for each recipient's words."""
    groups = b"\r\n".join(b"Final-Recipient: rfc822; " + recipient_address(i).encode() +
                           b"\r\nAction: failed\r\nStatus: 5.0.0\r\n" for i in range(count))
    notice = b"".join(b"<" + recipient_address(i).encode() + b">: host mx.example.com said: "
                      b"550 no\r\n" for i in range(count))
    return report(groups, notice=notice)


def many_parts(count: int) -> bytes:
    """A multipart/mixed of `count` tiny parts (about 36 bytes each: 700,000 fill 25 MB)."""
    body = b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n" * count
    return (HEAD + b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n' + body +
            b"--p--\r\n")


def many_typed_parts(count: int) -> bytes:
    """`count` parts each declaring a type and a charset, the text-scanning analyzers' work."""
    body = b"--p\r\nContent-Type: text/plain; charset=x-bad\r\n\r\nline\r\n" * count
    return (HEAD + b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n' + body +
            b"--p--\r\n")


def nested_parts(depth: int) -> bytes:
    """Multiparts nested `depth` deep, each holding the next and one text part."""
    opening = b"".join(
        b'--n%d\r\nContent-Type: multipart/mixed; boundary="n%d"\r\n\r\n' % (i, i + 1)
        for i in range(depth))
    closing = b"".join(b"--n%d\r\n\r\ntext %d\r\n--n%d--\r\n" % (i, i, i)
                       for i in reversed(range(depth + 1)))
    return HEAD + b'Content-Type: multipart/mixed; boundary="n0"\r\n\r\n' + opening + closing


def nested_messages(depth: int) -> bytes:
    """message/rfc822 inside message/rfc822, `depth` deep."""
    inner = ORIGINAL
    for _ in range(depth):
        inner = (b"From: relay@example.net\r\nContent-Type: message/rfc822\r\n\r\n" + inner)
    return HEAD + b"Content-Type: message/rfc822\r\n\r\n" + inner


def long_header(size: int) -> bytes:
    """One header line of `size` bytes (no folding), then a short notice."""
    return (HEAD + b"X-Long: " + b"a" * size + b"\r\n\r\nDelivery failed.\r\n")


def long_subject(size: int) -> bytes:
    """A Subject of `size` bytes: every analyzer reads the subject."""
    return (HEAD.replace(b"Subject:", b"X-Old-Subject:") + b"Subject: Undeliverable " +
            b"a" * size + b"\r\n\r\nDelivery failed.\r\n")


def folded_header(lines: int) -> bytes:
    """One header folded over `lines` continuation lines (4 bytes each)."""
    return (HEAD + b"X-Folded: start" + b"\r\n x" * lines + b"\r\n\r\nDelivery failed.\r\n")


def many_headers(count: int) -> bytes:
    """`count` short header fields."""
    return HEAD + b"X-H: v\r\n" * count + b"\r\nDelivery failed.\r\n"


def encoded_words(count: int) -> bytes:
    """A Subject of `count` RFC 2047 words in unknown charsets (each a different label)."""
    words = b" ".join(b"=?x-unknown-%d?B?QUJD?=" % (i % 1000) for i in range(count))
    return (HEAD.replace(b"Subject:", b"X-Old-Subject:") + b"Subject: " + words +
            b"\r\n\r\nDelivery failed.\r\n")


def encoded_words_from(count: int) -> bytes:
    """The original's From made of `count` encoded words: decoded when the report is built."""
    words = b" ".join(b"=?x-bogus?Q?a?=" for _ in range(count))
    original = b"From: " + words + b"\r\nTo: someone@example.com\r\n\r\nhi\r\n"
    return (HEAD + b'Content-Type: multipart/report; report-type=delivery-status; '
            b'boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n'
            b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.example.net\r\n\r\n" +
            recipient_group(b"someone@example.com") +
            b"\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n" + original + b"--b--\r\n")


def long_address(length: int) -> bytes:
    """A recipient whose address has a local part of `length` characters."""
    return report(recipient_group(b"x" * length + b"@example.com"))


def zero_bytes(size: int) -> bytes:
    """NUL bytes in headers, the status fields and `size` of them in the notice."""
    status = (b"Final-Recipient: rfc822; z\x00ero@example.com\r\nAction: failed\x00\r\n"
              b"Status: 5.1.1\r\n")
    return report(status, notice=b"\x00" * size + b"\r\n",
                  extra_headers=b"X-Zero: a\x00b\r\n")


def bad_charsets(count: int) -> bytes:
    """`count` text parts in charsets that do not exist or are not text codecs."""
    charsets = (b"x-nothing", b"base64", b"rot13", b"zlib", b"utf-99", b"\"\"", b"'", b"%s")
    body = b"".join(b"--p\r\nContent-Type: text/plain; charset=" + charsets[i % len(charsets)] +
                    b"\r\nContent-Transfer-Encoding: base64\r\n\r\n/////w==\r\n"
                    for i in range(count))
    return (HEAD.replace(b"Subject: Undelivered", b"Subject: =?zlib?B?eJw=?= Undelivered") +
            b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n' + body + b"--p--\r\n")


# Everything a terminal or a header parser could act on: CSI clear screen, an OSC title, BEL,
# BS, NUL, a bare CR, DEL, a C1 CSI, and a CR LF that would start a forged header line.
CONTROLS = b"\x1b[2J\x1b]0;owned\x07\x08\x00\rX\x7f\xc2\x9b31m\r\nBcc: victim@example.com"


def controls_everywhere() -> bytes:
    """Control characters in every field a human reads: headers, status fields, the
    original's headers, encoded words that decode to controls, and the notice."""
    encoded = b"=?utf-8?Q?=1B[31m=07=08=00=0D=0ABcc:_victim@example.com?="
    status = (b"Final-Recipient: rfc822; a\x1b[31m\x08@example.com\r\n"
              b"Action: failed\r\nStatus: 5.1.1\r\n"
              b"Remote-MTA: dns; mx\x1b]0;t\x07.example.com\r\n"
              b"Diagnostic-Code: smtp; 550 " + encoded + b" " + CONTROLS.replace(b"\r\n", b" ")
              + b"\r\n\r\n" +
              recipient_group(b"clean@example.com", diagnostic=b"smtp; 550 5.1.1 " + encoded +
                              b" \x1b[31mno such user\x07\x08\x00\x7f\xc2\x9b"))
    original = (b"From: " + encoded + b" <sender@example.org>\r\nTo: someone@example.com\r\n"
                b"Subject: \x1b[5m" + encoded + b"\r\nMessage-ID: <\x1b[2Jm@example.org>\r\n"
                b"List-Id: \x07list\r\n\r\nhi\r\n")
    return (HEAD.replace(b"Subject: Undelivered", b"Subject: \x1b[2J" + encoded + b" Undelivered")
            + b"Message-ID: <\x1b]0;id\x07@mx.example.net>\r\n"
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
            b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed." + CONTROLS +
            b"\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.example.net\r\n\r\n" + status +
            b"\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n" + original + b"--b--\r\n")


def bare_newlines(size: int) -> bytes:
    """A notice of `size` empty lines of mixed endings (CR, LF, CRLF)."""
    return HEAD + b"\r\n" + b"\r\n\r\n\n\r" * (size // 6)


# Each shape at the size bench/hostile.py measures, all within the default 25 MB cap.
SHAPES: dict[str, Callable[[], bytes]] = {
    "700,000 tiny parts": lambda: many_parts(700_000),
    "200,000 typed parts": lambda: many_typed_parts(200_000),
    "nested multiparts 5,000 deep": lambda: nested_parts(5_000),
    "nested messages 5,000 deep": lambda: nested_messages(5_000),
    "25 MB one-line header": lambda: long_header(25_000_000),
    "25 MB subject": lambda: long_subject(25_000_000),
    "header folded 6,000,000 lines": lambda: folded_header(6_000_000),
    "1,000,000 header fields": lambda: many_headers(1_000_000),
    "1,000,000 unknown-charset words": lambda: encoded_words(1_000_000),
    "500,000 encoded words in original From": lambda: encoded_words_from(500_000),
    "100,000 recipients": lambda: many_recipients(100_000),
    "200,000 recipients": lambda: many_recipients(200_000),
    "100,000 recipients named in the notice": lambda: many_recipients_named_in_the_notice(
        100_000),
    "100,000-character address": lambda: long_address(100_000),
    "24 MB of zero bytes": lambda: zero_bytes(24_000_000),
    "100,000 bad-charset parts": lambda: bad_charsets(100_000),
    "controls in every field": controls_everywhere,
    "24 MB of bare newlines": lambda: bare_newlines(24_000_000),
}
