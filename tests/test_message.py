"""The lenient MIME reader: what it reads from well-formed mail, and that bad mail never
makes it raise but leaves a readable rest."""

from __future__ import annotations

import base64

import pytest
from support import sample

from imap_bouncer.analysis.message import (
    MAX_DEPTH,
    content_type_params,
    decode_base64,
    decode_bytes,
    decode_words,
    header_block_of,
    parse_field_groups,
    parse_message,
    text_codec,
)

# --- headers ------------------------------------------------------------------------------


def test_headers_are_unfolded_and_names_lower_cased() -> None:
    message = parse_message(
        b"Subject: a long\n\tsubject line\n   folded twice\nX-Empty:\nFROM: jo@example.com\n\nbody")
    assert message.get("subject") == "a long subject line folded twice"
    assert message.get("from") == message.get("From") == "jo@example.com"
    assert message.get("x-empty") == ""
    assert "x-empty" in message and "x-missing" not in message
    assert message.get("x-missing", "none") == "none"


def test_repeated_headers_keep_their_order() -> None:
    message = parse_message(b"Received: one\nX-A: a\nReceived: two\n\n")
    assert message.get("received") == "one"
    assert message.get_all("Received") == ["one", "two"]
    assert message.get_all("x-missing") == []


def test_junk_lines_among_headers_are_skipped() -> None:
    raw = (b"From jo@example.com Sat Apr 13 10:00:00 2024\n"  # an mbox separator
           b"\tcontinuation of nothing\nnot a header line\nSubject: kept\n: no name\n\nbody")
    message = parse_message(raw)
    assert message.headers == [("subject", "kept")]
    assert message.text == "body"


def test_headers_without_body() -> None:
    message = parse_message(b"Subject: cut off before the body")
    assert message.get("subject") == "cut off before the body"
    assert message.text == ""


def test_eight_bit_headers_of_mixed_charsets() -> None:
    raw = ("Subject: Grüße\nFrom: Jörg <j@example.net>\n".encode()
           + b"Organization: Caf\xe9 M\xfcller\n\n")
    message = parse_message(raw)
    assert message.get("subject") == "Grüße"  # UTF-8 stays UTF-8 next to a Latin-1 header
    assert message.get("organization") == "Café Müller"


@pytest.mark.parametrize(("value", "expected"), [
    ("=?UTF-8?B?Tm9uIHJlbWlzIDog?= =?UTF-8?Q?Confirmation?=", "Non remis : Confirmation"),
    ("=?iso-8859-1?q?J=F6rg_M=FCller?= <j@example.net>", "Jörg Müller <j@example.net>"),
    ("Re: =?utf-8?q?caf=C3=A9?= and more", "Re: café and more"),
    ("=?utf-8?b?w6k=?=\n =?utf-8?b?w6k=?=", "éé"),  # white space between words is dropped
    ("=?utf-8?b?4oI=?= =?utf-8?b?rA==?=", "€"),  # one character split over two words
    ("=?utf-8*en?q?language_tag?=", "language tag"),  # RFC 2231 language suffix
    ("=?x-unknown?q?caf=E9?=", "café"),  # unknown charset: UTF-8, then Latin-1
    ("=?utf-8?b?Y2Fmw6k?=", "café"),  # missing padding
    ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
    ("plain text", "plain text"),
    ("", ""),
])
def test_encoded_words(value: str, expected: str) -> None:
    assert decode_words(value) == expected


def test_decoded_header() -> None:
    message = parse_message(sample("encoded-subject.eml"))
    assert message.decoded("subject") == "Non remis : Confirmation de votre commande"
    assert message.decoded("from").startswith("Système de messagerie")


# --- content type and parameters --------------------------------------------------------------


