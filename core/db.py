"""The database: one engine per app, SQLite tuned for a small site, PostgreSQL for several workers.

On SQLite a transaction that reads and then writes cannot wait for another writer (the upgrade
fails at once with "database is locked"), so transactions that will write begin IMMEDIATE and
queue on the busy timeout instead. Within one process they first take turns on a lock
(`Database.writer_turn`): SQLite makes waiting writers poll with growing sleeps (1, 2, 5, 10 ms
...), and under a rush that sleeping, not the work, would set the pace; a lock hands the database
over the moment the previous writer commits. Other processes still queue on the busy timeout.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import msgspec
from sqlalchemy import ClauseElement, Dialect, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import ReturnsRows
from sqlmodel import Session, SQLModel

# Alembic and the models agree on constraint names, so migrations can alter them on SQLite too.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
METADATA: MetaData = SQLModel.metadata

_WRITE = "orthodex_write"
# How long a writer waits for SQLite's write lock (the busy timeout), and for its turn in this process.
BUSY_TIMEOUT_S = 30


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    # JSON columns (the outbox's payloads) are written by msgspec, several times faster than json.
    kwargs.setdefault("json_serializer", _json_text)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}, **kwargs
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _json_text(value: Any) -> str:
    return msgspec.json.encode(value).decode()


class Database:
    """Owns the engine; hands out sessions for reading and for writing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        # SQLite: this process's writers take turns here before BEGIN IMMEDIATE (see above). Not
        # re-entrant: a thread that writes while it writes would wait for itself.
        self.writer_turn: threading.Lock | None = threading.Lock() if self.is_sqlite else None
        # Connections kept out of the pool by name (see own_connection); closed on dispose.
        self._own: dict[str, PoolProxiedConnection] = {}
        event.listen(self.engine, "engine_disposed", self._close_own)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reads; a caller that writes must commit."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction that commits when the block ends and rolls back on an exception."""
        with self._turn(), Session(self._write_engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _turn(self) -> Iterator[None]:
        if self.writer_turn is None:
            yield
            return
        if not self.writer_turn.acquire(timeout=BUSY_TIMEOUT_S):
            raise TimeoutError(f"no turn to write to the database in {BUSY_TIMEOUT_S} s")
        try:
            yield
        finally:
            self.writer_turn.release()

    def own_connection(self, name: str, *setup: str) -> Any:
        """The driver connection kept for one user, by name: out of the pool until the database is
        disposed (after which the next call opens another). For statements run on the event loop
        itself, where a pool checkout would cost as much as the statement. `setup` statements
        (PRAGMAs) run once, when it is opened."""
        found = self._own.get(name)
        if found is None:
            found = self.engine.raw_connection()
            found.detach()
            cursor = found.cursor()
            for statement in setup:
                cursor.execute(statement)
            cursor.close()
            self._own[name] = found
        return found.dbapi_connection

    def _close_own(self, _engine: Engine) -> None:
        own, self._own = self._own, {}
        for connection in own.values():
            connection.close()

    def dispose(self) -> None:
        self.engine.dispose()


class Prepared:
    """A Core statement compiled once for one dialect, run straight on a DBAPI connection.

    For the few hottest statements only. SQLAlchemy's per-execution work (execution context,
    result object, events) costs ~50-100 µs, more than a SQLite statement does; here a statement
    is its SQL text plus what SQLAlchemy would do to each parameter and each result column (the
    types' own bind and result processors), so values go in and come out exactly as through Core.
    Parameters are given by their bind names; values the statement carries (`col == 'x'`) are
    filled in. Expanding IN lists are not supported.
    """

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None
    ) -> None:
        compiled = cast(
            SQLCompiler, statement.compile(dialect=dialect, column_keys=list(column_keys or ()) or None)
        )
        self.sql = str(compiled)
        # qmark (SQLite) takes a sequence in this order; pyformat (psycopg) a mapping.
        self._order: list[str] | None = list(compiled.positiontup) if compiled.positiontup else None
        self._defaults: dict[str, Any] = dict(compiled.params)
        self._binds: dict[str, Callable[[Any], Any]] = {}
        # One processor per kind of type (columns have a type each, most alike), so a value
        # bound to several columns (a transaction's `now`) is converted once (see `params`).
        kinds: dict[tuple[type, str], Callable[[Any], Any] | None] = {}
        for name, bind in compiled.binds.items():
            impl = bind.type.dialect_impl(dialect)
            kind = (type(impl), repr(impl))
            if kind not in kinds:
                kinds[kind] = impl.bind_processor(dialect)
            process = kinds[kind]
            if process is not None:
                self._binds[name] = process
        # A SELECT's columns, or what an INSERT/UPDATE returns.
        columns = list(statement.exported_columns) if isinstance(statement, ReturnsRows) else []
        self.names: list[str] = [str(c.key) for c in columns]
        self._results: list[Callable[[Any], Any] | None] = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        ]
        self._row = namedtuple("Row", self.names, rename=True)  # type: ignore[misc]

    def params(
        self, values: Mapping[str, Any], done: dict[tuple[int, int], Any] | None = None
    ) -> Sequence[Any] | dict[str, Any]:
        """The DBAPI parameters. `done` remembers processed values by identity, for a value (one
        transaction's `now`) given several times."""
        merged = {**self._defaults, **values} if self._defaults else dict(values)
        done = {} if done is None else done
        for name, process in self._binds.items():
            if name in merged:
                key = (id(process), id(merged[name]))
                if key not in done:
                    done[key] = process(merged[name])
                merged[name] = done[key]
        return merged if self._order is None else [merged[name] for name in self._order]

    def execute(self, connection: Any, **values: Any) -> Any:
        """Run it; returns the (DBAPI) cursor, to read from and close."""
        cursor = connection.cursor()
        cursor.execute(self.sql, self.params(values))
        return cursor

    def executemany(self, connection: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        cursor = connection.cursor()
        try:
            done: dict[tuple[int, int], Any] = {}
            cursor.executemany(self.sql, [self.params(row, done) for row in rows])
        finally:
            cursor.close()

    def row(self, raw: Sequence[Any]) -> Any:
        """One result row (a named tuple) with SQLAlchemy's conversions applied (SQLite's text
        times to datetimes, JSON text to values ...)."""
        return self._row(
            *(v if p is None or v is None else p(v) for p, v in zip(self._results, raw, strict=True))
        )

    def first(self, connection: Any, **values: Any) -> Any:
        cursor = self.execute(connection, **values)
        try:
            raw = cursor.fetchone()
        finally:
            cursor.close()
        return None if raw is None else self.row(raw)

    def scalar(self, connection: Any, **values: Any) -> Any:
        found = self.first(connection, **values)
        return None if found is None else found[0]

    def rowcount(self, connection: Any, **values: Any) -> int:
        cursor = self.execute(connection, **values)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()
