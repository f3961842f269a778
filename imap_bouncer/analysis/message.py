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
import textwrap
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_to_bytes

from . import lazy_re as re

# Bodies above this many bytes are cut before analysis: every format states its verdict near
# the top, and the copy of the original message that follows can be huge.
MAX_PART_BYTES = 512 * 1024
# Status parts (RFC 3464 delivery-status, RFC 5965 feedback-report) hold one group of fields
# per recipient and are read whole up to this much: 32 MB is more than the default message
# size cap, so no recipient of a message under the cap is cut off.
MAX_STATUS_PART_BYTES = 32 * 1024 * 1024
STATUS_PART_TYPES = frozenset(("message/delivery-status", "message/global-delivery-status",
                               "message/feedback-report"))
MAX_DEPTH = 8
# A part's header block is read up to this many bytes and this many fields: real headers are
# a few KB (a long Received trail some tens), a hostile one can be the whole message, folded
# into millions of lines.
MAX_HEADER_BYTES = 256 * 1024
MAX_HEADER_FIELDS = 2000
# RFC 2047 encoded words decoded in one header value: a subject needs a handful; the rest
# are left as written (each unknown charset costs a codec look-up).
MAX_ENCODED_WORDS = 200
# Recipients read from one report. 100,000 fill some 10 MB of status fields and take about
# 2 s to classify; past them a report is partial (its errors say so, and it is filed in Error).
MAX_RECIPIENTS = 100_000
# Recipients whose words are looked for in the notice (each look searches the whole notice,
# up to 512 KB): 100,000 recipients each named in a long notice took minutes. The others are
# classified from their own fields.
MAX_NOTICE_SEARCHES = 1000
# MIME parts read per message, all levels together: a report needs a handful, and every part
# costs memory and a look from each analyzer. Parts past this many are not read, and the
# message's errors say so.
MAX_PARTS = 1000

# The media type at the start of a Content-Type value (RFC 2045 token "/" token).
_MEDIA_TYPE = re.compile(r"\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+/[A-Za-z0-9!#$%&'*+.^_`|~-]+)")
# A parameter; a quoted value as an unrolled loop (runs of plain characters, then quoted
# pairs), which the regex engine reads several times faster than one alternation per character.
_PARAM_RE = re.compile(
    r';\s*([A-Za-z0-9_.*!#$%&\'+^`|~-]+)\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"?|[^;\s]*)', re.S
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)
# RFC 2231 parameter continuations: name*0, name*1*, ...
_PARAM_SECTION = re.compile(r"(.+?)\*(\d{1,4})(\*?)")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*)\?=")
_CHARSET_ALIASES = {
    "utf8": "utf-8", "unicode-1-1-utf-7": "utf-7", "ks_c_5601-1987": "cp949",
    "x-sjis": "shift_jis", "x-unknown": "", "unknown-8bit": "", "unknown": "",
    "us-ascii": "ascii", "gb2312": "gb18030", "gbk": "gb18030", "iso-8859-8-i": "iso-8859-8",
}
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_NOT_B64 = bytes(b for b in range(256) if b not in _B64_ALPHABET)


def normalize_newlines(raw: bytes) -> bytes:
    """CRLF and CR-only line endings become LF, so every reader below sees one kind."""
    if b"\r" not in raw:
        return raw
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