@pytest.mark.parametrize(("value", "ctype", "params"), [
    ('Multipart/Report; report-type=delivery-status;\tboundary="a;b c"',
     "multipart/report", {"report-type": "delivery-status", "boundary": "a;b c"}),
    ("text/plain; charset = iso-8859-1 ; format=flowed",
     "text/plain", {"charset": "iso-8859-1", "format": "flowed"}),
    ('text/plain; name="say \\"hi\\""', "text/plain", {"name": 'say "hi"'}),
    ('text/plain; charset="unterminated', "text/plain", {"charset": "unterminated"}),
    ("multipart/mixed boundary=xyz", "multipart/mixed", {"boundary": "xyz"}),  # no ';'
    ("text/plain; CHARSET=UTF-8; charset=latin1", "text/plain", {"charset": "UTF-8"}),
    ("multipart/mixed; boundary*0=abc; boundary*1=\"def\"", "multipart/mixed",
     {"boundary": "abcdef"}),  # RFC 2231 continuations
    ("application/pdf; name*=utf-8''%C3%A9t%C3%A9.pdf", "application/pdf",
     {"name": "été.pdf"}),  # RFC 2231 charset and percent escapes
    ("application/pdf; name*0*=iso-8859-1''caf%E9; name*1=.pdf", "application/pdf",
     {"name": "café.pdf"}),
    ("", "text/plain", {}),
    (";;;", "text/plain", {}),
])
def test_content_type_params(value: str, ctype: str, params: dict[str, str]) -> None:
    assert content_type_params(value) == (ctype, params)


def test_default_and_broken_content_types() -> None:
    assert parse_message(b"Subject: x\n\nbody").content_type == "text/plain"
    assert parse_message(b"Content-Type: garbage\n\nbody").content_type == "text/plain"
    digest = parse_message(b"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: in\n\n"
                           b"hi\n--d--\n")
    assert digest.parts[0].content_type == "message/rfc822"  # RFC 2046 5.1.5


# --- charsets -------------------------------------------------------------------------------


@pytest.mark.parametrize(("charset", "codec"), [
    ("UTF-8", "utf-8"), ('"utf8"', "utf-8"), ("us-ascii", "ascii"), ("ks_c_5601-1987", "cp949"),
    ("gb2312", "gb18030"), ("x-unknown", ""), ("no-such-charset", ""), ("", ""),
    ("base64", ""), ("zlib", ""), ("rot13", ""), ("utf-8\x00", ""),  # not text encodings
])
def test_text_codec(charset: str, codec: str) -> None:
    assert text_codec(charset) == codec


@pytest.mark.parametrize(("data", "charset", "text"), [
    ("grüße".encode(), "utf-8", "grüße"),
    ("grüße".encode("latin-1"), "iso-8859-1", "grüße"),
    ("grüße".encode(), "us-ascii", "grüße"),  # declared ASCII, sent UTF-8
    ("grüße".encode("latin-1"), "us-ascii", "grüße"),  # declared ASCII, sent Latin-1
    ("grüße".encode(), "x-no-such", "grüße"),
    ("grüße".encode(), "base64", "grüße"),  # a codec, but not a charset: must not raise
    ("日本語".encode("iso-2022-jp"), "ISO-2022-JP", "日本語"),
    (b"\xff\xfe", "shift_jis", "ÿþ"),  # undecodable in the declared charset
])
def test_decode_bytes(data: bytes, charset: str, text: str) -> None:
    assert decode_bytes(data, charset) == text


def test_part_text_uses_its_charset() -> None:
    raw = b"Content-Type: text/plain; charset=iso-8859-1\n\nM\xfcller"
    assert parse_message(raw).text == "Müller"
    raw = b"Content-Type: text/plain; charset=zlib\n\nplain"
    assert parse_message(raw).text == "plain"


