"""The one classifier: status, SMTP code and words -> reason and `permanent`.

Table-driven: each row is what a report says about one recipient and what it must mean.
The wordings are the ones MTAs and providers use (named in each row), not corpus samples.
"""

from __future__ import annotations

import pytest

from imap_bouncer.analysis import phrases
from imap_bouncer.analysis.reasons import classify, find_smtp_code, find_status
from imap_bouncer.report import Action, Reason

R = Reason

# (diagnostic, status, smtp_code, expected reason, expected permanent)
CASES = [
    # --- the address is bad: permanent ---------------------------------------------------
    ("550 5.1.1 <jo@example.org>: Recipient address rejected: User unknown in local "
     "recipient table", "5.1.1", "550", R.USERUNKNOWN, True),  # Postfix
    ("550 5.1.1 <jo@example.org>... User unknown", "", "", R.USERUNKNOWN, True),  # Sendmail
    ("550-5.1.1 The email account that you tried to reach does not exist.", "5.1.1", "550",
     R.USERUNKNOWN, True),  # Gmail
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
     "5.1.10", "550", R.USERUNKNOWN, True),  # Office 365
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient jo@example.org not found by SMTP "
     "address lookup", "5.1.10", "550", R.USERUNKNOWN, True),  # Office 365, address named
    ("550 5.4.310 DNS domain example.invalid does not exist [Message=InfoDomainNonexistent]",
     "5.4.310", "550", R.HOSTUNKNOWN, True),  # Office 365
    ("Sorry, no mailbox here by that name. (#5.1.1)", "", "", R.USERUNKNOWN, True),  # qmail
    ("554 delivery error: dd This user doesn't have a example.com account", "", "554",
     R.USERUNKNOWN, True),  # Yahoo
    ("550 #5.1.0 Address rejected.", "", "", R.USERUNKNOWN, True),  # Google Workspace
    ("450 4.1.1 <jo@example.org>: Recipient address rejected: User unknown in virtual alias "
     "table", "4.1.1", "450", R.USERUNKNOWN, True),  # Postfix soft_bounce: still no such user
    ("", "5.1.1", "", R.USERUNKNOWN, True),  # a bare RFC 3463 status
    ("Sorry, I couldn't find any host named example.invalid. (#5.1.2)", "", "",
     R.HOSTUNKNOWN, True),  # qmail
    ("Host or domain name not found. Name service error for name=example.invalid type=A: "
     "Host not found", "5.4.4", "", R.HOSTUNKNOWN, True),  # Postfix
    ("550 5.4.4 Invalid domain", "5.4.4", "550", R.HOSTUNKNOWN, True),
    ("", "5.4.4", "", R.HOSTUNKNOWN, True),  # permanent "unable to route" (RFC 3463)
    ("550 5.1.6 recipient no longer on server: jo@example.org", "5.1.6", "550",
     R.HASMOVED, True),
    ("556 5.1.10 Recipient address has null MX", "5.1.10", "556", R.NOTACCEPT, True),
    ("550 5.1.1 <jo@example.org>: inactive email address", "5.1.1", "550",
     R.USERUNKNOWN, True),  # iCloud: "inactive" under 5.1.1 is a gone address
    # --- the address is fine, the mailbox or system is not ---------------------------------
    ("552 5.2.2 <jo@example.org>: Recipient address rejected: Mailbox full", "5.2.2", "552",
     R.MAILBOXFULL, False),
    ("550 5.2.2 <jo@example.org>... Mailbox Full", "5.2.2", "550", R.MAILBOXFULL, False),
    ("recipient reached disk quota", "5.0.0", "", R.MAILBOXFULL, False),  # Sun Messaging Server
    # words that name no known cause: stated, not yet told (onhold); no words: undefined
    ("Unable to deliver message to <jo@example.org> (and other recipients in the same "
     "domain).", "", "", R.ONHOLD, False),  # Trend Micro InterScan
    ("", "5.2.2", "", R.MAILBOXFULL, False),
    ("550-5.2.1 The email account that you tried to reach is disabled.", "5.2.1", "550",
     R.SUSPEND, False),  # Gmail
    ("550 Mailbox is frozen.", "", "550", R.SUSPEND, False),
    ("452 4.3.1 Insufficient system storage", "4.3.1", "452", R.SYSTEMFULL, False),
    ("552 5.3.4 Message size exceeds fixed maximum message size", "5.3.4", "552",
     R.MESGTOOBIG, False),
    ("552 5.2.3 Message length exceeds limit set by recipient", "5.2.3", "552",
     R.EXCEEDLIMIT, False),
    ("451 4.3.0 Temporary local error in processing", "4.3.0", "451", R.SYSTEMERROR, False),
    ("Name service error for name=example.com type=MX: Host not found, try again", "", "",
     R.NETWORKERROR, False),  # Postfix: a DNS answer that may come next time
    ("DNS Error: DNS type 'mx' lookup of example.invalid responded with code NXDOMAIN",
     "4.0.0", "", R.NETWORKERROR, False),  # Gmail reports it as transient
    ("554 5.4.6 Too many hops", "5.4.6", "554", R.NETWORKERROR, False),
    ("retry timeout exceeded", "", "", R.EXPIRED, False),  # Exim
    ("550 4.4.7 QUEUE.Expired; message expired", "4.4.7", "550", R.EXPIRED, False),
    ("Connection timed out", "", "", R.EXPIRED, False),  # a host that never answered
    ("Sorry, I wasn't able to establish an SMTP connection. (#4.4.1) I'm not going to try "
     "again; this message has been in the queue too long.", "4.4.1", "", R.NETWORKERROR,
     False),  # qmail: the cause is named, the giving up is boilerplate
    # --- the message was refused: never permanent, whatever the 5xx -------------------------
    ("554 5.7.1 Client host [192.0.2.7] blocked using b.barracudacentral.org; "
     "http://www.barracudanetworks.com/reputation/?pr=1&ip=192.0.2.7", "5.7.1", "554",
     R.BLOCKED, False),  # a link's path ("/reputation/") is not the verdict
    ("553 http://www.spamhaus.org/query/bl?ip=192.0.2.7", "", "553",
     R.BLOCKED, False),  # ... but its host may name the blocklist
    ("550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.",
     "5.7.708", "550", R.BLOCKED, False),  # Office 365
    ("450 service permits 2 unverifyable sending IPs - mx.example.net is not 192.0.2.7",
     "", "450", R.REQUIREPTR, False),  # Exim forward-confirmed reverse DNS ACL
    ("554 5.4.14 Hop count exceeded - possible mail loop", "5.4.14", "554",
     R.NETWORKERROR, False),  # Office 365
    ("554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
     "5.7.1", "554", R.BLOCKED, False),  # Postfix reject_rbl_client
    ("550 5.1.1 <jo@example.org>: blocked using b.barracudacentral.org", "5.1.1", "550",
     R.BLOCKED, False),  # a "user unknown" status whose words name a blocklist
    ("550 5.7.606 Access denied, banned sending IP [192.0.2.1].", "5.7.606", "550",
     R.BLOCKED, False),  # Microsoft
    ("550-5.7.25 The IP address sending this message does not have a PTR record setup",
     "5.7.25", "550", R.REQUIREPTR, False),  # Gmail
    ("450 4.7.1 Client host rejected: cannot find your hostname, [192.0.2.1]", "4.7.1", "450",
     R.REQUIREPTR, False),  # Postfix reject_unknown_client_hostname
    ("550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail "
     "requires all senders to authenticate with either SPF or DKIM.", "5.7.26", "550",
     R.AUTHFAILURE, False),
    ("554 5.7.1 Your message was rejected due to example.org's DMARC policy", "5.7.1", "554",
     R.AUTHFAILURE, False),  # Apple
    ("550 5.7.1 This message does not have authentication information or fails to pass "
     "authentication checks", "5.7.1", "550", R.AUTHFAILURE, False),  # Gmail
    ("550 Unauthenticated senders not allowed", "", "550", R.SECURITYERROR, False),
    ("530 5.7.0 Must issue a STARTTLS command first", "5.7.0", "530", R.SECURITYERROR, False),
    ("550-5.7.1 Our system has detected that this message is likely suspicious due to the "
     "very low reputation of the sending IP address.", "5.7.1", "550", R.BADREPUTATION, False),
    ("421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume "
     "or user complaints", "4.7.0", "421", R.BADREPUTATION, False),  # Yahoo
    ("452 4.3.2 Connection rate limit exceeded.", "4.3.2", "452", R.TOOMANYCONN, False),
    ("552 5.5.3 Too many recipients", "5.5.3", "552", R.TOOMANYCONN, False),
    ("550 5.7.1 Daily sending rate limit exceeded", "5.7.1", "550", R.SPEEDING, False),
    ("554 5.7.0 Reject, id=12345 - SPAM", "5.7.0", "554", R.SPAMDETECTED, False),  # amavis
    ("550 5.7.1 Message content rejected, UBE, id=1", "5.7.1", "550", R.SPAMDETECTED, False),
    ("554 5.7.0 Reject, id=1 - INFECTED: Eicar-Test-Signature", "5.7.0", "554",
     R.VIRUSDETECTED, False),
    ("550-5.7.1 This message is not RFC 5322 compliant. There are multiple Subject headers. "
     "To reduce the amount of spam sent to Gmail, this message has been blocked.", "5.7.1",
     "550", R.NOTCOMPLIANTRFC, False),  # the "spam" explanation does not make it spam
    ("550 5.6.9 improper use of 8-bit data in message header", "5.6.9", "550",
     R.CONTENTERROR, False),  # Sendmail: a media status, not the 550's "no such user"
    ("554 5.7.9 Message not accepted for policy reasons.", "5.7.9", "554",
     R.POLICYVIOLATION, False),  # Yahoo
    ("550 5.7.1 Delivery not authorized, message refused", "5.7.1", "550",
     R.POLICYVIOLATION, False),  # RFC 3463's own words
    ("", "5.7.1", "550", R.POLICYVIOLATION, False),  # a policy status beats the bare 550
    # Explicit "no such user" words make the address bad whatever the subclass (Sun's
    # Messaging Server answers "5.7.1 User Unknown"), unless a filter or a policy is named.
    ("550 5.7.1 550 User Unknown", "5.7.1", "550", R.USERUNKNOWN, True),
    ("550 5.7.1 User unknown: refused by the recipient's filter rules", "5.7.1", "550",
     R.FILTERED, False),
    ("550 Requested action not taken: mailbox unavailable", "", "550", R.FILTERED, False),
    ("550 5.1.1 Requested action not taken: mailbox unavailable", "5.1.1", "550",
     R.USERUNKNOWN, True),  # RFC 5321's stock words say less than the status
    ("550 5.1.1 Refused due to recipient preferences", "5.1.1", "550", R.FILTERED, False),
    ("501 5.1.8 Sender address rejected: Domain not found", "5.1.8", "501",
     R.REJECTED, False),  # Postfix reject_unknown_sender_domain
    ("553 5.1.8 <root@example.org>... Domain of sender address root@example.org does not "
     "exist", "5.1.8", "553", R.REJECTED, False),  # Sendmail
    ("550 5.1.7 No such domain example.invalid.", "5.1.7", "550", R.REJECTED, False),
    ("554 5.7.1 <jo@example.org>: Relay access denied", "5.7.1", "554", R.NORELAYING, False),
    ("450 4.2.0 <jo@example.org>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/", "4.2.0", "450", R.POLICYVIOLATION, False),
    ("501 5.5.4 Syntax error in parameters or arguments", "5.5.4", "501", R.SYNTAXERROR, False),
    ("user unknown. Command output: procmail: Couldn't create \"/var/mail/jo\"", "", "",
     R.MAILERERROR, False),  # Postfix pipe: the delivery program failed
    ("554 Transaction failed", "", "554", R.UNDEFINED, False),  # says nothing
    ("", "", "", R.UNDEFINED, False),
]


