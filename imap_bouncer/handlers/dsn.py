"""Delivery reports back to the original sender: one outbox row ("dsn" channel) -> one
RFC 3464 / RFC 6522 report, sent by SMTP.

Which reports to send is decided in the recording transaction by the pure
`dsn_planning.plan_dsn`; this module runs after the commit, from the outbox job
(handlers/outbox.py), through `sender_for(settings)`:

1. the rate limits: at most `rate_limit_per_hour` reports to one sender,
   `rate_limit_per_domain_per_hour` to one sender domain and `rate_limit_global_per_hour` in
   all, in any hour, counted from the outbox's delivered "dsn" rows; a report over one raises
   `DsnDeferred` with the time it may go (`retry_at`), and waits in the outbox;
2. `build_dsn` (pure): a multipart/report; report-type=delivery-status with a human-readable
   text/plain part, the message/delivery-status part (Reporting-MTA, Arrival-Date, and for
   each recipient Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code: smtp; the
   remote server's own words, Last-Attempt-Date) and the original's headers as far as known
   (text/rfc822-headers). It carries `Auto-Submitted: auto-replied` (RFC 3834) and our own
   `X-Imap-Bouncer-DSN` mark, so that nothing ever answers it and imap-bouncer never reports
   on it in turn. Every remote word in it (the diagnostic, the remote MTA, the original's
   subject...) is hostile: control and format characters become spaces, the text is capped
   (`_clean`), and the status fields are folded here and written verbatim (`_Verbatim`), so
   that the email package never parses them: it would decode an RFC 2047 word in a remote
   Diagnostic-Code into CR/LF, and so into a forged field or recipient group;
3. `send_dsn`: SMTP with an empty envelope sender (`MAIL FROM:<>`, RFC 3464 section 2 /
   RFC 5321 section 4.5.5): a report that cannot be delivered is dropped by the receiving
   MTA, never bounced back, so no loop can start.

Failures raise `DsnError`, a `handlers.DeliveryError`: `DsnPermanentError` (permanent = True)
for a 5xx answer, which retrying cannot change (the row is marked failed for a person), and
`DsnTemporaryError` for a 4xx answer, a refused or lost connection or a timeout (retried
with backoff).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import textwrap
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from email import charset as email_charset
from email import policy as email_policy
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, parseaddr, parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import peewee

from .. import models
from ..analysis import DSN_MARKER
from ..dsn_planning import DSN, RATE_WINDOW, dsn_settings, next_allowed
from . import DeliveryError

if TYPE_CHECKING:
    from ..ledger import OutboxItem
    from ..settings import DsnSettings, SmtpSettings

log = logging.getLogger(__name__)

# A few words per reason for the person reading the report (report.Reason; others: none).
REASON_WORDS: Mapping[str, str] = {
    "userunknown": "the mailbox does not exist",
    "hostunknown": "the recipient's domain does not exist or receives no mail",
    "hasmoved": "the mailbox has moved and left no forwarding address",
    "notaccept": "the recipient's domain accepts no mail",
    "mailboxfull": "the recipient's mailbox is full",
    "exceedlimit": "the message is larger than the recipient accepts",
    "mesgtoobig": "the message is larger than the receiving system accepts",
    "suspend": "the mailbox is disabled",
    "expired": "delivery was given up after retrying for too long",
    "networkerror": "the recipient's mail server could not be reached",
    "blocked": "the receiving system refused the sending server",
    "badreputation": "the receiving system refused the sending server's reputation",
    "authfailure": "the message failed the recipient's SPF, DKIM or DMARC checks",
    "spamdetected": "the receiving system judged the message to be spam",
    "virusdetected": "the receiving system found a virus in the message",
    "policyviolation": "the receiving system's policy refused the message",
    "filtered": "a filter at the recipient refused the message",
}
_QP_UTF8 = email_charset.Charset("utf-8")
_QP_UTF8.body_encoding = email_charset.QP


class DsnError(DeliveryError):
    """A report could not be sent; `permanent` says whether retrying can help."""


class DsnTemporaryError(DsnError):
    """A 4xx answer, a lost or refused connection, a timeout: try again later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False)


