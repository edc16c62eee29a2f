"""Issue 21, finding 3: the full ID number could be rebuilt from the database or a backup alone.

The masked ID (`440106********123X`) hid exactly the 8 birth-date digits and `birth_date` sat in
clear beside it: 208 of 208 demo residents rebuilt without any key. Now only the birth year is in
clear and the mask keeps the region and the last two characters (`440106**********3X`): the
tests below open a seeded database file with sqlite3 alone, as someone holding a copy would, and
count the ID numbers every clear column still allows. Files with personal data are the owner's
alone (0600 in 0700 folders), and every deploy unit sets UMask=0077.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from stdnum.cn import ric
from tortoise import Tortoise, connections

from models.db.setup import close_db, init_db, tortoise_config
from models.demo.loader import load_demo
from models.people import pii
from tests.conftest import DB_BACKENDS, PG_URL, TEST_SECRET, VAULT, reset_postgres
from tests.pii_scan import find_personal_numbers
from tests.realserver import ROOT, seed
from web.settings import Settings, build_district

MIN_CANDIDATES = 1000  # ID numbers every resident's clear columns must still allow, at least
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # GB 11643: the check character
CHECKS = "10X98765432"
FIRST_BIRTH, LAST_BIRTH = dt.date(1900, 1, 1), dt.date(2021, 12, 31)
MASKED_ID = re.compile(r"(?<![0-9A-Za-z])\d{6}\*{4,}[0-9X*]*(?![0-9A-Za-z])")


def check_character(body: str) -> str:
    return CHECKS[sum(int(c) * w for c, w in zip(body, WEIGHTS)) % 11]


def candidates(mask: str, *, born: dt.date | None = None, year: int | None = None) -> int:
    """How many valid ID numbers fit the mask's visible characters and what is known of the
    birth date (the whole date, its year, or nothing): region, date, sequence, check character."""
    shown = {i: ch for i, ch in enumerate(mask) if ch != "*"}
    region = mask[:6]
    assert region.isdigit(), mask
    if born is not None:
        days = [born]
    else:
        first = dt.date(year, 1, 1) if year else FIRST_BIRTH
        last = dt.date(year, 12, 31) if year else LAST_BIRTH
        days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    dates = [d.strftime("%Y%m%d") for d in days]
    dates = [d for d in dates if all(shown.get(6 + k, ch) == ch for k, ch in enumerate(d))]
    seqs = [f"{n:03d}" for n in range(1000)
            if all(shown.get(14 + k, ch) == ch for k, ch in enumerate(f"{n:03d}"))]
    by_residue = Counter(sum(int(c) * w for c, w in zip(s, WEIGHTS[14:])) % 11 for s in seqs)
    head = sum(int(c) * w for c, w in zip(region, WEIGHTS[:6]))
    total = 0
    for date in dates:
        partial = head + sum(int(c) * w for c, w in zip(date, WEIGHTS[6:14]))
        for residue, n in by_residue.items():
            if shown.get(17, CHECKS[(partial + residue) % 11]) == CHECKS[(partial + residue) % 11]:
                total += n
    return total


def test_the_counting_agrees_with_python_stdnum():
    number = pii.build_id_number("440106", dt.date(1950, 3, 9), 123)
    assert check_character(number[:17]) == ric.calc_check_digit(number) == number[17]  # it ignores the 18th
    # The check character gives a hidden last digit back (2·d mod 11 differs for every d).
    assert candidates(number[:16] + "*" + number[17], born=dt.date(1950, 3, 9)) == 1
    old_mask = number[:6] + "*" * 8 + number[-4:]
    assert candidates(old_mask, born=dt.date(1950, 3, 9)) == 1  # the finding: nothing left to guess
    assert 30 <= candidates(old_mask, year=1950) <= 40  # the old mask with only the year: ~365/11
    assert 3000 <= candidates(pii.mask_id(number), year=1950) <= 3700  # ~36,500/11


def test_mask_id_keeps_the_region_and_the_last_two_characters():
    number = pii.build_id_number("440106", dt.date(1990, 1, 1), 123)
    assert pii.mask_id(number) == "440106" + "*" * 10 + number[-2:]
    assert len(pii.mask_id(number)) == 18


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory) -> Path:
    """The demo data set (models/demo) in a SQLite file, the service closed: a copy as it lies."""
    path = tmp_path_factory.mktemp("at-rest") / "demo.sqlite3"
    url = f"sqlite://{path}"

    async def build():
        district = build_district(Settings(database_url=url, secret_key=TEST_SECRET))
        await load_demo(district)

    seed(url, build)
    return path


def _tables(conn: sqlite3.Connection) -> dict[str, list[str]]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [c[1] for c in conn.execute(f'PRAGMA table_info("{t}")')] for t in names}


def test_no_id_number_can_be_rebuilt_from_a_database_file_without_the_key(demo_file):
    conn = sqlite3.connect(f"file:{demo_file}?mode=ro", uri=True)
    try:
        columns = set(_tables(conn)["resident"])
        # Whatever the schema holds of the birth date in clear is used: the whole date, the year.
        known = [c for c in ("birth_date", "birth_year") if c in columns]
        rows = conn.execute(f"SELECT id, id_masked, {', '.join(known) or 'NULL'} FROM resident").fetchall()
    finally:
        conn.close()
    assert len(rows) >= 200, "the demo data set"
    fewest = {}
    for rid, mask, *clear in rows:
        if "birth_date" in known:
            count = candidates(mask, born=dt.date.fromisoformat(str(clear[0])[:10]))
        elif "birth_year" in known:
            count = candidates(mask, year=int(clear[0]))
        else:
            count = candidates(mask)
        fewest[rid] = count
    rebuilt = [rid for rid, n in fewest.items() if n < MIN_CANDIDATES]
    assert not rebuilt, (f"{len(rebuilt)} of {len(rows)} residents narrowed to fewer than "
                         f"{MIN_CANDIDATES} ID numbers (fewest: {min(fewest.values())})")


def test_no_clear_column_holds_a_full_id_number_or_phone(demo_file):
    conn = sqlite3.connect(f"file:{demo_file}?mode=ro", uri=True)
    found, masks = [], []
    try:
        for table, names in _tables(conn).items():
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for name, value in zip(names, row):
                    if value is None:
                        continue
                    text = str(value)
                    found += [(table, name) for _ in find_personal_numbers(text)]
                    masks += [(table, name, m) for m in MASKED_ID.findall(text)]
    finally:
        conn.close()
    assert not found, f"full numbers in clear: {Counter(found)}"
    assert masks, "the masked IDs are there to be checked"
    # Every masked ID, wherever it is written, shows the region and at most 2 characters more.
    wide = [(t, c, m) for t, c, m in masks if len(m.rstrip("*")) > 6 and len(m) - len(m.rstrip("0123456789X")) > 2]
    assert not wide, wide[:5]


def test_rule_8_still_reads_the_exact_birth_date_from_the_encrypted_number(demo_file):
    from models.people.residents import birth_date_of

    conn = sqlite3.connect(f"file:{demo_file}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT id_cipher, birth_year FROM resident ORDER BY birth_year LIMIT 1").fetchone()
    finally:
        conn.close()

    class Stored:
        id_cipher, birth_year = row

    born = birth_date_of(VAULT, Stored)
    assert born == pii.birth_date(VAULT.decrypt(row[0])) and born.year == row[1]


# ---- the migration converts what is there (SQLite and PostgreSQL)


@pytest.fixture(params=DB_BACKENDS)
async def empty_url(request, tmp_path):
    if request.param == "postgres":
        await reset_postgres(PG_URL)
        yield PG_URL
        await reset_postgres(PG_URL)  # the next test migrates it afresh
    else:
        yield f"sqlite://{tmp_path}/old.sqlite3"


async def test_the_migration_keeps_the_year_drops_the_date_and_shortens_every_mask(empty_url):
    number = pii.build_id_number("440106", dt.date(1950, 3, 9), 123)
    old_mask = number[:6] + "*" * 8 + number[-4:]
    typo = number[:16] + "77"  # a mistyped number on a group list, masked as they were
    config = tortoise_config(empty_url)
    await migrate_to(config, "models.0011_security_limits")
    await Tortoise.init(config=config)
    try:
        conn = connections.get("default")
        now = "2021-06-01 00:00:00+00:00"
        await conn.execute_script(
            "INSERT INTO site (id, code, name, subdistrict, address, phone, active) "
            "VALUES (1, 'TH01', 'x', '五山街', 'x', '', TRUE);"
            "INSERT INTO staff_user (id, username, password_hash, role, subdistrict, active, created_at, "
            f"failed_logins) VALUES (1, 'a', 'x', 'admin', '', TRUE, '{now}', 0);"
            f"INSERT INTO group_list (id, name, owner_id, subdistrict, created_at, runs, last_action) "
            f"VALUES (1, 'g', 1, '', '{now}', 0, '');"
            f"INSERT INTO import_run (id, kind, filename, status, rows, created, updated, unchanged, "
            f"rejected, error, started_at) VALUES (1, 'first_doses', 'f', 'done', 2, 1, 0, 0, 1, '', '{now}');"
            f"INSERT INTO import_reject (id, run_id, line, reason) VALUES "
            f"(1, 1, 3, 'id_number {old_mask} appears again (first on line 2)');")
        for rid, mask, born in ((1, old_mask, "1950-03-09"), (2, "440106" + "*" * 12, "1961-01-01")):
            await conn.execute_script(
                "INSERT INTO resident (id, name, id_hash, id_cipher, id_masked, birth_date, phone_hash, "
                "phone_cipher, phone_masked, first_dose_date, first_site_id, vaccine, subdistrict, lang, "
                f"created_at, updated_at) VALUES ({rid}, '张三明', 'h{rid}', 'c', '{mask}', '{born}', 'p{rid}', "
                f"'c', '138****5678', '2021-05-01', 1, '', '五山街', 'zh', '{now}', '{now}')")
        await conn.execute_script(
            "INSERT INTO group_member (id, group_id, row, name, id_hash, id_cipher, id_masked, id_problem, "
            f"phone_cipher, phone_masked, outcome, run, added_at) VALUES "
            f"(1, 1, 1, '张三明', 'h1', 'c', '{old_mask}', '', '', '', '', 0, '{now}'),"
            f"(2, 1, 2, '李四', '', 'c', '{typo[:6]}********{typo[-4:]}', 'checksum', '', '', '', 0, '{now}'),"
            f"(3, 1, 3, '王五', '', 'c', '{'1234567890123'[:6]}***{'1234567890123'[-4:]}', 'length', '', '', '', 0, '{now}')")
    finally:
        await close_db()

    await init_db(empty_url)  # every migration still to run, 0012 among them
    try:
        conn = connections.get("default")
        rows = (await conn.execute_query("SELECT * FROM resident ORDER BY id"))[1]
        assert [(r["birth_year"], r["id_masked"]) for r in rows] == [
            (1950, pii.mask_id(number)), (1961, "440106" + "*" * 12)]
        assert "birth_date" not in dict(rows[0])
        members = (await conn.execute_query("SELECT id_masked FROM group_member ORDER BY id"))[1]
        assert [m["id_masked"] for m in members] == [
            pii.mask_id(number), typo[:6] + "*" * 10 + typo[-2:], "123456*****23"]
        reason = (await conn.execute_query("SELECT reason FROM import_reject"))[1][0]["reason"]
        assert reason == f"id_number {pii.mask_id(number)} appears again (first on line 2)"
    finally:
        await close_db()


async def migrate_to(config: dict, target: str) -> None:
    from tortoise.migrations.api import migrate

    await migrate(config=config, target=target)


# ---- files: the database, data/, the deploy units


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_sqlite_database_and_its_folder_are_the_owners_alone(tmp_path):
    """As `run.py` creates it (an operator's shell with umask 022), and as init_db() alone does."""
    folder = tmp_path / "data"
    env = {**os.environ, "DATABASE_URL": f"sqlite://{folder}/booking.sqlite3", "SECRET_KEY": TEST_SECRET}
    done = subprocess.run([sys.executable, "run.py", "check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, preexec_fn=lambda: os.umask(0o022))
    assert done.returncode == 0, done.stderr
    assert _mode(folder) == 0o700
    made = [p for p in folder.iterdir() if p.name.startswith("booking.sqlite3")]
    assert made and all(_mode(p) == 0o600 for p in made), {p.name: oct(_mode(p)) for p in made}

    before = os.umask(0o022)
    try:
        path = tmp_path / "in-process" / "x.sqlite3"
        asyncio.run(_open_and_close(f"sqlite://{path}"))
    finally:
        os.umask(before)
    assert _mode(path.parent) == 0o700 and _mode(path) == 0o600


async def _open_and_close(url: str) -> None:
    await init_db(url)
    await close_db()


def test_every_deploy_unit_creates_private_files():
    units = sorted((ROOT / "deploy").glob("*.service"))
    assert len(units) >= 4
    for unit in units:
        lines = [line.strip() for line in unit.read_text().splitlines()]
        assert "UMask=0077" in lines, unit.name