# --- transfer encodings -------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "payload"), [
    (base64.encodebytes(b"hello world"), b"hello world"),
    (b"aGVsbG8gd29ybGQ", b"hello world"),  # padding missing (a cut message)
    (b"aGVsbG8gd29ybGQ===", b"hello world"),  # too much padding
    (b"aGVsbG8g\n d29y\tbGQ=\n\n-- \n!!!", b"hello world"),  # junk is dropped
    (b"aGVsbG8=\nIHdvcmxk\n", b"hello world"),  # two encoded pieces joined
    (b"aGVsbG8gd29ybGQ=A", b"hello world"),  # one stray character
    (b"", b""),
])
def test_base64(body: bytes, payload: bytes) -> None:
    assert decode_base64(body) == payload
    raw = b"Content-Transfer-Encoding: base64\n\n" + body
    assert parse_message(raw).payload == payload


def test_quoted_printable() -> None:
    raw = (b"Content-Type: text/plain; charset=utf-8\n"
           b"Content-Transfer-Encoding: Quoted-Printable\n\n"
           b"caf=C3=A9 soft=\nbreak, bad =ZZ escape, trailing =")
    assert parse_message(raw).text == "café softbreak, bad =ZZ escape, trailing "


@pytest.mark.parametrize("header", ['"base64"', "BASE64 ", "base64; junk"])
def test_transfer_encoding_with_junk(header: str) -> None:
    raw = f"Content-Transfer-Encoding: {header}\n\naGVsbG8=\n".encode()
    assert parse_message(raw).payload == b"hello"


def test_unknown_transfer_encoding_leaves_the_body() -> None:
    raw = b"Content-Transfer-Encoding: x-uuencode\n\nbegin 644"
    assert parse_message(raw).payload == b"begin 644"


# --- multiparts ---------------------------------------------------------------------------------

NESTED = b"""\
Content-Type: multipart/mixed; boundary="outer"

preamble, ignored
--outer
Content-Type: multipart/alternative; boundary="outer-inner"

--outer-inner
Content-Type: text/plain

plain
--outer-inner
Content-Type: text/html

<p>html</p>
--outer-inner--
--outer
Content-Type: message/rfc822

Subject: attached
Content-Type: multipart/mixed; boundary=deep

--deep
Content-Type: text/plain

deepest
--deep--

--outer--
epilogue, ignored
"""


def test_nested_multiparts() -> None:
    message = parse_message(NESTED)
    types = [part.content_type for part in message.walk()]
    assert types == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html",
                     "message/rfc822", "multipart/mixed", "text/plain"]
    alternative, attached = message.parts
    assert [p.text for p in alternative.parts] == ["plain", "<p>html</p>"]
    assert attached.parts[0].get("subject") == "attached"
    assert message.find("text/html").text == "<p>html</p>"
    assert message.find("message/delivery-status") is None
    assert message.all_errors == []


def test_a_longer_boundary_is_not_a_delimiter() -> None:
    raw = (b"Content-Type: multipart/mixed; boundary=abc\n\n--abc\n\none\n--abcdef\nstill one\n"
           b"--abc  \n\ntwo\n--abc--")
    assert [part.text for part in parse_message(raw).parts] == ["one\n--abcdef\nstill one", "two"]


def test_part_without_headers_and_empty_part() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nno headers\n--b\n--b--\n"
    parts = parse_message(raw).parts
    assert [(p.headers, p.text) for p in parts] == [([], "no headers"), ([], "")]


def test_multipart_without_boundary_parameter_is_guessed() -> None:
    message = parse_message(sample("no-boundary.eml"))
    assert [p.content_type for p in message.parts] == ["text/plain", "message/delivery-status"]
    assert message.all_errors == []


def test_wrong_boundary_parameter_is_guessed() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=wrong\n\n--right-one\n\nbody\n--right-one--\n"
    assert [p.text for p in parse_message(raw).parts] == ["body"]


def test_multipart_with_no_parts_at_all() -> None:
    message = parse_message(b"Content-Type: multipart/mixed; boundary=b\n\nno delimiter here")
    assert message.parts == []
    assert message.all_errors == ["multipart boundary not found"]
    message = parse_message(b"Content-Type: multipart/mixed\n\nno delimiter here")
    assert message.all_errors == ["multipart without a boundary"]


