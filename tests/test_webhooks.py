"""Webhooks end to end: outbox rows written with the events, delivered to a real local HTTP
server, signatures checked with the reference verifier (PyPI `standardwebhooks`), retries
through outages and restarts, and never two ids for one fact. SQLite and PostgreSQL
(`test_db`); the service tests run the real command against a real Dovecot."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from standardwebhooks import Webhook

from imap_bouncer import handlers
from imap_bouncer.cli import main
from imap_bouncer.handlers.outbox import OutboxJob, backoff, deliver_due
from imap_bouncer.handlers.webhooks import WebhookSender, sign
from imap_bouncer.ledger import Ledger, MessageItem
from imap_bouncer.policy import Policy
from imap_bouncer.report import Action, Kind, Original, Reason, Recipient, Report
from imap_bouncer.service import Runner
from imap_bouncer.settings import OutboxSettings, Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
FAST = OutboxSettings(interval=1, max_attempts=3, backoff_first=1, backoff_max=2)


# -- a real endpoint --------------------------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    def verified(self, secret: str = SECRET) -> Any:
        """The payload, once the reference verifier accepts the signature (else it raises)."""
        return Webhook(secret).verify(self.body, self.headers)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records every request and answers with the statuses
    queued in `answers` (then 204). Stopped, nothing listens on its port: connections are
    refused, as with an endpoint that is down."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []  # every request, successful or not
        self.answers: list[int] = []
        self.arrived = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self._start(0)
        self.port = self.server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _start(self, port: int) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = receiver.answers.pop(0) if receiver.answers else 204
                receiver.deliveries.append(Delivery(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", receiver.url("/elsewhere"))
                self.send_header("content-length", "0")
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def start(self) -> None:
        if self.server is None:
            self._start(self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


# -- facts ------------------------------------------------------------------------------------

def bounce(*addresses: str, sender: str = "news@example.org", reason: Reason = Reason.USERUNKNOWN,
           permanent: bool = True, bounce_id: str = "") -> Report:
    status = "5.1.1" if permanent else "5.7.1"
    return Report(
        kind=Kind.BOUNCE, message_id=bounce_id,
        recipients=[Recipient(address=a, action=Action.FAILED, status=status, smtp_code="550",
                              diagnostic=f"550 {status} refused", remote_mta="mx.example.net",
                              reason=reason, permanent=permanent) for a in addresses],
        original=Original(message_id="<orig@example.org>", from_=f"News <{sender}>",
                          list_id="<news.example.org>"),
        analyzer="dsn")


def item(uid: int, report: Report, raw: bytes | None = None) -> MessageItem:
    raw = raw if raw is not None else f"Message-ID: <{uid}@bounce>\r\n\r\nbody {uid}".encode()
    return MessageItem(mailbox="bounces", uidvalidity=7, uid=uid, target_folder="Processed",
                       raw=raw, report=report, message_id=report.message_id or f"<{uid}@bounce>")


def settings(*webhooks: dict[str, Any]) -> Settings:
    return Settings(webhooks=[{"secret": SECRET, **webhook} for webhook in webhooks])


@pytest.fixture
def open_ledger(test_db) -> Iterator:
    """Ledgers on the test database; a new one is what a restarted service would open."""
    opened: list[Ledger] = []

    def opener(config: Settings, **kwargs: Any) -> Ledger:
        ledger = Ledger.open(test_db.url, notifications=config, **kwargs)
        opened.append(ledger)
        return ledger

    yield opener
    for ledger in opened:
        ledger.close()


def later(hours: float = 1) -> datetime:
    """A time by which every backoff in these tests has passed."""
    return datetime.now(UTC) + timedelta(hours=hours)


# -- delivery ---------------------------------------------------------------------------------

def test_delivery_is_signed_per_standard_webhooks(open_ledger, receiver: Receiver) -> None:
    config = settings({"url": receiver.url("/hooks/{address}"),
                       "events": ["address.state_changed", "event.recorded"]})
    ledger = open_ledger(config)
    ledger.record_batch([item(1, bounce("jo+news@example.net"))])
    pending = ledger.outbox.list("pending")
    assert sorted(row.event_type for row in pending) == ["address.state_changed",
                                                         "event.recorded"]

    report = deliver_due(ledger, handlers.senders(config), settings=FAST)

    assert (report.delivered, report.retrying, report.failed) == (2, 0, 0)
    assert len(receiver.deliveries) == 2
    for delivery in receiver.deliveries:
        payload = delivery.verified()  # the reference verifier accepts the signature
        assert delivery.path == "/hooks/jo%2Bnews%40example.net"
        assert delivery.headers["content-type"] == "application/json"
        assert re.fullmatch(r"\d{10}", delivery.headers["webhook-timestamp"])
        assert payload["id"] == delivery.id and payload["version"] == 1
        with pytest.raises(Exception, match="signature"):
            Webhook(OTHER_SECRET).verify(delivery.body, delivery.headers)
    changed = next(d.verified() for d in receiver.deliveries
                   if d.verified()["type"] == "address.state_changed")
    assert changed["data"]["address"] == "jo+news@example.net"
    assert (changed["data"]["from_state"], changed["data"]["to_state"]) == ("active", "invalid")
    assert changed["data"]["event"]["original"]["sender_domain"] == "example.org"
    assert {row.status for row in ledger.outbox.list()} == {"delivered"}
    assert all(row.attempts == 1 and row.delivered_at for row in ledger.outbox.list())
    # Delivered is delivered: another run sends nothing.
    assert deliver_due(ledger, handlers.senders(config), later(), settings=FAST).attempted == 0


def test_our_signature_is_the_specs_example() -> None:
    """The worked example of the Standard Webhooks spec, signed by us."""
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    assert sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_down_then_up_across_a_restart_delivers_with_the_same_id(
        open_ledger, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = settings({"url": receiver.url("/hook?token=sesame")})
    ledger = open_ledger(config)
    ledger.record_batch([item(1, bounce("jo@example.net"))])
    receiver.stop()  # the endpoint is down: connections refused

    first = deliver_due(ledger, handlers.senders(config), settings=FAST)

    assert (first.delivered, first.retrying) == (0, 1)
    [row] = ledger.outbox.list()
    assert (row.status, row.attempts) == ("pending", 1)
    assert "cannot connect" in row.last_error
    assert row.next_attempt_at > datetime.now(UTC)  # backed off, not due at once
    assert deliver_due(ledger, handlers.senders(config), settings=FAST).attempted == 0

    receiver.start()  # up again, but failing
    receiver.answers = [500]
    second = deliver_due(ledger, handlers.senders(config), later(), settings=FAST)
    assert (second.retrying, ledger.outbox.list()[0].last_error) == (1, "HTTP 500 Internal "
                                                                        "Server Error")
    ledger.close()

    # The service restarts: a new ledger and new senders on the same database.
    restarted = open_ledger(config)
    third = deliver_due(restarted, handlers.senders(config), later(2), settings=FAST)

    assert third.delivered == 1
    [row] = restarted.outbox.list()
    assert (row.status, row.attempts, row.last_error) == ("delivered", 3, "")
    ids = {delivery.id for delivery in receiver.deliveries}
    assert len(receiver.deliveries) == 2 and len(ids) == 1  # the 500, then the success
    assert ids == {row.payload["id"]}
    receiver.deliveries[-1].verified()
    # Neither the secret nor the URL's query string reached the log.
    assert "token=sesame" not in caplog.text and "sesame" not in caplog.text
    assert SECRET.removeprefix("whsec_") not in caplog.text
    assert "attempt 1 of 3 failed" in caplog.text


def test_gives_up_after_max_attempts_then_the_command_retries(
        open_ledger, receiver: Receiver, tmp_path: Path, test_db) -> None:
    config = settings({"url": receiver.url()})
    ledger = open_ledger(config)
    ledger.record_batch([item(1, bounce("jo@example.net"))])
    receiver.answers = [503, 503, 503]
    for hours in (0, 1, 2):
        deliver_due(ledger, handlers.senders(config), later(hours), settings=FAST)
    [row] = ledger.outbox.list()
    assert (row.status, row.attempts) == ("failed", 3)
    assert deliver_due(ledger, handlers.senders(config), later(24), settings=FAST).attempted == 0

    settings_path = tmp_path / "settings.toml"
    settings_path.write_text(
        f'[database]\nurl = "{test_db.url}"\n[outbox]\nmax_attempts = 3\n'
        f'[[webhooks]]\nurl = "{receiver.url()}"\nsecret = "{SECRET}"\n', encoding="utf-8")
    cli = CliRunner()
    shown = cli.invoke(main, ["outbox", "-c", str(settings_path), "--status", "failed",
                              "--json"])
    assert shown.exit_code == 0, shown.output
    [listed] = [json.loads(line) for line in shown.output.splitlines()]
    assert (listed["id"], listed["status"], listed["last_error"]) == (
        row.id, "failed", "HTTP 503 Service Unavailable")
    table = cli.invoke(main, ["outbox", "-c", str(settings_path)])
    assert "HTTP 503" in table.output and "failed" in table.output

    assert cli.invoke(main, ["outbox", "retry", "-c", str(settings_path)]).exit_code == 2
    retried = cli.invoke(main, ["outbox", "retry", "--all-failed", "-c", str(settings_path)])
    assert "1 notification(s) queued" in retried.output
    delivered = cli.invoke(main, ["outbox", "deliver", "-c", str(settings_path)])
    assert delivered.exit_code == 0, delivered.output
    assert "1 delivered" in delivered.output
    assert len({d.id for d in receiver.deliveries}) == 1 and len(receiver.deliveries) == 4
    # A delivered notification is not sent again by retry.
    again = cli.invoke(main, ["outbox", "retry", str(row.id), "-c", str(settings_path)])
    assert "0 notification(s) queued" in again.output


def test_a_redirect_is_not_a_delivery(open_ledger, receiver: Receiver) -> None:
    config = settings({"url": receiver.url()})
    ledger = open_ledger(config)
    ledger.record_batch([item(1, bounce("jo@example.net"))])
    receiver.answers = [307]
    report = deliver_due(ledger, handlers.senders(config), settings=FAST)
    assert report.retrying == 1 and len(receiver.deliveries) == 1  # not followed
    assert ledger.outbox.list()[0].last_error.startswith("HTTP 307")


def test_an_endpoint_no_longer_configured_fails_at_once(open_ledger, receiver) -> None:
    ledger = open_ledger(settings({"url": receiver.url("/old")}))
    ledger.record_batch([item(1, bounce("jo@example.net"))])
    now_configured = settings({"url": receiver.url("/new")})
    report = deliver_due(ledger, handlers.senders(now_configured), settings=FAST)
    assert report.failed == 1 and receiver.deliveries == []
    assert "no [[webhooks]] endpoint" in ledger.outbox.list()[0].last_error


def test_a_claimed_row_is_attempted_by_one_run_only(open_ledger, receiver) -> None:
    """Two runs at once (the scheduled job and `outbox deliver` in another process): a row
    one of them claimed is not due for the other."""
    config = settings({"url": receiver.url()})
    ledger = open_ledger(config)
    ledger.record_batch([item(1, bounce("a@example.net", "b@example.net"))])
    now = datetime.now(UTC)
    taken = ledger.outbox.claim(now, 1, timedelta(minutes=15))
    rest = ledger.outbox.claim(now, 10, timedelta(minutes=15))
    assert len(taken) == 1 and len(rest) == 1 and taken[0].id != rest[0].id
    assert ledger.outbox.claim(now, 10, timedelta(minutes=15)) == []
    assert deliver_due(ledger, handlers.senders(config), now, settings=FAST).attempted == 0
    # A run that died mid-attempt: its claim lapses and the row is due again.
    assert len(ledger.outbox.due(now + timedelta(minutes=16))) == 2


def test_backoff_doubles_with_jitter_up_to_the_most() -> None:
    config = OutboxSettings(backoff_first=30, backoff_max=21600)
    for attempts, ceiling in ((1, 30), (2, 60), (3, 120), (10, 15360), (11, 21600),
                              (40, 21600)):
        delays = {backoff(attempts, config) for _ in range(20)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), attempts
        assert len(delays) > 1  # jittered


# -- one fact, one id ----------------------------------------------------------------------

def test_the_same_bounce_recorded_twice_is_delivered_once(open_ledger, receiver) -> None:
    config = settings({"url": receiver.url("/a/{address}"),
                       "events": ["address.state_changed", "event.recorded"]},
                      {"url": receiver.url("/b")})
    ledger = open_ledger(config)
    raw = b"Message-ID: <same@bounce>\r\n\r\nthe same bounce"
    report = bounce("jo@example.net", bounce_id="<same@bounce>")
    ledger.record_batch([item(1, report, raw)])
    ledger.record_batch([item(1, report, raw)])  # the same UID again: nothing new
    ledger.record_batch([item(2, report, raw)])  # moved back to the inbox: recorded anew
    # delivered to /a for each fact, to /b for the state change only
    deliver_due(ledger, handlers.senders(config), settings=FAST)
    ledger.record_batch([item(3, report, raw)])  # and again, after the deliveries
    deliver_due(ledger, handlers.senders(config), later(), settings=FAST)

    facts: dict[tuple[str, str], set[str]] = {}
    for delivery in receiver.deliveries:
        payload = delivery.verified()
        facts.setdefault((payload["type"], delivery.path), set()).add(delivery.id)
    assert facts.keys() == {("address.state_changed", "/a/jo%40example.net"),
                            ("event.recorded", "/a/jo%40example.net"),
                            ("address.state_changed", "/b")}
    assert len(receiver.deliveries) == 3  # one delivery per fact and endpoint
    # the state change has one id at both endpoints
    assert facts[("address.state_changed", "/a/jo%40example.net")] == \
        facts[("address.state_changed", "/b")]


def test_routing_by_sender_domain(open_ledger, receiver) -> None:
    config = settings(
        {"url": receiver.url("/org/{address}"), "sender_domains": ["example.org"]},
        {"url": receiver.url("/shop"), "sender_domains": ["shop.example.com"]},
        {"url": receiver.url("/all")})
    ledger = open_ledger(config)
    ledger.record_batch([item(1, bounce("jo@example.net", sender="news@lists.example.org")),
                         item(2, bounce("sam@example.net", sender="orders@shop.example.com"))])
    ledger.manual_change("amy@example.net", "hold", "asked us to pause", actor="test")
    deliver_due(ledger, handlers.senders(config), settings=FAST)

    got = sorted((d.path, d.verified()["data"]["address"]) for d in receiver.deliveries)
    assert got == [("/all", "amy@example.net"), ("/all", "jo@example.net"),
                   ("/all", "sam@example.net"), ("/org/jo%40example.net", "jo@example.net"),
                   ("/shop", "sam@example.net")]


def test_a_storm_is_one_alert(open_ledger, receiver) -> None:
    config = settings({"url": receiver.url("/storms"), "events": ["storm.detected"]},
                      {"url": receiver.url("/per-address/{address}")})
    ledger = open_ledger(config, policy=Policy(storm_refusals=3))
    refused = [f"user{n}@example.com" for n in range(5)]
    ledger.record_batch([item(1, bounce(*refused[:3], reason=Reason.BLOCKED, permanent=False))])
    ledger.record_batch([item(2, bounce(*refused[3:], reason=Reason.BLOCKED, permanent=False))])
    deliver_due(ledger, handlers.senders(config), settings=FAST)

    [alert] = receiver.deliveries  # one storm, one alert; no address changed
    payload = alert.verified()
    assert alert.path == "/storms" and payload["type"] == "storm.detected"
    assert payload["data"]["domain"] == "example.com"
    assert payload["data"]["reasons"] == ["blocked"] and payload["data"]["refusals"] >= 3


# -- the scheduled job --------------------------------------------------------------------

def test_the_runner_schedules_the_delivery_job(open_ledger, receiver) -> None:
    config = settings({"url": receiver.url()})
    ledger = open_ledger(config)
    ledger.record_batch([item(1, bounce("jo@example.net"))])
    runner = Runner([], outbox=OutboxJob(ledger, handlers.senders(config), FAST))
    runner.start()
    try:
        assert receiver.arrived.wait(timeout=20), "the job delivered nothing"
    finally:
        runner.shutdown()
    job_ran_once = [d.verified()["type"] for d in receiver.deliveries]
    assert job_ran_once == ["address.state_changed"]


def test_senders_follow_the_settings() -> None:
    assert "webhook" not in handlers.senders(Settings())
    sender = handlers.senders(settings({"url": "https://hooks.example.org/x"}))["webhook"]
    assert isinstance(sender, WebhookSender)


# -- settings ---------------------------------------------------------------------------------

def test_the_example_webhook_is_valid(tmp_path: Path) -> None:
    """Uncommenting the example [[webhooks]] of settings.toml gives a valid endpoint."""
    lines, inside = [], False
    for line in (REPO / "settings.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("#[[webhooks]]"):
            inside = True
        elif not line.startswith("#"):
            inside = False
        if inside and (line.startswith("#[[") or re.match(r"^#[a-z_]+ = ", line)) \
                and not line.startswith("#secret_file"):
            line = line[1:]
        lines.append(line)
    path = tmp_path / "settings.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    [webhook] = load_settings(path).webhooks
    assert webhook.url == "https://hooks.example.org/bounces/{address}"
    assert webhook.events == ("address.state_changed", "storm.detected")
    assert len(webhook.signing_key()) == 24


@pytest.mark.parametrize(("entry", "key", "words"), [
    ({"url": "ftp://h/x"}, "webhooks[0].url", "http"),
    ({"url": "https://{address}.example/"}, "webhooks[0].url", "not the host"),
    ({"url": "https://h/{user}"}, "webhooks[0].url", "only placeholder"),
    ({"url": "https://h/", "secret": ""}, "webhooks[0].secret", "required"),
    ({"url": "https://h/", "secret": "s3cr3t"}, "webhooks[0].secret", "whsec_"),
    ({"url": "https://h/", "secret": "whsec_c2hvcnQ="}, "webhooks[0].secret", "24 to 64"),
    ({"url": "https://h/", "events": ["bounce"]}, "webhooks[0].events[0]", "address.state"),
    ({"url": "https://h/", "events": []}, "webhooks[0].events", "at least one"),
    ({"url": "https://h/", "sender_domains": ["a b"]}, "webhooks[0].sender_domains[0]",
     "domain"),
    ({"url": "https://h/", "timeout": 600}, "webhooks[0].timeout", "60"),
])
def test_bad_webhook_settings_name_their_key(tmp_path: Path, entry, key, words) -> None:
    from imap_bouncer.settings import SettingsError

    entry = {"secret": SECRET, **entry}
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in entry.items())
    path = tmp_path / "s.toml"
    path.write_text(f"[[webhooks]]\n{body}\n", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert caught.value.problems[0][0] == key, caught.value
    assert words in str(caught.value)
    assert "s3cr3t" not in str(caught.value) and SECRET not in str(caught.value)


def test_secret_file_and_duplicate_urls(tmp_path: Path) -> None:
    from imap_bouncer.settings import SettingsError

    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    path = tmp_path / "s.toml"
    path.write_text(f'[[webhooks]]\nurl = "https://h/"\nsecret_file = "{secret_file}"\n',
                    encoding="utf-8")
    [webhook] = load_settings(path).webhooks
    assert webhook.signing_key() == bytes(range(32))
    assert SECRET not in repr(webhook)
    path.write_text(f'[[webhooks]]\nurl = "https://h/"\nsecret = "{SECRET}"\n' * 2,
                    encoding="utf-8")
    with pytest.raises(SettingsError, match=r"webhooks\[1\]\.url: the same url"):
        load_settings(path)


# -- the service: the real command against a real Dovecot -------------------------------------

def service_settings(tmp_path: Path, account, test_db, receiver: Receiver,
                     outbox: str = "") -> Path:
    from service_support import write_settings

    path = write_settings(tmp_path / "settings.toml", account, test_db.url)
    with path.open("a", encoding="utf-8") as out:
        out.write(f"[outbox]\n{outbox}\n[[webhooks]]\nurl = \"{receiver.url('/{address}')}\"\n"
                  f"secret = \"{SECRET}\"\n")
    return path


def outbox_rows(open_ledger) -> list:
    ledger = open_ledger(Settings())
    try:
        return ledger.outbox.list()
    finally:
        ledger.close()


@pytest.mark.dovecot
def test_once_delivers_at_the_end_of_its_pass(imap_server, test_db, receiver: Receiver,
                                              tmp_path: Path, open_ledger) -> None:
    from service_support import append, run_cli
    from support import sample

    config = service_settings(tmp_path, imap_server, test_db, receiver)
    receiver.stop()  # down: the pass still succeeds, the notification waits
    append(imap_server, [sample("postfix.eml")])
    down = run_cli("once", "-c", str(config), cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert "filed 1" in down.stdout and "1 to retry" in down.stdout
    [waiting] = outbox_rows(open_ledger)
    assert (waiting.status, waiting.attempts) == ("pending", 1)

    receiver.start()
    up = run_cli("outbox", "deliver", "-c", str(config), cwd=tmp_path)
    # not due yet (backed off): `outbox retry` makes it due now
    assert up.returncode == 0 and "0 delivered" in up.stdout, up.stdout + up.stderr
    retry = run_cli("outbox", "retry", str(waiting.id), "-c", str(config), cwd=tmp_path)
    assert retry.returncode == 0, retry.stderr
    delivered = run_cli("outbox", "deliver", "-c", str(config), cwd=tmp_path)
    assert delivered.returncode == 0 and "1 delivered" in delivered.stdout, delivered.stderr
    [delivery] = receiver.deliveries
    payload = delivery.verified()
    assert payload["type"] == "address.state_changed" and payload["id"] == waiting.payload["id"]
    assert delivery.path == "/" + payload["data"]["address"].replace("@", "%40")


@pytest.mark.dovecot
def test_run_delivers_after_an_outage_and_a_restart(imap_server, test_db, receiver: Receiver,
                                                    tmp_path: Path, open_ledger) -> None:
    import signal

    from service_support import append, start_cli, stop_process, wait_for
    from support import sample

    config = service_settings(tmp_path, imap_server, test_db, receiver,
                              "interval = 0.2\nbackoff_first = 0.2\nbackoff_max = 0.5\n"
                              "max_attempts = 100")
    receiver.stop()
    append(imap_server, [sample("postfix.eml")])
    log = tmp_path / "run.log"
    process = start_cli("run", "-c", str(config), cwd=tmp_path, log=log)
    try:
        wait_for(lambda: any(row.attempts >= 2 for row in outbox_rows(open_ledger)), 30,
                 "failed attempts while the endpoint is down", log=log)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        stop_process(process)
    [waiting] = outbox_rows(open_ledger)
    assert waiting.status == "pending" and receiver.deliveries == []

    receiver.start()  # the endpoint is back; the service starts again
    log = tmp_path / "run2.log"
    process = start_cli("run", "-c", str(config), cwd=tmp_path, log=log)
    try:
        wait_for(lambda: outbox_rows(open_ledger)[0].status == "delivered", 30,
                 "the delivery after the restart", log=log)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        stop_process(process)
    [delivery] = receiver.deliveries
    assert delivery.id == waiting.payload["id"]  # the id planned before the outage
    delivery.verified()
