"""peewee models, the database connection and the schema migrations.

Two tables hold what the service found: `Message`, one row per message seen in a mailbox
(unique on mailbox + UIDVALIDITY + UID), and `Event`, one row per recipient a message reports on.
`schema_version` records which migrations have run.

The database is SQLite by default (`sqlite:///path.db`: WAL journal, foreign keys on, a busy
timeout) or PostgreSQL (`postgresql://...`, through psycopg 3). `open_database(url)` connects
and, by default, upgrades the schema; `upgrade(db)` is the same step on its own. Migrations are an
ordered list in this module, applied in order, each in its own transaction with its version row.
Two processes never migrate at once: on PostgreSQL a session advisory lock (`pg_advisory_lock`,
keyed on the schema) is held around the whole upgrade; on SQLite the whole upgrade is one
`BEGIN IMMEDIATE` transaction, which takes the database's write lock.

Only `ledger.py` writes to these tables. Datetimes are stored as naive UTC and read back as
aware UTC datetimes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import peewee
from peewee import (
    BigAutoField,
    BigIntegerField,
    BlobField,
    BooleanField,
    CharField,
    Database,
    DatabaseProxy,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    PostgresqlDatabase,
    SqliteDatabase,
    TextField,
)
from playhouse import db_url
from playhouse.migrate import SchemaMigrator

from . import drivers

log = logging.getLogger(__name__)

# The database the models use; `bind(db)` (or `open_database`) sets it.
DB = DatabaseProxy()

SQLITE_BUSY_TIMEOUT = 10.0  # seconds a writer waits for another one's lock
POSTGRES_CONNECT_TIMEOUT = 10  # seconds
SQLITE_PRAGMAS = (
    ("journal_mode", "wal"),  # readers do not block the writer, nor it them
    ("foreign_keys", 1),
    ("busy_timeout", int(SQLITE_BUSY_TIMEOUT * 1000)),
    ("synchronous", "normal"),  # safe with WAL: a power cut may lose the last commit only
)
MIGRATION_LOCK_TIMEOUT = "300s"  # how long to wait for another process's upgrade (PostgreSQL)
# pg_advisory_lock(key1, key2): key1 says "imap-bouncer schema upgrade", key2 is the schema.
_ADVISORY_KEY = 0x1B0B_0001


class SchemaError(Exception):
    """The database schema cannot be used or upgraded by this version of imap-bouncer."""


# -- fields -----------------------------------------------------------------------------------


class UTCDateTimeField(DateTimeField):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC on every backend."""

    def db_value(self, value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value: Any) -> Any:
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class JSONTextField(TextField):
    """JSON kept as text, the same on SQLite and PostgreSQL."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else json.dumps(value, ensure_ascii=False)

    def python_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)


# -- models -----------------------------------------------------------------------------------


class BaseModel(Model):
    class Meta:
        database = DB
        legacy_table_names = False


class Message(BaseModel):
    """One message seen in a mailbox, and what was done with it."""

    id = BigAutoField()
    mailbox = CharField(max_length=100)  # the settings' mailbox name
    uidvalidity = BigIntegerField()  # UIDVALIDITY and UID are unsigned 32-bit numbers
    uid = BigIntegerField()
    message_id = TextField(default="")  # this message's own Message-ID header
    sha256 = CharField(max_length=64, null=True, index=True)  # of the raw bytes; null: unknown
    size = BigIntegerField(default=0)  # bytes (RFC822.SIZE)
    internal_date = UTCDateTimeField(null=True)  # the server's INTERNALDATE
    received_at = UTCDateTimeField()  # when it was fetched
    processed_at = UTCDateTimeField()  # when it was recorded
    kind = CharField(max_length=20, null=True)  # report.Kind; null when not analyzed (error)
    target_folder = TextField()  # where it is to be moved
    analyzer = CharField(max_length=100, default="")  # e.g. "dsn" or "formats.qmail"
    analyzer_version = CharField(max_length=50, default="")
    feedback_type = CharField(max_length=50, default="")  # complaints: abuse, opt-out, ...
    errors = JSONTextField(default=list)  # list of strings
    raw = BlobField(null=True)  # only with database.store_raw
    moved = BooleanField(default=False)
    moved_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "message"
        indexes = ((("mailbox", "uidvalidity", "uid"), True),)


class Event(BaseModel):
    """What a message says about one recipient."""

    id = BigAutoField()
    message = ForeignKeyField(Message, backref="events", on_delete="CASCADE")
    kind = CharField(max_length=20)  # the message's kind, repeated for simple queries
    address = TextField(index=True)  # normalized by the analyzer
    action = CharField(max_length=20)  # report.Action
    status = CharField(max_length=20, default="")  # RFC 3463, e.g. 5.1.1
    smtp_code = CharField(max_length=10, default="")
    reason = CharField(max_length=30)  # report.Reason
    permanent = BooleanField(default=False)
    diagnostic = TextField(default="")
    remote_mta = TextField(default="")
    evidence = TextField(default="")  # why the reason was chosen
    original_message_id = TextField(default="", index=True)  # of the message that bounced
    original_from = TextField(default="")
    sender_domain = CharField(max_length=255, default="")  # domain of original_from
    list_id = TextField(default="")
    verp_recipient = TextField(default="")
    created_at = UTCDateTimeField()
    recipient_domain = CharField(max_length=255, default="")  # the address's domain
    # More of the original, for the delivery report to its sender (handlers/dsn.py).
    original_subject = TextField(default="")
    original_date = TextField(default="")  # its Date header, as written
    original_automatic = TextField(default="")  # report.Original.automatic: never report on it
    # What signatures prove about this recipient (verp.py): verp, id, id-message or "";
    # the day signed; a line for `explain`; and, when require_signed kept this event from
    # changing its address's state, why ("" when it did not).
    signed = CharField(max_length=20, default="")
    signed_day = IntegerField(default=0)
    proof_note = TextField(default="")
    held = TextField(default="")

    class Meta:
        table_name = "event"
        indexes = ((("recipient_domain", "created_at"), False),)


class AddressState(BaseModel):
    """The send state of one address: what a sending system asks before it sends."""

    id = BigAutoField()
    address = TextField(unique=True)
    state = CharField(max_length=20, default="active")  # policy.State
    soft_count = IntegerField(default=0)  # soft bounces counted in the current window
    soft_since = UTCDateTimeField(null=True)  # the first soft bounce of the window
    last_soft_at = UTCDateTimeField(null=True)  # the last soft bounce that was counted
    hard_count = IntegerField(default=0)  # permanent bounces seen while not invalid
    first_hard_at = UTCDateTimeField(null=True)
    last_event_at = UTCDateTimeField(null=True)
    suppressed_until = UTCDateTimeField(null=True)  # unreachable: when it expires
    reason = CharField(max_length=30, default="")  # the reason of the last change
    note = TextField(default="")  # a person's words with a manual change
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "address_state"


class Transition(BaseModel):
    """A change of an address's state, and why: every change is recorded."""

    id = BigAutoField()
    address = TextField(index=True)
    from_state = CharField(max_length=20)
    to_state = CharField(max_length=20)
    cause = CharField(max_length=20)  # event, manual, expiry, review
    reason = CharField(max_length=30, default="")
    event = ForeignKeyField(Event, null=True, backref="transitions", on_delete="SET NULL")
    actor = CharField(max_length=100, default="")  # who made a manual change
    note = TextField(default="")
    created_at = UTCDateTimeField()

    class Meta:
        table_name = "transition"


