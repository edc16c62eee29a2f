"""Backups and restore of the whole database, while the service runs (`run.py backup`, `restore`).

SQLite: the backup API copies every page inside one read transaction, so the copy is the
database as of one moment; in WAL mode the server's writers are not held up meanwhile.
PostgreSQL: `pg_dump --format=custom` reads one snapshot; `pg_restore` puts it back. Each copy is
named by UTC time (`booking-20261128T001500Z.sqlite3` / `.pgdump`) with a `sha256sum` file beside
it (`… .sha256`), and only the newest `keep` are kept. A restore checks that file first and
refuses a database that holds data unless forced.

A copy holds every ID number and phone (encrypted) and the rest in clear: copies and checksums
are created 0600 in a folder made (or narrowed to) 0700, whatever the umask (`private_dir`,
`private_file`); a restored SQLite file is created 0600 too.

The password of a PostgreSQL URL reaches pg_dump through a private passfile named in the
connection string, never on the command line (where `ps` shows it) or in the environment.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..db import copies

SUFFIXES = {"sqlite": ".sqlite3", "postgres": ".pgdump"}
BACKUP_NAME = re.compile(r"^booking-(\d{8}T\d{6}Z)(?:-(\d+))?\.(sqlite3|pgdump)$")
# A database "holds data" when any of these has a row: restoring over it would lose them.
WATCHED = ("resident", "booking", "site", "slot", "staff_user")
BUSY_MS = 10_000
FILE_MODE, DIR_MODE = 0o600, 0o700  # personal data: the owner only


class BackupError(Exception):
    """The backup or restore could not be done; the message says why in plain words."""


class NotEmpty(BackupError):
    """The target database holds data and the restore was not forced."""

    def __init__(self, held: dict[str, int]):
        self.held = held
        rows = ", ".join(f"{n} {table}" for table, n in held.items() if n)
        super().__init__(f"the database already holds data ({rows} rows): restoring would replace "
                         "it; use --force to overwrite it, or restore into an empty database")


@dataclass
class Backup:
    path: Path
    size: int
    sha256: str
    pruned: list[Path] = field(default_factory=list)


@dataclass
class Restored:
    path: Path
    overwritten: dict[str, int]  # rows the target held before (forced), all 0 when it was empty


def kind_of(database_url: str) -> str:
    if database_url.startswith("sqlite://"):
        return "sqlite"
    if database_url.startswith(("postgres://", "postgresql://", "asyncpg://", "psycopg://")):
        return "postgres"
    raise BackupError(f"cannot back up this kind of database: {database_url.split(':', 1)[0]}")


def sqlite_path(database_url: str) -> Path:
    return Path(database_url.removeprefix("sqlite://").split("?")[0])


# ---- backup


async def make_backup(database_url: str, to_dir: str | Path, keep: int, *, now: dt.datetime) -> Backup:
    """Copy the database into `to_dir` as of now, checksum it, keep the newest `keep` copies."""
    try:
        return await asyncio.to_thread(_make_backup, database_url, Path(to_dir), keep, now)
    except OSError as exc:  # a full disk, a folder it may not write
        raise BackupError(f"{exc.strerror or exc}: {exc.filename or to_dir}") from None


def private_dir(folder: Path) -> None:
    """Make the folder (and missing parents) 0700; an existing one of ours loses group and other
    access (a folder of backups readable by others lists them at least)."""
    folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    mode = folder.stat().st_mode & 0o777
    if mode & 0o077 and folder.stat().st_uid == os.getuid():
        os.chmod(folder, mode & DIR_MODE)


def private_file(path: Path) -> None:
    """Create `path` empty, 0600, before anything writes into it (sqlite3 and pg_dump keep the
    mode of a file that is there); refuse one already there (O_EXCL)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def _make_backup(database_url: str, to_dir: Path, keep: int, now: dt.datetime) -> Backup:
    kind = kind_of(database_url)
    try:
        private_dir(to_dir)
    except OSError as exc:
        raise BackupError(f"cannot create the backup folder {to_dir}: {exc.strerror}") from None
    final = _free_name(to_dir, now.astimezone(dt.timezone.utc), SUFFIXES[kind])
    part = final.with_name(final.name + ".part")
    try:
        part.unlink(missing_ok=True)  # left by a copy that was killed
        private_file(part)
        if kind == "sqlite":
            _sqlite_copy(sqlite_path(database_url), part)
        else:
            _pg_dump(database_url, part)
        digest = _sha256(part)
        _fsync(part)
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    checksum = checksum_path(final)
    checksum.unlink(missing_ok=True)
    private_file(checksum)
    checksum.write_text(f"{digest}  {final.name}\n", encoding="ascii")
    _fsync(checksum)
    return Backup(final, final.stat().st_size, digest, prune(to_dir, keep))


