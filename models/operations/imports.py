"""CSV imports of sites and first-dose records, streamed: a file of a million rows in flat memory.

A file is read twice, a line at a time, never whole:
1. the check pass reads it all once: UTF-8, well-formed CSV, the header's columns, the number of
   rows. A whole-file problem is reported here, before anything is written (as it always was).
2. the import pass checks each row (every reason, line numbers as in the file) and writes the
   good ones in batches of BATCH rows: one transaction a batch, holding the batch's rows, its
   refusals (ImportReject) and the run's counts (ImportRun), so the counts anyone sees always
   match what is written, and a crash leaves whole batches only. Importing again is the way to
   finish an interrupted run: a row already written counts as unchanged.
A source that cannot be read twice (a pipe, /dev/stdin) is first copied to a temporary file.

Memory: two batches of rows (one written while the next is checked), the first KEPT_ERRORS
refusals, SQLite's page cache (SQLITE_CACHE_KB while the import runs), and, to find an ID number
repeated in the file, 64 bits of each row's keyed hash with its line number (about 24 bytes a
row: 24 MB for a million rows); never an ID number itself.
"""
from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import logging
import os
import re
import shutil
import tempfile
import unicodedata
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, BinaryIO, Callable, Iterator

from tortoise import connections
from tortoise.exceptions import BaseORMException
from tortoise.transactions import in_transaction

from ..db import bulk
from ..db.tables import ImportReject, ImportRun, Resident, Site, StaffUser
from ..people import pii
from ..people.residents import upsert_resident
from ..rules.tianhe import normalise_subdistrict

log = logging.getLogger("booking.imports")

SITES, FIRST_DOSES = "sites", "first_doses"  # ImportRun.kind
SITE_COLUMNS = ("code", "name", "subdistrict", "address")  # `phone` may be left out
DOSE_COLUMNS = ("name", "id_number", "phone", "first_dose_date", "site_code")  # + vaccine, subdistrict

BATCH = 5000  # rows checked and written together, in one transaction; the run's counts move by this
KEPT_ERRORS = 1000  # refusals kept in ImportResult.errors (all of them go to ImportReject and on_reject)
MAX_LINE = 100_000  # characters on one physical line: a real row has about 100
IN_CLAUSE = 500  # ids in one `IN (…)` look-up
YIELD_EVERY = 100  # rows checked between two chances for the event loop to serve other requests
SQLITE_CACHE_KB = 65536  # SQLite's page cache while an import runs (_sqlite_cache)