class DsnPermanentError(DsnError):
    """A 5xx answer (or a report that cannot be built): retrying cannot help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class DsnDeferred(DsnTemporaryError):
    """Over the sender's rate limit: not an attempt that failed, a report that must wait
    until `retry_at` (the outbox reschedules the row then, without counting an attempt)."""

    def __init__(self, message: str, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


# -- the outbox's entry point -----------------------------------------------------------------


class DsnSender:
    """The "dsn" channel's sender (handlers.CHANNELS): rate limit, then `send_dsn`."""

    def __init__(self, settings: DsnSettings) -> None:
        self.settings = settings

    def __call__(self, item: OutboxItem) -> None:
        payload = item.payload
        target = payload.get("to") or item.target
        now = datetime.now(UTC)
        domain = str(target).rpartition("@")[2]
        limits = (
            (self.settings.rate_limit_per_hour, "rate_limit_per_hour", f"to {target}",
             lambda: sent_to(target, now)),
            (self.settings.rate_limit_per_domain_per_hour, "rate_limit_per_domain_per_hour",
             f"to @{domain}", lambda: sent_to_domain(domain, now)),
            (self.settings.rate_limit_global_per_hour, "rate_limit_global_per_hour",
             "in all", lambda: sent_to(None, now)),
        )
        for limit, name, where, history in limits:
            if limit <= 0:
                continue
            retry_at = next_allowed(history(), limit, now)
            if retry_at is not None:
                raise DsnDeferred(f"{limit} reports {where} in the last hour ({name}): "
                                  "waiting", retry_at)
        send_dsn(payload, self.settings, now=now)
        log.info("dsn: report %s (%s for %d recipient(s)) sent to %s", payload.get("id"),
                 payload.get("action"), len(_recipients(payload)), target)


def sender_for(settings: Any) -> DsnSender | None:
    """The sender handlers/__init__.py plugs in for "dsn" rows; None when DSNs are off."""
    dsn = dsn_settings(settings)
    return DsnSender(dsn) if getattr(dsn, "enabled", False) else None


def sent_to(target: str | None, now: datetime) -> list[datetime]:
    """When reports to `target` (None: to anyone) were delivered in the last rate window
    (outbox history). Read-only: the ledger stays the only writer."""
    return _sent(None if target is None else models.Outbox.target == target, now)


def sent_to_domain(domain: str, now: datetime) -> list[datetime]:
    """When reports to addresses at `domain` were delivered in the last rate window (a
    case-insensitive suffix match; peewee escapes LIKE's wildcards)."""
    return _sent(models.Outbox.target.endswith("@" + domain), now)


def _sent(where: Any, now: datetime) -> list[datetime]:
    since = now - RATE_WINDOW
    try:
        condition = ((models.Outbox.channel == DSN) & (models.Outbox.status == "delivered")
                     & (models.Outbox.delivered_at > since))
        if where is not None:
            condition &= where
        query = models.Outbox.select(models.Outbox.delivered_at).where(condition)
        return [row.delivered_at for row in query if row.delivered_at is not None]
    except peewee.PeeweeException as err:
        raise DsnTemporaryError(f"cannot read the outbox history for the rate limit: "
                                f"{type(err).__name__}") from err


# -- sending ----------------------------------------------------------------------------------


def send_dsn(payload: Mapping[str, Any], settings: Any, *, now: datetime | None = None) -> None:
    """Build the report for an outbox payload and send it by SMTP with MAIL FROM:<>.

    `settings`: the whole Settings or its [dsn] table. Raises DsnPermanentError (5xx: do
    not retry) or DsnTemporaryError (4xx, connection, timeout: retry later).
    """
    dsn = dsn_settings(settings)
    to = str(payload.get("to") or "")
    if not to:
        raise DsnPermanentError("the report has no recipient (payload 'to')")
    message = build_dsn(payload, dsn, now or datetime.now(UTC))
    smtp_settings = dsn.smtp
    where = f"{smtp_settings.host}:{smtp_settings.port}"
    try:
        with _connect(smtp_settings, local_hostname=dsn.mta_name or None) as smtp:
            refused = smtp.send_message(message, from_addr="", to_addrs=[to])
    except smtplib.SMTPRecipientsRefused as err:
        code, text = next(iter(err.recipients.values()), (0, b""))
        raise _answer_error(f"{where} refused {to}", code, text) from err
    except smtplib.SMTPResponseException as err:  # sender refused, data refused, auth...
        raise _answer_error(f"{where} said", err.smtp_code, err.smtp_error) from err
    except smtplib.SMTPNotSupportedError as err:
        raise DsnPermanentError(f"{where}: {err}") from err
    except (smtplib.SMTPException, OSError) as err:  # lost connection, refused, TLS, timeout
        raise DsnTemporaryError(f"{where}: {type(err).__name__}: {err}") from err
    if refused:  # only one recipient: a refusal would have raised; kept for safety
        code, text = next(iter(refused.values()))
        raise _answer_error(f"{where} refused {to}", code, text)


