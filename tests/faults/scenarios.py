"""The fault rows: each puts mail into a real Dovecot account, runs the real `imap-bouncer`
command against it (through the proxy where the network is the fault), injects its fault,
lets a clean run finish, checks the invariants (harness.check) and returns its line of the
table. The tests (tests/faults/test_*.py) call them with small backlogs and assert the
figures; bench/faults.py calls them all with the issue's sizes and prints the table.

Each function takes a `Bench` (where to run) and the number of messages; none of them
asserts: a broken invariant is a figure in the row (and a line in its notes), for the caller
to judge.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dovecot
import hostile
import psycopg
from harness import (
    Row,
    Watched,
    backlog,
    check,
    fill,
    run_command,
    settings,
    wait_filed,
)
from proxy import Proxy
from service_support import (
    FOLDERS,
    append,
    client,
    counts,
    log_count,
    numbered,
    rows,
    wait_for,
)
from support import sample

from imap_bouncer import analysis, verp
from imap_bouncer.ledger import Ledger
from imap_bouncer.models import Message, Transition

IDLE_LINE = "waiting for new mail (IDLE)"
STOP_TIMEOUT = 30.0


@dataclass
class Bench:
    """Where a row runs: a fresh Dovecot account, a fresh database, a directory of its own."""

    account: dovecot.Account
    database_url: str
    workdir: Path
    backend: str  # "sqlite" or "postgresql"
    postgres_admin_url: str = ""  # to terminate the service's sessions (PostgreSQL only)
    seed: int = 9
    timeouts: dict[str, float] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.workdir / name

    def settings(self, name: str = "settings.toml", **imap) -> Path:
        return settings(self.path(name), self.account, self.database_url, **imap)


def start_run(bench: Bench, config: Path, log: str = "run.log") -> Watched:
    return Watched(["run", "-c", str(config)], bench.workdir, bench.path(log))


def stop_run(watched: Watched, row: Row) -> None:
    """SIGTERM, as systemd stops it; a `run` that does not exit in time is a note."""
    watched.sigterm()
    try:
        code = watched.wait(STOP_TIMEOUT)
        if code != 0:
            row.notes.append(f"run exited {code}")
    except subprocess.TimeoutExpired:
        row.notes.append(f"run still running {STOP_TIMEOUT:g} s after SIGTERM")
    finally:
        watched.ensure_stopped()
    row.watched(watched)
    if "Traceback" in watched.log_text():
        row.notes.append("a traceback in the log")


def clean_once(bench: Bench, config: Path, row: Row, log: str = "clean.log") -> None:
    done = run_command(["once", "-c", str(config)], bench.workdir, bench.path(log))
    row.watched(done)
    if done.process.returncode != 0:
        row.notes.append(f"the clean once exited {done.process.returncode}")


def finish(bench: Bench, row: Row, total: int, **check_args) -> Row:
    tally = check(bench.account, bench.database_url, total, **check_args)
    row.add(tally)
    return row


# -- the network between the service and Dovecot --------------------------------------------


def _imap_proxy(bench: Bench) -> Proxy:
    return Proxy(bench.account.host, bench.account.port)


@contextlib.contextmanager
def _run_through_proxy(bench: Bench, row: Row, arm: Callable[[Proxy], None] = lambda p: None,
                       **imap) -> Iterator[tuple[Proxy, Any]]:
    """`run` talking to Dovecot through the proxy, its rules armed first: (the proxy, the
    watched run). At the end the run is stopped and the faults injected are counted."""
    proxy = _imap_proxy(bench)
    try:
        arm(proxy)
        config = bench.settings("proxied.toml", port=proxy.port, **imap)
        watched = start_run(bench, config)
        try:
            yield proxy, watched
        finally:
            stop_run(watched, row)
        row.injected = proxy.injected
    finally:
        proxy.close()


def _through_proxy(bench: Bench, kind: str, total: int, arm: Callable[[Proxy], None],
                   **imap) -> Row:
    """A backlog drained by `run` through the proxy with its rules armed; then a clean once
    straight to Dovecot."""
    row = Row(kind)
    fill(bench.account, total)
    with _run_through_proxy(bench, row, arm, **imap) as (_proxy, watched):
        wait_filed(bench.account, total, bench.timeouts.get("filed", 90), watched)
    clean_once(bench, bench.settings(), row)
    return finish(bench, row, total)


def imap_drop_mid_fetch(bench: Bench, total: int, faults: int = 3) -> Row:
    return _through_proxy(bench, "IMAP drop mid-FETCH", total,
                          lambda p: p.drop_during("UID FETCH", after_bytes=700, times=faults))


def imap_drop_mid_move(bench: Bench, total: int, faults: int = 3) -> Row:
    """The MOVE reaches the server, its answer never the service: moved but not noted."""
    return _through_proxy(bench, "IMAP drop mid-MOVE", total,
                          lambda p: p.drop_after("UID MOVE", seconds=0.5, times=faults))


def imap_failing_move(bench: Bench, total: int, faults: int = 3) -> Row:
    return _through_proxy(bench, "IMAP MOVE refused (NO)", total,
                          lambda p: p.refuse("UID MOVE", times=faults))


def imap_stall(bench: Bench, total: int, faults: int = 2, timeout: float = 2.0) -> Row:
    """FETCH answered by nothing for twice the service's timeout."""
    return _through_proxy(bench, f"IMAP stall {2 * timeout:g} s (timeout {timeout:g} s)",
                          total, lambda p: p.stall("UID FETCH", 2 * timeout, times=faults),
                          timeout=timeout)


