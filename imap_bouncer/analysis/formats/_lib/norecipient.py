"""Reports that name no recipient: a mail system refused the message as a whole.

A local MTA or a submission service that refuses a message before it is queued for anyone
(too big for the system, too many recipients, a sending limit, a virus, a banned attachment,
spam, a content policy, relaying or TLS refused, the sender not allowed) tells the sender so
without naming a recipient: Exim's "Mail failure - message too big", Microsoft 365 "Your
message wasn't delivered to anyone because there are too many recipients", Gmail "You have
reached a limit for sending mail", amavisd-new and MailScanner notices to the sender, a
hosting provider's "max emails per hour". Such a report is one failure whose address is "":
it counts as a bounce, and no address's state can change for it.

The generic plain-text reader asks `refused_as_a_whole` after its readers that find named
recipients and before the thin ones that guess one, so a report that says the message went
to nobody is not pinned on the returned original's To. It claims only a notice that
1. a mail system sent (`origin.from_mail_system`), as a report: from the null return path,
   or marked Auto-Submitted (a postmaster's own announcement of the limits is neither); not
   a person's reply or forward, and not a spoof: no Reply-To, and a null, absent or
   mail-system Return-Path (`trusted_sender`);
2. says the sender's message failed (`FAILED`, in its words or its subject);
3. states one of the causes of `CAUSES` in a sentence of its own words.
The words returned are the quoted SMTP reply that states the same cause, else the sentence
(with the code and status of a reply quoted elsewhere), for `reasons.classify` to judge.
"""

from __future__ import annotations

from ....report import Reason
from ... import lazy_re as re
from ...message import Part
from ...origin import (
    MAILER_SENDERS,
    NULL_PATHS,
    auto_submitted,
    from_mail_system,
    is_reply_or_forward,
    null_return_path,
)

# (reason, pattern): the causes for which a mail system refuses a whole message, most
# specific first (a virus is named before the attachment that carried it, a sender's refusal
# before the spam suspicion that led to it, a limit per day before a limit per message).
CAUSES: tuple[tuple[Reason, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.I)) for reason, pattern in (
        # Virus scanners: amavisd "virus: NAME", ClamAV "was infected by", simscan, Exim ACLs.
        (Reason.VIRUSDETECTED, r"\bvirus(?:es)? (?:found|detected)\b|\bcontains? (?:a |the )?"
                               r"virus\b|\binfected\b|\bvirus: \S|\bmalware (?:found|detected)"),
        # Banned names and attachment types: amavisd BANNED, MailScanner, Exim filters.
        (Reason.CONTENTERROR, r"\bbanned (?:name|contents?|attachments?|file)|"
                              r"\b(?:unacceptable|prohibited|forbidden|dangerous|blocked) "
                              r"(?:attachments?|file types?|file names?)\b|"
                              r"\battachments? (?:type )?(?:is |are )?not (?:allowed|permitted)|"
                              r"\bfiles? (?:\(\S+\) )?are not allowed in e-?mail"),
        # The sender may not send: Microsoft 5.1.8, Amazon SES identities, a submission
        # server's "not owned by the authenticated user".
        (Reason.REJECTED, r"(?:\bnot|n't) recogni[sz]ed as a valid sender|bad outbound sender|"
                          r"\bno longer allowed to send|\bsender (?:address )?(?:is |was )?"
                          r"(?:rejected|refused|not allowed|blocked)|"
                          r"\bnot owned by the authenticated|\baddress is not verified|"
                          r"\bidentities failed the check"),
        (Reason.NORELAYING, r"\brelay(?:ing)? (?:access )?(?:denied|not permitted|prohibited)|"
                            r"\b(?:refused|unable|not permitted|not allowed) to relay\b"),
        # The submission server wants TLS or authentication first (RFC 3207, RFC 4954).
        (Reason.SECURITYERROR, r"\bstarttls\b|\bauthentication (?:is )?required|"
                               r"\bmust (?:first )?authenticate|\bencrypted connection|"
                               r"\b(?:encryption|tls) (?:is )?required"),
        # The receiving system's own size limit (Exim, Postfix, qmail databytes, Exchange).
        (Reason.MESGTOOBIG, r"\blonger than the maximum size|\bmessage (?:is |was )?too "
                            r"(?:big|large)|\bexceeds? (?:the |my )?(?:maximum|max|fixed|"
                            r"databytes) (?:\w+ ){0,3}(?:size|limit)|\bmessage size (?:limit )?"
                            r"exceed|\bsize limit exceeded|\bdatabytes limit|\bnachricht (?:ist )?"
                            r"zu gro(?:ß|ss)|\bsupera el tamaño máximo|"  # de, es, fr
                            r"\bdépasse la taille maximale"),
        # Limits per period (before limits per message: "daily recipient limit").
        (Reason.SPEEDING, r"\bsending (?:limit|quota|rate)|\blimit for sending|"
                          r"\b(?:daily|hourly) (?:\w+ ){0,3}(?:limit|quota)|"
                          r"\b(?:e-?mails|messages) per (?:hour|day)\b|\bsubmission quota|"
                          r"\bmore messages (?:today|than your account allows)|\bthrottl|"
                          r"\brate limit|\b(?:versand|sende|tages)limit|"
                          r"\blimite d'envoi|\blímite de envío"),  # de, fr, es
        (Reason.TOOMANYCONN, r"\btoo many recipients|\bmore recipients than|\brecipient limit|"
                             r"\brecipients per message|\breciplimit|\bzu viele empfänger|"
                             r"\btrop de destinataires|\bdemasiados destinatarios"),
        (Reason.SPAMDETECTED, r"\bspam\b|\bunsolicited (?:bulk|commercial)|\(ube\)|"
                              r"\bjunk mail"),
        # The rest of a site's rules: Exim's local_scan and ACLs, content and DLP policies.
        (Reason.POLICYVIOLATION, r"\blocal scanning code|\blocal acl\b|\bcompliance rule|"
                                 r"\bviolat\w* .{0,60}\bpolic(?:y|ies)\b|"
                                 r"\b(?:content|outbound|data loss prevention|dlp|local) "
                                 r"(?:\w+ ){0,3}polic(?:y|ies)\b"),
    ))

