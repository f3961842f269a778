"""Google Groups refusals: "the group you tried to contact (name) may not exist, or you may
not have permission to post messages to the group".

Sent by Gmail's mailer-daemon in the poster's language, as plain text with the group's
address in `X-Failed-Recipients` and a link to groups.google.com/support. The group did not
take the post: the sender is not allowed to post (or the group is gone), so the format
itself names the cause, `rejected`; the group address is not declared bad.
"""

from __future__ import annotations

from ...report import Action, Kind, Reason
from .. import lazy_re as re
from ..addresses import find_addresses, normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ..text import notice_text, original_headers, split_at_original
from ._lib.precheck import Precheck

NAME = "googlegroups"

SENDER = re.compile(r"mailer-daemon@(?:googlemail|google)\.com", re.I)
# The help link every language of the notice carries.
HELP_LINK = "groups.google.com/support"
GROUP_DOMAIN = "@googlegroups.com"


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(from_words=("mailer-daemon@google",))


def analyze(message: Part) -> Findings | None:
    if not SENDER.search(message.get("from")) or message.content_type == "multipart/report":
        return None
    failed = ",".join(message.get_all("x-failed-recipients"))
    text = notice_text(message)
    if HELP_LINK not in text[:6000] and GROUP_DOMAIN not in failed.lower():
        return None
    notice, _ = split_at_original(text)
    if HELP_LINK not in notice:
        return None
    addresses = [normalize_address(piece) for piece in failed.split(",")]
    addresses = [a for a in addresses if a]
    if not addresses:
        headers = original_headers(message) or []
        addresses = [a for name, value in headers if name in ("to", "cc")
                     for a in find_addresses(value) if a.endswith(GROUP_DOMAIN)]
    if not addresses:
        return None
    failures = [Failure(address=a, action=Action.FAILED, diagnostic=_paragraph(notice, a),
                        reason_hint=Reason.REJECTED) for a in addresses]
    return Findings(
        kind=Kind.BOUNCE,
        analyzer=f"formats.{NAME}",
        evidence="Google Groups refused the post",
        failures=failures,
        original_headers=original_headers(message),
        notice=notice,
    )


def _paragraph(notice: str, address: str) -> str:
    """The paragraph that names the group "(name)": Google's sentence saying why."""
    name = f"({address.partition('@')[0]})"
    for paragraph in re.split(r"\n\s*\n", notice):
        if name in paragraph:
            return " ".join(paragraph.split())
    return ""