@lru_cache(maxsize=256)
def text_codec(charset: str) -> str:
    """A declared charset -> the name of a Python text codec, or "" when there is none.

    Labels are messy (quotes, aliases Python lacks, `x-unknown`); some valid Python codec
    names (`base64`, `zlib`, `rot13`) are not text encodings and must not be trusted.
    """
    name = charset.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    if not name:
        return ""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return ""
    if not getattr(info, "_is_text_encoding", True):
        return ""
    return info.name


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Bytes to text with the declared charset, falling back to UTF-8 and then Latin-1."""
    codec = text_codec(charset) if charset else ""
    if codec and codec not in ("ascii", "utf-8"):
        try:
            return data.decode(codec)
        except (UnicodeError, ValueError, LookupError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_words(value: str, errors: list[str] | None = None) -> str:
    """Decode RFC 2047 encoded words leniently; a word that cannot be read is left as it is.

    Adjacent words of one charset are joined before decoding (a multi-byte character may be
    split between them) and the white space between encoded words is dropped (RFC 2047 6.2).
    Unknown charsets and broken base64 padding fall back as `decode_bytes` does. Words past
    the first MAX_ENCODED_WORDS are left as written, noted in `errors` when given.
    """
    if "=?" not in value:
        return value
    pieces: list[str] = []
    pending: list[bytes] = []  # bytes of adjacent encoded words in one charset
    pending_charset = ""
    position = 0

    def flush() -> None:
        if pending:
            pieces.append(decode_bytes(b"".join(pending), pending_charset))
            pending.clear()

    for count, match in enumerate(_ENCODED_WORD.finditer(value)):
        if count == MAX_ENCODED_WORDS:
            if errors is not None:
                errors.append(f"more than {MAX_ENCODED_WORDS} encoded words in a header: the "
                              f"rest left undecoded")
            break
        between = value[position:match.start()]
        charset = match.group(1).split("*", 1)[0]  # RFC 2231 language suffix
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:  # unreadable: keep the word as written
            flush()
            pieces.append(between + match.group(0))
            position = match.end()
            continue
        if between and (between.strip() or not pending):
            flush()
            pieces.append(between)
        elif pending and text_codec(charset) != text_codec(pending_charset):
            flush()
        pending.append(data)
        pending_charset = charset
        position = match.end()
    flush()
    pieces.append(value[position:])
    return "".join(pieces)


_decode_words_cached = lru_cache(maxsize=128)(decode_words)


def _word_bytes(encoding: str, text: str) -> bytes | None:
    raw = text.encode("utf-8", "replace")
    if encoding in "Bb":
        try:
            return decode_base64(raw)
        except (binascii.Error, ValueError):
            return None
    return binascii.a2b_qp(raw, header=True)


def split_header_block(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line: (header block, body)."""
    if data.startswith(b"\n"):
        return b"", data[1:]
    end = data.find(b"\n\n")
    if end < 0:
        # No body at all, or a truncated message: everything that looks like a header.
        return data, b""
    return data[:end + 1], data[end + 2:]


def decode_header_block(block: bytes) -> str:
    """Header bytes to text: UTF-8, else line by line (one Latin-1 header spoils no other)."""
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        return "\n".join(decode_bytes(line) for line in block.split(b"\n"))


# A header field: a name of printable ASCII but colon (RFC 5322 ftext) at the start of a line,
# then its value with any continuation lines (RFC 5322 folding).
_HEADER_FIELD = re.compile(r"^([!-9;-~]{1,76})[ \t]*:(.*(?:\n[ \t].*)*)", re.M)


def parse_header_lines(block: str) -> list[tuple[str, str]]:
    """Header block text -> [(lower-case name, unfolded value)]; junk lines are skipped."""
    return [(name.lower(), _unfold(value) if "\n" in value else value.strip())
            for name, value in _HEADER_FIELD.findall(block)]


def _unfold(value: str) -> str:
    return " ".join(map(str.strip, value.split("\n"))).strip()


def content_type_params(value: str) -> tuple[str, dict[str, str]]:
    """`Content-Type` value -> (lower-case type, parameters with lower-case names).

    Lenient: a missing `;` before the first parameter is tolerated, and RFC 2231 continued
    or charset-tagged parameters (`boundary*0=`, `name*=utf-8''...`) are joined and decoded.
    """
    match = _MEDIA_TYPE.match(value)
    if match:
        main, rest = match.group(1), value[match.end():]
    else:
        main, _, rest = value.partition(";")
    rest = rest.strip()
    if rest and not rest.startswith(";"):
        rest = ";" + rest
    params: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    for name, val in _PARAM_RE.findall(rest):
        name = name.lower()
        if val.startswith('"'):
            val = val[1:-1] if val.endswith('"') and len(val) > 1 else val[1:]
            if "\\" in val:
                val = _QUOTED_PAIR.sub(r"\1", val)
        section = _PARAM_SECTION.fullmatch(name) if "*" in name else None
        if section:
            parts = sections.setdefault(section.group(1), {})
            parts.setdefault(int(section.group(2)), (val, bool(section.group(3))))
        elif name.endswith("*"):
            params[name.rstrip("*")] = _decode_extended([(val, True)])
        else:
            params.setdefault(name, val)
    for name, parts in sections.items():
        if name not in params:
            params[name] = _decode_extended([parts[n] for n in sorted(parts)])
    return main.strip().lower() or "text/plain", params


