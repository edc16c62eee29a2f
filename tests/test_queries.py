"""How many SQL statements each page of the resident journey sends: an upper bound per page,
so a change that adds queries to every page (the profile of issue 14: the link and resident
loaded, eligibility assessed, free places summed over every site, on every request) fails here.

Counted at Tortoise's client (every statement it sends, in a transaction or not; not the
BEGIN/COMMIT around them), at models/db/fast.py's SQLite reader and at the steps of
models/db/unit.py's transactions, on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime as dt

import pytest
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionWrapper

from models.db import fast, unit
from models.people.links import issue_link
from tests.conftest import NOW, PG_URL
from tests.factories import make_resident, make_site, make_slot
from tests.pages import get_page, post_form

FIRST = dt.date(2021, 6, 5)
METHODS = ("execute_query", "execute_query_dict", "execute_insert", "execute_many")

# At most this many per page: what each sends now. Most pages start with the same four (the
# link with resident and site, the active booking, the risk area, whether any place is free).
# Before issue 14 a page built every query's SQL in Tortoise and summed every open slot of the
# district; lower is welcome, higher needs a reason.
# Issue 21: "open link" and "ID check" count their rate limits before the check (web/limits.py);
# without REDIS_URL (as here) the counters live in the database: a hit before, a give-back after
# a live link or a right number, and a process's sweep of windows past their end (once a minute).
# With Redis they are 1 and 5 again.
# Issue 24: a booking ends the person's place on the waiting list in its own transaction (one
# UPDATE, "confirm").
BOUNDS = {
    "open link": 5,
    "ID check page": 1,
    "ID check": 10,
    "site page": 5,
    "site chosen": 5,
    "time page": 7,
    "time chosen": 11,
    "check page": 6,
    "confirm": 13,
    "confirmation": 3,
}
# On PostgreSQL a transaction that changes slots first locks them in order (engine._lock_slots_work):
# the slot the resident holds, read, then SELECT … FOR UPDATE. SQLite's BEGIN IMMEDIATE needs neither.
LOCKING = {"time chosen": 2, "confirm": 2}


def _client_classes() -> list[type]:
    classes: list[type] = [SqliteClient, SqliteTransactionWrapper]
    if PG_URL:
        from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper

        classes += [AsyncpgDBClient, TransactionWrapper]
    return classes


class Statements:
    """The SQL sent since the last take()."""

    def __init__(self):
        self.sql: list[str] = []
        self._inside = contextvars.ContextVar("inside", default=False)

    def wrap(self, method):
        async def counted(client, query, *args, **kwargs):
            if self._inside.get():  # one method calling another: one statement
                return await method(client, query, *args, **kwargs)
            self.sql.append(query)
            token = self._inside.set(True)
            try:
                return await method(client, query, *args, **kwargs)
            finally:
                self._inside.reset(token)

        return counted

    def take(self) -> list[str]:
        sql, self.sql = self.sql, []
        return sql


class _CountedReader:
    """models/db/fast.py's read connection on SQLite, its statements counted."""

    def __init__(self, reader, statements: Statements):
        self.reader, self.statements = reader, statements

    def execute(self, sql, params=()):
        self.statements.sql.append(sql)
        return self.reader.execute(sql, params)


def _counted(work, statements: Statements):
    """A unit of models/db/unit.py whose statements are counted as they are sent."""
    answer = None
    while True:
        try:
            step = work.send(answer)
        except StopIteration as done:
            return done.value
        statements.sql.append(step.sql)
        answer = yield step


@contextlib.contextmanager
def counting(monkeypatch):
    statements = Statements()
    run = unit.run

    async def counted_run(work, using_db=None):  # SQLite: sent on aiosqlite's thread, uncounted
        if fast.is_sqlite(fast.db(using_db)):  # (PostgreSQL: through the client's counted methods)
            work = _counted(work, statements)
        return await run(work, using_db)

    monkeypatch.setattr(unit, "run", counted_run)
    for cls in _client_classes():
        for name in METHODS:
            if name in cls.__dict__:
                monkeypatch.setattr(cls, name, statements.wrap(cls.__dict__[name]))
    reader = fast._reader
    monkeypatch.setattr(fast, "_reader", lambda client: _CountedReader(reader(client), statements))
    yield statements


@pytest.fixture
async def world(db):
    """A district of a dozen sites, two weeks of windows each, one resident with a link."""
    sites = [await make_site(f"S{i:02d}", "五山街" if i < 6 else "龙洞街") for i in range(12)]
    for site in sites:
        for day in range(1, 15):
            for start in ("09:00", "10:00", "14:00"):
                end = f"{int(start[:2]) + 1:02d}:00"
                await make_slot(site, NOW.date() + dt.timedelta(days=day), start, end, capacity=5)
    resident, number = await make_resident(sites[0], first_dose=FIRST)
    return dict(token=await issue_link(resident, now=NOW), number=number)


async def test_each_journey_page_stays_within_its_queries(client, world, db_url, monkeypatch):
    counts: dict[str, int] = {}
    with counting(monkeypatch) as sent:

        def step(name: str) -> None:
            counts[name] = len(sent.take())

        sent.take()
        assert (await client.get(f"/b/{world['token']}")).status_code == 303
        step("open link")
        page = await get_page(client, "/booking")
        step("ID check page")
        await post_form(client, "/booking/verify", page, {"id_number": world["number"]})
        step("ID check")
        page = await get_page(client, "/booking/site")
        step("site page")
        keep = page.select_one("button.keep")["value"]
        response = await post_form(client, "/booking/site", page, {"site": keep})
        assert response.headers["location"].startswith("/booking/slot")
        step("site chosen")
        page = await get_page(client, "/booking/slot")
        step("time page")
        slot = page.select_one('input[name="slot"]:not([disabled])')["value"]
        response = await post_form(client, "/booking/slot", page, {"slot": slot})
        assert response.headers["location"] == "/booking/check"
        step("time chosen")
        page = await get_page(client, "/booking/check")
        step("check page")
        form = page.select_one('form[action="/booking/confirm"]')
        fields = {i["name"]: i.get("value", "") for i in form.select("input[name]")
                  if i["name"] != "csrftoken"}
        response = await post_form(client, "/booking/confirm", page, fields)
        assert response.headers["location"] == "/booking/done"
        step("confirm")
        page = await get_page(client, "/booking/done")
        assert page.select_one(".code")
        step("confirmation")
    print("statements per page:", counts)
    allowed = {name: n + (LOCKING.get(name, 0) if db_url.startswith("postgres") else 0)
               for name, n in BOUNDS.items()}
    over = {name: (n, allowed[name]) for name, n in counts.items() if n > allowed[name]}
    assert not over, f"pages over their query budget (sent, allowed): {over}"