@pytest.mark.parametrize(("diagnostic", "status", "code", "reason", "permanent"), CASES)
def test_classify(diagnostic: str, status: str, code: str, reason: Reason, permanent: bool):
    verdict = classify(status=status, smtp_code=code, diagnostic=diagnostic)
    assert (verdict.reason, verdict.permanent) == (reason, permanent), verdict.evidence


# Refusals of the message, whatever the code: the address must never be suppressed.
MESSAGE_REFUSALS = [
    "blocked using zen.spamhaus.org",
    "Client host rejected: Access denied",
    "Your IP address is listed on our blocklist",
    "Rate limit exceeded, try again later",
    "SPF check failed",
    "DKIM signature did not pass",
    "Message rejected as spam",
    "Virus found in message",
    "Message not accepted for policy reasons",
    "Relaying denied",
    "TLS is required but was not offered",
    "This message was blocked because its content presents a potential security issue",
]


@pytest.mark.parametrize("words", MESSAGE_REFUSALS)
@pytest.mark.parametrize(("code", "status"), [("550", "5.1.1"), ("554", "5.7.1"),
                                              ("550", ""), ("553", "5.0.0")])
def test_refused_messages_are_never_permanent(words: str, code: str, status: str):
    verdict = classify(status=status, smtp_code=code, diagnostic=f"{code} {status} {words}")
    assert verdict.permanent is False, (verdict.reason, verdict.evidence)
    assert verdict.reason not in (R.USERUNKNOWN, R.HOSTUNKNOWN, R.HASMOVED, R.NOTACCEPT)