def imap_drop_during_idle(bench: Bench, total: int, faults: int = 2) -> Row:
    """The connection is cut while the service IDLEs; mail arrives after each cut."""
    row = Row("IMAP drop during IDLE")
    with _run_through_proxy(bench, row) as (proxy, watched):
        wait_for(lambda: log_count(watched.log, IDLE_LINE) >= 1, 30, "the first IDLE",
                 log=watched.log)
        per_round = max(1, total // (faults + 1))
        sent = 0
        for round_ in range(faults + 1):
            if round_ < faults:
                idles = log_count(watched.log, IDLE_LINE)
                proxy.drop_during_idle(after=0.3)
                proxy.cut_all()  # the IDLE under way started before the rule: anew
                wait_for(lambda n=idles: log_count(watched.log, IDLE_LINE) > n, 30,
                         "IDLE again after the cut", log=watched.log)
                wait_for(lambda: proxy.armed == 0, 10, "the cut during IDLE",
                         log=watched.log)
            count = per_round if round_ < faults else total - sent
            fill(bench.account, count, start=sent)
            sent += count
            wait_filed(bench.account, sent, bench.timeouts.get("filed", 60), watched)
    clean_once(bench, bench.settings(), row)
    return finish(bench, row, total)


# -- the database -----------------------------------------------------------------------------


def postgres_proxy(bench: Bench) -> tuple[Proxy, str]:
    """A proxy in front of PostgreSQL, and the database URL that goes through it."""
    info = psycopg.conninfo.conninfo_to_dict(bench.database_url)
    host, port = info.get("host") or "127.0.0.1", int(info.get("port") or 5432)
    proxy = Proxy(host, port)
    url = bench.database_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}", 1)
    if url == bench.database_url:
        proxy.close()
        raise ValueError(f"cannot put a proxy into {bench.database_url!r}: write host:port")
    return proxy, url