class Storm(BaseModel):
    """Many addresses at one domain refused within a short window: one alert, not many."""

    id = BigAutoField()
    domain = CharField(max_length=255, index=True)
    started_at = UTCDateTimeField()
    last_at = UTCDateTimeField()
    refusals = IntegerField(default=0)
    reasons = JSONTextField(default=list)

    class Meta:
        table_name = "storm"


class Outbox(BaseModel):
    """A notification to deliver after the commit (webhook, DSN to the sender): written in
    the same transaction as what it reports, delivered by a scheduled job, so none is lost."""

    id = BigAutoField()
    channel = CharField(max_length=20)  # webhook, dsn
    event_type = CharField(max_length=50)  # e.g. address.state_changed, event.recorded
    target = TextField()  # the endpoint URL, or the DSN's recipient
    payload = JSONTextField(default=dict)
    dedupe_key = CharField(max_length=255, unique=True)  # one delivery per fact and target
    status = CharField(max_length=20, default="pending", index=True)  # pending, delivered,
    attempts = IntegerField(default=0)  # failed (gave up), cancelled
    next_attempt_at = UTCDateTimeField(index=True)
    last_error = TextField(default="")
    created_at = UTCDateTimeField()
    delivered_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "outbox"


def _version_model(database: Any) -> type[Model]:
    class SchemaVersion(Model):
        """One row per migration applied."""

        version = IntegerField(primary_key=True)
        name = TextField()
        applied_at = UTCDateTimeField()

        class Meta:
            table_name = "schema_version"

    SchemaVersion._meta.set_database(database)
    return SchemaVersion


