"""Phrase tables: what remote servers write, and the reason each phrase names.

Data, not code: each entry is (reason, pattern) with a comment saying where the wording comes
from. Patterns are matched case-insensitively against the diagnostic text with runs of white
space folded to one space. The table is checked top to bottom and the first match wins, so
more specific reasons (a blocklist named in a 550 "user unknown"-looking reply) come first.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from ..report import Reason
from . import lazy_re as re
from .literals import alternatives_words, prefiltered, top_level_alternatives, trie_pattern

# "This user doesn't have a yahoo.com account": no such account, at any SMTP stage.
_ACCOUNT_MISSING = r"(?:doesn't|does not) have an? .{1,40} account"

# (reason, regular expression). Order matters: first match wins. The groups run from the most
# specific cause to the most general, because one reply often carries several: Gmail explains
# a reputation or an RFC 5322 refusal "to protect our users from spam"; Postfix writes
# "Recipient address rejected:" before the real cause; qmail adds "Giving up on ..." to all.
PHRASES: list[tuple[Reason, str]] = [
    # --- the SENDER's domain has a null MX (RFC 7505 5.7.27): about the sender, not the
    # recipient ------------------------------------------------------------------------------
    (Reason.REJECTED, r"sender (?:address|domain) has (?:a )?null mx"),
    # --- X.400 non-delivery diagnostics (ITU-T X.411 NonDeliveryDiagnosticCode), as gateways
    # print them: "unrecognised-OR-name (0)", PP's "Unrecognised ORName", Exchange's
    # "unrecognized O/R name". Their hyphenated names occur in no SMTP reply. -----------------
    (Reason.USERUNKNOWN, r"\b(?:unrecogni[sz]ed|ambiguous)[- _]?o/?r[- _]?name\b"),
    (Reason.SUSPEND, r"\brecipient[- _]unavailable \(4\)|\brecipient-unavailable\b"),
    (Reason.SYSTEMFULL, r"\bmts[- _]congestion\b"),
    (Reason.NETWORKERROR, r"\b(?:redirection-)?loop-detected\b"),
    (Reason.EXPIRED, r"\bmaximum[- _]time[- _]expired\b|\btransfer-attempts-limit-reached\b"),
    (Reason.MESGTOOBIG, r"\bcontent[- _]too[- _]long\b|\bsize-constraint-violation\b"),
    (Reason.CONTENTERROR, r"\bencoded-information-types-unsupported\b|"
                          r"\bconversion-(?:impractical|with-loss-prohibited)\b|"
                          r"\bimplicit-conversion-(?:prohibited|not-subscribed)\b|"
                          r"\bcontent-(?:syntax-error|type-not-supported)\b"),
    (Reason.POLICYVIOLATION, r"\bno-bilateral-agreement\b|\bno-dl-submit-permission\b|"
                             r"\bdl-expansion-prohibited\b|"
                             r"\brecipient-reassignment-prohibited\b"),
    # --- the domain accepts no mail at all (RFC 7505 null MX) ---------------------------------
    (Reason.NOTACCEPT, r"\bnull mx\b|"  # RFC 7505; Gmail "returned Null MX"
                       r"(?:doesn't|does not) receive e-?mail|"  # Gmail "doesn't receive email"
                       r"(?:host|domain) (?:does not|doesn't) accept (?:e-?)?mail\b(?! from)|"
                       r"accepts no (?:e-?)?mail"),  # Sendmail/Postfix null-MX replies
    # --- the client broke the SMTP protocol (before TLS words: Gmail's "SMTP protocol
    # violation, no commands allowed to pipeline after STARTTLS") ------------------------------
    (Reason.SYNTAXERROR, r"\bprotocol violation|synchronization error|"  # Gmail 4.5.0, Exim
                         r"unrecogni[sz]ed commands?|unimplemented command|"  # Gmail 5.5.1
                         r"parameters not recognized|"  # RFC 5321 555
                         r"\b(?:helo|ehlo)\b.{0,25}\binvalid\b"),  # hMailServer: a malformed name
    # --- NetEase (163.com, 126.com) replies carry a published token for the cause ------------
    (Reason.SPEEDING, r"\b(?:hl:ifc|hl:ifq|mi:sfq|mi:stc|rp:trc|rp:qrc)\b"),  # sending frequency
    (Reason.TOOMANYCONN, r"\b(?:hl:icc|mi:dmc|rp:drc)\b"),  # per-connection or concurrency limits
    (Reason.BLOCKED, r"\b(?:hl:rep|hl:mep|hl:ihu|hl:ipb|wm:bli|dt:rbl)\b"),  # the sending IP
    (Reason.SPAMDETECTED, r"\bdt:spm\b"),  # content with spam characteristics
    (Reason.REJECTED, r"\b(?:wm:blu|mi:imf)\b"),  # the sender address
    (Reason.AUTHFAILURE, r"\b(?:mi:spf|mi:dma)\b"),  # SPF, DMARC
    (Reason.SYNTAXERROR, r"\b(?:mi:cel|mi:ccl|rp:cel|rp:ccl)\b"),  # bad or too many commands
    # --- the sending host has no usable reverse DNS -----------------------------------------
    (Reason.REQUIREPTR, r"reverse (?:dns|lookup|hostname|resolution)|\bptr (?:record|resource)|"
                        r"\brdns\b|\bdns ptr\b"),  # Gmail 5.7.25, GMX, Exim ACLs, many
    (Reason.REQUIREPTR, r"(?:cannot|can't|could not|unable to) (?:resolve|find) (?:your |the )?"
                        r"(?:host ?name|reverse)"),  # Postfix reject_unknown_client_hostname
    (Reason.REQUIREPTR, r"\bunverif[iy]?able sending ips?\b|"  # Exim FCrDNS ACL "... is not <ip>"
                        r"\bip name lookup failed|"  # Sendmail "Access denied. IP name lookup"
                        r"\bhostname (?:does not|doesn't) resolve|"  # Exim, Postfix ACLs
                        r"mismatches client ip"),  # Outlook.com "domain [x] mismatches client ip"
    # --- SPF, DKIM, DMARC -------------------------------------------------------------------
    (Reason.AUTHFAILURE, r"(?<!received-)\b(?:spf|dkim|dmarc)\b(?![-\w]).{0,60}?\b(?:fail\w*|"
                         r"check\w*|polic(?:y|ies)|record|settings|reject\w*|"
                         r"(?:did|does) not pass|didn't pass|"
                         r"verification|validation|alignment|= ?did not pass)"),  # Gmail, Apple,
                         # Microsoft 5.7.509, Yahoo, Postfix policy daemons
    (Reason.AUTHFAILURE, r"(?:fails?|failed|(?:did|does) not pass)\b.{0,40}\b(?:spf|dkim|dmarc)"
                         r"\b(?![-\w])|"
                         r"authentication checks? failed|"  # Postfix/rspamd 5.7.26
                         r"does not have authentication information|"  # Gmail 5.7.1
                         r"fails? to pass authentication|"  # Gmail 5.7.1
                         r"(?:sender|it) is unauthenticated|"
                         r"unauthenticated (?:e-?mail|mail|message)|"
                         r"(?:isn't|is not|not) aligned with|"  # Gmail 4.7.32 From: alignment
                         r"sender policy framework|domain-based message authentication|"
                         r"\[spf\]|not (?:allowed|permitted) to send mail from"),  # Interia, C4
    # --- relaying ------------------------------------------------------------------------------
    (Reason.NORELAYING, r"relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|"
                        r"prohibited)|not permitted to relay|unable to relay|we do not relay|"
                        r"refused to relay|"
                        r"not configured to relay|relay not permitted|not a gateway|"
                        r"denies relay|relay disabled"),  # Libero, Virgilio
    # --- SMTP AUTH or TLS required of the client (RFC 4954, RFC 3207) ------------------------
    (Reason.SECURITYERROR, r"unauthenticated senders? (?:not allowed|prohibited)|"  # Sendmail
                           r"authentication (?:is )?required|must (?:first )?authenticate|"
                           r"\btls\b.{0,30}\brequired|starttls|encryption (?:is )?required|"
                           r"encrypted connection|"
                           r"certificate (?:verification|validation|error|expired|invalid)|"
                           r"\btls not available|\b(?:over|use) (?:a )?tls\b|"  # RFC 3207, Gmail
                           r"\bdane (?:validation|verification)|\b(?:tlsa|dnssec)-invalid|"  # MS
                           r"invalid dnssec|\btlsa (?:record|lookup)|"  # 4.7.323, 4.7.324
                           r"client was not authenticated|not authenticated to send|"  # Microsoft
                           r"invalid credentials|authentication (?:credentials invalid|failed)|"
                           r"password (?:not accepted|incorrect)|password transition|"  # RFC 4954
                           r"too much fail authentication|too many (?:failed )?(?:authentication|"
                           r"login) (?:attempts|failures)"),  # NetEase, login throttles
    # --- a DNS blocklist query refused the client, whatever the list is called ----------------
    (Reason.BLOCKED, r"\bblocked using\b|"  # Postfix reject_rbl_client "blocked using LIST",
                     r"\bfound on one or more (?:dnsbl|rbl|block ?list|black ?list)s?\b|"  # even
                     r"\b(?:dnsbl|rbl)s\b|"  # when LIST is "Barracuda Reputation"; Comcast
                     r"(?<!not )\blisted (?:at|on|in) [\w-]+\.[\w.-]+"),  # Sendmail FEATURE(dnsbl)
    # --- the sender's reputation --------------------------------------------------------------
    (Reason.BADREPUTATION, r"\breputation\b|"  # Gmail 5.7.1, Microsoft 4.7.650, Proofpoint
                           r"due to (?:unexpected volume or )?user complaints"),  # Yahoo TSS04
    # --- a stated policy (before sender and content rules that share the words) --------------
    # Outlook.com SC-003, SC-004: the cause named after "rejected ... for policy reasons"
    (Reason.BLOCKED, r"\bopen (?:proxy|relay)\b|\bblock\b.{0,30}\bagainst your ip\b"),
    (Reason.POLICYVIOLATION, r"(?:rejected|refused|not accepted|denied|blocked|reject) "
                             r"(?:for|due to) (?:local )?policy (?:reasons|restrictions)|"  # Yahoo,
                             # GMX "Reject due to policy restrictions"
                             r"content presents a potential|"  # Gmail 5.7.0 "... security issue"
                             r"\bgr[ae]ylist"),  # Postgrey "Recipient address rejected: Greylisted"
    # --- the message breaks RFC 5322 (Gmail explains it "to reduce spam") ---------------------
    (Reason.NOTCOMPLIANTRFC, r"not rfc ?(?:822|2822|5322)[- ]?compliant|not (?:rfc[- ]?)?compliant|"
                             r"multiple (?:addresses in from|\w+ headers)|"  # Gmail 5.7.1
                             r"header .{0,20}(?:missing|malformed|syntax)|"
                             r"(?:missing|malformed) (?:\w+ )?header|rfc ?5322 specifications|"
                             r"\bmissing (?:a |the )?valid (?:[\w-]+ ){0,4}[\w-]+:? header|"
                             r"\bhaving no [\w-]+:? header|"  # Gmail 5.7.1 (From:, Message-ID)
                             r"rfc ?(?:822|2822|5322)(?: section [\d.]+)? compliant"),  # MS 5.7.512
    # --- content: virus, spam, malformed ----------------------------------------------------
    (Reason.CONTENTERROR, r"\battachment(?: type| file| extension)?s? (?:is |are )?(?:not allowed|"
                          r"not permitted|prohibited|forbidden|blocked|rejected)|"  # gateways
                          r"\b(?:prohibited|forbidden|blocked|disallowed|unacceptable|dangerous|"
                          r"illegal) "
                          r"(?:attachment|file type|file extension|file name)s?\b|"
                          r"\bfiles? (?:\(\S+\) )?(?:are|is) not allowed in e-?mail|"  # MailScanner
                          r"\bfile (?:type|extension)s? .{0,30}(?:not allowed|not permitted|"
                          r"prohibited)"),
    (Reason.CONTENTERROR, r"(?<!security )\bconversion (?:required|failed|not supported)|"
                          r"non-ascii addresses"),  # RFC 3463 X.6.2-X.6.5, RFC 6531 X.6.7
    (Reason.CONTENTERROR, r"\bbanned (?:name|file ?names?|contents?|attachments?)\b|"
                          r"reject, id=\S+ - banned\b"),  # amavisd-new BANNED
    (Reason.VIRUSDETECTED, r"\bvirus\b|\bmalware\b|\binfected\b|\btrojan\b|\bworm\b"),
    # --- rate limits and connections (before blocklists: QQ adds "Blocked IP" to its limit) --
    # Limits per period, before limits per message ("daily recipient limit"): Microsoft
    # 5.1.90 "daily limit for message recipients", Exchange SubmissionQuotaExceeded, cPanel
    # "max emails per hour", German hosting providers' "Versandlimit".
    (Reason.SPEEDING, r"\b(?:daily|hourly) (?:(?:user |message |e-?mail )?(?:sending|"
                      r"recipients?|messages?|e-?mails?) )?(?:limit|quota)\b|\blimit for sending\b|"
                      r"\b(?:e-?mails|messages) per (?:hour|day)\b|\bsubmission quota|"
                      r"\b(?:versand|sende|tages)limit|limite d'envoi|límite de envío"),
    (Reason.SPEEDING, r"too many (?:recipients|messages|connections)\b.{0,20}"
                      r"\b(?:this|per|an?|each) (?:hour|day|minute)|"  # Cisco HAT rate limit
                      r"too many (?:recipients|messages) from\b|"  # Postfix anvil rate limits
                      r"too much mail from\b"),
    (Reason.TOOMANYCONN, r"too many (?:open |new )?(?:connections|recipients|concurrent|sessions|"
                         r"rcpt)|max(?:imum)? (?:number of )?messages? per (?:connection|session)|"
                         r"zu viele empfänger|trop de destinataires|demasiados destinatarios|"
                         r"more recipients than|recipients per message|reciplimit|"  # Exim,
                         # a submission service, Microsoft RESOLVER.ADR.RecipLimit
                         r"server ports are busy|"  # postscreen
                         r"per transaction exceeded|in a separate transaction|"  # Gmail 4.5.3
                         r"connection (?:rate )?limit|"  # Postfix, Sendmail
                         r"\brcpt (?:numbers?|count)\b|"  # "out of allow RCPT numbers"
                         r"recipient limit|"  # anvil, QQ
                         r"too many (?:simultaneous|parallel)"),
    (Reason.SPEEDING, r"receiving mail at a rate|"  # Gmail 4.2.1 ReceivingRate (not a disabled box)
                      r"\bfrequency limited|"  # QQ: IP, connection, domain, sender sending rates
                      r"mailbox unavailable or access denied|"  # QQ: the recipient gets too much
                      r"rate limit|too many (?:messages|mails|e-?mails)(?! (?:on the server|in "
                      r"(?:the |this |your )?(?:mailbox|inbox|folder)|stored))|"
                      r"sending rate|too quickly|excessive volume|"  # Gmail 4.2.1, iCloud 4.7.1
                      r"\bthrottl(?:ed|ing)\b|message quota exceeded|"  # Amazon SES
                      r"relay limit exceeded|thread limit exceeded|message receive limit|"
                      r"exceeded (?:the )?permitted limits?|"  # Microsoft 5.7.508
                      r"\bper (?:hour|day|minute)\b.{0,30}\blimit|"  # MS 5.2.121
                      r"\blimits?\b.{0,50}\bper (?:hour|day|minute)\b|"  # Outlook.com RP-001
                      r"exceeded (?:the |your )?(?:rate|sending limit)|temporarily rate limited|"
                      r"more messages (?:today|than your account allows)|"  # webmail providers
                      r"sending (?:quota|limit) exceeded|"  # Gmail 5.4.5 "Daily ... limit"
                      r"unusual rate|try again later.{0,20}rate"),  # Gmail 4.7.28, Microsoft
    # --- the sending IP or host is refused: blocklists, dynamic pools ------------------------
    (Reason.BLOCKED, r"\b(?:spamhaus|spamcop|sorbs|barracudacentral|uceprotect|dnsbl|rbl|"
                     r"blacklist(?:ed)?|blocklist(?:ed)?|block ?list(?:ed)?|black ?list(?:ed)?|"
                     r"denylist(?:ed)?|zombie (?:matches|hosts?|ips?|networks?)|"
                     r"cloudmark)\b"),  # DNS blocklists named in replies
    (Reason.BLOCKED, r"client host (?:rejected|blocked|refused)|"  # Postfix check_client_access
                     r"\bbanned sending ip|"  # Microsoft 5.7.606
                     r"\b(?:your|sending|source|client|the|this) ip\b.{0,40}\b(?:blocked|banned|"
                     r"not authori[sz]ed|not accepted|"  # Gmail 5.7.1, Microsoft 5.7.708
                     r"listed|refused|rejected|denied|not allowed)|"
                     r"\bip (?:address )?(?:is )?(?:blocked|banned|listed|refused|rejected|denied)|"
                     r"\bblack ?ip\b|\binvalid ip\b|"  # Chinese MTAs, Coremail
                     r"\badresse ip source bloquee|"  # Orange (French)
                     r"not accepted from (?:this|your|the) ip|"  # Microsoft 5.7.708
                     r"messages from \S+ weren't sent|"  # Exim blocklist notices
                     r"\bblocked (?:ip|using)\b|"  # QQ, Postfix reject_rbl_client
                     r"refused to talk to me|"  # Postfix: refused at the greeting
                     r"not (?:in|on) (?:the |our )?(?:white|allow)[- ]?list|"  # Gmail 4.7.0
                     r"messages from \S+ (?:will be )?permanently deferred|"  # Yahoo TSS09, TS03
                     r"\bspams? from (?:your|this) ip|"  # Free
                     r"\(bl\)|"  # T-Online: "(BL)", the IP is on its block list
                     r"\bhelo command rejected|\b(?:bad|invalid) helo\b"),  # Postfix, Microsoft
    (Reason.BLOCKED, r"\b(?:is|as) an open relay\b|\bopenrelay\b"),  # Sendmail, Chinese MTAs
    (Reason.BLOCKED, r"(?:cannot|can't|will not|won't) accept (?:further |any )?(?:e-?mail|mail|"
                     r"messages)(?: transactions)? from (?:this|your) (?:server|host|ip|domain)|"
                     r"\((?:rly|dyn|rtr):[a-z]{1,2}\d{0,2}\)"),  # AOL (RLY:B1), (RTR:DU)
    (Reason.BLOCKED, r"\bdynamic (?:ip|address|pool)|\bdial-?up\b|residential ip|"
                     r"use the smtp server of your isp|smtp server of your (?:isp|provider)"),
    # --- the message was judged spam ---------------------------------------------------------
    (Reason.SPAMDETECTED, r"\bspam\b|\bspamming\b|\bjunk mail|\bunsolicited\b|\bbulk mail\b|"
                          r"\bube\b|message (?:content )?rejected as spam|"  # Barracuda, amavis
                          r"\bscore (?:too high|exceeded)|spam ?assassin|"
                          r"\bmail content denied"),  # QQ: content reported as spam
    # --- the envelope sender is refused ------------------------------------------------------
    (Reason.REJECTED, r"sender (?:address |domain )?(?:is )?(?:rejected|denied|refused|blocked|"
                      r"unknown|invalid|unvalidated|unverified|not allowed)|"  # Postfix & co.
                      r"(?:unroutable|unrouteable|invalid|unknown|unverified|bad|fake|null) "
                      r"sender|(?:denies|refuses) (?:the )?sender|"  # Exim, Coremail
                      r"(?:domain|address) of sender|"  # Sendmail "Domain of sender address"
                      r"sender verify failed|sender verification failed|"  # Exim callouts
                      r"sender was rejected|"  # qmail "Connected to x but sender was rejected"
                      r"mail from .{0,60}(?:rejected|refused|not allowed|invalid)|"
                      r"permission to post|not allowed to post|"  # Google Groups, mailing lists
                      r"may not have permission|"  # Google Groups
                      r"address is not verified|identities failed the check|"  # Amazon SES
                      r"bad outbound sender|(?:not|n't) recogni[sz]ed as a valid sender|"  # MS
                      r"no longer allowed to send|not owned by the authenticated|"  # submission
                      r"\b(?:banned|blocked|blacklisted) sender\b|"  # Microsoft 5.7.511
                      r"sending (?:for (?:this|your) account (?:is |has been )?(?:disabled|"
                      r"suspended)|(?:is |has been )?(?:disabled|suspended) for (?:this|your) "
                      r"account)|"  # Mail.ru, Amazon SES: the sender's own account
                      r"\bunresolvable\b.{0,30}\b(?:from|sender)\b|"  # Mimecast 451
                      r"only (?:list )?(?:subscribers|members) (?:may|can|are allowed to) "
                      r"(?:post|send)"),  # ezmlm, majordomo, listserv: the sender is no member
    # --- the local delivery program failed (whatever words it printed) -----------------------
    (Reason.MAILERERROR, r"command (?:died|output|not found)|mailer error|"  # Postfix
                         r"pipe to .{0,60}(?:failed|generated by)|unknown mailer error|"  # Exim
                         r"\bprocmail\b|operating system error|"  # Sendmail EX_OSERR
                         r"child process of \S+ transport returned"),  # Exim pipe transport
    # --- the recipient's mailbox ---------------------------------------------------------------
    (Reason.HASMOVED, r"\bhas moved\b|\bno longer (?:at|with|on)\b|address (?:has )?changed|"
                      r"moved to\b.{0,40}@|not our customer|"  # Postfix/Sendmail 5.1.6
                      r"\b(?:holder|owner|user|recipient|employee|student) (?:has )?left "
                      r"(?:the|our|this) (?:university|college|school|company|organi[sz]ation|"
                      r"firm)"),  # campus and company hubs: left, no forwarding address
    (Reason.MAILBOXFULL, r"mailbox(?:es)? (?:is |are )?full|"
                         r"over ?(?:the |their |its |his |her )?(?:allowed |storage |disk |"
                         r"mailbox )?quota|"
                         r"quota (?:limit )?(?:exceeded|full)|"
                         r"exceed(?:ed|s)? (?:the |his |her |their )?(?:storage|quota|mailbox)|"
                         r"mailbox size limit|(?:mailbox )?storage (?:limit|full)|"
                         r"too much mail(?! data| from)|full mailbox|user(?:'s)? (?:disk )?quota|"
                         r"too many messages (?:on the server|in (?:the |this |your )?"
                         r"(?:mailbox|inbox|folder)|stored)|"  # Web.de
                         r"exhausted (?:the |its )?(?:allowed )?(?:storage|quota|space)|"  # Web.de
                         r"(?:account|inbox) is full|"  # Yandex
                         r"(?:inbox|mailbox) is out of (?:storage )?space|"  # Gmail 5.2.2
                         r"over (?:the |its )?(?:allowed )?quota|"  # vpopmail
                         r"\bfile too large\b|"  # Postfix local(8): mailbox_size_limit
                         r"domain (?:size|disk|storage) (?:limit|quota|space)|"  # SmarterMail
                         r"mail ?box.{0,20}\bis full\b|insufficient (?:space|storage) in mailbox|"
                         r"\bdisk quota\b|reached (?:\w+ ){0,2}quota\b|"  # Sun/iPlanet, Unix MTAs
                         r"mailbox exceeds (?:the )?(?:allowed|maximum) size|"  # IMail
                         r"quota violation|"  # EarthLink
                         r"邮箱(?:空间)?已满|caixa (?:postal|de correio).{0,40}cheia|"  # zh, pt
                         r"casella (?:postale |di posta )?piena|buz[oó]n .{0,30}lleno|"  # it, es
                         r"bo[iî]te (?:aux lettres|de r[ée]ception) (?:est )?pleine|"  # fr
                         r"postfach (?:ist )?(?:voll|überfüllt)"),  # de
    (Reason.EXCEEDLIMIT, r"exceeds? (?:the )?(?:recipient's|user's|mailbox) size limit|"
                         r"length exceeds limit set by recipient"),  # Amazon SES 5.2.3
    (Reason.EXCEEDLIMIT, r"message length exceeds administrative limit|"  # RFC 3463 5.2.3 wording
                         r"too (?:large|big) for (?:this|the) recipient|recipsizelimit"),  # MS
    (Reason.MESGTOOBIG, r"line (?:limit exceeded|too long)|"  # RFC 5321 4.5.3.1.6 text line
                        r"message (?:is )?too (?:big|large|long)|message size exceeds|"
                        r"longer than the maximum size|"  # Exim: a submission too big
                        r"nachricht (?:ist )?zu gro(?:ß|ss)|supera el tamaño máximo|"  # de, es,
                        r"dépasse la taille maximale|"  # fr
                        r"databytes limit|"  # qmail-smtpd "exceeds my databytes limit"
                        r"(?:message )?size (?:limit )?exceeded|exceeds (?:the )?(?:maximum|max)"
                        r" (?:message )?size|message exceeds|mail too large|size limit|"
                        r"too much mail data"),  # RFC 5321 4.5.3.1.10
    (Reason.SYSTEMFULL, r"(?:system|disk|storage|spool) (?:is )?full|insufficient system storage|"
                        r"insufficient (?:disk )?space|out of (?:disk )?space"),  # Sendmail 452
    # --- DNS: a lookup that may succeed later, then a name that does not exist --------------
    (Reason.NETWORKERROR, r"(?:host not found|name service error).{0,60}try again|"  # Postfix
                          r"temporary (?:dns|lookup|name resolution) failure|"
                          r"\bservfail\b"),
    (Reason.NETWORKERROR, r"\bdns error: \d+ dns type '\w+' lookup of"),  # Gmail: its own lookup
                          # failed (NXDOMAIN, no answers); sent as 4.0.0, Gmail keeps retrying
    (Reason.HOSTUNKNOWN, r"host (?:or domain name )?not found|unknown host|no such domain|"
                         r"domain (?:\S+ )?(?:not found|does not exist|doesn't exist|unknown|"
                         r"name not found)|infodomainnonexistent|"  # Microsoft 5.4.310
                         r"name or service not known|unrouteable (?:mail )?(?:domain|address)|"
                         r"unroutable (?:mail )?(?:domain|address)|invalid domain|"
                         r"\bnxdomain\b|no mx (?:record|host)|had no relevant answers|"
                         r"host ?name lookup failed|domain lookup failed|"
                         r"couldn't find any host (?:named|by that name)|"  # qmail
                         r"no route to domain|"
                         r"could not be found in (?:the )?domain name (?:service|system)|"  # MS
                         r"illegal host/domain name|"  # Sendmail
                         r"non-?existent (?:hosts?|domain)|"  # Exim: "MX records point to ..."
                         r"(?:not|n't) able to find the recipient(?:'s)? domain"),  # Gmail 5.1.2
    (Reason.HOSTUNKNOWN, r"\bhost unknown\b"),  # Sendmail "550 Host unknown (Authoritative answer"
    (Reason.SYSTEMERROR, r"system not accepting network messages"),  # RFC 3463 X.3.2: shutdown,
                         # load or maintenance of the receiving system, not a bad address
    # --- the mailbox is disabled ---------------------------------------------------------------
    (Reason.SUSPEND, r"\b(?:account|mailbox)\b.{0,30}\b(?:disabled|suspended|deactivated|"
                     r"inactive|locked|blocked|expired|frozen|closed|discontinued)\b|"  # Gmail,
                     r"\b(?:user|recipient)\b.{0,30}\b(?:disabled|suspended|deactivated|"  # Yahoo,
                     r"inactive|locked|blocked|frozen|discontinued)\b|"  # i.ua, Orange
                     r"\bcompte du destinataire est bloque"),  # Orange (French)
    (Reason.SUSPEND, r"\b(?:disabled|inactive|suspended) (?:e-?mail )?(?:account|mailbox|user|"
                     r"recipient|address)"),  # Sendmail 5.7.13, iCloud
    # --- no such recipient ----------------------------------------------------------------------
    (Reason.USERUNKNOWN, r"user(?:name)? (?:unknown|not found|does not exist|doesn't exist|"
                         r"not exist)|"
                         r"unknown (?:user|recipient|mailbox|local[- ]part|address)(?! error)|"
                         r"no such (?:user|mailbox|recipient|address|account|person)|"
                         r"(?:mailbox|recipient|address|account|user) (?:is )?(?:unknown|"
                         r"not found|does not exist|doesn't exist|not exist|invalid)|"
                         r"invalid (?:recipient|mailbox|address|user)|"
                         r"not a valid (?:user|mailbox|recipient)|no mailbox|"
                         r"(?:address|recipient|mailbox|user)(?: you entered)? (?:couldn't|"
                         r"could not|cannot|can't) be found|"  # Microsoft NDR notice
                         r"user (?:is )?not (?:local|here)|unknown or illegal alias|"
                         r"\baccount (?:that you tried to reach )?(?:does not|doesn't) exist|"
                         r"(?:does not|doesn't) have an account|user not known|"  # Coremail
                         r"(?:don't|doesn't|does not) exists? that user|not (?:a )?user of this "
                         r"server|"  # Coremail
                         r"\bbad (?:recipient )?address syntax|"  # QQ, Coremail
                         r"bad destination mailbox|nosuchuser|user_unknown|recipnotfound|"
                         r"recipient(?: name)? (?:is )?not (?:found|recognized)|"  # Exchange
                         r"recipientnotfound|recipient \S+@\S+ (?:was )?not found|"  # Microsoft
                         + _ACCOUNT_MISSING + "|"  # Yahoo "dd This user doesn't have ..."
                         r"\baddress rejected\b(?! ?:)|"  # Postfix, Google: bare refusal
                         r"recipient address rejected: access denied|"  # Office 365 5.4.1
                         r"adresse destinataire invalide|"  # Orange (French)
                         r"mailbox name not allowed|"  # RFC 5321 553
                         r"not a valid (?:\S+ ){1,3}(?:user|mailbox|recipient)|"  # MS Mail gateway
                         r"(?:mailbox|user id|recipient|receiver) \S+ (?:does not|doesn't) exist|"
                         r"receiver not found|"  # CompuServe
                         r"utente (?:non esiste|inesistente|sconosciuto)|"  # Italian
                         r"indirizzo inesistente|"  # Italian
                         r"usu[aá]rio inexistente|用户不存在|"  # pt, zh
                         r"(?:utilisateur|destinataire) inconnu|adresse (?:destinataire )?inconnue|"
                         r"(?:empf(?:ä|ae)nger|benutzer) (?:ist )?unbekannt|"  # fr, de
                         r"unbekannte[rn]? (?:empf(?:ä|ae)nger|benutzer)|"
                         r"usuario (?:desconocido|inexistente)|"  # es
                         r"name was not found at the (?:remote|local) site|"  # FirstClass
                         r"number (?:\S+ ){0,3}(?:is )?not in service|unknown subscriber|"  # SMS
                         r"(?:address|account|mailbox) (?:is )?no longer (?:in use|valid)"),
    # --- policy, filters, protocol --------------------------------------------------------------
    (Reason.CONTENTERROR, r"8-?bit data|message content rejected|content (?:not allowed|rejected)|"
                          r"duplicate header|improper use|invalid (?:mime|content|character)"),
                          # Sendmail 5.6.x, Amazon SES
    (Reason.CONTENTERROR, r"(?:don't|do not) accept messages of mime content-type"),  # ezmlm
    (Reason.POLICYVIOLATION, r"list address must be in to: or cc:|"  # ezmlm-reject's rules
                             r"(?:need|requires?) a non-?empty subject"),
    (Reason.FILTERED, r"recipient preferences|\bfiltered\b|\bfilter(?:ing)? (?:rule|policy)|"
                      r"refused by (?:the )?recipient|rejected by recipient|"  # Facebook
                      r"blocked - user (?:domain )?entry|"  # Mimecast: the recipient's own block
                      # Interia: the recipient blocked the sender
                      r"(?:doesn't|does not) want (?:your|this) (?:mail|e-?mail|message)"),
    (Reason.POLICYVIOLATION, r"\bpolic(?:y|ies)\b|\bprohibited\b|not allowed|not authori[sz]ed|"
                             r"not permitted|"
                             r"local scanning code|\blocal acl\b|compliance rule"),  # Exim, Google
    (Reason.SYNTAXERROR, r"syntax error|command unrecognized|bad sequence of commands|"
                         r"(?<!remote )\bprotocol error|"  # postscreen (Sendmail's "Remote
                         # protocol error" only introduces the remote's own words)
                         r"command not implemented|parameter not implemented"),  # RFC 5321 texts
    # --- delivery gave up after retrying; the network --------------------------------------------
    (Reason.EXPIRED, r"retry timeout exceeded|message expired|queue\.expired|"  # Exim, Exchange
                     r"could not be delivered within|unable to deliver in \d+|"  # SES, Sendmail
                     r"delivery time expired|too long in (?:the )?queue|"
                     r"have been failing for a long time|"  # Exim "all hosts have been failing"
                     r"did not accept our requests to connect|"  # Gmail, after days of retries
                     r"timed? ?out|\btimeout\b"),  # a host that kept timing out until expiry
    (Reason.NETWORKERROR, r"mail (?:for .{0,40})?loops? back|routing loop|too many hops|"
                          r"loop detected|\bmail loop\b|hop count exceeded|\blooping\b|"
                          r"too many \"?received\"?:? headers|\bdns (?:query|lookup) failed|"
                          r"connection (?:refused|reset)|lost connection|"
                          r"no route to host|network (?:is )?unreachable|host (?:is )?unreachable|"
                          r"network error|\bdns (?:error|failure)|"
                          r"(?:wasn't|was not) able to establish an smtp connection"),  # qmail
    # --- the receiving system -----------------------------------------------------------------
    (Reason.SYSTEMERROR, r"internal (?:server )?error|system (?:error|failure)|"
                         r"local error|temporary (?:service |system )?failure|system problem|"
                         r"service (?:is )?currently (?:unavailable|not available)|"  # SurfControl
                         r"service refused|"  # Orange "Service refuse"
                         r"unable to contact ldap|directory (?:server )?(?:failure|unavailable)|"
                         r"(?:does not|doesn't) support (?:tls|starttls)"),  # RFC 3463 X.3.3:
                         # the receiving system lacks a feature the sender requires (Gmail)
    # --- last, a bare "blocked" without a more precise cause: the sender's side is refused -----
    (Reason.BLOCKED, r"\bblocked\b|\bbanned\b"),
]

# Words that say outright that the mailbox does not exist. They make the address bad whatever
# the SMTP stage or the status subclass: Yahoo accepts every RCPT TO and refuses unknown
# accounts after DATA ("554 delivery error: dd This user doesn't have a yahoo.com account"),
# and Sun's Messaging Server answers "550 5.7.1 User Unknown". Only words about a filter,
# spam, a blocklist or a policy beside them make it the message that was refused. A generic
# "mailbox unavailable" (RFC 5321's stock text for 550) is not such a word.
MAILBOX_MISSING = re.compile(
    r"\b(?:user(?:name)? (?:unknown|not found)|unknown (?:user|recipient|mailbox)|"
    r"no such (?:user|mailbox|recipient|account)|recipient (?:unknown|not found)|"
    r"(?:user|mailbox|recipient|account) (?:does not|doesn't) exist)\b|" + _ACCOUNT_MISSING,
    re.I)
FILTER_WORDS = re.compile(
    r"\bfilter|\bspam|\bblock(?:ed|list|ing)?\b|black ?list|\bpolic(?:y|ies)\b", re.I)
# Both searched only in texts holding one of their words (found on first use).
MAILBOX_MISSING = prefiltered(MAILBOX_MISSING)
FILTER_WORDS = prefiltered(FILTER_WORDS)

# RFC 5321's stock reply texts, which name a class of causes rather than one: consulted only
# when neither the server's own words nor a specific status code said more. "Mailbox
# unavailable" covers "mailbox not found, no access, or command rejected for policy reasons"
# (RFC 5321 section 4.2.2): the recipient's side refused it, which is not proof the address
# is gone.
STOCK_PHRASES: list[tuple[Reason, str]] = [
    (Reason.FILTERED, r"(?:mailbox|recipient|user|address) (?:is )?unavailable"),
]

# Words that say only that the sender stopped retrying, not why (qmail appends "I'm not going
# to try again" to whatever the last temporary error was). Checked after the status code.
GAVE_UP: list[tuple[Reason, str]] = [
    (Reason.EXPIRED, r"gave up|giving up|not going to try again|in the queue too long|"
                     r"delivery attempts will continue|has been delayed|will be retried|"
                     r"still undelivered|will keep trying"),  # qmail, Gmail, Sendmail warnings
]

# Text is lower-cased once and matched without re.I, which is much faster in Python's
# engine; a pattern with an upper-case letter (other than an escape like \S) keeps re.I.
_HAS_UPPER = re.compile(r"(?<!\\)[A-Z]")


class _Table:
    """A phrase table compiled once: its rows in order, and a literal pre-filter.

    Each row is split into its top-level alternatives, and each alternative needs one of a
    few literal words in any text it matches (`literals.required_words`). One search with a
    trie of all those words finds which a text contains, so only the alternatives that can
    match are tried. The answer is the row's own: the first row in table order that matches
    wins, and of its alternatives the leftmost match (the earlier alternative at the same
    position), exactly what the row's whole pattern would find. An alternative whose words
    cannot be told (a case-insensitive pattern) is always tried.
    """

    # Texts read row by row before the pre-filter is built: building it parses every pattern,
    # which a process that reads one message (an MTA pipe) would pay for nothing. A long text
    # is read through the pre-filter at once: each row would scan all of it.
    WARM_UP = 32
    SHORT_TEXT = 2000

    def __init__(self, table: list[tuple[Reason, str]]) -> None:
        self.table = table
        self.reasons = [reason for reason, _ in table]
        self.rows = [re.compile(pattern, re.I if _HAS_UPPER.search(pattern) else 0)
                     for _, pattern in table]  # lazy_re: compiled when first tried
        self.read = 0
        self.built = False

    def first(self, lowered: str) -> tuple[int, re.Match[str]] | None:
        """(row index, match) of the first row in table order that matches the text."""
        if not self.built:
            self.read += 1
            if self.read <= self.WARM_UP and len(lowered) <= self.SHORT_TEXT:
                return self.first_by_rows(lowered)
            self.build()
        return self.first_by_words(lowered)

    def first_by_rows(self, lowered: str) -> tuple[int, re.Match[str]] | None:
        """The same answer without the pre-filter: each row's whole pattern, in order."""
        for row, pattern in enumerate(self.rows):
            found = pattern.search(lowered)
            if found:
                return row, found
        return None

    def build(self) -> None:
        table = self.table
        self.built = True
        # Per alternative, in table order: (row index, compiled alternative).
        self.alternatives: list[tuple[int, re.Pattern[str]]] = []
        always = 0  # bit i set: alternative i has no required words, so it is always tried
        needs: dict[str, int] = {}  # word -> bit mask of the alternatives that need it
        for row, (_, pattern) in enumerate(table):
            flags = re.I if _HAS_UPPER.search(pattern) else 0
            pieces = top_level_alternatives(pattern)
            needed = alternatives_words(pattern, pieces) if not flags else [None] * len(pieces)
            for piece, words in zip(pieces, needed, strict=True):  # a bad row fails here
                bit = 1 << len(self.alternatives)
                self.alternatives.append((row, re.compile(piece, flags)))
                if words is None:
                    always |= bit
                for word in words or ():
                    needs[word] = needs.get(word, 0) | bit
        self.always = always
        # The trie search reports, at each position, the longest word that starts there;
        # every shorter word starting there is a prefix of it, so it stands for them too.
        self.needing = {
            word: _or_all(needs.get(word[:end], 0) for end in range(1, len(word) + 1))
            for word in needs
        }
        # A class of the words' first characters before the trie: the engine tests a class
        # at each position much faster than it enters the trie's first branch.
        starts = "".join(sorted({re.escape(word[0]) for word in needs}))
        self.words = (re.compile(f"(?=[{starts}])(?=({trie_pattern(needs)}))")
                      if needs else None)

    def first_by_words(self, lowered: str) -> tuple[int, re.Match[str]] | None:
        """The first row that matches, trying only the alternatives whose words are there."""
        candidates = self.always
        if self.words is not None:
            needing = self.needing
            for word in set(self.words.findall(lowered)):
                candidates |= needing[word]
        alternatives = self.alternatives
        best: re.Match[str] | None = None
        best_row = -1
        while candidates:
            lowest = candidates & -candidates
            row, pattern = alternatives[lowest.bit_length() - 1]
            if best is not None and row != best_row:
                break  # the earlier row matched: later rows do not count
            found = pattern.search(lowered)
            if found and (best is None or found.start() < best.start()):
                best, best_row = found, row
            candidates ^= lowest
        return (best_row, best) if best is not None else None