@pytest.mark.parametrize(("diagnostic", "reason"), [
    ("450 4.7.1 Too many messages in a short time, slow down", R.SPEEDING),
    ("550 User has too many messages on the server", R.MAILBOXFULL),  # Web.de
])
def test_too_many_messages_is_a_rate_unless_they_are_stored(diagnostic: str, reason: Reason):
    assert classify(diagnostic=diagnostic).reason is reason


@pytest.mark.parametrize(("diagnostic", "reason"), [
    ("550 5.1.1 <spam@example.org>... User unknown", R.USERUNKNOWN),
    ("550 5.1.1 <dane.virus@example.org>: Recipient address rejected: User unknown",
     R.USERUNKNOWN),
    ("554 5.7.1 <nosuchuser@example.org>: Message refused by policy", R.POLICYVIOLATION),
    ("550 <zombie@example.org>: Recipient address rejected: Mailbox full", R.MAILBOXFULL),
])
def test_words_in_an_address_are_not_the_servers_words(diagnostic: str, reason: Reason):
    """A local part is a name: "spam@", "nosuchuser@" name no cause."""
    verdict = classify(diagnostic=diagnostic)
    assert verdict.reason is reason, verdict.evidence


def test_notaccept_is_permanent_only_with_a_permanent_class():
    assert classify(status="5.1.10", diagnostic="Null MX").permanent is True
    assert classify(status="4.0.0", diagnostic="returned Null MX").permanent is False


