"""The queries asked on every resident page, in SQL written once instead of built per request.

Tortoise builds each query's SQL anew with pypika: about 2.5 ms of CPU for a link with its
resident and site (a join of three tables), where the database answers in 0.1 ms. Profiled
under a rush (bench/RESULTS.md), building SQL was the largest share of a page.
The few queries of every page are written once (models/db/reads.py; `?` placeholders become
`$1` on PostgreSQL: models/db/dialect.py), and their rows become the very model objects Tortoise makes (`_init_from_db`,
related objects set as `select_related` sets them), so callers cannot tell the difference.

Only plain values go in as parameters: int, str, bool, and dates through `dialect.day()`.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from functools import lru_cache

from tortoise import connections, timezone
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.fields.data import DateField, DatetimeField
from tortoise.models import Model

from .dialect import is_sqlite, numbered


def db(using_db=None):
    return using_db or connections.get("default")


async def rows(sql: str, params: list, using_db=None) -> list[dict]:
    """The rows of a SELECT, as dicts of column values as the database gives them."""
    conn = db(using_db)
    if not is_sqlite(conn):
        return await conn.execute_query_dict(numbered(sql), params)
    if isinstance(conn, TransactionalDBClient):  # inside a transaction: see what it wrote
        return await conn.execute_query_dict(sql, params)
    return [dict(row) for row in _reader(conn).execute(sql, params)]


_readers: dict[str, tuple[object, sqlite3.Connection]] = {}  # file -> (its Tortoise client, reader)


def _reader(client) -> sqlite3.Connection:
    """A read-only SQLite connection on the event loop's own thread, beside Tortoise's.

    Tortoise's one SQLite connection serves every query of the process in turn through
    aiosqlite's thread, behind one lock that each transaction holds to its end (BEGIN IMMEDIATE,
    possibly waiting for another process's write lock, to COMMIT's fsync): under a rush every
    page's first queries waited for other residents' bookings, and each statement cost two
    thread hops. In WAL mode a reader never waits for a writer and sees every committed
    transaction, so these reads are answered at once, on this thread (tens of µs each)."""
    kept = _readers.get(client.filename)
    if kept is not None and kept[0] is client:
        return kept[1]
    if kept is not None:  # the database was opened again (a new Tortoise client)
        kept[1].close()
    reader = sqlite3.connect(client.filename, isolation_level=None, check_same_thread=False)
    reader.row_factory = sqlite3.Row
    reader.execute("PRAGMA query_only = ON")
    reader.execute("PRAGMA busy_timeout = 2000")  # only while a WAL file is recovered or reset
    _readers[client.filename] = (client, reader)
    return reader


@lru_cache(maxsize=64)
def _columns(model: type[Model]) -> tuple[str, ...]:
    return tuple(model._meta.fields_db_projection.values())


@lru_cache(maxsize=64)
def columns(model: type[Model], alias: str) -> str:
    """The model's columns for a SELECT, each named `alias__column`."""
    return ", ".join(f'{alias}."{c}" AS "{alias}__{c}"' for c in _columns(model))


def table(model: type[Model]) -> str:
    return f'"{model._meta.db_table}"'


def load(model: type[Model], row: dict, alias: str):
    """The model object of a row's `alias__…` columns; None when the row has none (outer join).

    As Tortoise's `_init_from_db` makes it, but for the time columns: Tortoise parses each with
    iso8601 and moves it to its default zone (44 µs a value; a page's link, resident and site
    carry about ten), where `datetime.fromisoformat` takes under 1 µs for the same value."""
    if row.get(f"{alias}__id") is None:
        return None
    obj = model.__new__(model)
    put = object.__setattr__  # what Model.__setattr__ ends in, without its checks (nothing to await yet)
    put(obj, "_partial", False)
    put(obj, "_saved_in_db", True)
    put(obj, "_custom_generated_pk", _custom_pk(model))
    put(obj, "_await_when_save", {})
    for column, attr, convert in _loaders(model):
        value = row[f"{alias}__{column}"]
        object.__setattr__(obj, attr, value if convert is None or value is None else convert(value))
    return obj


@lru_cache(maxsize=64)
def _custom_pk(model: type[Model]) -> bool:
    return model._meta.db_pk_column not in model._meta.generated_db_fields


def _moment(value) -> dt.datetime:
    """A time column's value as Tortoise gives it (aware, in its default zone: UTC)."""
    zone = timezone.get_default_timezone()
    if isinstance(value, str):  # SQLite's text: the same few values come back on every page
        return _moment_of_text(value, zone)
    return _in_zone(value, zone)


@lru_cache(maxsize=8192)
def _moment_of_text(text: str, zone) -> dt.datetime:
    return _in_zone(dt.datetime.fromisoformat(text), zone)  # immutable: one object serves all


def _in_zone(value: dt.datetime, zone) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=zone)
    if value.utcoffset() == _ZERO and getattr(zone, "key", None) == "UTC":
        return value.replace(tzinfo=zone)
    return value.astimezone(zone)


_ZERO = dt.timedelta(0)


def _day(value) -> dt.date:
    """A date column's value as Tortoise gives it (SQLite keeps ISO text: iso8601 again)."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:  # a date written with a time
        return dt.datetime.fromisoformat(value).date()
_loaders_of: dict[type, tuple] = {}


def forget_loaders() -> None:
    """Forget the converters: which columns need one depends on the database (a date is native
    to PostgreSQL, text in SQLite), so a process that opens another database starts afresh."""
    _loaders_of.clear()


def _loaders(model: type[Model]) -> tuple[tuple[str, str, object], ...]:
    """Per column: (column, attribute, converter or None), as `_init_from_db` converts them
    (known once Tortoise is initialised: kept from then on)."""
    kept = _loaders_of.get(model)
    if kept:
        return kept
    meta = model._meta
    loaders = [(key, attr, None) for key, attr, _ in meta.db_native_fields]
    loaders += [(key, attr, field.field_type) for key, attr, field in meta.db_default_fields]
    for key, attr, field in meta.db_complex_fields:
        if isinstance(field, DatetimeField) and timezone.get_use_tz():
            loaders.append((key, attr, _moment))
        elif type(field) is DateField:
            loaders.append((key, attr, _day))
        else:
            loaders.append((key, attr, field.to_python_value))
    _loaders_of[model] = tuple(loaders)
    return _loaders_of[model]


def attach(obj: Model, field: str, related: Model | None) -> None:
    """Set a foreign-key object as select_related does: `obj.field` is then loaded."""
    object.__setattr__(obj, f"_{field}", related)


async def one(model: type[Model], using_db=None, **equal):
    """The model object of the first row of `model`'s table whose columns equal these values
    (`one(Hold, resident_id=3)`), or None."""
    where = " AND ".join(f't."{column}" = ?' for column in equal)
    found = await rows(f"SELECT {columns(model, 't')} FROM {table(model)} t WHERE {where} LIMIT 1",
                       list(equal.values()), using_db)
    return load(model, found[0], "t") if found else None