# Inactivated vaccines were first given in China in mid-2020: an earlier date is a typo.
EARLIEST_FIRST_DOSE = dt.date(2020, 1, 1)
SITE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# YYYY-MM-DD; also YYYY/M/D, which is how Excel shows and re-saves dates in a Chinese locale.
DATE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$")
LONG_NUMBER = re.compile(r"\d{7,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

ID_REASONS = {
    "length": "id_number must be 18 characters",
    "format": "id_number must be 17 digits followed by a digit or X",
    "birth_date": "id_number birth date is not a real date",
    "checksum": "id_number check character is wrong",
    "region": "id_number area code (first 6 digits) is not a known area code",
}


class ImportFileError(ValueError):
    """The whole file cannot be imported (unreadable, not UTF-8, a required column missing), or an
    import stopped part-way. `code` names the problem for a page to explain in the user's
    language (missing_file, unreadable, not_utf8, bad_csv, long_line, missing_columns, empty,
    interrupted); `detail` is the bit it may show (column names, a line, rows written)."""

    def __init__(self, message: str, code: str = "unreadable", detail: str = ""):
        super().__init__(message)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class RowError:
    line: int  # physical line in the file; the header is line 1
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rows: int = 0  # data rows done so far (blank lines are not rows)
    total: int = 0  # data rows in the file, known after the check pass
    errors: list[RowError] = field(default_factory=list)  # the first KEPT_ERRORS refusals
    run_id: int | None = None

    def count(self, outcome: str, n: int = 1) -> None:
        setattr(self, outcome, getattr(self, outcome) + n)

    def reject(self, error: RowError) -> None:
        self.rejected += 1
        if len(self.errors) < KEPT_ERRORS:
            self.errors.append(error)

    def summary(self) -> str:
        return (f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.rejected} rejected")


Progress = Callable[[ImportResult], None]
Reject = Callable[[RowError], None]


# ---- reading: a line at a time


@contextlib.contextmanager
def _opened(source) -> Iterator[tuple[BinaryIO, str]]:
    """The source (a path, or a binary file object) as a seekable binary file, and its name."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise ImportFileError(f"{path}: no such file", "missing_file") from None
        except IsADirectoryError:
            raise ImportFileError(f"{path}: is a directory, not a CSV file", "unreadable") from None
        except OSError as exc:
            raise ImportFileError(f"{path}: cannot be read ({exc.strerror})", "unreadable") from None
        name, owned = path.name, handle
    else:
        handle, owned = source, None
        name = Path(str(getattr(source, "name", "") or "input")).name
    try:
        if handle.seekable():
            yield handle, name
        else:  # a pipe: keep a copy on disk (not in memory) to read it twice
            with tempfile.TemporaryFile(prefix="import-") as spool:
                shutil.copyfileobj(handle, spool, 1024 * 1024)
                spool.seek(0)
                yield spool, name
    finally:
        if owned is not None:
            owned.close()


def _lines(text: io.TextIOWrapper, name: str) -> Iterator[str]:
    while True:
        line = text.readline(MAX_LINE)
        if not line:
            return
        if len(line) >= MAX_LINE and not line.endswith(("\n", "\r")):
            raise ImportFileError(f"{name}: a line is longer than {MAX_LINE} characters; "
                                  "is this a CSV file?", "long_line")
        yield line


def read_csv(binary: BinaryIO, name: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a CSV file as (line number, {column: cell}), read a line at a time.

    UTF-8 with or without a BOM; blank lines skipped; the first other row is the header (names in
    any case); cells trimmed. Raises ImportFileError when the file cannot be read as such: at its
    start for a missing column, at the end for an empty file, where it is met for a bad byte.
    """
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(_lines(text, name))
        header: list[str] | None = None
        while True:
            line = reader.line_num + 1  # where the next row starts (blank lines count)
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise ImportFileError(f"{name}: line {line}: not valid CSV ({exc})", "bad_csv",
                                      str(line)) from None
            except UnicodeDecodeError:
                raise ImportFileError(
                    f"{name}: not UTF-8 text; in Excel use Save As \"CSV UTF-8\"", "not_utf8") from None
            cells = [c.strip() for c in cells]
            if not any(cells):
                continue
            if header is None:
                header = [c.lower() for c in cells]
                missing = [c for c in required if c not in header]
                if missing:
                    raise ImportFileError(f"{name}: missing column(s) {', '.join(missing)}; "
                                          f"the header must name {', '.join(required)}",
                                          "missing_columns", ", ".join(missing))
                continue
            yield line, {col: (cells[i] if i < len(cells) else "") for i, col in enumerate(header)}
        if header is None:
            raise ImportFileError(f"{name}: the file is empty (no header row)", "empty")
    finally:
        text.detach()  # the binary file stays open: its owner closes it


async def _count_rows(binary: BinaryIO, name: str, required: tuple[str, ...]) -> int:
    """The check pass: read the whole file once (raising on a whole-file problem), count its rows."""
    start = binary.tell()
    rows = 0
    for rows, _ in enumerate(read_csv(binary, name, required), 1):
        if rows % (50 * YIELD_EVERY) == 0:
            await asyncio.sleep(0)  # a big file must not hold up the server's other requests
    binary.seek(start)
    return rows


def check_header(source, required: tuple[str, ...] = DOSE_COLUMNS) -> None:
    """Read only the start of a file: raise ImportFileError if its encoding (as far as the first
    few kilobytes show), its header or its emptiness already refuses it."""
    with _opened(source) as (binary, name):
        rows = read_csv(binary, name, required)
        try:
            next(rows, None)
        finally:
            rows.close()


def safe_filename(name: str) -> str:
    """A file name fit to store and show: no folders, no control characters, long digit runs
    (an ID or phone number someone named the file after) starred out."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = _CONTROL.sub("", unicodedata.normalize("NFKC", base)).strip()
    return LONG_NUMBER.sub(lambda m: "*" * len(m.group()), base)[:100] or "upload.csv"


class _SeenIds:
    """ID numbers met earlier in the file, for "appears again (first on line N)": 64 bits of the
    keyed hash and the line, in an open-addressing table of two flat arrays (12 bytes a slot, at
    most half full). Two different numbers sharing 64 bits is a chance of about n²/2⁶⁵
    (3 in 100 million for a million rows)."""

    def __init__(self, expected: int = 0):
        self._used = 0
        self._make(1 << max(10, (2 * expected).bit_length()))

    def _make(self, size: int) -> None:
        self._keys = array("Q", bytes(8 * size))
        self._lines = array("I", bytes(4 * size))  # 0: an empty slot; lines up to 4 billion
        self._mask = size - 1

    def first_line(self, keyed_hash: str, line: int) -> int | None:
        """The line this number was first met on; None the first time (then it is remembered)."""
        key = int(keyed_hash[:16], 16)
        i = key & self._mask
        while self._lines[i]:
            if self._keys[i] == key:
                return self._lines[i]
            i = (i + 1) & self._mask
        self._keys[i], self._lines[i] = key, line
        self._used += 1
        if 2 * self._used > self._mask:
            self._grow()
        return None

    def _grow(self) -> None:
        keys, lines = self._keys, self._lines
        self._make(2 * len(keys))
        for key, line in zip(keys, lines):
            if line:
                i = key & self._mask
                while self._lines[i]:
                    i = (i + 1) & self._mask
                self._keys[i], self._lines[i] = key, line


# ---- the run: created, moved on batch by batch, finished


def _utc_now() -> dt.datetime:
    # Durations (rows a second) are measured against started_at, which the database stamps in real time.
    return dt.datetime.now(dt.timezone.utc)


async def start_run(kind: str, filename: str, user: StaffUser | None = None) -> ImportRun:
    """Record an import about to start (running, no rows yet)."""
    return await ImportRun.create(kind=kind, filename=safe_filename(filename), user=user)


async def start_first_dose_upload(path: str | Path, *, filename: str,
                                  user: StaffUser | None) -> ImportRun:
    """An uploaded file, checked as far as its start tells (encoding, header, empty), recorded as
    a running import; import_first_doses(…, run=…) then imports it. Raises ImportFileError."""
    check_header(path, DOSE_COLUMNS)
    return await start_run(FIRST_DOSES, filename, user)


async def _save_progress(run_id: int, result: ImportResult, counts: Counter, rows: int,
                         rejects: list[RowError], conn=None) -> None:
    if rejects:
        await ImportReject.bulk_create(
            [ImportReject(run_id=run_id, line=e.line, reason=e.reason[:500]) for e in rejects],
            using_db=conn)
    await ImportRun.filter(id=run_id).using_db(conn).update(
        rows=result.rows + rows, rejected=result.rejected + len(rejects),
        **{k: getattr(result, k) + counts[k] for k in ("created", "updated", "unchanged")})


def _apply(result: ImportResult, counts: Counter, rows: int, rejects: list[RowError]) -> None:
    result.rows += rows
    for outcome, n in counts.items():
        result.count(outcome, n)
    for error in rejects:
        result.reject(error)


async def _finish(run_id: int, result: ImportResult, error: ImportFileError | None = None) -> None:
    await ImportRun.filter(id=run_id).update(
        status=ImportRun.FAILED if error else ImportRun.DONE, finished_at=_utc_now(),
        error=f"{error.code}:{error.detail}"[:300] if error else "", rows=result.rows,
        created=result.created, updated=result.updated, unchanged=result.unchanged,
        rejected=result.rejected)


def run_failure(run: ImportRun) -> tuple[str, str]:
    """Why a failed run failed: (code, detail), as ImportFileError gave them; ("", "") if it did not."""
    code, _, detail = (run.error or "").partition(":")
    return code, detail


async def _run_import(kind: str, source, required: tuple[str, ...], prepare, *,
                      run: ImportRun | None, user: StaffUser | None,
                      on_progress: Progress | None, on_reject: Reject | None) -> ImportResult:
    """Open, check, import batch by batch, and finish the run: done or failed.

    prepare(run_id, batch, result) works a batch out and returns write(), which writes it with
    the run's counts and returns its refusals. One batch is written while the next is worked
    out (the database's work overlaps Python's); batches are written one after the other, in
    order, each after the one before it is done."""
    async with _sqlite_cache():
        return await _import_batches(kind, source, required, prepare, run=run, user=user,
                                     on_progress=on_progress, on_reject=on_reject)


@contextlib.asynccontextmanager
async def _sqlite_cache():
    """On SQLite, a larger page cache for the connection while an import runs (restored after):
    new records go into three indexes at random places (the ID hash, the phone hash, the
    reports'), and past a few hundred thousand records the default 2 MB cache reads most of
    their pages again for every batch. Memory: at most SQLITE_CACHE_KB, whatever the file's size."""
    conn = connections.get("default")
    if conn.capabilities.dialect != "sqlite" or not SQLITE_CACHE_KB:
        yield
        return
    _, rows = await conn.execute_query("PRAGMA cache_size")
    before = int(rows[0][0])
    if before >= 0 or -before >= SQLITE_CACHE_KB:  # set in pages, or as large already: leave it
        yield
        return
    await conn.execute_script(f"PRAGMA cache_size = -{int(SQLITE_CACHE_KB)}")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await conn.execute_script(f"PRAGMA cache_size = {before}")


async def _import_batches(kind: str, source, required: tuple[str, ...], prepare, *,
                          run: ImportRun | None, user: StaffUser | None,
                          on_progress: Progress | None, on_reject: Reject | None) -> ImportResult:
    result = ImportResult()
    pending: asyncio.Future | None = None  # the batch being written

    async def written() -> None:
        nonlocal pending
        if pending is not None:
            task, pending = pending, None
            rejects = await task
            if on_reject:
                for error in rejects:
                    on_reject(error)
            if on_progress:
                on_progress(result)

    async def one_batch(batch) -> None:
        nonlocal pending
        write = await prepare(run.id, batch, result)
        await written()
        pending = asyncio.ensure_future(write())

    try:
        with _opened(source) as (binary, name):
            if run is None:
                run = await start_run(kind, name, user)
            result.run_id = run.id
            result.total = await _count_rows(binary, name, required)
            if on_progress:
                on_progress(result)
            batch: list[tuple[int, dict[str, str]]] = []
            rows = read_csv(binary, name, required)
            try:
                for item in rows:
                    batch.append(item)
                    if len(batch) == BATCH:
                        await one_batch(batch)
                        batch = []
                if batch:
                    await one_batch(batch)
                await written()
            except BaseException as exc:
                if pending is not None:  # the batch being written ends first (or stops with us)
                    if isinstance(exc, asyncio.CancelledError):
                        pending.cancel()
                    with contextlib.suppress(BaseException):
                        await written()
                raise
            finally:
                rows.close()
    except ImportFileError as exc:
        if result.rows:  # only if the file changed between the two passes
            exc = ImportFileError(f"{exc}; stopped after {result.rows} rows, which were "
                                  "written", "interrupted", str(result.rows))
        if run is not None:
            await _finish(run.id, result, exc)
        raise exc from None
    except BaseException as exc:  # Ctrl-C, the server stopping, the database gone
        if run is not None:
            if not isinstance(exc, asyncio.CancelledError):
                log.error("import run %s stopped after %s rows: %s", run.id, result.rows,
                          type(exc).__name__)
            with contextlib.suppress(Exception):
                await _finish(run.id, result, ImportFileError(
                    "stopped", "interrupted", str(result.rows)))
        raise
    await _finish(run.id, result)
    return result


# ---- sites


async def import_sites(source, *, run: ImportRun | None = None, user: StaffUser | None = None,
                       on_progress: Progress | None = None,
                       on_reject: Reject | None = None) -> ImportResult:
    """Create or update the sites listed in a CSV file (a path or a binary file object)."""
    seen: dict[str, int] = {}  # site codes: a district has dozens of sites

    async def prepare(run_id: int, batch, result: ImportResult):
        return lambda: write_batch(run_id, list(batch), result)

    async def write_batch(run_id: int, batch, result: ImportResult) -> list[RowError]:
        rejects: list[RowError] = []
        counts: Counter = Counter()
        for line, row in batch:
            reasons, values = _check_site(row)
            code = values.get("code")
            if code in seen:
                reasons.append(f"site code {code} appears again (first on line {seen[code]})")
            elif code:
                seen[code] = line
            if reasons:
                rejects.append(RowError(line, "; ".join(reasons)))
                continue
            try:
                counts[await _upsert_site(values)] += 1
            except BaseORMException:
                rejects.append(RowError(line, "the database refused this row"))
        await _save_progress(run_id, result, counts, len(batch), rejects)
        _apply(result, counts, len(batch), rejects)
        return rejects

    return await _run_import(SITES, source, SITE_COLUMNS, prepare, run=run, user=user,
                             on_progress=on_progress, on_reject=on_reject)


def _check_site(row: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    reasons: list[str] = []
    code = row["code"]
    if not SITE_CODE.match(code):
        reasons.append("code is empty" if not code else
                       "code must be up to 32 letters, digits, '-' or '_'")
    subdistrict = normalise_subdistrict(row["subdistrict"])
    if not subdistrict:
        reasons.append("subdistrict is empty" if not row["subdistrict"] else
                       f"subdistrict {_quote(row['subdistrict'])} is not one of Tianhe's 21 sub-districts")
    for column, limit in (("name", 100), ("address", 200), ("phone", 40)):
        value = row.get(column, "")
        if not value and column != "phone":
            reasons.append(f"{column} is empty")
        elif len(value) > limit:
            reasons.append(f"{column} is longer than {limit} characters")
    values = {"code": code, "name": row["name"], "subdistrict": subdistrict or "",
              "address": row["address"], "phone": row.get("phone", "")}
    return reasons, values


async def _upsert_site(values: dict[str, str]) -> str:
    site = await Site.get_or_none(code=values["code"])
    if site is None:
        await Site.create(**values)
        return "created"
    changed = {k: v for k, v in values.items() if getattr(site, k) != v}
    if not changed:
        return "unchanged"
    for key, value in changed.items():
        setattr(site, key, value)
    await site.save(update_fields=list(changed))
    return "updated"


# ---- first doses


async def import_first_doses(vault: pii.Vault, source, *, today: dt.date,
                             run: ImportRun | None = None, user: StaffUser | None = None,
                             on_progress: Progress | None = None,
                             on_reject: Reject | None = None) -> ImportResult:
    """Create or update first-dose records from a CSV file (a path or a binary file object);
    re-importing the same file changes nothing. Streams: see the module's docstring.

    The run (ImportRun) is `run` or a new one; its counts move after each batch. on_progress(result)
    is called after the check pass (result.total known) and each batch; on_reject(error) for each
    refused row, in line order. A whole-file problem raises ImportFileError, nothing written.
    """
    sites = {site.code: site for site in await Site.all()}
    seen: _SeenIds | None = None

    async def prepare(run_id: int, batch, result: ImportResult):
        """Check the batch's rows, look up who is already there, encrypt what is new; return
        the write of the batch."""
        nonlocal seen
        if seen is None:
            seen = _SeenIds(result.total)
        rejects: list[RowError] = []
        good: list[tuple[int, dict, str]] = []
        for n, (line, row) in enumerate(batch, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a batch is some seconds of work: let the server answer others
            reasons, values = _check_first_dose(row, sites, today)
            id_hash = ""
            if number := values.get("id_number"):
                id_hash = vault.keyed_hash(number)
                first = seen.first_line(id_hash, line)
                if first is not None:
                    reasons.append(f"id_number {pii.mask_id(number)} appears again (first on line {first})")
            if reasons:
                rejects.append(RowError(line, "; ".join(reasons)))
            else:
                good.append((line, values, id_hash))
        counts, new, changes = await _prepare_residents(vault, good)
        rows = len(batch)

        async def write() -> list[RowError]:
            nonlocal counts
            try:
                await _write_residents(run_id, new, changes, result, counts, rows, rejects)
            except BaseORMException:
                # Someone else wrote one of these people meanwhile (or the database refused a
                # value): the batch again, row by row, so that one row blocks nobody.
                counts = Counter()
                for line, values, _ in good:
                    try:
                        counts[(await upsert_resident(vault, **_upsert_values(values)))[1]] += 1
                    except BaseORMException:
                        rejects.append(RowError(line, "the database refused this row"))
                rejects.sort(key=lambda e: e.line)
                await _save_progress(run_id, result, counts, rows, rejects)
            _apply(result, counts, rows, rejects)
            return rejects

        return write

    return await _run_import(FIRST_DOSES, source, DOSE_COLUMNS, prepare, run=run, user=user,
                             on_progress=on_progress, on_reject=on_reject)


# What upsert_resident() compares on an existing record (and writes when one differs).
COMPARED = ("name", "phone_hash", "phone_masked", "first_dose_date", "first_site_id", "vaccine",
            "subdistrict")


def _resident_fields(vault: pii.Vault, values: dict) -> dict:
    """What upsert_resident() compares and writes for an existing record, for a batch."""
    site: Site = values["site"]
    return dict(
        name=values["name"].strip(),
        phone_hash=vault.keyed_hash(values["phone"]),
        phone_masked=pii.mask_phone(values["phone"]),
        first_dose_date=values["first_dose_date"],
        first_site_id=site.id,
        vaccine=values["vaccine"].strip(),
        subdistrict=(values["subdistrict"] or site.subdistrict).strip(),
    )


async def _residents_by_hash(hashes: list[str]) -> dict[str, dict]:
    """The records already there for these ID hashes: their id and the COMPARED values (plain
    values, not Model objects: re-importing a million rows reads a million records)."""
    found: dict[str, dict] = {}
    for i in range(0, len(hashes), IN_CLAUSE):
        for resident in await Resident.filter(id_hash__in=hashes[i:i + IN_CLAUSE]).values(
                "id", "id_hash", *COMPARED):
            found[resident["id_hash"]] = resident
    return found


async def _prepare_residents(vault: pii.Vault, good: list[tuple[int, dict, str]]):
    """What a batch's good rows change, as upsert_resident() would: (counts of created, updated,
    unchanged; new records as rows; (id, changed columns) of the others), worked out before the
    batch's transaction (hashes, encryption, comparing), which then only writes."""
    existing = await _residents_by_hash([id_hash for _, _, id_hash in good])
    counts: Counter = Counter()
    new: list[dict] = []
    changes: list[tuple[int, dict]] = []
    for n, (_, values, id_hash) in enumerate(good, 1):
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        fields = _resident_fields(vault, values)
        old = existing.get(id_hash)
        if old is None:
            number, phone = values["id_number"], values["phone"]
            fields.update(id_hash=id_hash, id_cipher=vault.encrypt(number), id_masked=pii.mask_id(number),
                          birth_date=values["birth_date"], phone_cipher=vault.encrypt(phone))
            new.append(fields)
            counts["created"] += 1
            continue
        changed = {k: v for k, v in fields.items() if old[k] != v}
        if not changed:
            counts["unchanged"] += 1
            continue
        if "phone_hash" in changed:
            changed["phone_cipher"] = vault.encrypt(values["phone"])
        changes.append((old["id"], changed))
        counts["updated"] += 1
    return counts, new, changes


async def _write_residents(run_id: int, new: list[dict], changes: list[tuple[int, dict]],
                           result: ImportResult, counts: Counter, rows: int,
                           rejects: list[RowError]) -> None:
    """A batch's records (new ones with one INSERT … executemany, changed ones by id), its
    refusals and the run's counts, in one transaction."""
    async with in_transaction() as conn:
        if new:
            await bulk.Rows(Resident, conn).insert(new)
        for resident_id, changed in changes:
            # As upsert_resident()'s save(update_fields=…): the changed columns only.
            await Resident.filter(id=resident_id).using_db(conn).update(**changed)
        await _save_progress(run_id, result, counts, rows, rejects, conn)


def _upsert_values(values: dict) -> dict:
    """The checked values as upsert_resident() takes them (it works the birth date out itself)."""
    return {k: v for k, v in values.items() if k != "birth_date"}


def _check_first_dose(row: dict[str, str], sites: dict[str, Site], today: dt.date):
    """Return (reasons the row is refused, the values for upsert_resident)."""
    reasons: list[str] = []
    values: dict = {"name": row["name"], "vaccine": row.get("vaccine", "")}
    if not row["name"]:
        reasons.append("name is empty")
    elif len(row["name"]) > 50:
        reasons.append("name is longer than 50 characters")
    if len(values["vaccine"]) > 50:
        reasons.append("vaccine is longer than 50 characters")

    first_dose = _check_date(row["first_dose_date"], today, reasons)
    values["first_dose_date"] = first_dose

    if not row["id_number"]:
        reasons.append("id_number is empty")
    else:
        try:
            values["id_number"] = pii.validate_id(row["id_number"])
        except pii.InvalidIdNumber as exc:
            reason = ID_REASONS.get(exc.reason, "id_number is not a valid resident ID number")
            if exc.reason == "length":
                reason += f", not {len(pii.normalise_id(row['id_number']))}"
            reasons.append(reason)
        else:
            born = values["birth_date"] = pii.birth_date(values["id_number"])
            if born > (first_dose or today):
                reasons.append("id_number birth date is after the first dose")

    if not row["phone"]:
        reasons.append("phone is empty")
    else:
        try:
            values["phone"] = pii.normalise_phone(row["phone"])
        except pii.InvalidPhone:
            reasons.append("phone is not a mainland mobile number (11 digits starting with 1)")

    code = row["site_code"]
    values["site"] = sites.get(code)
    if not code:
        reasons.append("site_code is empty")
    elif values["site"] is None:
        reasons.append(f"unknown site code {_quote(code)}")

    subdistrict = row.get("subdistrict", "")
    values["subdistrict"] = normalise_subdistrict(subdistrict) if subdistrict else ""
    if values["subdistrict"] is None:
        reasons.append(f"subdistrict {_quote(subdistrict)} is not one of Tianhe's 21 sub-districts")
    return reasons, values


def _quote(text: str) -> str:
    """A cell value fit to print: a long run of digits may be an ID number or phone put in the wrong column."""
    text = text[:32]
    return LONG_NUMBER.sub(lambda m: "*" * len(m.group()), text)


def _check_date(text: str, today: dt.date, reasons: list[str]) -> dt.date | None:
    if not text:
        reasons.append("first_dose_date is empty")
        return None
    match = DATE.match(text)
    try:
        day = dt.date(*map(int, match.groups())) if match else None
    except ValueError:
        day = None
    if day is None:
        # Quote the value only when it looks like a date: a misplaced ID number or phone must not be echoed.
        shown = f" {text}" if match else ""
        reasons.append(f"first_dose_date{shown} is not a date (YYYY-MM-DD)")
    elif day > today:
        reasons.append(f"first_dose_date {day} is in the future")
    elif day < EARLIEST_FIRST_DOSE:
        reasons.append(f"first_dose_date {day} is before vaccination began ({EARLIEST_FIRST_DOSE})")
    else:
        return day
    return None


# ---- for the console: runs and their refusals


async def recent_runs(limit: int = 20) -> list[ImportRun]:
    """The latest imports, newest first, from the browser and the command line alike."""
    return await ImportRun.all().order_by("-id").limit(limit).select_related("user")


async def find_run(run_id: int | None) -> ImportRun | None:
    return await ImportRun.filter(id=run_id).select_related("user").first() if run_id else None


async def reject_rows(run_id: int, *, page: int = 1000) -> AsyncIterator[tuple[int, str]]:
    """A run's refused rows as (line, reason), in line order, read a page at a time."""
    after = 0
    while True:
        rows = await (ImportReject.filter(run_id=run_id, id__gt=after).order_by("id").limit(page)
                      .values_list("id", "line", "reason"))
        for row_id, line, reason in rows:
            yield line, reason
        if len(rows) < page:
            return
        after = rows[-1][0]
