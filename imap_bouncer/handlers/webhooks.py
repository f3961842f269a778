"""Webhook deliveries: a signed JSON POST per outbox row (the Standard Webhooks spec).

Each request carries three headers (https://www.standardwebhooks.com/):

- `webhook-id`: the message id from the payload, fixed when the row was planned, so every
  attempt of one notification has the same id and a receiver can drop repeats by it;
- `webhook-timestamp`: the attempt's time, in seconds since the epoch (receivers refuse
  stale ones, so it is never the time of the fact);
- `webhook-signature`: `v1,` and the base64 HMAC-SHA256, keyed with the secret's bytes (the
  base64 after `whsec_`), of `id.timestamp.body`.

Success is a 2xx answer; anything else, a redirect included, is a failure the outbox retries.
The secret is read from the settings at each attempt, never stored in the database, and
neither it nor a URL's query string is ever logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from .. import __version__
from ..notifications import resolve_url, webhook_id
from . import DeliveryError

if TYPE_CHECKING:
    from ..ledger import OutboxItem

log = logging.getLogger(__name__)

USER_AGENT = f"imap-bouncer/{__version__}"
_READ_AT_MOST = 65536  # bytes of an answer read (and dropped), so the connection ends cleanly


class Endpoint(Protocol):
    """What delivery needs of an endpoint (settings.WebhookSettings is one)."""

    @property
    def url(self) -> str: ...

    @property
    def timeout(self) -> float: ...

    def signing_key(self) -> bytes: ...


def encode(payload: Any) -> bytes:
    """The request body: compact UTF-8 JSON (what is signed is exactly what is sent)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value: "v1," + base64(HMAC-SHA256(key, id.timestamp.body))."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signed_headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, msg_id, timestamp, body),
    }


def where(url: str) -> str:
    """A URL fit for a log line: scheme, host and path, never the query (it may hold a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a success: the endpoint's URL should be fixed instead
    (and a POST silently turned into a GET elsewhere would lose the notification)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _Deadline:
    """The whole of one request within `seconds`: urllib's timeout bounds each wait on the
    socket, not the answer, so an endpoint sending a byte now and then would hold the
    attempt forever. When the time is up, the request's sockets are shut down (and any
    opened later, until the request is over): the blocked read ends at once."""

    def __init__(self, seconds: float) -> None:
        self.connections: list[http.client.HTTPConnection] = []
        self.expired = False
        self._over = threading.Event()
        self._watch = threading.Thread(target=self._run, args=(seconds,), daemon=True,
                                       name="webhook deadline")
        self._watch.start()

    def track(self, factory: Callable[..., http.client.HTTPConnection]
              ) -> Callable[..., http.client.HTTPConnection]:
        def connect(host: str, **kwargs: Any) -> http.client.HTTPConnection:
            connection = factory(host, **kwargs)
            self.connections.append(connection)
            return connection
        return connect

    def end(self) -> None:
        self._over.set()

    def _run(self, seconds: float) -> None:
        if self._over.wait(seconds):
            return
        self.expired = True
        while True:  # a connection may still be opening: until the request is over
            for connection in list(self.connections):
                sock = connection.sock
                if sock is not None:
                    with suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            if self._over.wait(0.2):
                return


class _Http(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.deadline.track(http.client.HTTPConnection), req)


class _Https(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        # The default context: certificates verified against the system's CAs.
        return self.do_open(self.deadline.track(http.client.HTTPSConnection), req)


class WebhookSender:
    """Delivers outbox rows of the webhook channel to the configured endpoints."""

    def __init__(self, endpoints: Sequence[Endpoint], *,
                 clock: Callable[[], float] = time.time) -> None:
        self.endpoints = tuple(endpoints)
        self.clock = clock

    def endpoint_for(self, item: OutboxItem) -> Endpoint | None:
        """The endpoint a row was planned for: the one whose URL, filled in for the row's
        address, is the row's target (URLs are unique among endpoints)."""
        data = item.payload.get("data") if isinstance(item.payload, dict) else None
        address = data.get("address") if isinstance(data, dict) else None
        for endpoint in self.endpoints:
            if resolve_url(endpoint.url, address) == item.target:
                return endpoint
        return None

    def __call__(self, item: OutboxItem) -> None:
        endpoint = self.endpoint_for(item)
        if endpoint is None:
            raise DeliveryError("no [[webhooks]] endpoint has this url any more", permanent=True)
        msg_id = str(item.payload.get("id") or webhook_id(item.dedupe_key))
        body = encode(item.payload)
        headers = signed_headers(endpoint.signing_key(), msg_id, int(self.clock()), body)
        self.post(item.target, body, headers, endpoint.timeout)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
        """POST; returns on a 2xx answer, raises DeliveryError otherwise. `timeout`: for the
        whole of it, from connecting to the end of the answer."""
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        deadline = _Deadline(timeout)
        opener = urllib.request.build_opener(_NoRedirects, _Http(deadline), _Https(deadline))
        try:
            with opener.open(request, timeout=timeout) as answer:
                answer.read(_READ_AT_MOST)
                status = answer.status
        except urllib.error.HTTPError as err:
            err.close()
            raise DeliveryError(f"HTTP {err.code} {err.reason}".strip()) from None
        except (OSError, ValueError, http.client.HTTPException) as err:
            if deadline.expired or isinstance(err, TimeoutError) or (
                    isinstance(err, urllib.error.URLError)
                    and isinstance(err.reason, TimeoutError)):
                raise DeliveryError(f"no answer within {timeout:g} s") from None
            if isinstance(err, urllib.error.URLError):
                raise DeliveryError(f"cannot connect: {_describe(err.reason)}") from None
            raise DeliveryError(_describe(err)) from None  # a reset, a malformed answer
        finally:
            deadline.end()
        if deadline.expired:
            raise DeliveryError(f"no complete answer within {timeout:g} s")
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status}")


def _describe(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


__all__ = ["WebhookSender", "encode", "sign", "signed_headers", "where"]