# --- the SMTP command a reply answered -------------------------------------------------------

@pytest.mark.parametrize(("diagnostic", "command", "reason"), [
    ("550 5.1.1 User unknown", "MAIL", R.REJECTED),  # about the sender
    ("550 5.7.1 Access denied", "MAIL", R.REJECTED),
    ("554 5.7.1 Blocked using bl.example.org", "MAIL", R.BLOCKED),  # the words still win
    ("554 Transaction failed", "CONN", R.BLOCKED),  # refused before any address was sent
    ("550 Unknown user jo@example.org", "DATA", R.USERUNKNOWN),  # explicit, at any stage
    ("550 Unknown user jo@example.org (refused by a filter)", "DATA", R.FILTERED),
    ("550 Mailbox unavailable", "DATA", R.FILTERED),  # accepted at RCPT, refused after DATA
    ("550 Unknown user jo@example.org", "RCPT", R.USERUNKNOWN),
    # Yahoo accepts every RCPT TO and refuses unknown accounts after DATA, in so many words
    ("554 delivery error: dd This user doesn't have a yahoo.com account (jo@yahoo.com) [0]",
     "DATA", R.USERUNKNOWN),
])
def test_stated_command(diagnostic: str, command: str, reason: Reason):
    assert classify(diagnostic=diagnostic, command=command).reason is reason


def test_postfix_command_in_the_notice():
    notice = ("The mail system\n\n<jo@example.org>: host mx.example.org[192.0.2.1] said: 550\n"
              "    Unknown user jo@example.org (in reply to end of DATA command)\n")
    verdict = classify(status="5.0.0", smtp_code="550", address="jo@example.org",
                       diagnostic="550 Unknown user jo@example.org", notice=notice)
    assert (verdict.reason, verdict.permanent) == (R.USERUNKNOWN, True)


def test_exim_command_in_the_diagnostic():
    diagnostic = ("SMTP error from remote mail server after MAIL FROM:<me@example.net> SIZE=99: "
                  "550 Unroutable address")
    assert classify(diagnostic=diagnostic).reason is R.REJECTED


SENDMAIL_TRANSCRIPT = """\
----- Transcript of session follows -----
... while talking to mx.example.org.:
>>> DATA
<<< 550 5.1.1 <gone@example.org>... User unknown
<<< 503 5.0.0 Need RCPT (recipient)
"""


def test_sendmail_pipelined_rcpt_reply_under_data_stays_an_address():
    verdict = classify(status="5.1.1", smtp_code="550", address="gone@example.org",
                       diagnostic="550 5.1.1 <gone@example.org>... User unknown",
                       notice=SENDMAIL_TRANSCRIPT)
    assert (verdict.reason, verdict.permanent) == (R.USERUNKNOWN, True)