def test_truncated_multipart_keeps_what_arrived() -> None:
    message = parse_message(sample("truncated.eml"))
    notice, status = message.parts
    assert "could not" in notice.text
    groups = parse_field_groups(status.text)
    assert dict(groups[1])["diagnostic-code"] == "smtp; 550 5.1.1 <max@example.com>... User unkn"
    cut_at_delimiter = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nfirst\n--b"
    assert [p.text for p in parse_message(cut_at_delimiter).parts] == ["first"]


def test_nesting_stops_at_max_depth() -> None:
    raw = b"Subject: leaf\n\nleaf"
    for level in range(MAX_DEPTH + 4):
        raw = (b"Content-Type: message/rfc822\nX-Level: %d\n\n" % level) + raw
    depth = sum(1 for _ in parse_message(raw).walk())
    assert depth == MAX_DEPTH + 1


def test_attached_message_with_its_own_line_endings() -> None:
    inner = base64.encodebytes(b"Subject: inner\r\nX-A: 1\r\n\r\nbody\r\n")
    raw = b"Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n" + inner
    attached = parse_message(raw).parts[0]
    assert attached.get("subject") == "inner"
    assert attached.text == "body\n"


# --- line endings -------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
def test_line_endings(newline: bytes) -> None:
    raw = NESTED.replace(b"\n", newline)
    message = parse_message(raw)
    assert [p.content_type for p in message.walk()][-1] == "text/plain"
    assert message.find("text/html").text == "<p>html</p>"


def test_leading_blank_lines_are_skipped() -> None:
    assert parse_message(b"\r\n\r\nSubject: late\r\n\r\nbody").get("subject") == "late"


# --- delivery-status fields and quoted headers ----------------------------------------------------


def test_field_groups() -> None:
    text = ("Reporting-MTA: dns; mx.example.net\n\n  Final-Recipient: rfc822; a@example.com\n"
            "  Action: failed\n \nFinal-Recipient: rfc822; b@example.com\nDiagnostic-Code: smtp;\n"
            "  550 no such\n  user\n\n\n")
    groups = parse_field_groups(text)
    assert len(groups) == 3
    assert groups[2] == [("final-recipient", "rfc822; b@example.com"),
                         ("diagnostic-code", "smtp; 550 no such user")]


def test_header_block_of_quoted_text() -> None:
    text = "\n\nFrom: a@example.org\nSubject: quoted\n  and folded\n\nbody: not a header"
    assert header_block_of(text) == [("from", "a@example.org"), ("subject", "quoted and folded")]


# --- the reader never raises ----------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"", b"\n", b"\x00\xff" * 100, b":", b"Content-Type:", b"Content-Type: multipart/x; boundary=",
    b"Content-Type: multipart/mixed; boundary=\"\"\n\n--\n--",
    b"Content-Type: message/rfc822\n\n", b"Content-Transfer-Encoding: base64\n\n=",
    b"Content-Type: text/plain; charset=\"\xff\xfe\"\n\n\xff",
    b"Subject: =?utf-8?b?@@@?= =?\xff?q?x?=\n\n",
])
def test_never_raises(raw: bytes) -> None:
    message = parse_message(raw)
    for part in message.walk():
        part.text, part.payload, part.params, part.decoded("subject")
    assert isinstance(message.all_errors, list)


def test_has_name_starting_reads_names_not_values() -> None:
    part = parse_message(b"X-Mimecast-Spam-Score: 1\nSubject: x-mc-note\nX-MC-Unique: 7\n\nbody\n")
    assert part.has_name_starting("x-mimecast")
    assert part.has_name_starting("nope", "x-mc-")
    assert not part.has_name_starting("mimecast")  # a name's start only
    assert not parse_message(b"Subject: x-mc-note\n\nbody\n").has_name_starting("x-mc-")
