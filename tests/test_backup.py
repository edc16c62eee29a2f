"""`run.py backup` and `run.py restore` as an operator runs them: a backup taken in the middle of a
rush holds every booking a resident had seen confirmed before it started; a restore checks the
checksum and refuses to overwrite a database that holds data; old copies are pruned.

SQLite, and PostgreSQL (restored into a second database made for the test) when
TEST_POSTGRES_URL is set."""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from models.clock import SystemClock
from models.db.tables import AuditEntry, Booking, Resident
from models.people.links import issue_link
from tests.conftest import DB_BACKENDS, PG_URL, TEST_SECRET, reset_postgres
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.realserver import ROOT, Server, seed
from tests.rush import GOOD, Person, seen_codes
from web.settings import Settings, build_district

NO_LIMITS = {"RATE_LIMIT_OPEN_LINK": "1000000/minute", "RATE_LIMIT_VERIFY": "1000000/minute"}
SEEN_BEFORE_BACKUP = 10  # confirmations the crowd has been shown when the backup starts
LANES = 8  # residents on their way at once
AFTER = 15  # residents who start only once the backup is done


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=DB_BACKENDS)
def databases(request, tmp_path):
    """(the service's database, a second one to restore into), both empty; the second one does
    not exist yet on SQLite and is a new, empty PostgreSQL database otherwise."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path}/live.sqlite3", f"sqlite://{tmp_path}/restored/new.sqlite3"
        return
    asyncio.run(reset_postgres(PG_URL))
    url = urlsplit(PG_URL)
    name = url.path.lstrip("/") + "_restore"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL, url._replace(path="/" + name).geturl()
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def cli(url: str, *args: str, backup_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": TEST_SECRET}
    if backup_dir is not None:
        env["BACKUP_DIR"] = str(backup_dir)
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


async def acli(url: str, *args: str) -> tuple[int, str, str]:
    """The same, without stopping the event loop: the rush goes on while it runs."""
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": TEST_SECRET}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "run.py", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


def district_for(url: str):
    return build_district(Settings(database_url=url, secret_key=TEST_SECRET), clock=SystemClock())


def active_codes(url: str) -> set[str]:
    async def read():
        return set(await Booking.filter(status=Booking.ACTIVE).values_list("code", flat=True))

    return seed(url, read)


def backup_file(result: subprocess.CompletedProcess | tuple) -> Path:
    out = result.stdout if isinstance(result, subprocess.CompletedProcess) else result[1]
    line = next(ln for ln in out.splitlines() if ln.startswith("backup: "))
    return Path(line.removeprefix("backup: ").split(" (")[0])


def small_world(url: str, bookings: int = 3) -> list[str]:
    """A site, a slot and `bookings` booked residents; returns their booking codes."""
    district = district_for(url)

    async def build():
        site = await make_site("B01", "天河南街")
        slot = await make_slot(site, district.clock.today() + dt.timedelta(days=1), capacity=10)
        codes = []
        for i in range(bookings):
            resident, _ = await make_resident(site, first_dose=district.clock.today() - dt.timedelta(days=30),
                                              name=f"备份{i}", phone=f"138{i:08d}")
            codes.append((await book_for(district, resident, slot)).code)
        return codes

    return seed(url, build)


# ---- the issue's test: a backup in the middle of a rush


def rush_world(url: str, *, rushers: int, capacity: int) -> dict:
    district = district_for(url)

    async def build():
        site = await make_site("R01", "天河南街")
        tomorrow = district.clock.today() + dt.timedelta(days=1)
        slots = [await make_slot(site, tomorrow, f"{h:02d}:00", f"{h + 1:02d}:00", capacity=capacity)
                 for h in (9, 10)]
        people = []
        for i in range(rushers):
            resident, number = await make_resident(site, first_dose=district.clock.today() - dt.timedelta(days=30),
                                                   name=f"市民{i}", phone=f"139{i:08d}")
            token = await issue_link(resident, now=district.clock.now(),
                                     days_valid=district.link_days_valid)
            people.append((token, number))
        return dict(site=site.id, slots=[s.id for s in slots], people=people)

    return seed(url, build)


@pytest.mark.slow
def test_a_backup_in_the_middle_of_a_rush_restores_every_booking_confirmed_before_it(databases, tmp_path):
    """Residents book in a steady stream (LANES at a time); once SEEN_BEFORE_BACKUP have been shown
    their confirmation, `run.py backup` starts while the stream goes on. The last AFTER residents
    start only once the backup has returned: their bookings cannot be in it."""
    live, restored = databases
    world = rush_world(live, rushers=140, capacity=100)
    server = Server(live, TEST_SECRET, workers=2, **NO_LIMITS)
    crowd = [Person(server.base_url, token, number) for token, number in world["people"]]
    before, after = crowd[:-AFTER], crowd[-AFTER:]

    async def one(p: Person) -> None:
        await p.sign_in()
        slot = world["slots"][crowd.index(p) % 2]  # two windows, half the crowd each
        check = await p.choose(world["site"], slot)
        if check is not None:
            await p.confirm(check, slot)

    async def lane(queue) -> None:
        for p in queue:  # one iterator shared by every lane: each resident comes once
            await one(p)

    async def rush_with_a_backup():
        queue = iter(before)
        stream = asyncio.gather(*(lane(queue) for _ in range(LANES)))
        while len(seen_codes(crowd)) < SEEN_BEFORE_BACKUP and not stream.done():
            await asyncio.sleep(0.01)
        seen = seen_codes(crowd)  # confirmations shown before the backup started
        result = await acli(live, "backup", "--to", str(tmp_path / "backups"))
        await stream
        await asyncio.gather(*(one(p) for p in after))
        return seen, result

    try:
        seen, result = asyncio.run(rush_with_a_backup())
    finally:
        asyncio.run(close_all(crowd))
        server.stop()
    assert result[0] == 0, result[1] + result[2]
    assert len(seen) >= SEEN_BEFORE_BACKUP
    assert sorted({s for p in crowd for s in p.statuses if s not in GOOD}) == []
    booked_after = {p.code for p in after if p.code}
    assert len(booked_after) == AFTER, "everybody found a place"
    copy = backup_file(result)
    assert copy.parent == tmp_path / "backups" and copy.name.startswith("booking-")

    done = cli(restored, "restore", str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "check: ok" in done.stdout
    assert cli(restored, "check").returncode == 0
    in_copy = active_codes(restored)
    assert seen <= in_copy, f"confirmed before the backup but not in it: {seen - in_copy}"
    assert not in_copy & booked_after, "the copy holds bookings made after it was taken"
    assert in_copy <= active_codes(live)


async def close_all(crowd: list[Person]) -> None:
    await asyncio.gather(*(p.close() for p in crowd))


# ---- restore's refusals


def test_restore_into_an_empty_database_then_refuse_one_that_holds_data_unless_forced(databases, tmp_path):
    live, other = databases
    codes = small_world(live, bookings=3)
    made = cli(live, "backup", backup_dir=tmp_path / "b")
    assert made.returncode == 0, made.stderr
    copy = backup_file(made)
    assert copy.parent == tmp_path / "b"  # BACKUP_DIR

    first = cli(other, "restore", str(copy))
    assert first.returncode == 0, first.stdout + first.stderr
    assert active_codes(other) == set(codes)

    # The restored database now holds data, and more comes: a second restore is refused.
    later = small_world_extra(other)
    again = cli(other, "restore", str(copy))
    assert again.returncode == 1
    assert "already holds data" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert active_codes(other) == set(codes) | {later}, "a refused restore changed nothing"

    forced = cli(other, "restore", "--force", str(copy))
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "check: ok" in forced.stdout
    assert active_codes(other) == set(codes), "the database is the backup again"

    async def trail():
        return await AuditEntry.filter(username="cli", action="restore").values_list("detail", flat=True)

    details = seed(other, trail)
    assert any("forced over" in d for d in details), details


def small_world_extra(url: str) -> str:
    """One more booking, made after the backup."""
    district = district_for(url)

    async def build():
        site = await make_site("B02", "天河南街")
        slot = await make_slot(site, district.clock.today() + dt.timedelta(days=2), capacity=5)
        resident, _ = await make_resident(site, first_dose=district.clock.today() - dt.timedelta(days=30),
                                          name="后来", phone="13700000001")
        return (await book_for(district, resident, slot)).code

    return seed(url, build)


def test_a_backup_whose_checksum_does_not_match_is_not_restored(databases, tmp_path):
    live, other = databases
    small_world(live, bookings=2)
    copy = backup_file(cli(live, "backup", "--to", str(tmp_path / "b")))
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in the middle: a damaged copy
    copy.write_bytes(bytes(data))
    done = cli(other, "restore", str(copy))
    assert done.returncode == 1
    assert "does not match its checksum" in done.stderr and "Traceback" not in done.stderr

    copy.with_name(copy.name + ".sha256").unlink()
    done = cli(other, "restore", str(copy))
    assert done.returncode == 1 and "no checksum file" in done.stderr

    async def residents():
        return await Resident.all().count()

    assert seed(other, residents) == 0, "nothing was written into the target"


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_backups_and_their_folder_are_the_owners_alone_whatever_the_umask(databases, tmp_path):
    """Issue 21, finding 3: copies were written 0644 in a 0755 folder. Now 0600 in 0700, by the
    code itself (not only run.py's umask 077 and the units' UMask=0077): made here in-process
    under a loose umask, into a new folder and into an existing 0755 one."""
    from models.operations.backup import make_backup

    live, other = databases
    small_world(live, bookings=1)
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o755)
    before = os.umask(0o022)
    try:
        now = dt.datetime.now(dt.timezone.utc)
        copies = [asyncio.run(make_backup(live, tmp_path / "new" / "copies", 3, now=now)),
                  asyncio.run(make_backup(live, loose, 3, now=now))]
    finally:
        os.umask(before)
    for done in copies:
        assert _mode(done.path.parent) == 0o700, done.path.parent
        assert _mode(done.path) == 0o600 and _mode(done.path.with_name(done.path.name + ".sha256")) == 0o600
    # As an operator runs it (the CLI), and a restored SQLite file too.
    made = cli(live, "backup", "--to", str(tmp_path / "cli"))
    assert made.returncode == 0, made.stderr
    copy = backup_file(made)
    assert (_mode(copy.parent), _mode(copy), _mode(copy.with_name(copy.name + ".sha256"))) == (0o700, 0o600, 0o600)
    if other.startswith("sqlite://"):
        assert cli(other, "restore", str(copy)).returncode == 0
        restored = Path(other.removeprefix("sqlite://"))
        assert _mode(restored) == 0o600 and _mode(restored.parent) == 0o700


def test_backup_keeps_the_newest_n_and_the_checksum_files_match(tmp_path):
    live = f"sqlite://{tmp_path}/live.sqlite3"
    small_world(live, bookings=1)
    folder = tmp_path / "b"
    made = []
    for _ in range(4):
        result = cli(live, "backup", "--to", str(folder), "--keep", "2")
        assert result.returncode == 0, result.stderr
        made.append(backup_file(result))
    assert len(set(made)) == 4, "each backup has its own name, even within one second"
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted([made[2].name, made[2].name + ".sha256", made[3].name, made[3].name + ".sha256"])
    assert "removed " + made[1].name in result.stdout
    check = subprocess.run(["sha256sum", "-c", made[3].name + ".sha256"], cwd=folder,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    async def trail():
        return await AuditEntry.filter(username="cli", action="backup").count()

    assert seed(live, trail) == 4


def test_bad_usage_and_missing_files_are_plain_messages(tmp_path):
    live = f"sqlite://{tmp_path}/live.sqlite3"
    assert cli(live, "backup", "--keep", "many").returncode == 2
    assert cli(live, "restore").returncode == 2
    done = cli(live, "restore", str(tmp_path / "nothing.sqlite3"))
    assert done.returncode == 1 and "no such file" in done.stderr and "Traceback" not in done.stderr


async def test_a_sqlite_copy_is_not_restored_into_postgresql(tmp_path):
    from models.operations.backup import BackupError, restore

    copy = tmp_path / "booking-20261128T001500Z.sqlite3"
    copy.write_bytes(b"not really a database")
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    copy.with_name(copy.name + ".sha256").write_text(f"{digest}  {copy.name}\n")
    with pytest.raises(BackupError, match="is a SQLite backup; DATABASE_URL is a PostgreSQL database"):
        await restore("postgres://nobody@127.0.0.1:1/nothing", copy)


def test_the_postgresql_password_reaches_pg_dump_in_a_private_passfile_only():
    from models.operations.backup import _conninfo

    with _conninfo("postgres://booking:p%40ss:w\\rd@db.local:5433/booking") as conninfo:
        assert "p@ss" not in conninfo and "ss:w" not in conninfo
        assert "host='db.local'" in conninfo and "port='5433'" in conninfo
        assert "user='booking'" in conninfo and "dbname='booking'" in conninfo
        passfile = Path(conninfo.split("passfile='")[1].split("'")[0])
        assert passfile.read_text() == "*:*:*:*:p@ss\\:w\\\\rd\n"
        assert passfile.stat().st_mode & 0o077 == 0, "only the owner may read it"
    assert not passfile.exists()


def test_force_restores_over_a_damaged_sqlite_file_and_keeps_it_aside(tmp_path):
    live, damaged = f"sqlite://{tmp_path}/live.sqlite3", tmp_path / "damaged.sqlite3"
    codes = small_world(live, bookings=2)
    copy = backup_file(cli(live, "backup", "--to", str(tmp_path / "b")))
    damaged.write_bytes(b"half a page of something that is not SQLite" * 10)
    refused = cli(f"sqlite://{damaged}", "restore", str(copy))
    assert refused.returncode == 1 and "not a database SQLite can read" in refused.stderr
    done = cli(f"sqlite://{damaged}", "restore", "--force", str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    assert active_codes(f"sqlite://{damaged}") == set(codes)
    assert (tmp_path / "damaged.sqlite3.damaged").read_bytes().startswith(b"half a page")
