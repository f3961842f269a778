"""settings.toml + environment -> typed, validated, frozen settings.

Where the file comes from, first found wins: an explicit path (``--config``), then
``$IMAP_BOUNCER_CONFIG``, then ``./settings.toml``, then ``/etc/imap-bouncer/settings.toml``.
No file at all is fine: every key has a default, and keys needed only to connect (``imap.host``,
``imap.username``, a password or token) are checked by `Settings.imap_mailboxes()`, which the
commands that talk IMAP call before connecting.

Every key can be overridden from the environment: ``IMAP_BOUNCER_`` + the dotted path with
``__`` for the dots, e.g. ``IMAP_BOUNCER_IMAP__PASSWORD`` or ``IMAP_BOUNCER_DATABASE__URL``;
lists and ``mailboxes`` take JSON. The environment wins over the file; empty variables are ignored.

Every problem is one exception type, `SettingsError`, whose message names the key as a dotted path
(``imap.port``, ``mailboxes[1].host``) and says what is wrong. Secret values (passwords, tokens,
the password in a database URL) never appear in a repr, a log line or an error message: inputs
are hidden from pydantic's errors and secrets are `SecretStr`.

The documented example of every key with its default is ``settings.toml`` at the repository root;
tests/test_settings.py keeps it and this module in step.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pydantic_settings
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from . import verp

ENV_PREFIX = "IMAP_BOUNCER_"
CONFIG_ENV = "IMAP_BOUNCER_CONFIG"
LOCAL_PATH = Path("settings.toml")
SYSTEM_PATH = Path("/etc/imap-bouncer/settings.toml")

MB = 1024 * 1024
TOKEN_COMMAND_TIMEOUT = 30.0  # seconds a token_command may take
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": MB, "g": 1024 * MB}
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost",
                             "ip6-loopback"})
_PASSWORD_KEYS = ("password", "password_file")
_TOKEN_KEYS = ("token", "token_file", "token_command")
_SECRET_KEYS = frozenset({"password", "token"})


class SettingsError(Exception):
    """Bad or missing settings. The message names each key (dotted path) and its problem.

    `problems` holds the same as (key, message) pairs. Never carries a secret value.
    """

    def __init__(self, problems: Sequence[tuple[str, str]], source: Path | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        lines = [f"{key}: {message}" if key else message for key, message in self.problems]
        where = f" (settings file {source})" if source else ""
        if len(lines) == 1:
            text = lines[0] + where
        else:
            text = f"{len(lines)} problems in the settings{where}:\n  " + "\n  ".join(lines)
        super().__init__(text)


class _Problem(ValueError):
    """Raised inside validators: `key` names the setting at fault, relative to the model."""

    def __init__(self, key: str, message: str, sibling: bool = False) -> None:
        super().__init__(message)
        self.key = key  # appended to the location of the model or field being validated,
        self.sibling = sibling  # or, when sibling, replacing the field's own name
        self.message = message


class _Model(BaseModel):
    # frozen: settings never change after loading; extra="forbid": a misspelt key is an error,
    # not a silently ignored line; hide_input_in_errors: pydantic's messages never echo values.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value: Any, info: ValidationInfo) -> Any:
        # Stray spaces around names, hosts and paths are mistakes; in a secret they may be
        # part of it.
        if isinstance(value, str) and info.field_name not in _SECRET_KEYS:
            return value.strip()
        return value


# Checks that more than one table makes. Above the tables: defaults such as
# `smtp: SmtpSettings = SmtpSettings()` run them while this module loads.


def _host_name_or_ip(value: str) -> str:
    """A host to connect to: a name or an address, not a URL or host:port (IMAP and SMTP)."""
    if any(c.isspace() or c in "/:@" for c in value) and not _is_ip(value):
        raise ValueError("must be a host name or an IP address, without scheme or port")
    return value


def _mailbox_name(value: str) -> str:
    """A mailbox name as recorded with every message: short and plain."""
    if not _NAME.match(value):
        raise ValueError("must be 1 to 100 letters, digits or . _ @ + - "
                         "(it is recorded with every message)")
    return value


def _sender_domains(domains: tuple[str, ...]) -> tuple[str, ...]:
    """Sender domains as routing compares them: lower case, no "@" or dots around, once each."""
    cleaned = []
    for index, domain in enumerate(domains):
        domain = domain.strip().lower().lstrip("@").strip(".")
        if not domain or any(c.isspace() or c in "@/:<>" for c in domain):
            raise _Problem(f"[{index}]", "must be a domain such as example.org")
        cleaned.append(domain)
    return tuple(dict.fromkeys(cleaned))


def _readable_file(value: Path | None) -> Path | None:
    """A file named in the settings, ~ expanded, checked now rather than when first read."""
    if value is not None:
        value = value.expanduser()
        if not value.is_file() or not os.access(value, os.R_OK):
            raise ValueError(f"no such readable file: {value}")
    return value


def _password_or_file(value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
    """The password given inline or read from password_file (validated before it): one of
    them at most; an empty one is no password."""
    path = info.data.get("password_file")
    if value is not None and path is not None:
        raise ValueError("set password or password_file, not both")
    if path is not None:
        value = SecretStr(_read_secret(path, "password_file"))
    if value is not None and not value.get_secret_value():
        return None
    return value


class Folders(_Model):
    """Where messages go once recorded, and the review folders people file messages in."""

    processed: str = Field("Processed", min_length=1)
    unknown: str = Field("Unknown", min_length=1)
    error: str = Field("Error", min_length=1)
    # A person's verdict on a message (review.py): "" turns that review folder off.
    review_hard: str = "Review/Hard"
    review_soft: str = "Review/Soft"
    review_ignore: str = "Review/Ignore"

    @property
    def reviews(self) -> tuple[tuple[str, str], ...]:
        """(verdict, folder) of each review folder in use: hard, soft, ignore."""
        return tuple((verdict, folder) for verdict, folder in (
            ("hard", self.review_hard), ("soft", self.review_soft),
            ("ignore", self.review_ignore)) if folder)


class ImapSettings(_Model):
    """One mailbox: the [imap] table, or one [[mailboxes]] entry."""

    name: str = "default"
    host: str = ""
    security: Literal["tls", "starttls", "none"] = "tls"
    port: int = Field(993, ge=1, le=65535)
    allow_insecure: bool = False
    verify_certificate: bool = True
    ca_file: Path | None = None
    username: str = ""
    auth: Literal["login", "xoauth2"] = "login"
    password_file: Path | None = None
    password: SecretStr | None = Field(None, validate_default=True)
    token_file: Path | None = None
    token_command: tuple[str, ...] = ()
    token: SecretStr | None = Field(None, validate_default=True)
    source_folder: str = Field("INBOX", min_length=1)
    folders: Folders = Folders()
    mode: Literal["idle", "poll"] = "idle"
    poll_interval: float = Field(60.0, gt=0, le=86400)
    batch_size: int = Field(100, ge=1, le=10000)
    timeout: float = Field(60.0, gt=0, le=3600)
    idle_renew: float = Field(300.0, ge=10, le=600)
    allow_plain_expunge: bool = False
    max_message_size: int = Field(25 * MB, ge=1024)

    # Where this mailbox sits in the settings ("imap" or "mailboxes[1]"), for error messages.
    _key: str = PrivateAttr("imap")

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("port") in (None, ""):
            data = {**data, "port": 993 if data.get("security", "tls") == "tls" else 143}
        return data

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _mailbox_name(value)

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return _host_name_or_ip(value)

    @field_validator("ca_file", "password_file", "token_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("ca_file", "password_file", "token_file")
    @classmethod
    def _check_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            value = value.expanduser()
            if not value.is_file():
                raise ValueError(f"no such file: {value}")
            if not os.access(value, os.R_OK):
                raise ValueError(f"not readable: {value}")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return _password_or_file(value, info)

    @field_validator("token_command", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return tuple(shlex.split(value))
            except ValueError as err:
                raise ValueError(f"cannot split into words: {err}") from None
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            value = None
        given = [key for key, present in (("token", value is not None),
                                          ("token_file", info.data.get("token_file")),
                                          ("token_command", info.data.get("token_command")))
                 if present]
        if len(given) > 1:
            raise ValueError(f"set only one of token, token_file, token_command (got "
                             f"{', '.join(given)})")
        return value

    @field_validator("max_message_size", mode="before")
    @classmethod
    def _parse_size(cls, value: Any) -> Any:
        return _parse_size(value)

    @model_validator(mode="after")
    def _check_together(self) -> ImapSettings:
        if self.security == "none" and self.host and not _is_loopback(self.host) \
                and not self.allow_insecure:
            raise _Problem("security", "'none' sends the password in clear text: refused for a "
                           "host other than localhost unless allow_insecure = true")
        folders = [self.source_folder, self.folders.processed, self.folders.unknown,
                   self.folders.error]
        if len({f.lower() for f in folders}) < len(folders):
            raise _Problem("folders", "source_folder and the processed, unknown and error "
                           "folders must be four different folders")
        reviews = [folder for _verdict, folder in self.folders.reviews]
        if len({f.lower() for f in folders + reviews}) < len(folders) + len(reviews):
            raise _Problem("folders", "each review folder must differ from source_folder, "
                           "the processed, unknown and error folders and the other review "
                           "folders")
        if self.auth == "login" and (self.token or self.token_file or self.token_command):
            raise _Problem("auth", "a token is set but auth is 'login' (use auth = 'xoauth2')")
        if self.auth == "xoauth2" and (self.password is not None):
            raise _Problem("auth", "a password is set but auth is 'xoauth2' (set a token, "
                           "token_file or token_command instead)")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The default repr already masks SecretStr; the command line may hold a secret too.
        for key, value in super().__repr_args__():
            if key == "token_command" and value:
                value = (value[0], "...")
            yield key, value

    @property
    def key(self) -> str:
        """Where this mailbox sits in the settings, e.g. "imap" or "mailboxes[1]"."""
        return self._key

    def missing(self) -> list[tuple[str, str]]:
        """What is missing to connect, as (dotted key, message) pairs; empty when complete."""
        problems = []
        if not self.host:
            problems.append((f"{self._key}.host", "required to connect to IMAP"))
        if not self.username:
            problems.append((f"{self._key}.username", "required to connect to IMAP"))
        if self.auth == "login" and self.password is None:
            problems.append((f"{self._key}.password",
                             "required to connect to IMAP (or password_file)"))
        if self.auth == "xoauth2" and not (self.token or self.token_file or self.token_command):
            problems.append((f"{self._key}.token",
                             "auth = 'xoauth2' needs token, token_file or token_command"))
        return problems

    def secret(self) -> SecretStr:
        """The password (auth = login) or a current OAuth2 token (auth = xoauth2).

        Tokens expire, so token_file is read and token_command run on every call: call this
        for each login. Raises SettingsError naming the key, never showing the secret.
        """
        if self.auth == "login":
            if self.password is None:
                raise SettingsError([(f"{self._key}.password", "not set")])
            return self.password
        if self.token is not None:
            return self.token
        if self.token_file is not None:
            try:
                return SecretStr(_read_secret(self.token_file, "token_file"))
            except ValueError as err:
                raise SettingsError([(f"{self._key}.token_file", str(err))]) from None
        if self.token_command:
            return SecretStr(self._run_token_command())
        raise SettingsError([(f"{self._key}.token", "not set")])

    def _run_token_command(self) -> str:
        key = f"{self._key}.token_command"
        try:
            done = subprocess.run(self.token_command, capture_output=True, check=False,
                                  timeout=TOKEN_COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as err:
            problem = (f"timed out after {TOKEN_COMMAND_TIMEOUT:g} s"
                       if isinstance(err, subprocess.TimeoutExpired)
                       else f"cannot run {self.token_command[0]!r}: "
                            f"{getattr(err, 'strerror', None) or type(err).__name__}")
            raise SettingsError([(key, problem)]) from None
        # Output is never shown: stdout is the token, stderr might echo it.
        if done.returncode != 0:
            raise SettingsError([(key, f"exited with status {done.returncode}")])
        token = done.stdout.decode("utf-8", "replace").strip()
        if not token:
            raise SettingsError([(key, "printed no token")])
        return token


class DatabaseSettings(_Model):
    # Not SecretStr, so that a plain SQLite path stays readable, but a password in the URL is
    # masked in repr and never echoed in errors; see `redacted_url`.
    url: str = Field("sqlite:///imap-bouncer.db", repr=False, min_length=1)
    store_raw: bool = False

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        scheme = value.partition(":")[0].lower()
        if scheme == "sqlite":
            if not value.lower().startswith("sqlite:///") or len(value) <= len("sqlite:///"):
                raise ValueError("a SQLite URL is sqlite:///relative/path.db or "
                                 "sqlite:////absolute/path.db")
        elif scheme in ("postgresql", "postgres"):
            try:
                parts = urlsplit(value)
                parts.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError:
                raise ValueError("not a valid postgresql:// URL") from None
            if not parts.path.strip("/"):
                raise ValueError("a PostgreSQL URL names the database: "
                                 "postgresql://user@host:5432/dbname")
        else:
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @property
    def redacted_url(self) -> str:
        """The URL with any password replaced by ***, for logs."""
        return redact_url(self.url)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "url", self.redacted_url
        yield from super().__repr_args__()


class AnalysisSettings(_Model):
    verp_patterns: tuple[str, ...] = ()
    workers: int = Field(1, ge=0, le=64)
    # Seconds one message's analysis may take in a worker process before the worker is
    # killed and the message filed in Error (analysis_workers.py); no effect with workers = 0.
    time_budget: float = Field(5.0, gt=0, le=3600)

    @field_validator("verp_patterns")
    @classmethod
    def _check_verp(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for index, pattern in enumerate(patterns):
            for name in ("{local}", "{domain}"):
                if pattern.count(name) != 1:
                    raise _Problem(f"[{index}]", f"{pattern!r} needs {name} exactly once, as in "
                                   "'bounces+{local}={domain}@lists.example.org'")
        return patterns


class PolicySettings(_Model):
    """The send-state policy's numbers (policy.Policy; settings.toml explains each)."""

    soft_threshold: int = Field(5, ge=1, le=1000)
    soft_count_per_day: int = Field(1, ge=1, le=24)
    soft_window_days: float = Field(30, gt=0, le=3650)
    soft_reset_days: float = Field(14, gt=0, le=3650)
    hard_threshold: int = Field(1, ge=1, le=100)
    hard_min_hours: float = Field(0, ge=0)
    hard_window_days: float = Field(30, gt=0, le=3650)
    unreachable_days: float = Field(30, gt=0, le=3650)
    storm_refusals: int = Field(10, ge=1, le=100000)
    storm_window_minutes: float = Field(30, gt=0, le=10080)

    @model_validator(mode="after")
    def _check_together(self) -> PolicySettings:
        if self.hard_min_hours > self.hard_window_days * 24:
            raise _Problem("hard_min_hours", "must be at most hard_window_days in hours (the "
                           "permanent bounces it spaces must fit in that window)")
        return self


