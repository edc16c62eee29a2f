"""Every admin action at the command line leaves an audit entry (by "cli", no role) that says
what was done and how many, without any full ID or phone number; read-only commands leave none.

The commands run in-process through `run.main([...])`, as an operator types them, on a fresh
database (SQLite, and PostgreSQL when TEST_POSTGRES_URL is set)."""
from __future__ import annotations

import asyncio
import datetime as dt
import io
import sys
from pathlib import Path

import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

import run
from models.clock import FixedClock
from models.db.setup import close_db, init_db
from models.db.tables import AuditEntry, Resident, Slot
from models.people import pii
from tests.conftest import DB_BACKENDS, NOW, PG_URL, TEST_SECRET, reset_postgres
from tests.factories import book_for
from tests.pii_scan import find_personal_numbers

SAMPLES = Path(__file__).resolve().parent.parent / "docs" / "samples"
SITES = len((SAMPLES / "sites.csv").read_text(encoding="utf-8").strip().splitlines()) - 1


@pytest.fixture(params=DB_BACKENDS)
def database(request, tmp_path, monkeypatch):
    """A fresh, empty database for the commands; its URL."""
    if request.param == "postgres":
        asyncio.run(reset_postgres(PG_URL))
        url = PG_URL
    else:
        url = f"sqlite://{tmp_path}/cli.sqlite3"
    EXECUTOR_CACHE.clear()
    for name, value in {"DATABASE_URL": url, "SECRET_KEY": TEST_SECRET, "SMS_BACKEND": "console",
                        "BASE_URL": "http://127.0.0.1:8000"}.items():
        monkeypatch.setenv(name, value)
    return url


def cli(*args: str, stdin: str = "") -> int:
    sys.stdin = io.StringIO(stdin)
    try:
        return run.main(list(args))
    finally:
        sys.stdin = sys.__stdin__


def in_db(url: str, work):
    """Run `work()` (a coroutine function) with the database open, as a separate process would."""
    async def go():
        await init_db(url)
        try:
            return await work()
        finally:
            await close_db()

    return asyncio.run(go())


def trail(url: str) -> list[tuple[str, str, str, str]]:
    """The audit trail, oldest first: (username, role, action, detail)."""
    async def read():
        return await AuditEntry.all().order_by("id").values_list("username", "role", "action", "detail")

    rows = in_db(url, read)
    assert find_personal_numbers("\n".join(r[3] for r in rows)) == []
    return [tuple(r) for r in rows]


def test_imports_leave_their_counts_and_file_name_even_when_rows_or_the_file_are_refused(database, tmp_path):
    assert cli("import-sites", str(SAMPLES / "sites.csv")) == 0
    assert cli("import-first-doses", str(SAMPLES / "first_doses.csv")) == 0
    bad = tmp_path / "bad.csv"
    good_id = pii.build_id_number("440106", dt.date(1980, 5, 17), 11)
    bad_id = good_id[:17] + ("1" if good_id[17] == "0" else "0")
    bad.write_text("name,id_number,phone,first_dose_date,site_code,vaccine,subdistrict\n"
                   f"张三明,{good_id},13812345678,2021-06-01,TH01,,\n"
                   f"李四华,{bad_id},13812345679,2021-06-01,TH01,,\n", encoding="utf-8")
    assert cli("import-first-doses", str(bad)) == 1
    assert cli("import-first-doses", str(tmp_path / "missing.csv")) == 1
    assert trail(database) == [
        ("cli", "", "import_sites", f"{SITES} created, 0 updated, 0 unchanged, 0 rejected file=sites.csv"),
        ("cli", "", "import_first_doses", "6 created, 0 updated, 0 unchanged, 0 rejected file=first_doses.csv"),
        ("cli", "", "import_first_doses", "1 created, 0 updated, 0 unchanged, 1 rejected file=bad.csv"),
        ("cli", "", "import_first_doses", "file refused, nothing imported file=missing.csv"),
    ]


