"""The outbox with a hanging endpoint: a real HTTP server process that takes the request and
never answers. The other endpoint's webhooks and the DSNs (a real SMTP server) still go out
meanwhile, a stop ends the delivery run within seconds, and nothing is lost: the hanging
endpoint's rows stay pending, due again at the next start. In this process (`deliver_due`,
both databases) and as the real `imap-bouncer run` stopped by SIGTERM against Dovecot."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import test_dsn_sender as dsn_support  # its SMTP server, bounces and recording helpers
import test_webhooks as webhook_support  # its facts and endpoint
from service_support import (
    append,
    log_count,
    numbered,
    sigterm_and_wait,
    start_cli,
    stop_process,
    wait_for,
    write_settings,
)
from support import sample
from test_webhooks import SECRET, Receiver

from imap_bouncer import handlers
from imap_bouncer.handlers import DeliveryError, outbox
from imap_bouncer.handlers.outbox import deliver_due
from imap_bouncer.handlers.webhooks import WebhookSender
from imap_bouncer.ledger import Ledger
from imap_bouncer.settings import Settings

smtp = dsn_support.smtp  # the fixture: a real SMTP server (aiosmtpd) on loopback

HANGING_SERVER = textwrap.dedent("""
    import sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Hang(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            with open(sys.argv[1], "a") as seen:
                seen.write(self.path + "\\n")
            time.sleep(3600)  # took the request; never answers

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    print(server.server_address[1], flush=True)
    server.serve_forever()
""")


class HangingEndpoint:
    def __init__(self, tmp_path: Path) -> None:
        self.seen = tmp_path / "hanging-requests.txt"
        self.process = subprocess.Popen([sys.executable, "-c", HANGING_SERVER, str(self.seen)],
                                        stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def requests(self) -> int:
        return len(self.seen.read_text().splitlines()) if self.seen.exists() else 0

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def hanging(tmp_path):
    endpoint = HangingEndpoint(tmp_path)
    yield endpoint
    endpoint.stop()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def test_a_hanging_endpoint_holds_up_nothing_else_and_a_stop_is_quick(
        hanging, receiver, test_db, smtp):
    recorder, smtp_port = smtp
    hook = {"secret": SECRET, "events": ["event.recorded"]}
    base = dsn_support.settings_for(smtp_port)  # DSNs, and the signing they need
    settings = Settings(
        dsn=base.dsn, verp=base.verp,
        webhooks=[{**hook, "url": hanging.url(), "timeout": 60},
                  {**hook, "url": receiver.url()}])
    ledger = Ledger.open(test_db.url, notifications=settings)
    try:
        mailbox = dsn_support.Mailbox(ledger)
        for n in range(3):
            mailbox.record(dsn_support.bounce(
                dsn_support.original_headers(message_id=f"<orig.{n}@mail.example.org>"),
                bounce_id=f"<bounce.{n}@mx.example.net>"))
        rows = ledger.outbox.list()
        to_hang = [r.id for r in rows if r.target == hanging.url()]
        assert len(to_hang) == 3 and sum(r.channel == "dsn" for r in rows) == 3

        stop = threading.Event()
        reports = []
        run = threading.Thread(target=lambda: reports.append(deliver_due(
            ledger, handlers.senders(settings), settings=settings.outbox, stop=stop)))
        started = time.monotonic()
        run.start()
        wait_for(lambda: len(receiver.deliveries) == 3 and len(recorder.received) == 3, 10,
                 "the other endpoint's webhooks and the DSNs")
        others = time.monotonic() - started
        wait_for(lambda: hanging.requests() == 1, 10, "the hanging endpoint's request")
        time.sleep(0.5)
        stopping = time.monotonic()
        stop.set()
        run.join(timeout=10)
        stopped = time.monotonic() - stopping
        print(f"other endpoint and DSNs delivered in {others:.2f} s beside a hanging one; "
              f"stopped {stopped:.2f} s after the stop was asked for")
        assert not run.is_alive() and stopped < 3
        assert reports and reports[0].delivered == 6
        assert hanging.requests() == 1  # one attempt waits on it; the rest were not sent
        now = datetime.now(UTC)
        for row in ledger.outbox.list():
            if row.id in to_hang:  # kept, untouched: due again at once
                assert row.status == "pending" and row.attempts == 0, row
                assert row.next_attempt_at <= now, row
            else:
                assert row.status == "delivered", row
    finally:
        ledger.close()


@pytest.mark.dovecot
def test_run_stops_on_sigterm_within_seconds_despite_a_hanging_endpoint(
        hanging, receiver, imap_server, test_db, tmp_path):
    config = write_settings(tmp_path / "settings.toml", imap_server, test_db.url,
                            analysis={"workers": 0})
    with config.open("a") as file:
        file.write("[outbox]\ninterval = 1\n")
        for url, timeout in ((hanging.url(), 60), (receiver.url(), 10)):
            file.write(f'[[webhooks]]\nurl = "{url}"\nsecret = "{SECRET}"\n'
                       f'events = ["event.recorded"]\ntimeout = {timeout}\n')
    append(imap_server, [numbered(sample("postfix.eml"), 0),
                         numbered(sample("dsn-failed-multi.eml"), 1)])
    log = tmp_path / "run.log"
    process = start_cli("run", "-c", str(config), cwd=tmp_path, log=log)
    try:
        wait_for(lambda: len(receiver.deliveries) == 3, 30, "the other endpoint's webhooks",
                 log=log)
        wait_for(lambda: hanging.requests() == 1, 10, "the hanging endpoint's request",
                 log=log)
        code, stopped = sigterm_and_wait(process)
    finally:
        stop_process(process)
    print(f"SIGTERM to exit with a hanging endpoint (timeout 60 s): {stopped:.2f} s")
    assert code == 0, log.read_text()
    assert stopped < 5
    assert log_count(log, "stopped waiting for its answer; due again at the next start") == 1
    ledger = Ledger.open(test_db.url)
    try:
        kept = [r for r in ledger.outbox.list() if r.target == hanging.url()]
    finally:
        ledger.close()
    assert len(kept) == 3
    assert all(r.status == "pending" and r.attempts == 0 for r in kept), kept


def test_a_run_ends_in_bounded_time_and_the_attempt_it_left_records_itself(
        hanging, receiver, test_db, monkeypatch):
    """No stop asked: an endpoint that never answers (as one answering a byte at a time
    would) may hold its own rows, not the run. Past its time the run ends; the attempt goes
    on in its thread, later runs leave that endpoint's rows alone, and when the attempt
    ends at last its thread records it."""
    monkeypatch.setattr(outbox, "ABANDON_AFTER", 1.0)
    monkeypatch.setattr(outbox, "LANE_SECONDS", 0.0)
    hook = {"secret": SECRET, "events": ["event.recorded"]}
    settings = Settings(webhooks=[{**hook, "url": hanging.url(), "timeout": 60},
                                  {**hook, "url": receiver.url()}],
                        outbox={"interval": 1})
    ledger = Ledger.open(test_db.url, notifications=settings)
    try:
        ledger.record_batch([webhook_support.item(n, webhook_support.bounce(
            f"user{n}@example.net")) for n in range(1, 4)])
        to_hang = {r.id for r in ledger.outbox.list() if r.target == hanging.url()}
        assert len(to_hang) == 3

        started = time.monotonic()
        first = deliver_due(ledger, handlers.senders(settings), settings=settings.outbox)
        took = time.monotonic() - started
        print(f"a run with a hanging endpoint and no stop ended after {took:.2f} s")
        assert took < 6
        assert first.delivered == 3 and len(receiver.deliveries) == 3
        second = deliver_due(ledger, handlers.senders(settings), webhook_support.later(),
                             settings=settings.outbox)
        assert second.attempted == 0 and hanging.requests() == 1  # its rows wait for it
        hanging.stop()  # the attempt ends at last (the connection is reset)

        def recorded_by_its_thread():
            rows = [r for r in ledger.outbox.list() if r.id in to_hang]
            return [r for r in rows if r.attempts == 1] if rows else None

        late = wait_for(recorded_by_its_thread, 10, "the late attempt to be recorded")
        assert len(late) == 1 and late[0].status == "pending" and late[0].last_error
        assert all(r.status == "pending" for r in ledger.outbox.list() if r.id in to_hang)
    finally:
        ledger.close()


TRICKLING_SERVER = textwrap.dedent("""
    import socket, time
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    while True:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\\r\\n")
        try:
            for _ in range(600):  # a header a byte at a time: each wait is short
                connection.sendall(b"X")
                time.sleep(0.2)
        except OSError:
            pass
        connection.close()
""")


def test_an_endpoint_answering_a_byte_at_a_time_is_cut_at_its_timeout():
    server = subprocess.Popen([sys.executable, "-c", TRICKLING_SERVER], stdout=subprocess.PIPE,
                              text=True)
    try:
        port = int(server.stdout.readline())
        sender = WebhookSender([])
        started = time.monotonic()
        with pytest.raises(DeliveryError, match=r"no (complete )?answer within 1\.5 s"):
            sender.post(f"http://127.0.0.1:{port}/hook", b"{}",
                        {"content-type": "application/json"}, 1.5)
        took = time.monotonic() - started
        print(f"a trickling endpoint cut after {took:.2f} s (timeout 1.5 s)")
        assert 1.4 < took < 4
    finally:
        server.kill()
        server.wait(timeout=10)