SchemaVersion = _version_model(DB)
MODELS: tuple[type[Model], ...] = (Message, Event, AddressState, Transition, Storm, Outbox)


# -- connecting -------------------------------------------------------------------------------


class PatientSqliteDatabase(SqliteDatabase):
    """SQLite whose connections wait for the lock while setting their pragmas, too.

    Switching a new database to WAL needs SQLite's exclusive lock, and SQLite answers
    "database is locked" at once, without its busy timeout, to a connection that asks while
    another holds it: several processes starting together (an upgrade, a pipe and the
    service) would fail at random.
    """

    def _set_pragmas(self, conn: Any) -> None:
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
        while True:
            try:
                super()._set_pragmas(conn)
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


def connect(url: str, **params: Any) -> Database:
    """A peewee Database for a sqlite:/// or postgresql:// URL (not yet connected).

    Extra `params` go to the driver (e.g. `options="-c search_path=x"` for psycopg).
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        params.setdefault("pragmas", SQLITE_PRAGMAS)
        params.setdefault("timeout", SQLITE_BUSY_TIMEOUT)
    elif scheme in ("postgres", "postgresql"):
        if drivers.postgres_hidden():
            raise SchemaError("this process loaded the database layer for SQLite only")
        params.setdefault("prefer_psycopg3", True)
        params.setdefault("application_name", "imap-bouncer")
        # A server that hangs instead of refusing must not hold a pass (or an MTA's pipe)
        # for minutes: give up and retry later, as for any database fault.
        if "connect_timeout" not in url:
            params.setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT)
    else:
        raise SchemaError("database URL must start with sqlite:/// or postgresql://")
    if scheme == "sqlite":
        parsed = db_url.parse(url)
        database = parsed.pop("database", "")
        if not database:
            raise SchemaError("the database URL names no database")
        return PatientSqliteDatabase(database, **{**parsed, **params})
    try:
        return db_url.connect(url, unquote_password=True, unquote_user=True, **params)
    except ValueError:
        # peewee's message quotes the URL, password and all.
        raise SchemaError("the database URL names no database") from None


def bind(db: Database) -> None:
    """Make the models use `db` (one database per process)."""
    DB.initialize(db)


def open_database(url: str, *, upgrade_schema: bool = True, **params: Any) -> Database:
    """Connect, bind the models and upgrade the schema (or check it is current)."""
    db = connect(url, **params)
    if upgrade_schema:
        upgrade(db)
    else:
        check_schema(db)
    bind(db)
    return db


# -- migrations -------------------------------------------------------------------------------
#
# To change the schema: change the models above, then append a migration below that brings a
# database from the previous version to the new one with playhouse.migrate operations, e.g.
#
#     def _m2_message_subject(db, migrator):
#         migrator.migrate(migrator.add_column("message", "subject", TextField(default="")))
#
# Never edit a migration that has shipped: databases out there have already run it. Migration
# 1 therefore uses frozen copies of the tables, not the live models.
# tests/test_ledger.py checks that the migrated schema matches the models.


def _m1_initial(db: Database, migrator: SchemaMigrator) -> None:
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Message(Base):
        id = BigAutoField()
        mailbox = CharField(max_length=100)
        uidvalidity = BigIntegerField()
        uid = BigIntegerField()
        message_id = TextField(default="")
        sha256 = CharField(max_length=64, null=True, index=True)
        size = BigIntegerField(default=0)
        internal_date = DateTimeField(null=True)
        received_at = DateTimeField()
        processed_at = DateTimeField()
        kind = CharField(max_length=20, null=True)
        target_folder = TextField()
        analyzer = CharField(max_length=100, default="")
        analyzer_version = CharField(max_length=50, default="")
        feedback_type = CharField(max_length=50, default="")
        errors = TextField(default="[]")
        raw = BlobField(null=True)
        moved = BooleanField(default=False)
        moved_at = DateTimeField(null=True)

        class Meta:
            table_name = "message"
            indexes = ((("mailbox", "uidvalidity", "uid"), True),)

    class Event(Base):
        id = BigAutoField()
        message = ForeignKeyField(Message, on_delete="CASCADE")
        kind = CharField(max_length=20)
        address = TextField(index=True)
        action = CharField(max_length=20)
        status = CharField(max_length=20, default="")
        smtp_code = CharField(max_length=10, default="")
        reason = CharField(max_length=30)
        permanent = BooleanField(default=False)
        diagnostic = TextField(default="")
        remote_mta = TextField(default="")
        evidence = TextField(default="")
        original_message_id = TextField(default="", index=True)
        original_from = TextField(default="")
        sender_domain = CharField(max_length=255, default="")
        list_id = TextField(default="")
        verp_recipient = TextField(default="")
        created_at = DateTimeField()

        class Meta:
            table_name = "event"

    db.create_tables([Message, Event], safe=False)


def _m2_send_state(db: Database, migrator: SchemaMigrator) -> None:
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Event(Base):
        id = BigAutoField()

        class Meta:
            table_name = "event"

    class AddressState(Base):
        id = BigAutoField()
        address = TextField(unique=True)
        state = CharField(max_length=20, default="active")
        soft_count = IntegerField(default=0)
        soft_since = DateTimeField(null=True)
        last_soft_at = DateTimeField(null=True)
        hard_count = IntegerField(default=0)
        first_hard_at = DateTimeField(null=True)
        last_event_at = DateTimeField(null=True)
        suppressed_until = DateTimeField(null=True)
        reason = CharField(max_length=30, default="")
        note = TextField(default="")
        updated_at = DateTimeField()

        class Meta:
            table_name = "address_state"

    class Transition(Base):
        id = BigAutoField()
        address = TextField(index=True)
        from_state = CharField(max_length=20)
        to_state = CharField(max_length=20)
        cause = CharField(max_length=20)
        reason = CharField(max_length=30, default="")
        event = ForeignKeyField(Event, null=True, on_delete="SET NULL")
        actor = CharField(max_length=100, default="")
        note = TextField(default="")
        created_at = DateTimeField()

        class Meta:
            table_name = "transition"

    class Storm(Base):
        id = BigAutoField()
        domain = CharField(max_length=255, index=True)
        started_at = DateTimeField()
        last_at = DateTimeField()
        refusals = IntegerField(default=0)
        reasons = TextField(default="[]")

        class Meta:
            table_name = "storm"

    class Outbox(Base):
        id = BigAutoField()
        channel = CharField(max_length=20)
        event_type = CharField(max_length=50)
        target = TextField()
        payload = TextField(default="{}")
        dedupe_key = CharField(max_length=255, unique=True)
        status = CharField(max_length=20, default="pending", index=True)
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField(index=True)
        last_error = TextField(default="")
        created_at = DateTimeField()
        delivered_at = DateTimeField(null=True)

        class Meta:
            table_name = "outbox"

    db.create_tables([AddressState, Transition, Storm, Outbox], safe=False)
    migrator.migrate(
        migrator.add_column("event", "recipient_domain",
                            CharField(max_length=255, default="")),
        migrator.add_index("event", ("recipient_domain", "created_at")),
    )


def _m3_event_original(db: Database, migrator: SchemaMigrator) -> None:
    migrator.migrate(
        migrator.add_column("event", "original_subject", TextField(default="")),
        migrator.add_column("event", "original_date", TextField(default="")),
        migrator.add_column("event", "original_automatic", TextField(default="")),
    )


def _m4_event_proof(db: Database, migrator: SchemaMigrator) -> None:
    migrator.migrate(
        migrator.add_column("event", "signed", CharField(max_length=20, default="")),
        migrator.add_column("event", "signed_day", IntegerField(default=0)),
        migrator.add_column("event", "proof_note", TextField(default="")),
        migrator.add_column("event", "held", TextField(default="")),
    )


Migration = Callable[[Database, SchemaMigrator], None]
MIGRATIONS: tuple[tuple[int, str, Migration], ...] = (
    (1, "message and event tables", _m1_initial),
    (2, "address send state, transitions, storms, outbox", _m2_send_state),
    (3, "event: the original's subject, date and automatic mark", _m3_event_original),
    (4, "event: what signatures prove, and why require_signed held it", _m4_event_proof),
)
LATEST_VERSION = MIGRATIONS[-1][0]


def upgrade(db: Database) -> int:
    """Apply the migrations not yet applied; returns the schema version now in place.

    Safe to run concurrently from several processes and to run again: it then does nothing.
    Raises SchemaError when the database is newer than this program.
    """
    version_model = _version_model(db)
    with _upgrade_lock(db):
        version_model.create_table(safe=True)
        current = _current_version(version_model)
        if current > LATEST_VERSION:
            raise SchemaError(f"the database schema is version {current}, newer than this "
                              f"imap-bouncer knows ({LATEST_VERSION}): upgrade imap-bouncer")
        migrator = SchemaMigrator.from_database(db)
        for version, name, migration in MIGRATIONS:
            if version <= current:
                continue
            log.info("database: applying migration %d (%s)", version, name)
            with db.atomic():
                migration(db, migrator)
                version_model.create(version=version, name=name,
                                     applied_at=datetime.now(UTC))
            current = version
    return current


def schema_version(db: Database) -> int:
    """The schema version of the database; 0 when it has never been upgraded."""
    version_model = _version_model(db)
    if not version_model.table_exists():
        return 0
    return _current_version(version_model)


def check_schema(db: Database) -> None:
    """SchemaError unless the schema is exactly the version this program expects."""
    current = schema_version(db)
    if current != LATEST_VERSION:
        raise SchemaError(f"the database schema is version {current}, this imap-bouncer needs "
                          f"{LATEST_VERSION}: run the upgrade")


def _current_version(version_model: type[Model]) -> int:
    return version_model.select(peewee.fn.MAX(version_model.version)).scalar() or 0


@contextmanager
def _upgrade_lock(db: Database) -> Iterator[None]:
    """Hold the database-wide "schema upgrade" lock for the duration of the block."""
    if isinstance(db, PostgresqlDatabase):
        # A session-level advisory lock, on this thread's connection (outside any
        # transaction, so each migration can commit on its own while it is held). Keyed on
        # the current schema, so separate schemas (tests, several instances) do not wait on
        # each other. lock_timeout bounds the wait behind a hung upgrade.
        if db.in_transaction():
            raise SchemaError("upgrade() must not run inside a transaction")
        key = "%s, hashtext(coalesce(current_schema(), ''))"
        db.execute_sql(f"SET lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'")
        try:
            db.execute_sql(f"SELECT pg_advisory_lock({key})", (_ADVISORY_KEY,))
        except peewee.OperationalError as err:
            if sqlstate(err) != "55P03":  # lock_not_available
                raise
            raise SchemaError("timed out waiting for another process's schema upgrade "
                              f"({MIGRATION_LOCK_TIMEOUT})") from err
        finally:
            if not db.is_closed():
                db.execute_sql("RESET lock_timeout")
        try:
            yield
        finally:
            try:
                db.execute_sql(f"SELECT pg_advisory_unlock({key})", (_ADVISORY_KEY,))
            except peewee.PeeweeException:
                # The connection is gone, and the session lock with it; do not hide the
                # error that brought us here.
                log.warning("database: could not release the schema upgrade lock",
                            exc_info=True)
    elif isinstance(db, SqliteDatabase):
        # One IMMEDIATE transaction takes SQLite's write lock at once: a second process waits
        # (busy timeout) and then sees the migrations done. Each migration is a savepoint.
        with db.atomic("IMMEDIATE"):
            yield
    else:
        raise SchemaError(f"unsupported database {type(db).__name__}")


def sqlstate(err: BaseException) -> str:
    """The PostgreSQL SQLSTATE behind a peewee error, or ""."""
    for cause in (err, err.__cause__, err.__context__, *err.args):
        state = getattr(cause, "sqlstate", None)
        if state:
            return str(state)
    return ""


__all__ = [
    "DB",
    "LATEST_VERSION",
    "MIGRATIONS",
    "MODELS",
    "AddressState",
    "Event",
    "Message",
    "Outbox",
    "SchemaError",
    "SchemaVersion",
    "Storm",
    "Transition",
    "bind",
    "check_schema",
    "connect",
    "open_database",
    "schema_version",
    "sqlstate",
    "upgrade",
]
