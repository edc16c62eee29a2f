"""The two databases' differences in how a query is written and what its values are, in one place.

Every query string of the code is written once with `?` placeholders and plain values: on
PostgreSQL `sql()` numbers them (`$1, $2, …`, as asyncpg wants), and a date or a time goes in as
the column holds it — SQLite keeps them as ISO text (as Tortoise writes them), PostgreSQL as
dates and timestamps.
"""
from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache


def is_sqlite(conn) -> bool:
    return conn.capabilities.dialect == "sqlite"


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, …` (our SQL has no `?` inside quotes)."""
    count = iter(range(1, 100_000))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


def sql(conn, text: str) -> str:
    """The query `text` (`?` placeholders) as the connection `conn` wants it."""
    return text if is_sqlite(conn) else numbered(text)


def day(conn, value: dt.date):
    """A date as a parameter: SQLite keeps dates as ISO text (as Tortoise writes them)."""
    return value.isoformat() if is_sqlite(conn) else value


def moment(conn, value: dt.datetime):
    """An aware time as a parameter: on SQLite the text Tortoise's adapter writes for it."""
    return value.isoformat(" ") if is_sqlite(conn) else value


def params(conn, values) -> list:
    """Parameters as the connection wants them: dates (not times) as ISO text on SQLite."""
    if not is_sqlite(conn):
        return list(values)
    return [v.isoformat() if isinstance(v, dt.date) and not isinstance(v, dt.datetime) else v
            for v in values]