def test_sendmail_reply_to_data():
    notice = (">>> DATA\n<<< 550 Message refused for jo@example.org\n"
              "554 5.0.0 Service unavailable\n")
    verdict = classify(status="5.0.0", smtp_code="550", address="jo@example.org",
                       diagnostic="550 Message refused for jo@example.org", notice=notice)
    assert verdict.reason is R.FILTERED


# --- the notice, delays, success, hints ------------------------------------------------------

def test_notice_words_are_taken_per_recipient():
    notice = ("An error has occurred while attempting to deliver a message for the following "
              "list of recipients:\n\n"
              "a@example.org: 550 5.1.1 <a@example.org>: Recipient address rejected: User "
              "unknown\n\n"
              "b@example.org: 552 5.2.2 <b@example.org>: Recipient address rejected: Mailbox "
              "full\n")
    first = classify(status="5.0.0", address="a@example.org", notice=notice)
    second = classify(status="5.0.0", address="b@example.org", notice=notice)
    assert (first.reason, first.permanent) == (R.USERUNKNOWN, True)
    assert (second.reason, second.permanent) == (R.MAILBOXFULL, False)


def test_diagnostic_words_beat_the_notice():
    verdict = classify(diagnostic="552 Mailbox full", notice="Recipient address rejected")
    assert verdict.reason is R.MAILBOXFULL


@pytest.mark.parametrize(("diagnostic", "status", "code", "reason"), [
    ("", "4.4.7", "", R.EXPIRED),
    ("", "4.5.0", "", R.EXPIRED),  # a delay with no cause stated
    ("421 Warning: message still undelivered after 4 hours", "", "421", R.EXPIRED),
    ("451 4.7.1 Greylisted, please try again later", "4.7.1", "451", R.POLICYVIOLATION),
    ("connect to mx.example.org[192.0.2.1]:25: No route to host", "4.4.1", "", R.NETWORKERROR),
])
def test_delays(diagnostic: str, status: str, code: str, reason: Reason):
    verdict = classify(status=status, smtp_code=code, diagnostic=diagnostic,
                       action=Action.DELAYED)
    assert (verdict.reason, verdict.permanent) == (reason, False)
    assert verdict.status.startswith(status[:1] or "4")


def test_success_and_stated_kinds():
    assert classify(action=Action.DELIVERED).reason is R.DELIVERED
    assert classify(action=Action.RELAYED, status="2.0.0").reason is R.DELIVERED
    assert classify(action=Action.DELIVERED, hint="feedback").reason is R.FEEDBACK
    assert classify(action=Action.DELIVERED, hint="vacation").reason is R.VACATION


def test_hint_yields_to_the_servers_words_and_fills_silence():
    assert classify(hint="rejected", diagnostic="421 4.7.0 poor reputation").reason \
        is R.BADREPUTATION
    verdict = classify(hint="mailboxfull", status="5.0.0")
    assert (verdict.reason, verdict.evidence) == (R.MAILBOXFULL, "stated by the format")


@pytest.mark.parametrize(("reason", "action", "code", "status"), [
    (R.USERUNKNOWN, Action.FAILED, "", "5.1.1"),
    (R.MAILBOXFULL, Action.FAILED, "452", "4.2.2"),
    (R.EXPIRED, Action.DELAYED, "", "4.4.7"),
])
def test_missing_status_is_implied(reason: Reason, action: Action, code: str, status: str):
    words = {R.USERUNKNOWN: "No such user", R.MAILBOXFULL: "Mailbox full",
             R.EXPIRED: "message expired"}[reason]
    verdict = classify(diagnostic=words, smtp_code=code, action=action)
    assert (verdict.reason, verdict.status) == (reason, status)


def test_codes_are_found_in_text():
    assert find_status("550-5.7.26 Unauthenticated email") == "5.7.26"
    assert find_status("Sorry (#5.1.1)") == "5.1.1"
    assert find_status("version 10.5.1.2") == ""
    assert find_smtp_code("host said: 550 5.1.1 no") == "550"


def test_repeated_codes_in_multiline_replies_do_not_split_phrases():
    found = phrases.match("550-5.7.1 Messages with multiple 550-5.7.1 addresses in From: "
                          "header are not accepted.")
    assert found is not None and found[0] is R.NOTCOMPLIANTRFC
