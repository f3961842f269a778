"""Non-standard bounce formats of named MTAs and providers, in the order they are tried.

Each module has `NAME` and `analyze(message) -> Findings | None`, starts with a cheap guard
(a header or a phrase that only its format has) and returns None when the message is not
its. The order below is the order of trial: formats that can be confused put the more
specific one first. The plain-text fallback for MTAs no format names is a stage of the chain
of its own (`analysis.plaintext`); the helpers the formats share live in `_lib`.
"""

from __future__ import annotations

from types import ModuleType

from ...report import Action, Kind
from .. import dsn
from ..findings import Findings, kind_of
from ..message import Part
from ..origin import machine_sent

# One module per format; KNOWN below says in which order they are tried.
from . import (
    activehunter,
    amazonses,
    amazonworkmail,
    aol,
    biglobe,
    bracketed_reasons,
    compuserve,
    courier,
    domino,
    dragonfly,
    espwebhooks,
    exchange2003,
    exchange2007,
    exim,
    ezweb,
    fml,
    gmail,
    gmx,
    googlegroups,
    groupwise,
    imail,
    jamesmta,
    kddi,
    mailfoundry,
    mailmarshal,
    mailru,
    mcafee,
    mdaemon,
    messagingserver,
    mfilter,
    mimecast,
    mmdf,
    mssmtpsvc,
    mxlogic,
    notes,
    opensmtpd,
    postfix,
    postoffice,
    powermta,
    qmail,
    qmail_derived,
    sendmail,
    smail,
    surfcontrol,
    technical_details,
    trendmicro,
    trouble_delivering,
    v5sendmail,
    verizon,
    x400,
    yahoo,
    zoho,
)
from ._lib.precheck import Precheck, lowered_sender

# The known formats, in order of trial. Each entry's module says which MTA it reads.
KNOWN: tuple[ModuleType, ...] = (
    # --- mail providers and sending services ---
    googlegroups,  # Google Groups refusals (before gmail: same sender)
    gmail,  # Gmail's plain-text notices (pre-RFC 3464)
    yahoo,  # Yahoo! Mail / AOL "Sorry, we were unable to deliver your message"
    aol,  # America Online's own notices of 1996-2004 (screen names)
    compuserve,  # CompuServe "Receiver not found" (user IDs)
    amazonworkmail,  # Amazon WorkMail (before amazonses: same sender)
    amazonses,  # Amazon SES JSON notifications and SES reports
    espwebhooks,  # SendGrid/Mailgun/Postmark complaint webhooks relayed as mail
    mailru,  # Mail.Ru (Exim in two languages)
    gmx,  # GMX, WEB.DE, mail.com, 1&1 / IONOS
    zoho,  # Zoho Mail "ERROR_CODE" lines
    biglobe,  # BIGLOBE returned mail
    ezweb,  # au by KDDI (EZweb) mail system errors
    kddi,  # au one net (dion.ne.jp) error notices
    verizon,  # Verizon Wireless MMS/SMS gateway
    # --- Microsoft, Lotus and mail gateways ---
    exchange2007,  # Exchange 2007+, Office 365, Outlook.com
    exchange2003,  # Exchange 5.5 - 2003, Internet Mail Service
    mssmtpsvc,  # Microsoft SMTP Service (IIS, Exchange 2000/2003 transport, old Hotmail/MSN)
    x400,  # X.400 gateways' non-delivery notifications (X.411 diagnostic codes)
    mcafee,  # McAfee Email Gateway (X-NAI-Header)
    mxlogic,  # MX Logic
    surfcontrol,  # SurfControl E-mail Filter
    mailmarshal,  # MailMarshal SMTP
    trendmicro,  # Trend Micro InterScan MSS
    mimecast,  # Mimecast delivery alerts
    mfilter,  # m-FILTER
    # --- Unix MTAs ---
    qmail,  # qmail-send (QSBMF), netqmail, indimail
    opensmtpd,  # OpenSMTPD
    exim,  # Exim bounces and delay warnings
    postfix,  # Postfix notices (with or without a report), smtpd transcripts
    sendmail,  # Sendmail 8 reports with their SMTP transcript
    courier,  # Courier mail server reports with the SMTP exchange
    # --- other MTAs ---
    messagingserver,  # Sun/Oracle Messaging Server, PMDF
    domino,  # Lotus/HCL Domino
    notes,  # Lotus Notes SMTP MTA (pre-Domino)
    powermta,  # PowerMTA (X-PowerMTA-BounceCategory)
    v5sendmail,  # Sendmail V5 "Unsent message follows"
    activehunter,  # Active!hunter gateway (X-AHMAILID)
    imail,  # Ipswitch IMail (X-Mailer: <SMTP32>)
    mdaemon,  # Alt-N MDaemon, with its session transcript
    groupwise,  # Novell GroupWise Internet Agent "Message status - undeliverable"
    postoffice,  # Software.com Post.Office "This Message was undeliverable..."
    mmdf,  # MMDF "could not be delivered to '...' for the following reason"
    smail,  # smail 3 "Failed addresses follow"
    mailfoundry,  # MailFoundry gateway
    jamesmta,  # Apache James bounce mailet
    dragonfly,  # DragonFly Mail Agent (dma)
    fml,  # fml mailing list manager: non-member posts
    bracketed_reasons,  # unnamed: "address [reason]" lines
    qmail_derived,  # unnamed, qmail-derived: "Unable to deliver message to the following ..."
    technical_details,  # unnamed: "* address" under "Delivery to the following recipients ..."
    trouble_delivering,  # unnamed: "We had trouble delivering your message."
)