def _read_content_type(value: str) -> tuple[str, dict[str, str]]:
    """A part's Content-Type. Most parts of most messages say one of a few, so short values
    are cached (the caller copies the parameters)."""
    if len(value) > 300:
        return _content_type_of(value)
    return _content_type_cached(value)


def _content_type_of(value: str) -> tuple[str, dict[str, str]]:
    ctype, params = content_type_params(value)
    return ("text/plain" if "/" not in ctype else ctype), params


_content_type_cached = lru_cache(maxsize=256)(_content_type_of)


def _decode_extended(pieces: list[tuple[str, bool]]) -> str:
    """RFC 2231 values: the first extended piece may say charset'language'; %XX escapes."""
    charset = ""
    data = bytearray()
    for index, (value, extended) in enumerate(pieces):
        if not extended:
            data += value.encode("utf-8", "replace")
            continue
        if index == 0 and value.count("'") >= 2:
            charset, _language, value = value.split("'", 2)
        data += unquote_to_bytes(value)
    return decode_bytes(bytes(data), charset or None)


class lazy:
    """`functools.cached_property` without the lock Python 3.11 takes on every first access,
    which made it the reader's largest cost; a Part belongs to one thread."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)
        return value


class Part:
    """One MIME entity: headers, and a body decoded and split only on demand."""

    def __init__(self, data: bytes, depth: int = 0, default_type: str = "text/plain",
                 budget: list[int] | None = None) -> None:
        block, self.raw_body = split_header_block(data)
        self.depth = depth
        self.errors: list[str] = []
        self.cut = False  # whether `payload` is only the start of the body (set by it)
        if len(block) > MAX_HEADER_BYTES:
            self.errors.append(f"header block of {len(block)} bytes: read up to "
                               f"{MAX_HEADER_BYTES} bytes, the rest ignored")
            block = block[:block.rfind(b"\n", 0, MAX_HEADER_BYTES) + 1]
        self.headers = parse_header_lines(decode_header_block(block))
        if len(self.headers) > MAX_HEADER_FIELDS:
            self.errors.append(f"{len(self.headers)} header fields: the first "
                               f"{MAX_HEADER_FIELDS} read, the rest ignored")
            del self.headers[MAX_HEADER_FIELDS:]
        self._default_type = default_type
        # How many more parts this message may still split into (shared by all its parts).
        self._budget = budget if budget is not None else [MAX_PARTS - 1]
        # Views that analyzers derive from this part (its notice text, the original's
        # headers), kept here so that a chain of analyzers computes each only once.
        self.derived: dict[str, object] = {}

    # --- headers -----------------------------------------------------------------------
    @lazy
    def _first(self) -> dict[str, str]:
        """Each header's first value (the first written wins: the dict keeps the last)."""
        return dict(reversed(self.headers))

    @lazy
    def _index(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for key, value in self.headers:
            values = index.get(key)
            if values is None:
                index[key] = [value]
            else:
                values.append(value)
        return index

    def get(self, name: str, default: str = "") -> str:
        """The first value of a header, unfolded, encoded words left alone."""
        first = self._first
        value = first.get(name)
        if value is None:
            lowered = name.lower()
            value = first.get(lowered, default) if lowered != name else default
        return value

    def get_all(self, name: str) -> list[str]:
        return list(self._index.get(name.lower(), ()))

    def decoded(self, name: str) -> str:
        """A header's first value with RFC 2047 encoded words decoded."""
        value = self.get(name)
        if "=?" not in value:
            return value
        if len(value) > 1000:
            return decode_words(value, self.errors)
        return _decode_words_cached(value)  # the chain asks for the subject again and again

    def __contains__(self, name: str) -> bool:
        first = self._first
        return name in first or (not name.islower() and name.lower() in first)

    def has_any(self, names: frozenset[str]) -> bool:
        """Whether any of these (lower-case) header names is present: one set operation."""
        return not names.isdisjoint(self._first)

    @lazy
    def _names_text(self) -> str:
        """Every header name once, each after a newline (names never hold one)."""
        return "\n" + "\n".join(self._first)

    def has_name_starting(self, *prefixes: str) -> bool:
        """Whether a header's (lower-case) name starts with one of these: substring tests
        on one text, not a test per header."""
        names = self._names_text
        for prefix in prefixes:  # noqa: SIM110 - a loop is cheaper than any()
            if "\n" + prefix in names:
                return True
        return False

    # --- content type ------------------------------------------------------------------
    @lazy
    def content_type(self) -> str:
        """The media type, lower-case (the default when none is declared)."""
        value = self._first.get("content-type")
        if not value:
            self.__dict__["params"] = {}
            return self._default_type
        ctype, params = _read_content_type(value)
        self.__dict__["params"] = dict(params)  # each part its own parameters
        return ctype

    @lazy
    def params(self) -> dict[str, str]:
        """The Content-Type parameters, names lower-case."""
        self.content_type  # noqa: B018 - sets the parameters too
        return self.__dict__["params"]

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    # --- bodies ------------------------------------------------------------------------
    @lazy
    def transfer_encoding(self) -> str:
        """`base64`, `quoted-printable`, ...: the first word, without quotes or junk."""
        value = self.get("content-transfer-encoding").strip().strip("\"'").lower()
        return re.split(r"[\s;\"']", value, maxsplit=1)[0]

    @lazy
    def payload(self) -> bytes:
        """The body with its Content-Transfer-Encoding undone."""
        limit = MAX_STATUS_PART_BYTES if self.content_type in STATUS_PART_TYPES \
            else MAX_PART_BYTES
        body = self.raw_body[:limit]
        if len(self.raw_body) > limit:
            self.cut = True
            self.errors.append(f"{self.content_type} part of {len(self.raw_body)} bytes cut at "
                               f"{limit} bytes: the rest not read")
        encoding = self.transfer_encoding
        if encoding == "base64":
            try:
                return decode_base64(body)
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

    @lazy
    def text(self) -> str:
        """The body as text, decoded with its charset (leniently)."""
        return decode_bytes(self.payload, self.params.get("charset")).replace("\r", "")

    @lazy
    def parts(self) -> list[Part]:
        """Child entities: the parts of a multipart, or the message inside message/rfc822."""
        ctype = self.content_type
        if self.depth >= MAX_DEPTH:
            if ctype.startswith("multipart/") or ctype in ("message/rfc822", "message/global"):
                self.errors.append(f"parts nested more than {MAX_DEPTH} deep not read")
            return []
        if ctype.startswith("multipart/"):
            return self._split_multipart()
        if ctype in ("message/rfc822", "message/global"):
            if not self._take_parts(1, 1):
                return []
            return [Part(normalize_newlines(self.payload).lstrip(b"\n"), self.depth + 1,
                         budget=self._budget)]
        return []

    def _take_parts(self, wanted: int, found: int) -> int:
        """How many of `wanted` new parts the message's budget allows; notes a shortfall.

        `found` is how many the body holds (more than `wanted` when splitting stopped early).
        """
        allowed = min(wanted, self._budget[0])
        self._budget[0] -= allowed
        if allowed < found:
            self.errors.append(f"more than {MAX_PARTS} MIME parts: parts past the first "
                               f"{MAX_PARTS} not read")
        return allowed

    def _split_multipart(self) -> list[Part]:
        declared = self.params.get("boundary", "").encode("utf-8", "replace")
        body = self.raw_body
        # One chunk more than the budget allows, so that a message cut short is told apart.
        most = self._budget[0] + 1
        chunks = _split_body(body, declared, most) if declared else None
        if chunks is None:
            guessed = _guess_boundary(body)
            chunks = (_split_body(body, guessed, most) if guessed and guessed != declared
                      else None)
        if chunks is None:
            self.errors.append("multipart boundary not found" if declared
                               else "multipart without a boundary")
            return []
        chunks = chunks[:self._take_parts(len(chunks), len(chunks))]
        digest = self.content_type == "multipart/digest"
        child_default = "message/rfc822" if digest else "text/plain"  # RFC 2046 5.1.5
        return [Part(chunk, self.depth + 1, child_default, self._budget) for chunk in chunks]

    def walk(self) -> Iterator[Part]:
        """This part and all its descendants, depth first (each part once, no recursion)."""
        return iter(self._subtree)

    @lazy
    def _subtree(self) -> list[Part]:
        """The parts `walk` yields, listed once: every analyzer walks the message."""
        found: list[Part] = []
        stack = [self]
        while stack:
            part = stack.pop()
            found.append(part)
            children = part.parts
            if children:
                stack.extend(reversed(children))
        return found

    def find_outside_attached(self, *content_types: str) -> Part | None:
        """Like `find`, but not inside attached messages (message/rfc822 and the like)."""
        stack = [self]
        while stack:
            part = stack.pop()
            if part.content_type in content_types:
                return part
            if part.content_type.startswith("multipart/"):
                stack.extend(reversed(part.parts))
        return None

    def find(self, *content_types: str) -> Part | None:
        """The first descendant (or self) whose content type is one of those given."""
        for part in self.walk():
            if part.content_type in content_types:
                return part
        return None

    @property
    def all_errors(self) -> list[str]:
        """What could not be read, here and below, as far as anything has been read yet."""
        parts = list(self.walk())  # first split everything: splitting notes its own errors
        return [error for part in parts for error in part.errors]


def _split_body(body: bytes, boundary: bytes, most: int) -> list[bytes] | None:
    """The bodies between `--boundary` lines, at most `most` of them; None when there is no
    such line.

    A delimiter is a whole line (RFC 2046 5.1.1): `--boundary`, maybe `--` to close, then only
    white space, so a longer boundary that starts with this one is not mistaken for it. A
    message cut short simply ends its last part at the end of the data.
    """
    marker = b"--" + boundary
    chunks: list[bytes] = []
    start = -1  # where the current part's content begins
    position = 0
    while (found := body.find(marker, position)) >= 0:
        position = found + len(marker)
        if found and body[found - 1] != 0x0A:  # not at the start of a line
            continue
        close = body.startswith(b"--", position)
        newline = body.find(b"\n", position)
        line_end = len(body) if newline < 0 else newline
        if body[position + 2 * close:line_end].strip(b" \t"):
            continue  # a longer boundary, or text that merely starts like one
        if start >= 0:
            chunks.append(body[start:max(found - 1, start)])
            if len(chunks) >= most:
                return chunks
        if close or newline < 0:
            return chunks  # the close delimiter, or a message cut right after a delimiter
        start = position = newline + 1
    if start < 0:
        return None
    chunks.append(body[start:])
    return chunks


def decode_base64(body: bytes) -> bytes:
    """Base64 leniently: what is not base64 is dropped, missing padding (a truncated message)
    repaired, and padding in the middle (separately encoded pieces joined) read past."""
    core = body.translate(None, _NOT_B64)
    if b"=" in core.rstrip(b"="):
        return b"".join(binascii.a2b_base64(_pad_base64(piece))
                        for piece in re.split(rb"=+", core) if piece)
    return binascii.a2b_base64(_pad_base64(core.rstrip(b"=")))


def _pad_base64(core: bytes) -> bytes:
    if len(core) % 4 == 1:  # one stray character can never be decoded
        core = core[:-1]
    return core + b"=" * (-len(core) % 4)


def _guess_boundary(body: bytes) -> bytes:
    """A multipart whose boundary parameter got lost or is wrong: the first `--token` line."""
    match = re.search(rb"^--([^\s]{6,70}?)(?:--)?[ \t]*$", body[:4096], re.M)
    return match.group(1) if match else b""


def parse_message(raw: bytes) -> Part:
    """Parse a whole message (any line endings); never raises."""
    return Part(normalize_newlines(raw).lstrip(b"\n"))


def parse_field_groups(text: str, most: int = 0) -> list[list[tuple[str, str]]]:
    """`message/delivery-status` text -> groups of (lower name, value) fields.

    Groups are separated by blank lines (RFC 3464 section 2.1); lines that are not fields are
    skipped, so indented or slightly broken reports still read. With `most`, the text is
    split into at most that many blocks and one more (so a caller can tell there were more):
    the rest is not parsed.
    """
    groups: list[list[tuple[str, str]]] = []
    blocks = re.split(_BLANK_LINE, text.replace("\r", ""), maxsplit=most)
    if most and len(blocks) > most:
        blocks[-1] = re.split(_BLANK_LINE, blocks[-1], maxsplit=1)[0]
    for block in blocks:
        block = block.strip("\n")
        if block[:1] in (" ", "\t"):  # an indented report: fields start at its margin
            block = textwrap.dedent(block)
        fields = parse_header_lines(block)
        if fields:
            groups.append(fields)
    return groups


_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def header_block_of(text: str) -> list[tuple[str, str]]:
    """Headers from the top of a text (a quoted original message)."""
    text = text.lstrip("\n")
    end = text.find("\n\n")
    return parse_header_lines(text if end < 0 else text[:end])