def _connect(settings: SmtpSettings, local_hostname: str | None) -> smtplib.SMTP:
    context = None
    if settings.security in ("tls", "starttls"):
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None)
        if not settings.verify_certificate:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    if settings.security == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port,
                                              local_hostname=local_hostname,
                                              timeout=settings.timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, local_hostname=local_hostname,
                            timeout=settings.timeout)
    try:
        if settings.security == "starttls":
            smtp.ehlo()
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.username and settings.password is not None:
            smtp.login(settings.username, settings.password.get_secret_value())
    except BaseException:
        smtp.close()
        raise
    return smtp


def _answer_error(doing: str, code: int, text: bytes | str) -> DsnError:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    message = f"{doing}: {code} {' '.join(words.split())}"
    return DsnPermanentError(message) if 500 <= code < 600 else DsnTemporaryError(message)


# -- the report (pure) ------------------------------------------------------------------------

# Caps on remote text in a report: what a person needs to read, not what a forger would send.
MAX_DIAGNOSTIC = 500  # characters of a remote server's words
MAX_FIELD = 200  # characters of the remote MTA's name, the original's subject, date, ids
MAX_LINE = 76  # a folded line of a status field, within RFC 5322's 78
MAX_LISTED_IN_TEXT = 20  # recipients named in the text part (the status part has them all)


def build_dsn(payload: Mapping[str, Any], settings: DsnSettings, now: datetime) -> Message:
    """The RFC 3464 / RFC 6522 report for one outbox payload (dsn_planning's payload)."""
    recipients = _recipients(payload)
    total = max(int(payload.get("recipients_total") or 0), len(recipients))
    original = payload.get("original") or {}
    action = "delayed" if payload.get("action") == "delayed" else "failed"
    mta = settings.mta_name or "localhost"
    to = str(payload.get("to") or "")
    report_id = _clean(str(payload.get("id") or ""), 64)
    policy = email_policy.SMTPUTF8 if not to.isascii() else email_policy.SMTP

    report = MIMEMultipart("report", report_type="delivery-status", policy=policy)
    report["From"] = settings.from_address
    name = _clean(parseaddr(str(original.get("from") or ""))[0], MAX_FIELD)
    # formataddr refuses a non-ASCII address (SMTPUTF8): that one goes without the name.
    report["To"] = formataddr((name, to)) if name and to.isascii() else to
    subject = _clean(str(original.get("subject") or ""), MAX_FIELD)
    title = ("Undelivered mail" if action == "failed" else "Delayed mail (still being tried)")
    report["Subject"] = f"{title}: {subject}" if subject else title
    report["Date"] = format_datetime(now.astimezone(UTC))
    report["Message-ID"] = f"<dsn-{report_id or int(now.timestamp())}@{mta}>"
    original_id = _clean(str(original.get("message_id") or ""), MAX_FIELD)
    if original_id.startswith("<") and original_id.endswith(">") and original_id.isascii() \
            and " " not in original_id:
        report["In-Reply-To"] = original_id
        report["References"] = original_id
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834: never answered automatically
    report["X-Auto-Response-Suppress"] = "All"  # the same, for Microsoft Exchange
    report[DSN_MARKER] = report_id or "1"
    report.attach(_text_part(_notice(action, recipients, total, original, mta)))
    report.attach(_status_part(action, recipients, original, payload, mta))
    report.attach(_headers_part(original, to))
    return report


