"""The project's own sample messages against what the analyzer must find in each.

Every set of samples is a folder of tests/samples/ with an `expected.json` manifest beside its
messages, and one table-driven test reads them all. A manifest maps each file to its entry:

- `kind`: the report's kind (bounce, delay, complaint, autoreply, delivered, unknown).
- `recipients`: each failed or delayed recipient (or, with `"every_recipient": true`, every
  recipient in the report's order): `address`, `action`, `reason`, and where given
  `permanent`, `status` (the whole code the message states) and `status_class` (its first
  digit). An empty address: a report that names no recipient.
- optional: `analyzers` (any of these may decide; "" = nothing claims it), `not_claimed_by`
  (chain entries, or "formats" for every format module, that must leave the message alone),
  `message_id` (of the original message the report carries), `feedback_type`,
  `autoreply_type`, `options` (`verp_patterns`), `note` (free text), and `xfail`: why the
  analyzer does not meet the entry yet (strict, so a fix shows up as a failure to remove it).

Sets: basics/ (one of each kind, and broken input), ordinary/ (mail a bounce mailbox also
receives and none may yield a failed or delayed recipient: list posts, people writing about
bounces, forwards, phishing dressed as a mail system, and the automatic replies to tell apart
from them), mta/ (reports of MTAs and providers the analyzer was not built on), forwarded/
(reports a list manager or a forwarder passed on), legacy/ (the formats of 1995-2008),
autoreplies/ (automatic replies in many languages and shapes, challenge-response among them),
norecipient/ (reports naming no recipient), reports/ (complaints from many feedback loops,
success notices and their look-alikes), and formats/ (each format module's own wording: delays
and failures, several recipients, its reason hints, with and without a status part).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pytest
from support import BASICS, SAMPLES, sample

from imap_bouncer import policy
from imap_bouncer.analysis import CHAIN, Options, analyze, formats
from imap_bouncer.analysis.message import parse_message
from imap_bouncer.analysis.origin import from_list, report_passed_on_by_list
from imap_bouncer.report import Action, AutoreplyType, Kind

FAILED, DELAYED = Action.FAILED, Action.DELAYED
RECIPIENT_FIELDS = ("address", "action", "reason", "permanent", "status", "status_class")


@cache
def manifest(folder: Path) -> dict:
    return json.loads((folder / "expected.json").read_text(encoding="utf-8"))


def sets() -> list[Path]:
    return sorted(path.parent for path in SAMPLES.glob("*/expected.json"))


def cases(wanted=lambda entry: True) -> list:
    """(folder, file) of every sample whose entry `wanted` accepts, as pytest parameters."""
    params = []
    for folder in sets():
        for name, entry in sorted(manifest(folder).items()):
            if wanted(entry):
                params.append(pytest.param(folder, name, id=f"{folder.name}/{name}"))
    return params


def options_of(entry: dict) -> Options | None:
    given = entry.get("options")
    return Options(verp_patterns=tuple(given["verp_patterns"])) if given else None


def report_of(folder: Path, name: str):
    entry = manifest(folder)[name]
    return analyze((folder / name).read_bytes(), options_of(entry))


def recipient_facts(report, entry: dict) -> tuple[list, list]:
    """(found, wanted): the facts the entry states of each recipient, the report's beside
    them. A fact an entry leaves out of a recipient (a status the message does not state) is
    not compared."""
    wanted = list(entry["recipients"])
    found = [{"address": r.address, "action": str(r.action), "reason": str(r.reason),
              "permanent": r.permanent, "status": r.status, "status_class": r.status[:1]}
             for r in report.recipients
             if entry.get("every_recipient") or r.action in (FAILED, DELAYED)]
    if not entry.get("every_recipient"):  # as the corpus scorer compares: case-blind, any order
        for rows in (found, wanted):
            rows[:] = sorted(({**r, "address": r["address"].lower()} for r in rows),
                             key=lambda r: (r["address"], r["action"], r["reason"]))
    if len(found) != len(wanted):
        return found, wanted
    pairs = list(zip(found, wanted, strict=True))
    return ([{f: got[f] for f in RECIPIENT_FIELDS if f in want} for got, want in pairs],
            [{f: want[f] for f in RECIPIENT_FIELDS if f in want} for _, want in pairs])


@pytest.mark.parametrize(("folder", "name"), [
    pytest.param(*p.values, id=p.id, marks=pytest.mark.xfail(
        strict=True, reason=manifest(p.values[0])[p.values[1]]["xfail"]))
    if "xfail" in manifest(p.values[0])[p.values[1]] else p for p in cases()])
def test_verdict(folder: Path, name: str) -> None:
    entry = manifest(folder)[name]
    report = report_of(folder, name)
    found, wanted = recipient_facts(report, entry)
    assert (str(report.kind), found) == (entry["kind"], wanted), \
        [report.evidence, *(r.evidence for r in report.recipients)]
    if "analyzers" in entry:
        assert report.analyzer in entry["analyzers"], report.evidence
    if "feedback_type" in entry:
        assert report.feedback_type == entry["feedback_type"]
    if "autoreply_type" in entry:
        assert report.autoreply_type == entry["autoreply_type"], report.evidence
    elif report.kind is not Kind.AUTOREPLY:
        assert report.autoreply_type == ""
    for recipient in report.recipients:
        if recipient.status:
            parts = recipient.status.split(".")
            assert len(parts) == 3 and all(p.isdigit() for p in parts), recipient.status


@pytest.mark.parametrize(("folder", "name"), cases(lambda entry: "not_claimed_by" in entry))
def test_not_claimed_by(folder: Path, name: str) -> None:
    message = parse_message((folder / name).read_bytes())
    chain = dict(CHAIN)
    claimed = []
    for analyzer in manifest(folder)[name]["not_claimed_by"]:
        if analyzer == "formats":  # every known format module, so a failure names the culprit
            claimed += [f"formats.{m.NAME}" for m in formats.KNOWN if m.analyze(message)]
        elif chain[analyzer](message) is not None:
            claimed.append(analyzer)
    assert claimed == []


@pytest.mark.parametrize(("folder", "name"), cases(lambda entry: "message_id" in entry))
def test_original_message_found(folder: Path, name: str) -> None:
    assert report_of(folder, name).original.message_id == manifest(folder)[name]["message_id"]


@pytest.mark.parametrize(("folder", "name"), cases())
def test_report_is_json(folder: Path, name: str) -> None:
    report = report_of(folder, name)
    data = json.loads(json.dumps(report.to_dict(explain=True)))
    assert data["kind"] == str(report.kind)
    assert len(data["recipients"]) == len(report.recipients)
    assert all(isinstance(error, str) for error in data["errors"])


@pytest.mark.parametrize(("folder", "name"),
                         cases(lambda entry: entry["kind"] in ("bounce", "delay")))
def test_no_bounce_is_an_auto_reply(folder: Path, name: str) -> None:
    """Bounces are automatic replies too, and earlier in the chain: the auto-reply rules
    alone must leave every one of them alone, so that no chain order could turn one."""
    message = parse_message((folder / name).read_bytes())
    assert dict(CHAIN)["autoreply"](message) is None


def test_every_sample_is_in_a_set() -> None:
    assert sorted(SAMPLES.glob("*.eml")) == []
    assert sorted(p.parent for p in SAMPLES.glob("*/*.eml")) == sorted(
        p.parent for p in SAMPLES.glob("*/*.eml") if (p.parent / "expected.json").is_file())


@pytest.mark.parametrize("folder", sets(), ids=lambda folder: folder.name)
def test_manifest_covers_every_file(folder: Path) -> None:
    assert sorted(manifest(folder)) == sorted(p.name for p in folder.glob("*.eml"))
    for entry in manifest(folder).values():
        assert set(entry) <= {"kind", "recipients", "every_recipient", "analyzers",
                              "not_claimed_by", "message_id", "feedback_type", "autoreply_type",
                              "options", "note", "xfail"}, entry
        for recipient in entry["recipients"]:
            assert {"address", "action", "reason"} <= set(recipient) <= {
                *RECIPIENT_FIELDS, "alternates"}, recipient
            # a failure is hard or soft: every set but reports/ (complaints, success) says which
            assert folder.name == "reports" or "permanent" in recipient, recipient


# --- what one sample is, beyond its verdict ----------------------------------------------------
VERP = Options(verp_patterns=("bounces+{local}={domain}@lists.example.org",))


def test_verp_recipient_decoded() -> None:
    report = analyze(sample("verp.eml"), VERP)
    assert report.original.envelope_recipient == "bounces+jo=example.net@lists.example.org"
    assert report.original.verp_recipient == "jo@example.net"


def test_line_endings_do_not_change_the_verdict() -> None:
    crlf = sample("crlf.eml")
    assert b"\r\n" in crlf
    lf = crlf.replace(b"\r\n", b"\n")
    cr = crlf.replace(b"\r\n", b"\r")
    assert analyze(crlf).to_dict() == analyze(lf).to_dict() == analyze(cr).to_dict()


def test_empty_message_says_why() -> None:
    assert "no headers found" in analyze(sample("empty.eml")).errors


def test_bad_address_sample_trips_the_stdlib() -> None:
    """The sample is what it claims: the stdlib's modern policy cannot read its headers."""
    parsed = email.message_from_bytes(sample("bad-address-header.eml"), policy=email.policy.default)
    with pytest.raises(IndexError):
        str(parsed["To"])


