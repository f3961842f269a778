"""A small, lenient, lazy MIME reader: only what the analyzers need.

Why not the stdlib parser: `email.message_from_bytes` parses every part of every message up
front, is slow with `policy.default` and raises on some malformed headers. Bounce analysis
reads a few headers and one or two parts, so this reader splits headers from bodies, splits
multiparts on demand and decodes a part only when asked. It never raises on bad input: what
it cannot read it leaves empty and notes in `errors`.
"""

from __future__ import annotations

import binascii
import codecs
import re
from email.header import decode_header, make_header
from functools import cached_property

# Bodies above this many bytes are cut before analysis: every format states its verdict near
# the top, and the copy of the original message that follows can be huge.
MAX_PART_BYTES = 512 * 1024
MAX_DEPTH = 8

_PARAM_RE = re.compile(
    r';\s*([A-Za-z0-9_.*!#$%&\'+^`|~-]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;\s]*)', re.S
)
_ENCODED_WORD = "=?"


def normalize_newlines(raw: bytes) -> bytes:
    """CRLF and CR-only line endings become LF, so every reader below sees one kind."""
    if b"\r" not in raw:
        return raw
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Bytes to text with the declared charset, falling back to UTF-8 and then Latin-1."""
    if charset:
        charset = charset.strip().strip('"').lower()
        aliases = {"utf8": "utf-8", "unicode-1-1-utf-7": "utf-7", "ks_c_5601-1987": "cp949",
                   "x-sjis": "shift_jis", "x-unknown": "", "unknown-8bit": "", "us-ascii": "ascii",
                   "gb2312": "gb18030", "gbk": "gb18030", "iso-8859-8-i": "iso-8859-8"}
        charset = aliases.get(charset, charset)
    if charset and charset not in ("ascii", "utf-8"):
        try:
            codecs.lookup(charset)
        except LookupError:
            charset = None
        else:
            try:
                return data.decode(charset)
            except (UnicodeDecodeError, ValueError):
                pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; a broken one is left as it is."""
    if _ENCODED_WORD not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # the stdlib raises many kinds on malformed words
        return value


