"""fml, the Japanese mailing list manager: the notice it returns to a non-member's post.

"You are not a member of this mailing list <list@example.org>." with `X-MLServer: fml ...`.
The post was refused for its sender, so the failed address is the list's and the reason is
that the sender was rejected. Ordinary list posts carry the same header and are left alone.
"""

from __future__ import annotations

from ...report import Action, Reason
from .. import lazy_re as re
from ..addresses import normalize_address
from ..findings import Failure, Findings
from ..message import Part
from ._lib.precheck import Precheck
from ._lib.textreport import findings_of, plain_notice

NAME = "fml"

_NOT_MEMBER = re.compile(r"^\s*You are not a member of this mailing list <([^<>\s]+@[^<>\s]+)>",
                         re.I | re.M)


# What analyze's guard needs first (formats.precheck).
PRECHECK = Precheck(headers=frozenset({"x-mlserver"}))


def analyze(message: Part) -> Findings | None:
    if not message.get("x-mlserver").lower().startswith("fml"):
        return None
    notice = plain_notice(message)
    found = _NOT_MEMBER.search(notice[:1000])
    if found is None:
        return None
    failure = Failure(address=normalize_address(found.group(1)), action=Action.FAILED,
                      diagnostic=found.group(0).strip(), reason_hint=str(Reason.REJECTED))
    return findings_of(NAME, "fml: sender is not a member of the list", [failure], message,
                       notice)