def postgres_terminated_mid_batch(bench: Bench, total: int, faults: int = 3,
                                  progress: int = 15) -> Row:
    """pg_terminate_backend on the service's sessions (found by the proxy's ports: a shared
    server's other sessions are never touched), `faults` times, each once `progress` more
    messages were recorded since the last: in the middle of a pass, between its batches
    (moves come in large UID sets, so the folders only show progress at a pass's end)."""
    row = Row("PostgreSQL pg_terminate_backend")
    proxy, url = postgres_proxy(bench)
    schema = re.search(r"search_path%3D(\w+)", bench.database_url)
    table = f'"{schema.group(1)}".message' if schema else "message"
    fill(bench.account, total)
    try:
        config = settings(bench.path("pg.toml"), bench.account, url, batch_size=5)
        watched = start_run(bench, config)
        try:
            with psycopg.connect(bench.postgres_admin_url, autocommit=True) as admin:
                recorded = 0
                for _ in range(faults):
                    def moved_on(since: int = recorded) -> int:
                        with contextlib.suppress(psycopg.errors.UndefinedTable):
                            (now,), = admin.execute(f"SELECT count(*) FROM {table}")
                            return now if now >= min(total, since + progress) else 0
                        return 0
                    recorded = wait_for(moved_on, 60, "progress", interval=0.02,
                                        log=watched.log)
                    if recorded >= total:
                        break
                    ports = sorted(proxy.upstream_ports())
                    killed = admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                        "client_addr = '127.0.0.1' AND client_port = ANY(%s) AND "
                        "pid <> pg_backend_pid()", (ports,)).fetchall()
                    if any(done for (done,) in killed):
                        row.injected += 1
            wait_filed(bench.account, total, bench.timeouts.get("filed", 120), watched)
        finally:
            stop_run(watched, row)
    finally:
        proxy.close()
    clean_once(bench, bench.settings(), row)
    return finish(bench, row, total)


