"""A loopback TCP proxy the fault tests put between the service and Dovecot (or PostgreSQL),
to break the connection the way networks and servers do, at a chosen moment.

Why our own: the faults must land at protocol moments (in the middle of a FETCH reply, after
a MOVE was sent but before its reply, during IDLE), which generic tools (toxiproxy, tc) can
only approximate with timers. The proxy watches the client's commands (an IMAP command is one
line; the service never sends literals) and acts on the first one that matches a rule:

    drop_during("UID FETCH", after_bytes=N)  forward the command, cut both sides after N
                                             bytes of the server's answer
    drop_after("UID MOVE")                   forward the command, never the answer: cut both
                                             sides once the server had time to do it
    drop_during_idle(after=s)                cut s seconds after the server said "+ idling"
    stall("UID FETCH", seconds=s)            forward nothing either way for s seconds (the
                                             client's timeout should fire first), then cut
    refuse("UID MOVE")                       answer "<tag> NO" without asking the server

Every rule fires `times` times (once by default); `injected` counts what fired. `refuse_all()`
closes the listening port (connections are refused, as by a server that is down) and
`accept_again()` opens it on the same port; `cut_all()` cuts every open connection.

One thread per connection, relaying with select(); nothing here is shared with the service.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import threading
import time
from dataclasses import dataclass

TICK = 0.05  # how often a relay looks at its rules and the stall clock


@dataclass
class Rule:
    action: str  # drop_during, drop_after, drop_idle, stall, refuse
    pattern: re.Pattern[bytes]
    times: int
    after_bytes: int = 0
    seconds: float = 0.0


class Proxy:
    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        self.injected = 0
        self.connections = 0
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._relays: set[_Relay] = set()
        self._closed = False
        self._accepting = threading.Event()
        self.accept_again()

    # -- rules -------------------------------------------------------------------------------

    def drop_during(self, command: str, after_bytes: int = 0, times: int = 1) -> None:
        self._add(Rule("drop_during", _command(command), times, after_bytes=after_bytes))

    def drop_after(self, command: str, seconds: float = 0.5, times: int = 1) -> None:
        self._add(Rule("drop_after", _command(command), times, seconds=seconds))

    def drop_during_idle(self, after: float = 0.2, times: int = 1) -> None:
        self._add(Rule("drop_idle", _command("IDLE"), times, seconds=after))

    def stall(self, command: str, seconds: float, times: int = 1) -> None:
        self._add(Rule("stall", _command(command), times, seconds=seconds))

    def refuse(self, command: str, times: int = 1) -> None:
        self._add(Rule("refuse", _command(command), times))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def _add(self, rule: Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def _match(self, line: bytes) -> Rule | None:
        """The first armed rule for this command line, used up by one."""
        with self._lock:
            for rule in self._rules:
                if rule.times > 0 and rule.pattern.search(line):
                    rule.times -= 1
                    self.injected += 1
                    return rule
        return None

    @property
    def armed(self) -> int:
        with self._lock:
            return sum(rule.times for rule in self._rules)

    # -- the port ------------------------------------------------------------------------------

    def refuse_all(self) -> None:
        """Close the listening socket: new connections are refused (RST), open ones cut."""
        self._accepting.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self.cut_all()

    def accept_again(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        listener.settimeout(TICK * 4)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accepting.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name=f"proxy-accept-{self.port}").start()

    def upstream_ports(self) -> set[int]:
        """The local ports of the proxy's connections to the upstream server: what PostgreSQL
        shows as client_port of the sessions that came through the proxy."""
        with self._lock:
            relays = list(self._relays)
        ports = set()
        for relay in relays:
            with contextlib.suppress(OSError):
                ports.add(relay.server.getsockname()[1])
        return ports

    def cut_all(self) -> None:
        with self._lock:
            relays = list(self._relays)
        for relay in relays:
            relay.cut()

    def close(self) -> None:
        self._closed = True
        self.refuse_all()

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed and self._listener is listener:
            try:
                client, _address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            relay = _Relay(self, client, server)
            with self._lock:
                self._relays.add(relay)
                self.connections += 1
            threading.Thread(target=relay.run, daemon=True,
                             name=f"proxy-relay-{self.port}").start()

    def _gone(self, relay: _Relay) -> None:
        with self._lock:
            self._relays.discard(relay)


def _command(name: str) -> re.Pattern[bytes]:
    """An IMAP command line: a tag, then the command (case-insensitive)."""
    return re.compile(rb"^\S+ " + re.escape(name.encode()) + rb"\b", re.IGNORECASE | re.M)


class _Relay:
    """One client connection and its upstream, relayed until either side ends or a rule
    cuts them."""

    def __init__(self, proxy: Proxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy, self.client, self.server = proxy, client, server
        self._cut = threading.Event()
        self._mute_server = False  # drop_after: the server's answer never reaches the client
        self._cut_at: float | None = None  # a deadline for cutting
        self._cut_after_bytes: int | None = None  # server bytes still passed before the cut
        self._stalled_until = 0.0
        self._idle_rule: Rule | None = None

    def cut(self) -> None:
        self._cut.set()

    def run(self) -> None:
        try:
            self._relay()
        except OSError:
            pass  # either side reset the connection: the relay ends like the connection
        finally:
            for sock in (self.client, self.server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.proxy._gone(self)

    def _relay(self) -> None:
        for sock in (self.client, self.server):
            sock.setblocking(True)
        while not self._cut.is_set():
            now = time.monotonic()
            if self._cut_at is not None and now >= self._cut_at:
                return
            if now < self._stalled_until:
                time.sleep(TICK)
                if time.monotonic() >= self._stalled_until:
                    return  # a stall ends in a cut: the client gave up on it meanwhile
                continue
            readable, _, _ = select.select([self.client, self.server], [], [], TICK)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                if sock is self.client:
                    if not self._from_client(data):
                        return
                elif not self._from_server(data):
                    return

    def _from_client(self, data: bytes) -> bool:
        rule = self.proxy._match(data)
        if rule is None:
            self.server.sendall(data)
            return True
        if rule.action == "refuse":
            tag = data.split(b" ", 1)[0]
            self.client.sendall(tag + b" NO [SERVERBUG] refused by the fault proxy\r\n")
            return True
        if rule.action == "stall":
            self._stalled_until = time.monotonic() + rule.seconds
            return True  # the command is held back too: nothing moves
        self.server.sendall(data)
        if rule.action == "drop_during":
            self._cut_after_bytes = rule.after_bytes
        elif rule.action == "drop_after":
            self._mute_server = True
            self._cut_at = time.monotonic() + rule.seconds
        elif rule.action == "drop_idle":
            self._idle_rule = rule
        return True

    def _from_server(self, data: bytes) -> bool:
        if self._mute_server:
            return True
        if self._cut_after_bytes is not None:
            if len(data) > self._cut_after_bytes:
                if self._cut_after_bytes:
                    self.client.sendall(data[:self._cut_after_bytes])
                return False
            self._cut_after_bytes -= len(data)
        self.client.sendall(data)
        if self._idle_rule is not None and data.startswith(b"+"):
            self._cut_at = time.monotonic() + self._idle_rule.seconds
            self._idle_rule = None
        return True