def _free_name(folder: Path, moment: dt.datetime, suffix: str) -> Path:
    stamp = moment.strftime("%Y%m%dT%H%M%SZ")
    path, n = folder / f"booking-{stamp}{suffix}", 1
    while path.exists():  # two backups in the same second
        n += 1
        path = folder / f"booking-{stamp}-{n}{suffix}"
    return path


def _sqlite_copy(source: Path, target: Path) -> None:
    if not source.is_file():
        raise BackupError(f"no database file at {source}")
    src = sqlite3.connect(source, timeout=BUSY_MS / 1000)
    dst = sqlite3.connect(target)
    try:
        copies.wait_for_locks(src, BUSY_MS)
        src.backup(dst)  # all pages in one step: one read transaction, one moment
        # One self-contained file (no -wal beside it), checked before it counts as a backup.
        copies.journal_mode(dst, "DELETE")
        result = copies.integrity(dst)
        if result != "ok":
            raise BackupError(f"the copy failed SQLite's integrity check: {result}")
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite could not copy {source}: {exc}") from None
    finally:
        dst.close()
        src.close()


def prune(folder: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` backups in `folder` (and their checksum files)."""
    found = []
    for path in folder.iterdir():
        m = BACKUP_NAME.match(path.name)
        if m:
            found.append(((m.group(1), int(m.group(2) or 1)), path))
    found.sort()
    old = [path for _, path in found[:max(len(found) - keep, 0)]]
    for path in old:
        path.unlink(missing_ok=True)
        checksum_path(path).unlink(missing_ok=True)
    return old


def backups(folder: Path) -> list[Path]:
    """The backups in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = [(BACKUP_NAME.match(p.name), p) for p in folder.iterdir()]
    return [p for _, p in sorted(((m.group(1), int(m.group(2) or 1)), p) for m, p in found if m)]


# ---- checksums


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def verify(path: Path) -> str:
    """The file's sha256 when it matches the `.sha256` file beside it; BackupError otherwise."""
    if not path.is_file():
        raise BackupError(f"no such file: {path}")
    checksum = checksum_path(path)
    if not checksum.is_file():
        raise BackupError(f"no checksum file {checksum.name} beside {path.name}: it cannot be "
                          "verified, so it is not restored")
    words = checksum.read_text(encoding="ascii", errors="replace").split()
    expected = words[0].lower() if words else ""
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise BackupError(f"{checksum.name} does not hold a sha256 checksum")
    actual = _sha256(path)
    if actual != expected:
        raise BackupError(f"{path.name} does not match its checksum ({checksum.name}): the file "
                          "is damaged or was changed; nothing restored")
    return actual


# ---- restore


async def held_rows(database_url: str) -> dict[str, int]:
    """Rows in the WATCHED tables of the database (tables not there count 0)."""
    if kind_of(database_url) == "sqlite":
        return await asyncio.to_thread(_sqlite_held, sqlite_path(database_url))
    return await _pg_held(database_url)


def _sqlite_held(path: Path) -> dict[str, int]:
    held = dict.fromkeys(WATCHED, 0)
    if not path.is_file() or path.stat().st_size == 0:
        return held
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_MS / 1000)
    try:
        tables = copies.sqlite_tables(conn)
        for table in WATCHED:
            if table in tables:
                held[table] = copies.sqlite_count(conn, table)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a database SQLite can read: {exc}") from None
    finally:
        conn.close()
    return held


async def _pg_held(database_url: str) -> dict[str, int]:
    import asyncpg

    held = dict.fromkeys(WATCHED, 0)
    url = urlsplit(database_url)._replace(scheme="postgresql", query="").geturl()
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupError(f"cannot connect to the database: {exc}") from None
    try:
        tables = await copies.pg_tables(conn)
        for table in WATCHED:
            if table in tables:
                held[table] = await copies.pg_count(conn, table)
    finally:
        await conn.close()
    return held


async def restore(database_url: str, path: str | Path, *, force: bool = False) -> Restored:
    """Put the backup at `path` into the database, after checking its checksum; refuse (NotEmpty)
    a database that holds data unless `force`. The schema is brought up to date afterwards by the
    caller (models/db/setup.py: init_db())."""
    path = Path(path)
    kind = kind_of(database_url)
    try:
        await asyncio.to_thread(verify, path)
    except OSError as exc:  # a file it may not read
        raise BackupError(f"{exc.strerror or exc}: {path}") from None
    if path.suffix != SUFFIXES[kind]:
        made = "SQLite" if path.suffix == ".sqlite3" else "PostgreSQL" if path.suffix == ".pgdump" else "unknown"
        raise BackupError(f"{path.name} is a {made} backup; DATABASE_URL is a "
                          f"{'SQLite' if kind == 'sqlite' else 'PostgreSQL'} database")
    try:
        held = await held_rows(database_url)
    except BackupError:
        if not force or kind != "sqlite":
            raise
        held = {}
        _set_aside(sqlite_path(database_url))  # a damaged file: kept beside, for the curious
    if any(held.values()) and not force:
        raise NotEmpty(held)
    try:
        if kind == "sqlite":
            await asyncio.to_thread(_sqlite_restore, path, sqlite_path(database_url))
        else:
            await asyncio.to_thread(_pg_restore, database_url, path)
    except OSError as exc:
        raise BackupError(f"{exc.strerror or exc}: {exc.filename or database_url}") from None
    return Restored(path, held)


def _set_aside(target: Path) -> None:
    for path in (target, target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        if path.exists():
            os.replace(path, path.with_name(path.name + ".damaged"))


def _sqlite_restore(source: Path, target: Path) -> None:
    if not target.parent.is_dir():
        private_dir(target.parent)
    if not target.exists():
        private_file(target)  # its -wal and -shm take its mode
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        if copies.integrity(src) != "ok":
            raise BackupError(f"{source.name} fails SQLite's integrity check; nothing restored")
        dst = sqlite3.connect(target, timeout=BUSY_MS / 1000)
        try:
            copies.wait_for_locks(dst, BUSY_MS)
            src.backup(dst)  # page by page under the target's write lock: all or nothing
            copies.journal_mode(dst, "WAL")  # as the service runs it
        finally:
            dst.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"SQLite could not restore {source.name}: {exc}") from None
    finally:
        src.close()


# ---- PostgreSQL through its own tools


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client, "
                          "the same major version as the server or newer)")
    return found


@contextmanager
def _conninfo(database_url: str):
    """A libpq connection string for the URL; its password in a private passfile meanwhile."""
    url = urlsplit(database_url)
    parts = {"host": url.hostname or "", "port": str(url.port or ""),
             "user": unquote(url.username or ""), "dbname": unquote(url.path.lstrip("/"))}
    passfile = None
    if url.password is not None:
        fd, passfile = tempfile.mkstemp(prefix="booking-pgpass-")  # mode 0600
        escaped = unquote(url.password).replace("\\", "\\\\").replace(":", "\\:")
        with os.fdopen(fd, "w") as f:
            f.write(f"*:*:*:*:{escaped}\n")
        parts["passfile"] = passfile
    quoted = " ".join(f"{k}='{_quote(v)}'" for k, v in parts.items() if v)
    try:
        yield quoted
    finally:
        if passfile:
            os.unlink(passfile)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=6 * 3600)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} took more than 6 hours; stopped") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raise BackupError(f"{what} failed: {lines[-1] if lines else f'exit {done.returncode}'}")


def _pg_dump(database_url: str, target: Path) -> None:
    pg_dump = _tool("pg_dump")
    with _conninfo(database_url) as conninfo:
        _run([pg_dump, "--format=custom", "--no-owner", "--no-privileges",
              f"--file={target}", f"--dbname={conninfo}"], "pg_dump")
    _run([_tool("pg_restore"), "--list", str(target)], "pg_restore --list (reading the dump back)")


def _pg_restore(database_url: str, source: Path) -> None:
    pg_restore = _tool("pg_restore")
    with _conninfo(database_url) as conninfo:
        # One transaction: a restore that fails half-way leaves the database as it was.
        _run([pg_restore, "--clean", "--if-exists", "--no-owner", "--no-privileges",
              "--single-transaction", "--exit-on-error", f"--dbname={conninfo}", str(source)],
             "pg_restore")