def split_header_block(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line: (header block, body)."""
    if data.startswith(b"\n"):
        return b"", data[1:]
    end = data.find(b"\n\n")
    if end < 0:
        # No body at all, or a truncated message: everything that looks like a header.
        return data, b""
    return data[:end + 1], data[end + 2:]


def parse_header_lines(block: str) -> list[tuple[str, str]]:
    """Header block text -> [(lower-case name, unfolded value)]; junk lines are skipped."""
    headers: list[tuple[str, str]] = []
    name = ""
    value_lines: list[str] = []
    for line in block.split("\n"):
        if not line:
            continue
        if line[0] in " \t":
            if name:
                value_lines.append(line.strip())
            continue
        if name:
            headers.append((name, " ".join(value_lines)))
            name = ""
        colon = line.find(":")
        if colon <= 0 or " " in line[:colon].strip() or colon > 76:
            continue  # not a header line (an mbox "From " line, garbage)
        name = line[:colon].strip().lower()
        value_lines = [line[colon + 1:].strip()]
    if name:
        headers.append((name, " ".join(value_lines)))
    return headers


def content_type_params(value: str) -> tuple[str, dict[str, str]]:
    """`Content-Type` value -> (lower-case type, parameters with lower-case names)."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(";" + rest):
        val = match.group(2)
        if val.startswith('"'):
            val = val[1:-1] if val.endswith('"') and len(val) > 1 else val[1:]
            val = val.replace('\\"', '"')
        params.setdefault(match.group(1).lower().rstrip("*"), val)
    return main.strip().lower() or "text/plain", params


class Part:
    """One MIME entity: headers, and a body decoded and split only on demand."""

    def __init__(self, data: bytes, depth: int = 0, default_type: str = "text/plain") -> None:
        block, self.raw_body = split_header_block(data)
        self.depth = depth
        self.errors: list[str] = []
        self.headers = parse_header_lines(decode_bytes(block))
        self._default_type = default_type

    # --- headers -----------------------------------------------------------------------
    def get(self, name: str, default: str = "") -> str:
        """The first value of a header, unfolded, encoded words left alone."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    def decoded(self, name: str) -> str:
        """A header's first value with RFC 2047 encoded words decoded."""
        return decode_words(self.get(name))

    def __contains__(self, name: str) -> bool:
        name = name.lower()
        return any(key == name for key, _ in self.headers)

    # --- content type ------------------------------------------------------------------
    @cached_property
    def _content_type(self) -> tuple[str, dict[str, str]]:
        value = self.get("content-type")
        if not value:
            return self._default_type, {}
        ctype, params = content_type_params(value)
        if "/" not in ctype:
            ctype = "text/plain"
        return ctype, params

    @property
    def content_type(self) -> str:
        return self._content_type[0]

    @property
    def params(self) -> dict[str, str]:
        return self._content_type[1]

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    # --- bodies ------------------------------------------------------------------------
    @cached_property
    def payload(self) -> bytes:
        """The body with its Content-Transfer-Encoding undone."""
        body = self.raw_body[:MAX_PART_BYTES]
        encoding = self.get("content-transfer-encoding").strip().lower()
        if encoding == "base64":
            try:
                return binascii.a2b_base64(_fix_base64(body))
            except (binascii.Error, ValueError) as err:
                self.errors.append(f"bad base64 body: {err}")
                return body
        if encoding == "quoted-printable":
            try:
                return binascii.a2b_qp(body)
            except (binascii.Error, ValueError) as err:
                self.errors.append(f"bad quoted-printable body: {err}")
                return body
        return body

    @cached_property
    def text(self) -> str:
        """The body as text, decoded with its charset (leniently)."""
        return decode_bytes(self.payload, self.params.get("charset")).replace("\r", "")

    @cached_property
    def parts(self) -> list[Part]:
        """Child entities: the parts of a multipart, or the message inside message/rfc822."""
        if self.depth >= MAX_DEPTH:
            return []
        ctype = self.content_type
        if ctype.startswith("multipart/"):
            return self._split_multipart()
        if ctype in ("message/rfc822", "message/global"):
            return [Part(normalize_newlines(self.payload).lstrip(b"\n"), self.depth + 1)]
        return []

    def _split_multipart(self) -> list[Part]:
        boundary = self.params.get("boundary", "").encode("latin-1", "replace")
        body = self.raw_body
        if not boundary:
            boundary = _guess_boundary(body)
            if not boundary:
                self.errors.append("multipart without a boundary")
                return []
        delimiter = b"\n--" + boundary
        chunks = (b"\n" + body).split(delimiter)
        if len(chunks) < 2:
            self.errors.append("multipart boundary not found")
            return []
        child_default = "message/rfc822" if self.content_type == "multipart/digest" else "text/plain"
        parts = []
        for chunk in chunks[1:]:
            if chunk.startswith(b"--"):
                break  # the close delimiter: what follows is the epilogue
            newline = chunk.find(b"\n")
            if newline < 0:
                continue
            parts.append(Part(chunk[newline + 1:], self.depth + 1, child_default))
        return parts

    def walk(self):
        """This part and all its descendants, depth first."""
        yield self
        for child in self.parts:
            yield from child.walk()

    def find(self, *content_types: str) -> Part | None:
        """The first descendant (or self) whose content type is one of those given."""
        for part in self.walk():
            if part.content_type in content_types:
                return part
        return None

    @cached_property
    def all_errors(self) -> list[str]:
        errors: list[str] = []
        for part in self.walk():
            errors.extend(part.errors)
        return errors


def _fix_base64(body: bytes) -> bytes:
    """Drop junk after the base64 text and repair missing padding (truncated messages)."""
    cleaned = bytes(c for c in body if c in _B64_ALPHABET) if b" " in body else body
    core = cleaned.replace(b"\n", b"").rstrip(b"=")
    core = core[: len(core) - len(core) % 4] if len(core) % 4 == 1 else core
    return core + b"=" * (-len(core) % 4)


_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n")


def _guess_boundary(body: bytes) -> bytes:
    """A multipart whose boundary parameter got lost: take the first `--token` line."""
    match = re.search(rb"^--([^\s]{6,70})\s*$", body[:4096], re.M)
    return match.group(1) if match else b""


def parse_message(raw: bytes) -> Part:
    """Parse a whole message (any line endings); never raises."""
    return Part(normalize_newlines(raw).lstrip(b"\n"))


def parse_field_groups(text: str) -> list[list[tuple[str, str]]]:
    """`message/delivery-status` text -> groups of (lower name, value) fields.

    Groups are separated by blank lines (RFC 3464 section 2.1); lines that are not fields are
    skipped, so indented or slightly broken reports still read.
    """
    groups: list[list[tuple[str, str]]] = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r", "")):
        fields = parse_header_lines(block.strip("\n"))
        if fields:
            groups.append(fields)
    return groups


def header_block_of(text: str) -> list[tuple[str, str]]:
    """Headers from the top of a text (a quoted original message)."""
    text = text.lstrip("\n")
    end = text.find("\n\n")
    return parse_header_lines(text if end < 0 else text[:end])
