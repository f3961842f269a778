"""Deliverers of outbox rows: what runs after the commit (webhooks, DSNs to senders).

The ledger writes a notification to the Outbox table in the transaction that records its fact;
`outbox.deliver_due` later hands each due row to the sender of its channel. A sender is a
callable taking the row (`ledger.OutboxItem`) that returns on success and raises on failure
(`DeliveryError`, or any exception: the row is retried with backoff); handlers never touch
IMAP. `senders(settings)` builds the senders the settings configure, one per channel, from
the `CHANNELS` table below: a new channel is one entry there.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ledger import OutboxItem

log = logging.getLogger(__name__)

Sender = Callable[["OutboxItem"], None]


class DeliveryError(Exception):
    """A delivery did not succeed. `permanent`: retrying cannot help (e.g. the endpoint is no
    longer configured): the row is marked failed at once, for a person to retry or drop."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def _webhook_sender(settings: Any) -> Sender | None:
    from .webhooks import WebhookSender

    endpoints = getattr(settings, "webhooks", ())
    return WebhookSender(endpoints) if endpoints else None


def _dsn_sender(settings: Any) -> Sender | None:
    """handlers/dsn.py plugs in here: its `sender_for(settings)` when it has one (None when
    DSNs are not configured), else `send_dsn(row_payload, settings)` for every dsn row."""
    try:
        dsn = importlib.import_module(f"{__name__}.dsn")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.dsn":
            raise
        return None
    factory = getattr(dsn, "sender_for", None)
    if factory is not None:
        return factory(settings)
    send_dsn = dsn.send_dsn

    def send(item: OutboxItem) -> None:
        send_dsn(item.payload, settings)

    return send


# channel (the Outbox row's `channel`) -> builds its sender from the settings, or None when
# the settings configure none.
CHANNELS: Mapping[str, Callable[[Any], Sender | None]] = {
    "webhook": _webhook_sender,
    "dsn": _dsn_sender,
}


def senders(settings: Any) -> dict[str, Sender]:
    """The senders these settings configure, by channel; empty when there is nothing to
    deliver with (then no delivery job is scheduled)."""
    found: dict[str, Sender] = {}
    for channel, build in CHANNELS.items():
        sender = build(settings)
        if sender is not None:
            found[channel] = sender
    return found


__all__ = ["CHANNELS", "DeliveryError", "Sender", "senders"]
