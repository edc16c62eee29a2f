"""The database's settings for an import (models/db/tuning.py): raised while it runs, given back
after, so that the server's connection serves pages as it was set up to."""
from __future__ import annotations

import datetime as dt

import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from models.db import tuning
from models.operations import imports
from models.people import pii
from tests.conftest import TODAY, VAULT
from tests.factories import make_site


async def _pragma(name: str) -> int:
    _, rows = await connections.get("default").execute_query(f"PRAGMA {name}")
    return int(rows[0][0])


async def test_sqlite_gets_a_large_cache_and_quick_commits_only_while_an_import_runs(db, db_url):
    if not db_url.startswith("sqlite://"):
        pytest.skip("SQLite only")
    before = (await _pragma("cache_size"), await _pragma("synchronous"))
    async with tuning.sqlite_bulk_settings(262144, relaxed_commits=True):
        assert (await _pragma("cache_size"), await _pragma("synchronous")) == (-262144, 1)
    assert (await _pragma("cache_size"), await _pragma("synchronous")) == before
    async with tuning.sqlite_bulk_settings(65536, relaxed_commits=False):  # the console's import
        assert (await _pragma("cache_size"), await _pragma("synchronous")) == (-65536, before[1])
    assert (await _pragma("cache_size"), await _pragma("synchronous")) == before


async def test_the_command_lines_import_leaves_the_connection_as_it_found_it(db, db_url, tmp_path):
    if not db_url.startswith("sqlite://"):
        pytest.skip("SQLite only")
    await make_site("TH01")
    path = tmp_path / "f.csv"
    number = pii.build_id_number("440106", dt.date(1990, 1, 1), 1)
    path.write_text("name,id_number,phone,first_dose_date,site_code\n"
                    f"张三明,{number},13812345678,2021-06-01,TH01\n", encoding="utf-8")
    before = (await _pragma("cache_size"), await _pragma("synchronous"))
    result = await imports.import_first_doses(VAULT, path, today=TODAY, command_line=True, workers=0)
    assert result.created == 1
    assert (await _pragma("cache_size"), await _pragma("synchronous")) == before


async def test_postgresql_commits_without_waiting_for_the_disk_in_that_transaction_only(db, db_url):
    if db_url.startswith("sqlite://"):
        pytest.skip("PostgreSQL only")
    async with in_transaction() as conn:
        await tuning.relax_commit(conn)
        _, rows = await conn.execute_query("SHOW synchronous_commit")
        assert rows[0][0] == "off"
    _, rows = await connections.get("default").execute_query("SHOW synchronous_commit")
    assert rows[0][0] == "on"