def test_truncated_sample_is_cut_mid_part() -> None:
    raw = sample("truncated.eml")
    assert not raw.endswith(b"\n") and b"--C0FFEE42.1713132880/mx3.example.net--" not in raw


def test_basics_has_one_of_each_kind() -> None:
    assert {entry["kind"] for entry in manifest(BASICS).values()} == {str(k) for k in Kind}


@pytest.mark.parametrize("name", sorted(
    name for name, entry in manifest(SAMPLES / "autoreplies").items()
    if entry.get("autoreply_type") == "challenge"))
def test_challenge_never_changes_a_send_state(name: str) -> None:
    """A challenge asks the sender to act; the address it answers for is fine: every event
    the ledger would record of it has no effect on the address's send state."""
    report = analyze((SAMPLES / "autoreplies" / name).read_bytes())
    events = [SimpleNamespace(kind=str(report.kind), action=str(r.action), reason=str(r.reason),
                              permanent=r.permanent) for r in report.recipients]
    assert events and all(policy.effect(event) is policy.Effect.NONE for event in events)


def test_autoreply_set_has_challenges_and_every_type() -> None:
    """The set keeps its breadth: each type of auto-reply, and ten challenge requests."""
    types = [entry.get("autoreply_type") for entry in manifest(SAMPLES / "autoreplies").values()]
    assert {t.value for t in AutoreplyType} <= set(types)
    assert types.count("challenge") >= 10


