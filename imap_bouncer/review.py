"""A person's verdict on a message, given by filing it in a review folder: which addresses the
message is about, and what the verdict does to their send state.

Pure, like policy.py: the service finds the messages in the review folders, the ledger records
the verdict (`Ledger.record_review`) with the message, in one transaction, using `judge`.

Verdicts (`Verdict`):

- hard: the addresses are bad. They become invalid at once, whatever `hard_threshold` and
  `hard_min_hours` say: those guard against one incident at a destination, and a person has
  read this message.
- soft: one soft bounce for each address, counted by the policy's own rules (at most
  `soft_count_per_day` a day, within the window), so a person's verdict counts no more than
  the bounce would have counted had the analyzer understood it.
- ignore: the message is recorded as reviewed; no address changes (it is not a bounce at all,
  or not one worth acting on).

A verdict never changes an address a person holds or made persistent (a review is about a
message, those are decisions about the address), nor an invalid or complained one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from . import policy
from .policy import Change, Policy, SendState, State
from .report import ADDRESS_REASONS, Action, Kind, Reason, Recipient, Report

CAUSE = "review"  # Transition.cause of the changes a verdict makes

# Recipients a verdict is not about: the report says their delivery went well.
_SUCCESSES = frozenset({Action.DELIVERED, Action.RELAYED, Action.EXPANDED})
# Reasons a soft verdict does not keep: not failures of delivery at all.
_NOT_SOFT = frozenset({Reason.DELIVERED, Reason.VACATION, Reason.FEEDBACK})


class Verdict(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class _SoftBounce:
    """The soft bounce a soft verdict counts (what policy.apply reads of an event)."""

    kind: str = "bounce"
    action: str = str(Action.FAILED)
    reason: str = str(Reason.UNDEFINED)  # neither a refusal nor permanent: counted as soft
    permanent: bool = False


def addresses(report: Report) -> tuple[str, ...]:
    """The addresses a verdict on this message is about: its recipients but those it says were
    delivered, else the recipient its VERP address names; () when it names nobody."""
    found = [r.address for r in report.recipients if r.address and r.action not in _SUCCESSES]
    if not found and report.original.verp_recipient:
        found = [report.original.verp_recipient]
    return tuple(dict.fromkeys(found))


def verdict_report(report: Report, verdict: Verdict, found: tuple[str, ...],
                   folder: str = "") -> Report:
    """What is recorded for a reviewed message: the analysis, with the verdict in its place.

    hard and soft, naming addresses: a bounce with one failed recipient per address, keeping
    what the analyzer read about it (status, code, the remote server's words) and its reason
    when that reason agrees with the verdict (an address reason for hard; for soft, any failure
    that is not a refusal of the message), else `undefined`; permanent for hard. Otherwise
    (ignore, or no address): the message's own kind, no recipients. The analyzer is named
    "review.<verdict>"; the analysis' errors are kept.
    """
    said = {r.address: r for r in report.recipients if r.address}
    recipients = []
    if verdict is not Verdict.IGNORE:
        for address in found:
            read = said.get(address)
            reason = read.reason if read is not None else Reason.UNDEFINED
            agrees = (reason in ADDRESS_REASONS if verdict is Verdict.HARD
                      else reason not in policy.REFUSAL_REASONS and reason not in _NOT_SOFT)
            recipients.append(Recipient(
                address=address, action=Action.FAILED,
                status=read.status if read else "", smtp_code=read.smtp_code if read else "",
                diagnostic=read.diagnostic if read else "",
                remote_mta=read.remote_mta if read else "",
                reason=reason if agrees else Reason.UNDEFINED,
                permanent=verdict is Verdict.HARD,
                evidence=f"a person filed the message in {folder or 'a review folder'} "
                         f"({verdict})"))
    analyzed = f"{report.kind} by {report.analyzer}" if report.analyzer else str(report.kind)
    return Report(
        kind=Kind.BOUNCE if recipients else report.kind, message_id=report.message_id,
        recipients=recipients, original=report.original, feedback_type=report.feedback_type,
        user_agent=report.user_agent, analyzer=reason_for(verdict),
        evidence=f"a person's verdict: {verdict} (analyzed as {analyzed})",
        errors=list(report.errors))


def reason_for(verdict: Verdict) -> str:
    """The reason recorded with a verdict's changes (and on the address's state)."""
    return f"{CAUSE}.{verdict}"


def judge(state: SendState, verdict: Verdict, rules: Policy, now: datetime,
          note: str = "") -> tuple[SendState, list[Change]]:
    """The state after a verdict at `now`, and the changes made (cause "review").

    1. Time first: `policy.expire` (an unreachable address whose time is up is active again).
    2. ignore: nothing more.
    3. held, persistent, invalid and complained addresses: nothing more.
    4. hard: invalid.
    5. soft: `policy.apply` with a soft bounce at `now`; its change, if any, is the verdict's.
    """
    state, expired = policy.expire(state, rules, now)  # 1
    changes = [expired] if expired is not None else []
    if verdict is Verdict.IGNORE:  # 2
        return state, changes
    if state.state in policy.MANUAL or state.state in (State.INVALID, State.COMPLAINED):  # 3
        return replace(state, last_event_at=_later(state.last_event_at, now)), changes
    reason = reason_for(verdict)
    if verdict is Verdict.HARD:  # 4
        change = Change(from_state=state.state, to_state=State.INVALID, cause=CAUSE,
                        reason=reason, note=note)
        state = replace(state, state=State.INVALID, reason=reason, suppressed_until=None,
                        last_event_at=_later(state.last_event_at, now))
        return state, [*changes, change]
    state, counted = policy.apply(state, _SoftBounce(), rules, now)  # 5
    if counted is not None:
        state = replace(state, reason=reason)
        changes.append(replace(counted, cause=CAUSE, reason=reason, note=note))
    return state, changes


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


__all__ = ["CAUSE", "Verdict", "addresses", "judge", "reason_for", "verdict_report"]
