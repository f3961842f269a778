"""Gmail's plain-text delivery notices (the format Gmail sent before it moved to RFC 3464).

"Delivery to the following recipient failed permanently:" (or "has been delayed:"), the
recipients indented below, then "Technical details of permanent failure:" with Google's own
sentence and, when the remote server answered, "The error that the other server returned
was: 550 ... (state 14)". The `(state N)` suffix is the step of Google's SMTP client at
which the remote refused; it tells the cause when the remote's words do not.
Gmail's current notices are multipart/report and are read by the DSN analyzer.
"""

from __future__ import annotations

from ...report import Action, Kind, Reason
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import notice_text
from ._lib.common import own_addresses
from ._lib.precheck import Precheck
from ._lib.textreport import findings_of

NAME = "gmail"
# Recognised by the words of its notice alone: asked only of a mail system's message.
WORDS_ONLY = True

# Gmail's bounce sender (googlemail.com for most of the world, google.com for some accounts).
SENDER = re.compile(r"mailer-daemon@(?:googlemail|google)\.com", re.I)
# The sentence that opens the list of recipients, failed or delayed.
OPENING = re.compile(
    r"^Delivery to the following recipients? (?P<what>failed permanently|has been delayed|"
    r"have been delayed|failed)\b.*$", re.I | re.M)
DETAILS = re.compile(r"^Technical details of (?:permanent|temporary) failure:\s*", re.I | re.M)
REMOTE_SAID = re.compile(r"The error that the other server returned was:\s*", re.I)
ORIGINAL = re.compile(r"^-+ ?Original message ?-+\s*$", re.I | re.M)
STATE = re.compile(r"\(state (\d{1,2})\)\.?\s*$")
LEADING_CODE = re.compile(r"^([245]\d\d)(?=[\s-]|$)")
INDENTED_ADDRESS = re.compile(r"^\s+<?([^\s<>@]+@[^\s<>]+?)>?\s*$")

# Google's SMTP client step at which the remote refused -> the cause, for when the remote's
# own words name none (e.g. "Header error (state 18)"). Steps where the words always decide
# (RCPT, state 14) are left out.
STATE_REASONS: dict[str, Reason] = {
    "6": Reason.SYSTEMERROR,  # STARTTLS: the remote cannot do what Google requires
    "8": Reason.SYSTEMERROR,  # greeting / EHLO refused
    "9": Reason.SYSTEMERROR,  # EHLO refused
    "12": Reason.REJECTED,  # MAIL FROM: the envelope sender refused
    "13": Reason.SECURITYERROR,  # MAIL FROM: refused by the remote's access rules
    "17": Reason.FILTERED,  # DATA refused
    "18": Reason.FILTERED,  # end of DATA: the content was refused
}


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("mailer-daemon@google",))


def analyze(message: Part) -> Findings | None:
    if not SENDER.search(message.get("from")) or message.content_type == "multipart/report":
        return None
    text = notice_text(message)
    opening = OPENING.search(text[:4000])
    if opening is None:
        return None
    original = ORIGINAL.search(text, opening.end())
    notice = text[:original.start()] if original else text
    delayed = "delayed" in opening.group("what").lower()
    action = Action.DELAYED if delayed else Action.FAILED

    body = notice[opening.end():]
    details = DETAILS.search(body)
    listing = body[:details.start()] if details else body
    diagnostic = ""
    if details:
        technical = body[details.end():]
        said = REMOTE_SAID.search(technical)
        diagnostic = technical[said.end():] if said else technical
        diagnostic = " ".join(diagnostic.split())

    code = LEADING_CODE.match(diagnostic)
    smtp_code = code.group(1) if code else ""
    hint = ""
    state = STATE.search(diagnostic)
    if state and state.group(1) in STATE_REASONS:
        hint = STATE_REASONS[state.group(1)]

    own = own_addresses(message)
    failures = []
    for line in listing.split("\n"):
        match = INDENTED_ADDRESS.match(line)
        address = normalize_address(match.group(1)) if match else ""
        if address and address not in own:
            failures.append(Failure(address=address, action=action, diagnostic=diagnostic,
                                    smtp_code=smtp_code, reason_hint=hint))
    if not failures:
        for value in message.get_all("x-failed-recipients"):
            for piece in value.split(","):
                address = normalize_address(piece)
                if address:
                    failures.append(Failure(address=address, action=action,
                                            diagnostic=diagnostic, smtp_code=smtp_code,
                                            reason_hint=hint))
    return findings_of(NAME, f"Gmail notice: {opening.group(0).strip()!r}", failures,
                       message, notice, kind=Kind.DELAY if delayed else Kind.BOUNCE)