# --- forwarded/: who wrote the body decides, not the list's headers -------------------------
FORWARDED = SAMPLES / "forwarded"
_FROM_LINE = re.compile(rb"^(From|X-Original-Sender):[^\n]*(?:\n[ \t][^\n]*)*", re.M | re.I)
_PERSON = b"Jonas Berg <jonas@workshop.example.net>"


def _failed(raw: bytes) -> list[str]:
    return [r.address for r in analyze(raw).recipients if r.action in (FAILED, DELAYED)]


def _listed_text_reports() -> list[str]:
    """forwarded/ samples a list relayed as they were, whose report is words only (no status
    part another analyzer could read whoever sent it)."""
    names = []
    for name in sorted(manifest(FORWARDED)):
        message = parse_message((FORWARDED / name).read_bytes())
        if from_list(message) and message.content_type == "text/plain":
            names.append(name)
    return names


def _with_header_block(raw: bytes, change) -> bytes:
    head, sep, body = raw.partition(b"\n\n")
    return change(head) + sep + body


@pytest.mark.parametrize("name", _listed_text_reports())
def test_listed_report_with_a_person_as_author_is_a_post(name: str) -> None:
    """The same relayed words under a person's From are a post quoting a report."""
    raw = (FORWARDED / name).read_bytes()
    assert _failed(raw)
    person = _with_header_block(raw, lambda head: _FROM_LINE.sub(
        lambda m: m.group(1) + b": " + _PERSON, head))
    assert _failed(person) == []


@pytest.mark.parametrize("name", _listed_text_reports())
def test_listed_report_with_a_persons_words_on_top_is_a_post(name: str) -> None:
    """A salutation and a sentence of a person above the report make it a person's message."""
    raw = (FORWARDED / name).read_bytes()
    head, sep, body = raw.partition(b"\n\n")
    assert _failed(head + sep + b"Hi all,\n\nlook what came back from my post:\n\n" + body) == []


def _wrapped_reports() -> list[str]:
    return [name for name in sorted(manifest(FORWARDED))
            if report_passed_on_by_list(parse_message((FORWARDED / name).read_bytes()))]


@pytest.mark.parametrize("name", _wrapped_reports())
def test_list_notice_is_read_through_only_when_it_says_it_passes_on_a_bounce(name: str) -> None:
    """A list manager's notice attaching a report is read only when its words say it passes
    on a bounce (a held post or a probe attaches one too) and the attachment is a mail
    system's (not a person's message the list mistook for one)."""
    raw = (FORWARDED / name).read_bytes()
    assert _failed(raw)
    notice = re.compile(rb"(Content-Type: text/plain[^\n]*\n(?:[^\n]+\n)*\n).*?(?=\n--)", re.S)
    held = notice.sub(lambda m: m.group(1) + b"As list administrator, your authorization is "
                      b"requested for the following mailing list posting.\n", raw, count=1)
    assert held != raw and _failed(held) == []
    boundary = raw.index(b"Content-Type: message/rfc822")
    inner = raw[boundary:]
    person = re.sub(rb"^Return-[Pp]ath: <>", b"Return-Path: <jonas@workshop.example.net>",
                    inner, count=1, flags=re.M)
    person = _FROM_LINE.sub(lambda m: m.group(1) + b": " + _PERSON, person, count=1)
    person = re.sub(rb"^(?:X-Failed-Recipients|Auto-Submitted):[^\n]*\n", b"", person, flags=re.M)
    person = person.replace(b"multipart/report", b"multipart/mixed")
    assert _failed(raw[:boundary] + person) == []