def _or_all(masks: Iterable[int]) -> int:
    combined = 0
    for mask in masks:
        combined |= mask
    return combined


_PHRASES = _Table(PHRASES)
_GAVE_UP = _Table(GAVE_UP)
_STOCK = _Table(STOCK_PHRASES)
# A link: its path is dropped, its host kept. (It starts where a word or a scheme starts, and
# its labels are read possessively: the same matches, without retrying inside long words.)
_LINKS = re.compile(r"(?:(?<![\w-])|(?=https?://))(?:https?://)?"
                    r"((?:www\.)?[\w-]++(?:\.[\w-]++)+)/\S*", re.I)
# A code and status repeated inside a multi-line reply ("... multiple 550 5.7.1 addresses").
# (The look-behind for the white space before the code comes after the code's first digit,
# so that the engine can skip to the digits instead of trying the look-behind everywhere.)
_REPEATED_CODES = re.compile(r"[245](?<=\s[245])\d\d(?:[ -]#?[245]\.\d{1,3}\.\d{1,3}|-)\s?")


# Texts up to this long are remembered with their verdict (the recipients of one report
# often share their words, and the chain asks again); a longer one is read each time, so the
# cache stays small whatever a message holds.
_CACHED_TEXT = 4096


def prepare() -> None:
    """Build the tables' pre-filters now, for a process about to read many messages."""
    for table in (_PHRASES, _GAVE_UP, _STOCK):
        if not table.built:
            table.build()