# Words that say the sender's message failed: not sent, not delivered, rejected, stopped. Said
# of "your message" (or "a message that you sent", "it ... to any recipient"), not of messages
# a quarantine digest lists; held ("quarantined") is not failed.
_FAILED_WORDS = (r"(?:(?:\bnot|n't|\bnever) (?:be |been )?(?:sent|delivered|relayed|accepted|"
                 r"queued)|\b(?:was|were|is|has been|have been) (?:rejected|refused|blocked|"
                 r"discarded|stopped))\b")
FAILED = re.compile(
    r"\b(?:your|the|this|a|that) (?:e-?mail )?(?:message|e-?mail|mail)\b[^.!?]{0,80}?"
    + _FAILED_WORDS + r"|"
    r"\bnot (?:been )?delivered to any(?:one| recipients?)\b|"
    r"\bmessage (?:not sent|not delivered|rejected|refused|blocked|discarded)\b|"
    r"\bunable to (?:send|deliver) your message|"
    r"\bdelivery of (?:the|your) (?:e-?mail|message) (?:was|has been) stopped|"
    r"\bmail failure\b|"  # Exim's subjects: "Mail failure - message too big"
    r"\b(?:ihre|die) nachricht\b.{0,60}?\b(?:nicht|niemandem) (?:versendet|zugestellt|"
    r"gesendet)\b|"  # German
    r"\bn'a pas (?:été|pu être) (?:envoyé|remis|distribué)|"  # French
    r"\bno se (?:pudo|ha podido) (?:enviar|entregar)|\bno (?:pudo ser|ha sido|fue) "
    r"(?:enviado|entregado)\b",  # Spanish
    re.I)

# A quoted SMTP reply on a line of its own, maybe after a label ("Reported error: 550 ...").
REPLY_LINE = re.compile(r"^[ \t]*(?:[A-Za-z][\w ]{0,30}:[ \t]*)?#?([245]\d\d)[ -](.{3,})$",
                        re.M)
_STATUS = re.compile(r"^#?[245]\.\d{1,3}\.\d{1,3}\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(<])")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_RULE = re.compile(r"^[ \t]*[-=_*]{3,}[ \t]*$", re.M)
_HEAD = 4000  # the notice's words that can still state the cause
_WORDS = 500  # the longest sentence kept as the diagnostic


def trusted_sender(message: Part) -> bool:
    """A report that names nobody must at least have come back on the null sender (RFC 5321
    4.5.5), or a mail system's, and ask for no answers elsewhere: a "Mail Delivery System"
    From with a real envelope sender or a Reply-To is phishing."""
    return_path = message.get("return-path").strip()
    spoofed = return_path and return_path not in NULL_PATHS \
        and not MAILER_SENDERS.search(return_path)
    return not spoofed and "reply-to" not in message


def refused_as_a_whole(message: Part, notice: str, subject: str) -> str:
    """The words that state why a mail system refused the whole message; "" when the notice
    is not such a report (see the module docstring)."""
    if not from_mail_system(message) or is_reply_or_forward(subject) \
            or not trusted_sender(message):
        return ""
    if not (null_return_path(message) or auto_submitted(message)):
        return ""  # a person writing from a postmaster address
    head = _RULE.sub("", notice[:_HEAD])  # a ruled line ends a paragraph
    if not (FAILED.search(" ".join(head.split())) or FAILED.search(subject)):
        return ""
    sentences = [s for paragraph in _PARAGRAPH.split(head)
                 for s in _SENTENCE_END.split(" ".join(paragraph.split())) if s]
    for _reason, pattern in CAUSES:
        stated = next((s for s in sentences if pattern.search(s)), None)
        if stated is not None:
            return _diagnostic(head, stated, pattern)
    return ""


def _diagnostic(head: str, sentence: str, cause: re.Pattern[str]) -> str:
    """The quoted reply that states the cause, else the sentence, led by the code and status
    of the first reply the notice quotes (they say how the server answered)."""
    replies = list(REPLY_LINE.finditer(head))
    for reply in replies:
        if cause.search(reply.group(0)):
            return " ".join(reply.group(0).split())[:_WORDS]
    lead = ""
    for reply in replies:
        status = _STATUS.match(reply.group(2).strip())
        if status:
            lead = f"{reply.group(1)} {status.group(0).lstrip('#')} "
            break
    return (lead + sentence)[:_WORDS]