def _recipients(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The recipients a payload reports on: version 2's list, or version 1's one."""
    listed = payload.get("recipients")
    if isinstance(listed, list):
        return [r for r in listed if isinstance(r, Mapping)]
    one = payload.get("recipient")
    return [one] if isinstance(one, Mapping) else []


def _notice(action: str, recipients: list[Mapping[str, Any]], total: int,
            original: Mapping[str, Any], mta: str) -> str:
    addresses = [_clean(str(r.get("address") or ""), MAX_FIELD) for r in recipients]
    whom = addresses[0] if len(addresses) == 1 and total <= 1 else f"{total} recipients"
    if action == "failed":
        lines = [f"Your message could not be delivered to {whom}."]
    else:
        lines = [f"Your message has not yet been delivered to {whom}. Delivery is still "
                 "being tried; you do not need to send it again. You will hear again if it "
                 "finally fails."]
    listed = list(zip(recipients, addresses, strict=True))[:MAX_LISTED_IN_TEXT]
    for recipient, address in listed:
        lines += ["", *_recipient_lines(recipient, address, total > 1)]
    if total > len(listed):
        lines += ["", f"... and {total - len(listed)} more recipients (the delivery status "
                  f"part lists {len(recipients)} in all)."]
    shown = [(label, _clean(str(original.get(key) or ""), MAX_FIELD))
             for label, key in (("Subject", "subject"), ("Date", "date"),
                                ("Message-ID", "message_id"))]
    shown = [(label, value) for label, value in shown if value]
    if shown:
        lines += ["", "Your message:"] + [f"    {label}: {value}" for label, value in shown]
    lines += ["", f"This report was sent automatically by the mail system at {mta}; "
              "replies to it are not read."]
    return "\n".join(_wrapped(lines)) + "\n"


def _wrapped(lines: list[str]) -> list[str]:
    """Each line within MAX_LINE characters, a long one continued with its own indent."""
    out: list[str] = []
    for line in lines:
        indent = line[:len(line) - len(line.lstrip(" "))]
        out.extend(textwrap.wrap(line, MAX_LINE, subsequent_indent=indent) or [""])
    return out


def _recipient_lines(recipient: Mapping[str, Any], address: str, named: bool) -> list[str]:
    status = _clean(str(recipient.get("status") or ""), 20)
    reason = str(recipient.get("reason") or "")
    words = _clean(str(recipient.get("diagnostic") or ""), MAX_DIAGNOSTIC)
    remote = _clean(str(recipient.get("remote_mta") or ""), MAX_FIELD)
    lines = [f"Recipient: {address}"] if named else []
    if reason in REASON_WORDS:
        lines += [f"Why: {REASON_WORDS[reason]}."]
    if words:
        lines += ["The receiving mail server said:", f"    {words}"]
    if remote:
        lines += [f"Receiving server: {remote}"]
    if status:
        lines += [f"Status: {status}"]
    return lines


def _text_part(text: str) -> MIMEText:
    part = MIMEText(text, "plain", "us-ascii" if text.isascii() else _QP_UTF8)
    del part["MIME-Version"]
    return part


def _status_part(action: str, recipients: list[Mapping[str, Any]],
                 original: Mapping[str, Any], payload: Mapping[str, Any],
                 mta: str) -> MIMEBase:
    per_message = Message(policy=email_policy.compat32)
    per_message["Reporting-MTA"] = f"dns; {mta}"
    arrival = _date(str(original.get("date") or ""))
    if arrival:
        per_message["Arrival-Date"] = arrival
    part = MIMEBase("message", "delivery-status")
    del part["MIME-Version"]
    part.attach(per_message)
    attempted = _date(str(payload.get("reported_at") or ""))
    for recipient in recipients:
        address = _clean(str(recipient.get("address") or ""), MAX_FIELD)
        if not address:
            continue
        fields = Message(policy=email_policy.compat32)
        fields["Final-Recipient"] = _Verbatim("Final-Recipient", _recipient_field(address))
        fields["Action"] = action
        fields["Status"] = _status(str(recipient.get("status") or ""), action)
        remote = _ascii(_clean(str(recipient.get("remote_mta") or ""), MAX_FIELD))
        if remote:
            fields["Remote-MTA"] = _Verbatim("Remote-MTA", f"dns; {remote}")
        words = _ascii(_clean(str(recipient.get("diagnostic") or ""), MAX_DIAGNOSTIC))
        if words:
            fields["Diagnostic-Code"] = _Verbatim("Diagnostic-Code", f"smtp; {words}")
        if attempted:
            fields["Last-Attempt-Date"] = attempted
        part.attach(fields)
    return part


class _Verbatim(str):
    """A status field's value, folded here and written as it is: the email package's
    policies never parse it (EmailPolicy refolds a long value through its header parser,
    which decodes RFC 2047 words: a remote "=?utf-8?q?=0D=0ABcc:...?=" would become a
    forged field). The value must be clean (`_clean`, `_ascii`) before it gets here."""

    name: str

    def __new__(cls, name: str, value: str) -> _Verbatim:
        made = super().__new__(cls, value)
        made.name = name
        return made

    def fold(self, *, policy: Any) -> str:
        return _fold_words(f"{self.name}: {self}", policy.linesep)


def _fold_words(line: str, linesep: str) -> str:
    """One field folded at spaces into lines of at most MAX_LINE characters; a word longer
    than that is cut (a space appears where it was cut: nothing is lost)."""
    words: list[str] = []
    for word in line.split(" "):
        while len(word) > MAX_LINE - 1:
            words.append(word[:MAX_LINE - 1])
            word = word[MAX_LINE - 1:]
        words.append(word)
    lines = [words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) <= MAX_LINE:
            lines[-1] += " " + word
        else:
            lines.append(" " + word)
    return linesep.join(lines) + linesep


def _headers_part(original: Mapping[str, Any], to: str) -> MIMEText:
    lines = []
    for name, key in (("From", "from"), ("Subject", "subject"), ("Date", "date"),
                      ("Message-ID", "message_id")):
        value = _clean(str(original.get(key) or ""), MAX_FIELD)
        if value and name == "From":
            display, bare = parseaddr(value)
            value = formataddr((display, bare), charset="utf-8") if bare.isascii() else value
        if value:
            lines.append(_fold_words(f"{name}: {_header_value(value)}", "\n").rstrip("\n"))
    if not any(line.startswith("From:") for line in lines) and to.isascii():
        lines.insert(0, f"From: {to}")
    part = MIMEText("\n".join(lines) + "\n", "rfc822-headers", "us-ascii")
    del part["MIME-Version"]
    return part


def _header_value(value: str) -> str:
    """ASCII as it is; anything else as RFC 2047 encoded words (it was a header)."""
    return value if value.isascii() else Header(value, "utf-8").encode()


def _recipient_field(address: str) -> str:
    if address.isascii():
        return f"rfc822; {address}"
    # RFC 6533 section 3: utf-8 addresses in a message/delivery-status part, as xtext.
    encoded = "".join(c if c.isascii() and c.isprintable() and c not in "\\+=" else
                      f"\\x{{{ord(c):X}}}" for c in address)
    return f"utf-8; {encoded}"


def _status(status: str, action: str) -> str:
    """The RFC 3463 status, never empty (the field is required): x.0.0 of the action."""
    parts = status.split(".")
    if len(parts) == 3 and all(p.isdigit() and len(p) <= 3 for p in parts) \
            and parts[0] in ("2", "4", "5"):
        return status
    return "5.0.0" if action == "failed" else "4.0.0"


def _date(value: str) -> str:
    """An RFC 5322 date from a Date header or an ISO time; "" when it cannot be read."""
    if not value or len(value) > MAX_FIELD:
        return ""
    try:
        moment = (datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value
                  else parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment)


def _clean(text: str, limit: int) -> str:
    """Remote text made safe to show: control and format characters (CR, LF, ESC, BEL, NUL,
    bidi overrides...) as spaces, white space runs as one space, at most `limit` characters.
    Nothing is decoded: an RFC 2047 word stays the characters it is."""
    text = text[:limit * 4]
    cleaned = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[:limit - 3].rstrip() + "..."


def _ascii(text: str) -> str:
    """DSN fields are 7-bit (RFC 3464 section 2.1): one line, other characters as "?"."""
    return " ".join(text.split()).encode("ascii", "replace").decode("ascii")


__all__ = [
    "DsnDeferred",
    "DsnError",
    "DsnPermanentError",
    "DsnSender",
    "DsnTemporaryError",
    "build_dsn",
    "send_dsn",
    "sender_for",
    "sent_to",
]