# Formats that declare `WORDS_ONLY = True`: recognised only by the words of their notice,
# which a person can paste or forward, so tried only on a message a mail system sent
# (`origin.machine_sent`). Gmail's and Yahoo's plain-text notices name their sender too, but
# a list can carry that sender's name over a person's words (a rewritten From): they ask the
# same question.
WORDS_ONLY = frozenset(module.NAME for module in KNOWN if getattr(module, "WORDS_ONLY", False))

# The formats tried on a message no mail system sent, in the same order.
_NOT_WORDS_ONLY = tuple(module for module in KNOWN if module.NAME not in WORDS_ONLY)

# Each format with its pre-check (`precheck`), or None when it declares none.
_CHECKED: tuple[tuple[ModuleType, Precheck | None], ...] = tuple(
    (module, getattr(module, "PRECHECK", None)) for module in KNOWN)
_NOT_WORDS_ONLY_CHECKED = tuple(pair for pair in _CHECKED if pair[0].NAME not in WORDS_ONLY)


def analyze_known(message: Part) -> Findings | None:
    """The first known format that claims the message; a format whose pre-check rejects the
    message is not asked."""
    sender = lowered_sender(message)
    for module, precheck in _CHECKED if machine_sent(message) else _NOT_WORDS_ONLY_CHECKED:
        if precheck is not None and not precheck.admits(message, sender):
            continue
        findings = module.analyze(message)
        if findings is not None:
            if not findings.analyzer:
                findings.analyzer = f"formats.{module.NAME}"
            _complete_from_report(message, findings)
            return findings
    return None


# What a report's machine-readable Action says happened, against a format's assumption.
_SUCCESS = (Action.DELIVERED, Action.RELAYED, Action.EXPANDED)


def _complete_from_report(message: Part, findings: Findings) -> None:
    """A format read its own words; when they left a recipient without the server's words and
    the message also carries an RFC 3464 status part, that part's fields for the same address
    fill the gap (Haraka and others copy Exim's sentences but put the reply elsewhere).

    Formats that only know failures write every recipient as failed; when the status part
    states a success (delivered, relayed, expanded) for that address, its Action wins, and the
    kind follows the recipients (a success notice of a patched qmail, a mixed report)."""
    if findings.kind not in (Kind.BOUNCE, Kind.DELAY, Kind.DELIVERED) \
            or dsn.status_part(message) is None:
        return
    report = dsn.analyze(message)
    if report is None:
        return
    by_address = {f.address: f for f in report.failures if f.address}
    corrected = False
    for failure in findings.failures:
        stated = by_address.get(failure.address)
        if stated is not None and stated.action in _SUCCESS and failure.action not in _SUCCESS:
            failure.action, failure.status = stated.action, stated.status
            failure.smtp_code, failure.reason_hint = stated.smtp_code, ""
            failure.diagnostic = stated.diagnostic or failure.diagnostic
            corrected = True
    if corrected:
        findings.kind = kind_of(findings.failures)
        findings.evidence += "; success actions from the RFC 3464 status part"
    if all(f.diagnostic.strip() for f in findings.failures):
        return
    for failure in findings.failures:
        extra = by_address.get(failure.address)
        if extra is None or failure.diagnostic.strip() or not extra.diagnostic:
            continue
        failure.diagnostic = extra.diagnostic
        for name in ("status", "smtp_code", "remote_mta"):
            if not getattr(failure, name) and getattr(extra, name):
                setattr(failure, name, getattr(extra, name))