def match(text: str) -> tuple[Reason, str] | None:
    """The first table entry that matches the text: (reason, the words that matched)."""
    if len(text) > _CACHED_TEXT:
        return _first(_PHRASES, text)
    return _match_cached(text)


def gave_up(text: str) -> tuple[Reason, str] | None:
    """Words that say only that delivery stopped being retried: (expired, the words)."""
    if len(text) > _CACHED_TEXT:
        return _first(_GAVE_UP, text)
    return _gave_up_cached(text)


@lru_cache(maxsize=256)
def _match_cached(text: str) -> tuple[Reason, str] | None:
    return _first(_PHRASES, text)


@lru_cache(maxsize=64)
def _gave_up_cached(text: str) -> tuple[Reason, str] | None:
    return _first(_GAVE_UP, text)


def stock(text: str) -> tuple[Reason, str] | None:
    """RFC 5321's stock words for a class of causes: (reason, the words); see STOCK_PHRASES."""
    return _first(_STOCK, text)


def fold_spaces(text: str) -> str:
    """Each run of white space as one space: `re.sub(r"\\s+", " ", text)`, several times faster
    (str.split and the regex agree on what white space is)."""
    folded = " ".join(text.split())
    if not folded:
        return " " if text else ""
    if text[0].isspace():
        folded = " " + folded
    if text[-1].isspace():
        folded += " "
    return folded


def _first(table: _Table, text: str) -> tuple[Reason, str] | None:
    if not text:
        return None
    if "http" in text or "www." in text:
        # A link's path is a reference, not the verdict ("/reputation/?ip="); its host may name
        # the blocklist ("http://www.spamhaus.org/query/...").
        text = _LINKS.sub(r"\1 ", text)
    text = _REPEATED_CODES.sub("", fold_spaces(text))
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters grow when lower-cased; keep spans right
        text = lowered
    first = table.first(lowered)
    if first is None:
        return None
    row, found = first
    return table.reasons[row], f"phrase {text[found.start():found.end()]!r}"