class WebhookSettings(_Model):
    """One [[webhooks]] endpoint: where, signed with what, and for which senders and facts."""

    url: str = Field(min_length=1)
    secret_file: Path | None = None  # before secret: its validator reads the file
    secret: SecretStr | None = Field(None, validate_default=True)
    sender_domains: tuple[str, ...] = ()
    events: tuple[Literal["address.state_changed", "event.recorded", "storm.detected"],
                  ...] = ("address.state_changed", "storm.detected")
    timeout: float = Field(10.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value.replace("{address}", "x"))
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if "{" in value.replace("{address}", "") or "}" in value.replace("{address}", ""):
            raise ValueError("the only placeholder is {address}")
        if "{address}" in urlsplit(value).netloc:
            raise ValueError("{address} may stand in the path or the query, not the host")
        return value

    @field_validator("secret_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("secret_file")
    @classmethod
    def _check_file(cls, value: Path | None) -> Path | None:
        return _readable_file(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr:
        path = info.data.get("secret_file")
        if value is not None and path is not None:
            raise ValueError("set secret or secret_file, not both")
        if path is not None:
            value = SecretStr(_read_secret(path, "secret_file").strip())
        if value is None or not value.get_secret_value():
            raise ValueError("required (or secret_file): the whsec_... signing secret")
        text = value.get_secret_value()
        try:
            key = base64.b64decode(text.removeprefix("whsec_"), validate=True)
        except ValueError:
            key = b""
        if not text.startswith("whsec_") or not 24 <= len(key) <= 64:
            raise ValueError("must be whsec_ followed by 24 to 64 bytes in base64 (Standard "
                             "Webhooks), e.g. from: python3 -c 'import base64, os; "
                             "print(\"whsec_\" + base64.b64encode(os.urandom(32)).decode())'")
        return value

    @field_validator("sender_domains")
    @classmethod
    def _check_domains(cls, domains: tuple[str, ...]) -> tuple[str, ...]:
        return _sender_domains(domains)

    @field_validator("events")
    @classmethod
    def _some_events(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        if not events:
            raise ValueError("name at least one of address.state_changed, event.recorded, "
                             "storm.detected (or remove the endpoint)")
        return tuple(dict.fromkeys(events))

    def signing_key(self) -> bytes:
        """The HMAC key: the secret's bytes after whsec_."""
        assert self.secret is not None  # the validator requires one
        return base64.b64decode(self.secret.get_secret_value().removeprefix("whsec_"))


class OutboxSettings(_Model):
    """The delivery of notifications (webhooks, DSNs to senders) from the outbox."""

    interval: float = Field(30.0, gt=0, le=3600)
    max_attempts: int = Field(15, ge=1, le=100)
    backoff_first: float = Field(30.0, gt=0, le=86400)
    backoff_max: float = Field(21600.0, gt=0, le=7 * 86400)

    @model_validator(mode="after")
    def _check_together(self) -> OutboxSettings:
        if self.backoff_max < self.backoff_first:
            raise _Problem("backoff_max", "must be at least backoff_first")
        return self


class SmtpSettings(_Model):
    """The SMTP server that carries delivery reports to senders ([dsn.smtp])."""

    host: str = Field("localhost", min_length=1)
    security: Literal["tls", "starttls", "none"] = "none"
    port: int = Field(25, ge=1, le=65535)
    allow_insecure: bool = False
    verify_certificate: bool = True
    ca_file: Path | None = None
    username: str = ""
    password_file: Path | None = None
    password: SecretStr | None = Field(None, validate_default=True)
    timeout: float = Field(30.0, gt=0, le=600)

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("port") in (None, ""):
            ports = {"tls": 465, "starttls": 587}
            data = {**data, "port": ports.get(data.get("security", "none"), 25)}
        return data

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return _host_name_or_ip(value)

    @field_validator("ca_file", "password_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("ca_file", "password_file")
    @classmethod
    def _check_file(cls, value: Path | None) -> Path | None:
        return _readable_file(value)

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return _password_or_file(value, info)

    @model_validator(mode="after")
    def _check_together(self) -> SmtpSettings:
        if self.password is not None and not self.username:
            raise _Problem("username", "required when a password is set")
        if self.security == "none" and self.username and not _is_loopback(self.host) \
                and not self.allow_insecure:
            raise _Problem("security", "'none' sends the password in clear text: refused for a "
                           "host other than localhost unless allow_insecure = true")
        return self


class DsnSettings(_Model):
    """Delivery reports (RFC 3464) back to the original senders of bounced mail ([dsn])."""

    enabled: bool = False
    sender_domains: tuple[str, ...] = ()
    from_address: str = ""
    reporting_mta: str = ""
    delays: bool = True
    only_signed: bool = True
    rate_limit_per_hour: int = Field(10, ge=0, le=100000)
    rate_limit_per_domain_per_hour: int = Field(100, ge=0, le=1000000)
    rate_limit_global_per_hour: int = Field(500, ge=0, le=10000000)
    smtp: SmtpSettings = SmtpSettings()

    @field_validator("sender_domains")
    @classmethod
    def _check_domains(cls, domains: tuple[str, ...]) -> tuple[str, ...]:
        return _sender_domains(domains)

    @field_validator("from_address")
    @classmethod
    def _check_from(cls, value: str) -> str:
        if value:
            address = parseaddr(value)[1]
            local, at, domain = address.rpartition("@")
            if not (local and at and "." in domain) or any(c.isspace() for c in address):
                raise ValueError("must be an address such as postmaster@example.org, or "
                                 "'Mail Delivery System <postmaster@example.org>'")
        return value

    @field_validator("reporting_mta")
    @classmethod
    def _check_mta(cls, value: str) -> str:
        if value and (any(c.isspace() or c in "/:@;<>" for c in value) and not _is_ip(value)):
            raise ValueError("must be a host name such as mail.example.org")
        return value

    @model_validator(mode="after")
    def _check_together(self) -> DsnSettings:
        if self.enabled and not self.from_address:
            raise _Problem("from_address", "required when enabled (the reports' From)")
        if self.enabled and not self.sender_domains:
            raise _Problem("sender_domains", "required when enabled: the domains whose "
                           "senders get delivery reports")
        return self

    @property
    def mta_name(self) -> str:
        """The Reporting-MTA name: reporting_mta, else the domain of from_address."""
        return self.reporting_mta or parseaddr(self.from_address)[1].rpartition("@")[2]


class VerpSettings(_Model):
    """Signed VERP and the signed correlation header ([verp]; verp.py has the format)."""

    secret_file: Path | None = None  # before secret: its validator reads the file
    secret: SecretStr | None = Field(None, validate_default=True)
    previous_secret_file: Path | None = None
    previous_secret: SecretStr | None = Field(None, validate_default=True)
    address: str = ""
    require_signed: bool = False
    max_age_days: int = Field(60, ge=1, le=3650)

    @field_validator("secret_file", "previous_secret_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("secret_file", "previous_secret_file")
    @classmethod
    def _check_file(cls, value: Path | None) -> Path | None:
        return _readable_file(value)

    @field_validator("secret", "previous_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        file_key = f"{info.field_name}_file"
        path = info.data.get(file_key)
        if value is not None and path is not None:
            raise ValueError(f"set {info.field_name} or {file_key}, not both")
        if path is not None:
            value = SecretStr(_read_secret(path, file_key))
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < verp.MIN_SECRET:
            raise ValueError(f"must be at least {verp.MIN_SECRET} characters (a short one "
                             "can be guessed from one signed address), e.g. from: python3 -c "
                             "'import secrets; print(secrets.token_urlsafe(32))'")
        return value

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        if value:
            try:
                verp.check_pattern(value)
            except verp.VerpError as err:
                raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _check_together(self) -> VerpSettings:
        if self.require_signed and self.secret is None:
            raise _Problem("secret", "required when require_signed = true (or secret_file)")
        if self.address and self.secret is None:
            raise _Problem("secret", "required with address (or secret_file): the key the "
                           "VERP addresses are signed with")
        if self.previous_secret is not None and self.secret is None:
            raise _Problem("secret", "required with previous_secret (the new one signs; the "
                           "previous one is only still accepted)")
        return self

    @property
    def key(self) -> bytes:
        """The HMAC key: the secret's UTF-8 bytes; b"" when there is none."""
        return self.secret.get_secret_value().encode("utf-8") if self.secret else b""

    @property
    def old_keys(self) -> tuple[bytes, ...]:
        """Keys still accepted (never signed with) while the secret is replaced."""
        if self.previous_secret is None:
            return ()
        return (self.previous_secret.get_secret_value().encode("utf-8"),)


class IngestSettings(_Model):
    """`imap-bouncer ingest`: messages the MTA pipes in instead of delivering them ([ingest])."""

    mailbox: str = "pipe"
    max_message_size: int = Field(25 * MB, ge=1024)

    @field_validator("mailbox")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _mailbox_name(value)

    @field_validator("max_message_size", mode="before")
    @classmethod
    def _parse_size(cls, value: Any) -> Any:
        return _parse_size(value)


class LoggingSettings(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


# The settings file in use while loading: settings_customise_sources reads it.
_TOML_PATH: ContextVar[Path | None] = ContextVar("imap_bouncer_settings_path", default=None)


class Settings(BaseSettings):
    """Everything imap-bouncer reads from settings.toml and the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", env_ignore_empty=True,
        case_sensitive=False, frozen=True, extra="forbid", hide_input_in_errors=True,
    )

    imap: ImapSettings = ImapSettings()
    mailboxes: tuple[ImapSettings, ...] = ()
    database: DatabaseSettings = DatabaseSettings()
    analysis: AnalysisSettings = AnalysisSettings()
    policy: PolicySettings = PolicySettings()
    outbox: OutboxSettings = OutboxSettings()
    webhooks: tuple[WebhookSettings, ...] = ()
    dsn: DsnSettings = DsnSettings()
    verp: VerpSettings = VerpSettings()
    ingest: IngestSettings = IngestSettings()
    logging: LoggingSettings = LoggingSettings()

    _config_file: Path | None = PrivateAttr(None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: arguments (tests), then the environment, then the file.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _TOML_PATH.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @model_validator(mode="before")
    @classmethod
    def _inherit(cls, data: Any) -> Any:
        """Each [[mailboxes]] entry starts from the [imap] table's keys, then its own."""
        if not isinstance(data, dict) or not data.get("mailboxes"):
            return data
        base = data.get("imap") or {}
        if isinstance(base, BaseModel):
            base = base.model_dump(exclude_unset=True)
        entries = data["mailboxes"]
        if isinstance(base, dict) and isinstance(entries, list | tuple):
            data = {**data, "mailboxes": [_inherit_entry(base, entry) for entry in entries]}
        return data

    @model_validator(mode="after")
    def _locate(self) -> Settings:
        self.imap._key = "imap"
        names: dict[str, int] = {}
        for index, mailbox in enumerate(self.mailboxes):
            mailbox._key = f"mailboxes[{index}]"
            if mailbox.name in names:
                raise _Problem(f"mailboxes[{index}].name",
                               f"{mailbox.name!r} is already the name of "
                               f"mailboxes[{names[mailbox.name]}]; names must be unique")
            names[mailbox.name] = index
        if self.ingest.mailbox in {m.name for m in self.all_mailboxes}:
            # Rows are found again by their bytes within a mailbox: piped-in messages must
            # never be taken for (or relocate) messages of an IMAP mailbox.
            raise _Problem("ingest.mailbox", f"{self.ingest.mailbox!r} is the name of an IMAP "
                           "mailbox; piped-in messages need a name of their own")
        if self.dsn.enabled and self.dsn.only_signed and self.verp.secret is None:
            # Without a key nothing proves that an "original" was ever sent through us: a
            # forged bounce would make us mail anyone in sender_domains (backscatter).
            raise _Problem("dsn.only_signed", "needs [verp] secret (or secret_file): reports "
                           "go only about mail proven ours by a signed VERP address or "
                           "X-Imap-Bouncer-Id; only_signed = false sends them about any "
                           "bounce (see docs/security.md)")
        return self

    @field_validator("webhooks")
    @classmethod
    def _distinct_webhooks(cls, webhooks: tuple[WebhookSettings, ...],
                           ) -> tuple[WebhookSettings, ...]:
        # An endpoint is known by its URL template: deliveries find their secret by it.
        seen: dict[str, int] = {}
        for index, webhook in enumerate(webhooks):
            if webhook.url in seen:
                raise _Problem(f"[{index}].url", f"the same url as webhooks[{seen[webhook.url]}]; "
                               "each endpoint needs its own")
            seen[webhook.url] = index
        return webhooks

    @property
    def verp_patterns(self) -> tuple[str, ...]:
        """The VERP patterns analysis decodes recipients with: [analysis] verp_patterns and
        the signed [verp] address (its {token} matched, not checked: the ledger checks)."""
        signed = (self.verp.address,) if self.verp.address else ()
        return (*self.analysis.verp_patterns, *signed)

    @property
    def config_file(self) -> Path | None:
        """The settings file these settings were read from, if any."""
        return self._config_file

    @property
    def all_mailboxes(self) -> tuple[ImapSettings, ...]:
        """The [[mailboxes]] entries, or the single [imap] table when there are none."""
        return self.mailboxes or (self.imap,)

    def imap_mailboxes(self) -> tuple[ImapSettings, ...]:
        """The mailboxes to connect to, each checked complete; else SettingsError naming keys."""
        problems = [p for mailbox in self.all_mailboxes for p in mailbox.missing()]
        if problems:
            raise SettingsError(problems, self._config_file)
        return self.all_mailboxes


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read the settings file (see the module docstring for which) and the environment."""
    source = find_settings_file(path)
    token = _TOML_PATH.set(source)
    try:
        settings = Settings()
    except ValidationError as err:
        raise SettingsError(_problems(err), source) from None
    except tomllib.TOMLDecodeError as err:
        raise SettingsError([("", f"{source}: not valid TOML: {err}")]) from None
    except OSError as err:
        raise SettingsError([("", f"{source}: cannot read: {err.strerror or err}")]) from None
    except pydantic_settings.SettingsError as err:
        # The environment held something that does not parse, e.g. a list that is not JSON.
        raise SettingsError([_env_problem(err)], source) from None
    finally:
        _TOML_PATH.reset(token)
    settings._config_file = source
    return settings


def find_settings_file(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The settings file to read: explicit path, $IMAP_BOUNCER_CONFIG, ./settings.toml, /etc."""
    explicit = [(str(path), "") if path is not None else None,
                (os.environ.get(CONFIG_ENV, ""), f" (from ${CONFIG_ENV})")]
    for chosen in explicit:
        if chosen and chosen[0]:
            candidate = Path(chosen[0]).expanduser()
            if not candidate.is_file():
                raise SettingsError([("", f"settings file {candidate} not found{chosen[1]}")])
            return candidate
    for candidate in (LOCAL_PATH, SYSTEM_PATH):
        if candidate.is_file():
            return candidate
    return None


def redact_url(url: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{netloc[2]}").geturl()


# -- helpers ----------------------------------------------------------------------------------


def _inherit_entry(base: Mapping[str, Any], entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    merged = dict(base)
    merged.pop("name", None)
    # A credential is inherited whole or not at all: an entry with its own password_file must
    # not also get [imap]'s password (that would be "both set"), nor a token from another auth.
    for group in (_PASSWORD_KEYS, _TOKEN_KEYS):
        if any(key in entry for key in group):
            for key in group:
                merged.pop(key, None)
    if "security" in entry and "port" not in entry:
        merged.pop("port", None)
    if isinstance(base.get("folders"), dict) and isinstance(entry.get("folders"), dict):
        entry = {**entry, "folders": {**base["folders"], **entry["folders"]}}
    merged.update(entry)
    return merged


def _parse_size(value: Any) -> Any:
    """A size such as "25MB" or "512K" -> bytes (K, M, G are powers of 1024)."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError("must be a number of bytes, or a size such as '25MB' or '512K'")
        unit = (match.group(2) or "").lower()[:1]
        return int(match.group(1)) * _SIZE_UNITS[unit]
    return value


def _read_secret(path: Path, key: str) -> str:
    """The first line of a secret file, stripped. Errors never include the content."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise _Problem(key, f"cannot read {path}: "
                       f"{getattr(err, 'strerror', None) or type(err).__name__}", True) from None
    # The first line, without its line end: spaces may belong to the secret.
    secret = text.splitlines()[0] if text else ""
    if not secret.strip():
        raise _Problem(key, f"{path} is empty", True)
    return secret


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_MESSAGES: dict[str, str] = {
    "extra_forbidden": "unknown key (misspelt, or in the wrong table?)",
    "missing": "required",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
}


def _problems(err: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in err.errors(include_input=False, include_url=False):
        loc = list(error["loc"])
        message = _MESSAGES.get(error["type"], error["msg"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, _Problem):
            message = cause.message
            if cause.sibling and loc:
                loc.pop()
            loc.append(cause.key)
        elif error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        key = _dotted(loc)
        env = _env_name(loc)
        if env:
            key = f"{key} (from ${env})"
        problems.append((key, message))
    # A mistake in [imap] is inherited by every [[mailboxes]] entry: report it once, as imap.*.
    inherited = {(key.removeprefix("imap"), message) for key, message in problems
                 if key.startswith("imap.")}
    return [(key, message) for key, message in problems
            if not (key.startswith("mailboxes[")
                    and (re.sub(r"^mailboxes\[\d+\]", "", key), message) in inherited)]


def _dotted(loc: Sequence[Any]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif isinstance(part, str) and part.startswith("["):
            key += part  # an index given by a _Problem, e.g. "[2]" or "[2].name"
        elif part != "":
            key += f".{part}" if key else str(part)
    return key


def _env_name(loc: Sequence[Any]) -> str:
    """The environment variable that set this key (or a table holding it), if one did."""
    names = [str(p) for p in loc if isinstance(p, str) and p and not p.startswith("[")]
    environ = {name.upper() for name in os.environ}
    for length in range(len(names), 0, -1):
        name = ENV_PREFIX + "__".join(names[:length]).upper()
        if name in environ:
            return name
    return ""


def _env_problem(err: Exception) -> tuple[str, str]:
    match = re.search(r'field "([^"]+)"', str(err))
    field = match.group(1) if match else ""
    return (f"{field} (from the environment)" if field else "environment",
            "cannot parse the value (lists and tables are written as JSON)")


__all__ = [
    "AnalysisSettings",
    "DatabaseSettings",
    "DsnSettings",
    "Folders",
    "ImapSettings",
    "IngestSettings",
    "LoggingSettings",
    "OutboxSettings",
    "PolicySettings",
    "Settings",
    "SettingsError",
    "SmtpSettings",
    "WebhookSettings",
    "find_settings_file",
    "load_settings",
    "redact_url",
]