def postgres_unreachable(bench: Bench, total: int, outages: int = 2,
                         seconds: float = 3.0) -> Row:
    """First `once` against a closed port (must exit 1 and move nothing), then `run` with
    PostgreSQL's port closed for `seconds`, `outages` times, while mail waits."""
    row = Row(f"PostgreSQL unreachable ({seconds:g} s)")
    proxy, url = postgres_proxy(bench)
    try:
        config = settings(bench.path("pg.toml"), bench.account, url)
        proxy.refuse_all()
        fill(bench.account, total // 2)
        refused = run_command(["once", "-c", str(config)], bench.workdir,
                              bench.path("refused.log"), timeout=60)
        row.injected += 1
        row.watched(refused)
        if refused.process.returncode != 1:
            row.notes.append(f"once with the database down exited "
                             f"{refused.process.returncode}, not 1")
        moved = sum(counts(bench.account, FOLDERS).values())
        if moved:
            row.notes.append(f"{moved} moved while the database was down")
            row.lost += moved
        proxy.accept_again()
        watched = start_run(bench, config)
        try:
            wait_filed(bench.account, total // 2, 60, watched)
            sent = total // 2
            for outage in range(outages):
                proxy.refuse_all()
                count = (total - sent) // (outages - outage)
                fill(bench.account, count, start=sent)
                sent += count
                time.sleep(seconds)
                proxy.accept_again()
                row.injected += 1
            wait_filed(bench.account, total, bench.timeouts.get("filed", 120), watched)
        finally:
            stop_run(watched, row)
    finally:
        proxy.close()
    clean_once(bench, bench.settings(), row)
    return finish(bench, row, total)


def sqlite_locked(bench: Bench, total: int, seconds: float = 21.0, batch: int = 10) -> Row:
    """Another connection takes SQLite's write lock when all but the last batch of a pass are
    recorded, and holds it for longer than two of the service's waits for it
    (models.SQLITE_BUSY_TIMEOUT, 10 s): the last batch's record fails, the pass moves what
    it recorded on its way out, and the notes of those moves fail too (finding 9 asks that
    no row be left saying moved = 0 for a message that was moved)."""
    row = Row(f"SQLite locked {seconds:g} s")
    fill(bench.account, total)
    config = bench.settings(batch_size=batch)
    path = bench.database_url.removeprefix("sqlite:///")
    watched = start_run(bench, config)
    try:
        def recorded() -> bool:
            with contextlib.suppress(sqlite3.OperationalError), \
                    contextlib.closing(sqlite3.connect(path, timeout=1)) as reader:
                (count,), = reader.execute("SELECT count(*) FROM message").fetchall()
                return count >= total - batch
            return False
        wait_for(recorded, 60, "all but the last batch recorded", interval=0.01,
                 log=watched.log)
        holder = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            row.injected += 1
            time.sleep(seconds)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        wait_filed(bench.account, total, bench.timeouts.get("filed", 120), watched)
    finally:
        stop_run(watched, row)
    clean_once(bench, bench.settings(), row)
    return finish(bench, row, total)


# -- the process ------------------------------------------------------------------------------


def sigkill_rounds(bench: Bench, total: int, rounds: int = 20, grace: float = 1.0) -> Row:
    """`once` over a backlog of `total` messages, SIGKILLed (the command alone, as the OOM
    killer or a crash would) at a random moment of each round: every other round during
    start-up (before or while it logs in and starts its worker), the others at a random
    moment of its pass; then a clean once. Before each round the backlog is topped up to
    half its size with new messages, so that every round has work to be killed in. Orphans:
    processes of the killed command's tree still alive `grace` s after it died."""
    row = Row(f"SIGKILL x{rounds}")
    fill(bench.account, total)
    sent = total
    config = bench.settings(batch_size=20)
    chooser = random.Random(bench.seed)
    orphans = 0
    for index in range(rounds):
        waiting = counts(bench.account, ["INBOX"])["INBOX"]
        if waiting < total // 2:
            fill(bench.account, total // 2 - waiting, start=sent)
            sent += total // 2 - waiting
        log = bench.path(f"kill-{index}.log")
        watched = Watched(["once", "-c", str(config)], bench.workdir, log)
        if index % 2:
            with contextlib.suppress(AssertionError):
                wait_for(lambda log=log, watched=watched: log_count(log, "to process in") or
                         watched.process.poll() is not None, 30, "the pass", interval=0.01)
            time.sleep(chooser.uniform(0.0, 0.3))
        else:
            time.sleep(chooser.uniform(0.05, 1.2))
        if watched.process.poll() is None:
            found = watched.sigkill(grace=grace)
            orphans += len(found)
            row.injected += 1
        else:
            watched.wait(5)
        row.watched(watched)
    row.orphans = orphans
    left = counts(bench.account, ["INBOX"])["INBOX"]
    row.notes.append(f"{left} of {sent} still in INBOX after the rounds")
    clean_once(bench, config, row)
    return finish(bench, row, sent)


# -- the mailbox ------------------------------------------------------------------------------


def uidvalidity_change(bench: Bench, total: int) -> Row:
    """The source folder is recreated with the same messages (a restore, a server migration)
    after a pass recorded them all but moved none (every MOVE refused): new UIDVALIDITY, new
    UIDs. Then messages that were never recorded arrive, and a clean once runs."""
    row = Row("UIDVALIDITY change")
    source = "Bounces"
    with client(bench.account) as c:
        c.create_folder(source)
    append(bench.account, backlog(total - total // 5), folder=source)
    proxy = _imap_proxy(bench)
    try:
        proxy.refuse("UID MOVE", times=1000)
        config = bench.settings("proxied.toml", port=proxy.port, source_folder=source)
        refused = run_command(["once", "-c", str(config)], bench.workdir,
                              bench.path("refused.log"))
        row.watched(refused)
    finally:
        proxy.close()
    with client(bench.account) as c:
        old = c.folder_status(source, [b"UIDVALIDITY"])[b"UIDVALIDITY"]
        c.select_folder(source, readonly=True)
        saved = [data[b"BODY[]"] for _uid, data in
                 sorted(c.fetch(c.search("ALL"), ["BODY.PEEK[]"]).items())]
        c.close_folder()
        c.delete_folder(source)
        c.create_folder(source)
    append(bench.account, saved, folder=source)
    append(bench.account, backlog(total // 5, start=total - total // 5), folder=source)
    with client(bench.account) as c:
        if c.folder_status(source, [b"UIDVALIDITY"])[b"UIDVALIDITY"] != old:
            row.injected += 1
    clean_once(bench, bench.settings(source_folder=source), row)
    return finish(bench, row, total, source=source)


def folder_deleted_during_run(bench: Bench, total: int) -> Row:
    """While `run` IDLEs, a person deletes Processed (with what is in it), then Unknown;
    mail keeps arriving. The messages in a deleted folder are gone by that person's hand,
    not the service's: they count as removed, never as lost."""
    row = Row("target folder deleted")
    config = bench.settings()
    watched = start_run(bench, config)
    removed: set[int] = set()
    per_round = max(1, total // 3)
    try:
        wait_for(lambda: log_count(watched.log, IDLE_LINE) >= 1, 30, "the first IDLE",
                 log=watched.log)
        sent = 0
        for folder in ("Processed", "Unknown", None):
            count = per_round if folder else total - sent
            fill(bench.account, count, start=sent)
            sent += count
            wait_filed(bench.account, sent, 60, watched, removed=len(removed))
            if folder is None:
                break
            with client(bench.account) as c:
                c.select_folder(folder, readonly=True)
                for data in c.fetch(c.search("ALL"), ["BODY.PEEK[]"]).values():
                    removed.update(int(n) for n in _numbers(data[b"BODY[]"]))
                c.close_folder()
                c.delete_folder(folder)
            row.injected += 1
    finally:
        stop_run(watched, row)
    clean_once(bench, config, row)
    row.notes.append(f"{len(removed)} deleted with their folder by the test")
    return finish(bench, row, total, removed=removed)


def other_client_during_pass(bench: Bench, total: int) -> Row:
    """While `once` drains a backlog, another client moves messages out of INBOX (to
    Elsewhere) and deletes others (\\Deleted + UID EXPUNGE), a few every 0.1 s."""
    row = Row("other client moves/deletes")
    fill(bench.account, total)
    config = bench.settings(batch_size=10)
    chooser = random.Random(bench.seed)
    deleted: set[int] = set()
    watched = Watched(["once", "-c", str(config)], bench.workdir, bench.path("once.log"))
    with client(bench.account) as c:
        c.create_folder("Elsewhere")
        c.select_folder("INBOX")
        while watched.process.poll() is None:
            uids = c.search("ALL")
            if len(uids) < 3:
                break
            picked = chooser.sample(uids[len(uids) // 4:], 3)
            with contextlib.suppress(Exception):
                c.move(picked[:2], "Elsewhere")
                row.injected += 1
            data = c.fetch([picked[2]], ["BODY.PEEK[]"])
            for values in data.values():
                deleted.update(int(n) for n in _numbers(values[b"BODY[]"]))
            c.delete_messages([picked[2]])
            c.uid_expunge([picked[2]])
            row.injected += 1
            time.sleep(0.1)
    watched.wait(120)
    row.watched(watched)
    if watched.process.returncode != 0:
        row.notes.append(f"once exited {watched.process.returncode} (the pass was cut)")
    clean_once(bench, config, row)
    row.notes.append(f"{len(deleted)} deleted by the other client")
    return finish(bench, row, total, removed=deleted, extra_folders=["Elsewhere"])


def _numbers(raw: bytes) -> list[bytes]:
    return re.findall(rb"\[test message (\d+)\]", raw)[-1:]


# -- hostile content --------------------------------------------------------------------------


def hostile_content(bench: Bench, scale: float = 1.0) -> Row:
    """A few hostile shapes (hostile.py) through `once` with the default analysis worker;
    the longest analysis of one of them is timed in a process of its own, by the same
    function the worker runs (analysis.analyze_many), one message at a time."""
    row = Row("hostile content")
    shapes = hostile.shapes(scale)
    raws = [raw for _name, raw in shapes]
    append(bench.account, raws)
    done = run_command(["once", "-c", str(bench.settings())], bench.workdir,
                       bench.path("hostile.log"), timeout=bench.timeouts.get("hostile", 120))
    row.watched(done)
    row.injected = len(raws)
    if done.process.returncode != 0:
        row.notes.append(f"once exited {done.process.returncode}")
    started, *measured = analysis_costs(bench, raws)
    times = [seconds for seconds, _peak in measured]
    row.longest_analysis = max(times)
    slowest = max(range(len(times)), key=times.__getitem__)
    row.notes.append(f"slowest: {shapes[slowest][0]} {times[slowest]:.2f} s")
    peaks = [started[1]] + [peak for _seconds, peak in measured]
    rise = max(range(len(raws)), key=lambda i: peaks[i + 1] - peaks[i])
    row.notes.append(f"analysis alone peaks at {peaks[-1]:.0f} MB, most raised by "
                     f"{shapes[rise][0]} (to {peaks[rise + 1]:.0f} MB)")
    names = [name for name, _raw in shapes]
    finish(bench, row, len(raws), group=lambda n: names[n])
    _silent_cuts(bench, row, shapes)
    return row


def _silent_cuts(bench: Bench, row: Row, shapes: list[tuple[str, bytes]]) -> None:
    """A message naming N failed recipients must give N events, or say in its errors why
    not (finding 3: a cut must never be silent)."""
    ledger = Ledger.open(bench.database_url, upgrade=False)
    try:
        recorded = {r.message_id: r for r in rows(ledger)}
        stored = {m.message_id: m for m in Message.select()}
    finally:
        ledger.close()
    for index, (name, _raw) in enumerate(shapes):
        expected = hostile.recipients(name)
        found = recorded.get(f"<hostile-{index}@mx.example.net>")
        if expected is None or found is None:
            continue
        if found.events < expected and not found.errors:
            row.silent_cuts += expected - found.events
            row.notes.append(f"{name}: {found.events} events, no error recorded "
                             f"(kind {stored[found.message_id].kind})")


def analysis_costs(bench: Bench, raws: list[bytes]) -> list[tuple[float, float]]:
    """(0, peak RSS in MB once imported), then for each message alone, in order: the seconds
    analysis.analyze_many takes, and the peak RSS of the process so far. In a fresh
    interpreter: the analysis worker's situation; this process's caches play no part."""
    paths = []
    for index, raw in enumerate(raws):
        path = bench.path(f"hostile-{index}.eml")
        path.write_bytes(raw)
        paths.append(str(path))
    script = (
        "import json, resource, sys, time\n"
        "from imap_bouncer import analysis\n"
        "options = analysis.Options()\n"
        "analysis.analyze_many([], options)\n"
        "out = [(0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)]\n"
        "for path in sys.argv[1:]:\n"
        "    raw = open(path, 'rb').read()\n"
        "    started = time.perf_counter()\n"
        "    analysis.analyze_many([raw], options)\n"
        "    out.append((time.perf_counter() - started,\n"
        "                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))\n"
        "print(json.dumps(out))\n")
    result = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True,
                            text=True, timeout=bench.timeouts.get("hostile", 120), check=True)
    return [tuple(pair) for pair in json.loads(result.stdout)]  # the first: after imports


# -- forged bounces --------------------------------------------------------------------------

GENUINE_SAMPLE = "postfix.eml"
VERP_SECRET = "fault-suite-secret-0123456789abcdef"
VERP_ADDRESS = "bounces+{token}-{local}={domain}@bounce.example.org"


def forged_bounces(bench: Bench, total: int) -> Row:
    """Unsigned bounces (the samples: none carries a signed VERP address) are what an
    attacker can write. With `[verp] require_signed = true` they must change no address
    state: the figure is the transitions they made. Beside them, one genuine bounce (a
    sample delivered to the signed VERP address of its failed recipient) must still change
    its address's state, or the gate would only be shut."""
    row = Row("forged bounces (require_signed)")
    fill(bench.account, total)
    config = bench.settings()
    genuine = _genuine_bounce(bench, total, config)
    clean_once(bench, config, row)
    ledger = Ledger.open(bench.database_url, upgrade=False)
    try:
        forged = Transition.select().where(Transition.address != genuine).count()
        row.genuine_changes = Transition.select().where(Transition.address == genuine).count()
    finally:
        ledger.close()
    row.injected = total
    row.forged = str(forged)
    row.notes.append(f"the genuine signed bounce for {genuine} made {row.genuine_changes} "
                     "state change(s)")
    return finish(bench, row, total + 1)


def _genuine_bounce(bench: Bench, number: int, config: Path) -> str:
    """Turn require_signed on in `config` and deliver one bounce as a signing sender's
    would arrive: to the signed VERP address of its failed recipient. Returns that address."""
    raw = sample(GENUINE_SAMPLE)
    address = analysis.analyze(raw).recipients[0].address
    envelope = verp.sign(address, VERP_SECRET.encode(), VERP_ADDRESS,
                         verp.day_of(datetime.now(UTC)))
    append(bench.account, [numbered(f"Delivered-To: {envelope}\r\n".encode() + raw, number)])
    with config.open("a", encoding="utf-8") as handle:
        handle.write(f'[verp]\nsecret = "{VERP_SECRET}"\naddress = "{VERP_ADDRESS}"\n'
                     "require_signed = true\n")
    return address
