"""The database: engine, sessions and migrations, for SQLite (the default) and PostgreSQL.

Two kinds of session:

- ``Database.read()``: a plain transaction; on SQLite a deferred one, so readers
  never wait for a writer (WAL journal).
- ``Database.write()``: on SQLite ``BEGIN IMMEDIATE``, which takes the write lock
  at the start, so a read-check-write sequence (the attempt budget, claiming a
  job) cannot interleave with another writer. On PostgreSQL the code that needs
  it locks rows with ``SELECT ... FOR UPDATE`` (``SKIP LOCKED`` for the queue);
  SQLAlchemy leaves those clauses out on SQLite, where the lock is already held.

Migrations are Alembic's, shipped in ``api/migrations``; ``migrate`` applies
them (``cvgrade serve`` does at start, and ``cvgrade admin migrate``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import sessionmaker

from api.config import SettingsError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_WRITE_OPTION = "cvgrade_write"


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (SQLAlchemy's default would be psycopg2)."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


class Database:
    """One engine per service, with sessions for reading and for writing."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError as err:
            raise SettingsError(f"the database URL {url!r} is not valid: {err}") from None
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                _private_file(Path(parsed.database))
            self.engine = create_engine(
                self.url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20, max_overflow=20
            )
            _use_our_own_transactions(self.engine)
        elif self.dialect == "postgresql":
            self.engine = create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        else:
            raise SettingsError(f"cvgrade stores its data in SQLite or PostgreSQL, not {self.dialect!r}")
        self.read = sessionmaker(self.engine, expire_on_commit=False)
        self.write = sessionmaker(self.engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False)

    def describe(self) -> str:
        """The URL without its password, for logs."""
        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


def _private_file(path: Path) -> None:
    """The SQLite file, readable by its owner only (it holds candidates' e-mail addresses): made 0600 before
    SQLite opens it (its -wal and -shm files take the same mode), and tightened if an older one was not."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    with contextlib.suppress(OSError):  # a file of another user: SQLite will say what is wrong
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)


def _use_our_own_transactions(engine: Engine) -> None:
    """SQLite: foreign keys on, WAL journal, and BEGIN issued by us (IMMEDIATE for writers).

    pysqlite's own transaction handling would begin lazily, at the first write,
    which is too late to keep a read-check-write sequence atomic.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        writer = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return config


def migrate(database: Database, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (default: the newest). Safe to run again."""
    with database.engine.begin() as connection:
        config = alembic_config(database)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(database: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()



def newest_revision() -> str:
    """The head of the shipped migrations: what ``migrate`` brings a database to."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None, "cvgrade ships its migrations"
    return head