def test_invite_leaves_how_many_were_invited_and_a_dry_run_leaves_nothing(database):
    cli("import-sites", str(SAMPLES / "sites.csv"))
    cli("import-first-doses", str(SAMPLES / "first_doses.csv"))
    before = len(trail(database))
    assert cli("invite", "--as-of", "2021-06-23", "--dry-run") == 0
    assert len(trail(database)) == before
    assert cli("invite", "--as-of", "2021-06-23", "--limit", "3") == 0
    assert cli("invite", "--as-of", "2021-06-23") == 0
    assert trail(database)[before:] == [
        ("cli", "", "invite", "3 invited, 3 SMS queued as_of=2021-06-23 limit=3"),
        ("cli", "", "invite", "1 invited, 1 SMS queued as_of=2021-06-23"),
    ]


def test_open_slots_leaves_its_counts_and_a_refusal_says_why(database):
    cli("import-sites", str(SAMPLES / "sites.csv"))
    args = ["open-slots", "--site", "TH01", "--from", "2021-07-01", "--to", "2021-07-03",
            "--times", "08:30-09:30,14:00-15:00", "--capacity"]
    assert cli(*args, "20") == 0
    assert cli(*args, "30") == 0
    assert cli("open-slots", "--site", "XX9", "--from", "2021-07-01", "--to", "2021-07-01",
               "--times", "08:30-09:30", "--capacity", "5") == 1
    assert trail(database)[1:] == [
        ("cli", "", "open_slots", "6 created, 0 raised, 0 lowered, 0 unchanged, 0 conflicts "
                                  "site=TH01 2021-07-01..2021-07-03 capacity=20"),
        ("cli", "", "open_slots", "0 created, 6 raised, 0 lowered, 0 unchanged, 0 conflicts "
                                  "site=TH01 2021-07-01..2021-07-03 capacity=30"),
        ("cli", "", "open_slots", "refused: unknown site code XX9 site=XX9 2021-07-01..2021-07-01 capacity=5"),
    ]


def test_close_day_leaves_the_no_shows_per_site_and_in_all(database):
    cli("import-sites", str(SAMPLES / "sites.csv"))
    cli("import-first-doses", str(SAMPLES / "first_doses.csv"))
    cli("open-slots", "--site", "TH01", "--from", "2021-07-01", "--to", "2021-07-01",
        "--times", "09:00-10:00", "--capacity", "5")

    async def book_two():
        from web.settings import load_settings, build_district

        district = build_district(load_settings(), clock=FixedClock(NOW))
        slot = await Slot.get(day=NOW.date())
        for resident in await Resident.filter(first_site__code="TH01").order_by("id").limit(2):
            await book_for(district, resident, slot)

    in_db(database, book_two)
    assert cli("close-day", "--day", "2021-07-01") == 0
    assert trail(database)[3:] == [
        ("cli", "", "no_shows", "2 site=TH01 day=2021-07-01"),
        ("cli", "", "close_day", "2 no-shows at 1 sites day=2021-07-01"),
    ]


def test_create_user_leaves_who_was_created_and_a_refusal_never_holds_the_password(database):
    cli("import-sites", str(SAMPLES / "sites.csv"))
    assert cli("create-user", "--role", "site", "--site", "TH01", "--username", "door1",
               stdin="a long enough password\n") == 0
    assert cli("create-user", "--role", "subdistrict", "--subdistrict", "五山", "--username", "street1",
               stdin="another long password\n") == 0
    assert cli("create-user", "--role", "admin", "--username", "boss", stdin="shorty\n") == 1
    rows = trail(database)[1:]
    assert rows == [
        ("cli", "", "create_user", "site door1 for site TH01"),
        ("cli", "", "create_user", "subdistrict street1 for 五山街"),
        ("cli", "", "create_user", "refused: password must be at least 10 characters"),
    ]
    assert not any("password\n" in r[3] or "shorty" in r[3] for r in rows)


def test_read_only_commands_leave_no_entry(database, capsys):
    cli("import-sites", str(SAMPLES / "sites.csv"))
    before = trail(database)
    assert cli("outbox") == 0
    assert cli("check") == 0
    assert trail(database) == before
