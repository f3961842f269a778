"""Benchmark: draining a backlog from a real Dovecot into SQLite (or PostgreSQL).

Starts a private Dovecot (tests/dovecot.py, as the integration tests do), fills the INBOX
with N messages (default 10,000: bounce messages from a folder, cycled, each made unique),
then times one `imap-bouncer once`-style pass in this process: fetch in batches, analyze,
record (one commit per batch), move by UID set. Prints messages/s, the time per stage, and
the peak RSS before and during the pass (memory must follow the batch, not the backlog).

    python bench/backlog.py [--messages N] [--batch-size B] [--folder DIR] [--database URL]

Needs Dovecot (`apt-get install dovecot-imapd`). Target: >= 1,500 messages/s on SQLite.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import dovecot  # noqa: E402  (the test suite's Dovecot runner)

from imap_bouncer import analysis  # noqa: E402
from imap_bouncer.ledger import Ledger  # noqa: E402
from imap_bouncer.service import AnalysisPool, MailboxService, PassOptions  # noqa: E402
from imap_bouncer.settings import ImapSettings  # noqa: E402


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill_maildir(account: dovecot.Account, sources: list[bytes], count: int) -> None:
    """Write the messages straight into the Maildir's new/ (APPEND one by one is the slow
    part of setting up, not of what is measured); Dovecot indexes them on first SELECT."""
    client = account.client()  # the first login makes the Maildir, owned by the mail user
    client.select_folder("INBOX")
    client.logout()
    new = account.maildir / "new"
    host = socket.gethostname()
    stamp = int(time.time())
    for index in range(count):
        raw = sources[index % len(sources)]
        unique = f"X-Bench-Sequence: {index}\n".encode()
        (new / f"{stamp}.M{index}P{os.getpid()}.{host}").write_bytes(unique + raw)
    owner = account.maildir.stat()
    for path in new.iterdir():
        os.chown(path, owner.st_uid, owner.st_gid)


class Timed:
    """Wraps the pass's stages to add up where the time goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start

        setattr(owner, name, timed)


def main() -> None:
    default_folder = ROOT.parent / "shared" / "corpus" / "messages"
    if not default_folder.is_dir():
        default_folder = ROOT / "tests" / "samples" / "basics"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--folder", type=Path, default=default_folder)
    parser.add_argument("--database", help="database URL (default: SQLite in a temp dir)")
    parser.add_argument("--workers", type=int, default=1,
                        help="analysis worker processes (settings: analysis.workers)")
    args = parser.parse_args()

    sources = [p.read_bytes() for p in sorted(args.folder.iterdir())
               if p.is_file() and p.stat().st_size]
    workdir = Path(tempfile.mkdtemp(prefix="imap-bouncer-bench-"))
    server = dovecot.DovecotServer(dovecot.NORMAL)
    try:
        server.start()
        account = server.add_user()
        fill_maildir(account, sources, args.messages)
        url = args.database or f"sqlite:///{workdir / 'bench.db'}"
        ledger = Ledger.open(url)
        settings = ImapSettings(host=account.host, port=account.port, security="none",
                                username=account.user, password=account.password,
                                batch_size=args.batch_size)
        pool = AnalysisPool(args.workers, analysis.Options())
        service = MailboxService(settings, ledger, analysis_pool=pool)
        timed = Timed()
        with service.connected() as mailbox:
            start = time.perf_counter()
            mailbox.select("INBOX")  # Dovecot indexes the new Maildir files here
            indexing = time.perf_counter() - start
            timed.wrap(mailbox, "fetch", "IMAP fetch")
            timed.wrap(mailbox, "move", "IMAP move")
            timed.wrap(service.analysis, "result", "waiting for analysis")
            timed.wrap(ledger, "record_batch", "database record")
            timed.wrap(ledger, "mark_moved", "database mark moved")
            rss_before = rss_mib()
            start = time.perf_counter()
            summary = service.run_pass(mailbox, PassOptions())
            elapsed = time.perf_counter() - start
        ledger.close()
        pool.close()
        size = sum(len(s) for s in sources) / len(sources)
        print(f"{summary.processed:,} messages ({size / 1024:.1f} KB average, from {args.folder}),"
              f" batches of {args.batch_size}, database {url.split(':')[0]}, "
              f"{args.workers} analysis worker process(es)")
        print(f"  drained in {elapsed:.2f} s: {summary.processed / elapsed:,.0f} messages/s "
              f"(Dovecot indexing the new Maildir beforehand: {indexing:.2f} s, not counted)")
        for label, seconds in sorted(timed.seconds.items(), key=lambda kv: -kv[1]):
            print(f"    {label:<22} {seconds:6.2f} s  {seconds / elapsed:5.1%}")
        print(f"  peak RSS: {rss_before:.0f} MiB before the pass, {rss_mib():.0f} MiB after")
        print(f"  by folder: {dict(summary.by_folder)}")
        target = 1500
        rate = summary.processed / elapsed
        print(f"  target >= {target:,} messages/s: {'meets' if rate >= target else 'BELOW'}")
    finally:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
