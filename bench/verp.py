"""What signing costs: signed VERP addresses made and checked per second on one core, and the
planning of delivery reports for one bounce with many recipients (one report, however many).

    .venv/bin/python bench/verp.py [--recipients 100000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from imap_bouncer import verp
from imap_bouncer.dsn_planning import plan_dsn
from imap_bouncer.ledger import EventRecord
from imap_bouncer.settings import DsnSettings

KEY = b"bench secret, at least 16 characters"
PATTERN = "bounces+{token}-{local}={domain}@bounce.example.org"


def rate(work, rounds: int) -> float:
    start = time.perf_counter()
    for n in range(rounds):
        work(n)
    return rounds / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=100_000)
    args = parser.parse_args()
    now = datetime.now(UTC)
    day = verp.day_of(now)
    signed = [verp.sign(f"user{n}@example.net", KEY, PATTERN, day) for n in range(20_000)]
    envelope = [("Delivered-To", signed[0])]

    signing = rate(lambda n: verp.sign(f"user{n}@example.net", KEY, PATTERN, day), 20_000)
    checking = rate(lambda n: verp.verify_verp(signed[n], KEY, PATTERN), 20_000)
    proving = rate(lambda n: verp.prove(
        "user0@example.net", envelope=envelope, correlation="1.20795.aaaaaaaaaaaaaaaa",
        sender="anna@example.org", message_id="<m@x>", key=KEY, pattern=PATTERN), 20_000)

    events = [EventRecord(
        id=n, message_pk=1, mailbox="bounces", bounce_message_id="<b@mx>", kind="bounce",
        address=f"user{n}@example.net", action="failed", status="5.1.1", smtp_code="550",
        reason="userunknown", permanent=True, diagnostic="550 5.1.1 user unknown",
        remote_mta="mx.example.net", original_message_id="<orig@example.org>",
        original_from="anna@example.org", sender_domain="example.org", list_id="",
        verp_recipient="", recipient_domain="example.net", created_at=now,
        signed="id-message", signed_day=day) for n in range(args.recipients)]
    dsn = DsnSettings(enabled=True, sender_domains=("example.org",),
                      from_address="postmaster@example.org")
    start = time.perf_counter()
    rows = plan_dsn(events, dsn, now)
    planning = time.perf_counter() - start

    print(f"verp sign:             {signing:10,.0f} addresses/s")
    print(f"verp verify:           {checking:10,.0f} addresses/s")
    print(f"prove (VERP + id):     {proving:10,.0f} recipients/s")
    print(f"plan_dsn, {args.recipients:,} recipients of one original: {len(rows)} report(s), "
          f"{planning * 1000:.0f} ms")


if __name__ == "__main__":
    main()
