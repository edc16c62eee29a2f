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

The command line's import (import_first_doses(command_line=True), run.py) has the rows checked,
hashed and encrypted by COMMAND_LINE_WORKERS worker processes while this process reads the file
and writes (both cores work): batches of COMMAND_LINE_BATCH, at most one being checked per
worker, one being worked out and one being written; a larger page cache (COMMAND_LINE_CACHE_KB);
commits that do not wait for the disk. The console's import (in the server) does it all in the
server's process. Both write the same records and refuse the same lines for the same reasons.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import csv
import datetime as dt
import io
import logging
import multiprocessing
import os
import re
import shutil
import tempfile
import unicodedata
from array import array
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, BinaryIO, Callable, Iterator, NamedTuple

from tortoise import connections
from tortoise.exceptions import BaseORMException
from tortoise.transactions import in_transaction

from ..db import bulk
from ..db.tables import ImportReject, ImportRun, Resident, Site, StaffUser
from ..people import pii
from ..people.residents import upsert_resident
from ..rules.tianhe import normalise_subdistrict
from ..staff.vocabulary import Reason, encode_reasons, reason

log = logging.getLogger("booking.imports")

SITES, FIRST_DOSES = "sites", "first_doses"  # ImportRun.kind
SITE_COLUMNS = ("code", "name", "subdistrict", "address")  # `phone` may be left out
DOSE_COLUMNS = ("name", "id_number", "phone", "first_dose_date", "site_code")  # + vaccine, subdistrict

BATCH = 5000  # rows checked and written together, in one transaction; the run's counts move by this
COMMAND_LINE_BATCH = 10_000  # the same for the command line's import (import_first_doses(command_line=True))
COMMAND_LINE_WORKERS = 2  # processes that check, hash and encrypt the command line's rows
KEPT_ERRORS = 1000  # refusals kept in ImportResult.errors (all of them go to ImportReject and on_reject)
MAX_LINE = 100_000  # characters on one physical line: a real row has about 100
IN_CLAUSE = 500  # ids in one `IN (…)` look-up
YIELD_EVERY = 100  # rows checked between two chances for the event loop to serve other requests
SQLITE_CACHE_KB = 65536  # SQLite's page cache while an import runs (_sqlite_settings)
# The same for the command line's import: a million records' two hash indexes (some 150 MB) fit.
COMMAND_LINE_CACHE_KB = 262144

# Inactivated vaccines were first given in China in mid-2020: an earlier date is a typo.
EARLIEST_FIRST_DOSE = dt.date(2020, 1, 1)
SITE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# YYYY-MM-DD; also YYYY/M/D, which is how Excel shows and re-saves dates in a Chinese locale.
DATE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$")
LONG_NUMBER = re.compile(r"\d{7,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Why an ID number is refused (pii.InvalidIdNumber.reason): the code stored, the command line's words.
ID_REASONS = {
    "length": ("id_length", "id_number must be 18 characters"),
    "format": ("id_format", "id_number must be 17 digits followed by a digit or X"),
    "birth_date": ("id_birth_date", "id_number birth date is not a real date"),
    "checksum": ("id_checksum", "id_number check character is wrong"),
    "region": ("id_region", "id_number area code (first 6 digits) is not a known area code"),
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
    reason: str  # in English, for the command line (interfaces.md: line number and reason)
    codes: str = ""  # what ImportReject keeps: the reasons as codes (vocabulary.encode_reasons)

    @classmethod
    def of(cls, line: int, reasons: list[Reason]) -> "RowError":
        return cls(line, "; ".join(r.text for r in reasons), encode_reasons(reasons))

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


def read_csv(binary: BinaryIO, name: str, required: tuple[str, ...], *,
             header_to: list | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a CSV file as (line number, {column: cell}), read a line at a time.

    UTF-8 with or without a BOM; blank lines skipped; the first other row is the header (names in
    any case); cells trimmed. Raises ImportFileError when the file cannot be read as such: at its
    start for a missing column, at the end for an empty file, where it is met for a bad byte.
    With header_to (a list), the rows are (line number, [cells]) instead, the header's names
    appended to header_to before the first: row_dict(header, cells) makes the same dict.
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
                if header_to is not None:
                    header_to.extend(header)
                continue
            yield line, (cells if header_to is not None else row_dict(header, cells))
        if header is None:
            raise ImportFileError(f"{name}: the file is empty (no header row)", "empty")
    finally:
        text.detach()  # the binary file stays open: its owner closes it


def row_dict(header: list[str], cells: list[str]) -> dict[str, str]:
    return {col: (cells[i] if i < len(cells) else "") for i, col in enumerate(header)}


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
            [ImportReject(run_id=run_id, line=e.line, reason=(e.codes or e.reason)[:500]) for e in rejects],
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
                      on_progress: Progress | None, on_reject: Reject | None,
                      batch_rows: int | None = None, start=None, ahead: int = 0,
                      command_line: bool = False) -> ImportResult:
    """Open, check, import batch by batch, and finish the run: done or failed.

    Each batch of batch_rows rows (BATCH unless told) is first handed to start(header, batch)
    (the worker process's check, begun in the background, of rows as (line, cells), which
    row_dict(header, cells) makes dicts of; without start, the batch as it is), then,
    once `ahead` more have been started, to prepare(run_id, started, result), which works the
    batch out and returns write(), which writes it with the run's counts and returns its
    refusals. One batch is written while the next is worked out (bulk.WriteBehind: the
    database's work overlaps Python's); batches are written one after the other, in order, each
    after the one before it is done."""
    async with _sqlite_settings(command_line):
        return await _import_batches(kind, source, required, prepare, run=run, user=user,
                                     on_progress=on_progress, on_reject=on_reject,
                                     batch_rows=batch_rows, start=start, ahead=ahead)


@contextlib.asynccontextmanager
async def _sqlite_settings(command_line: bool):
    """On SQLite, while an import runs (restored after):
    - a larger page cache for the connection: new records go into three indexes at random
      places (the ID hash, the phone hash, the reports'), and past a few hundred thousand
      records the default 2 MB cache reads most of their pages again for every batch. Memory:
      at most SQLITE_CACHE_KB (COMMAND_LINE_CACHE_KB on the command line, where the server's
      processes are not sharing the machine's memory), whatever the file's size;
    - for the command line only, `synchronous = NORMAL`: in WAL mode a commit no longer waits
      for the disk; a power cut may lose the last batches, never the database's consistency,
      and importing the file again finishes the run (a row already written is unchanged)."""
    conn = connections.get("default")
    if conn.capabilities.dialect != "sqlite":
        yield
        return
    restore: list[str] = []
    try:
        _, rows = await conn.execute_query("PRAGMA cache_size")
        before = int(rows[0][0])
        # Set in pages, or as large already: leave it.
        cache_kb = COMMAND_LINE_CACHE_KB if command_line else SQLITE_CACHE_KB
        if cache_kb and before < 0 and -before < cache_kb:
            await conn.execute_script(f"PRAGMA cache_size = -{int(cache_kb)}")
            restore.append(f"PRAGMA cache_size = {before}")
        if command_line:
            _, rows = await conn.execute_query("PRAGMA synchronous")
            before = int(rows[0][0])
            if before > 1:  # FULL (2) or EXTRA (3)
                await conn.execute_script("PRAGMA synchronous = NORMAL")
                restore.append(f"PRAGMA synchronous = {before}")
        yield
    finally:
        for statement in restore:
            with contextlib.suppress(Exception):
                await conn.execute_script(statement)


async def _import_batches(kind: str, source, required: tuple[str, ...], prepare, *,
                          run: ImportRun | None, user: StaffUser | None,
                          on_progress: Progress | None, on_reject: Reject | None,
                          batch_rows: int | None, start, ahead: int) -> ImportResult:
    result = ImportResult()
    size = batch_rows or BATCH
    started: deque = deque()  # batches begun (start()) and not yet worked out: at most ahead + 1

    def written(rejects: list[RowError]) -> None:
        if on_reject:
            for error in rejects:
                on_reject(error)
        if on_progress:
            on_progress(result)

    try:
        with _opened(source) as (binary, name):
            if run is None:
                run = await start_run(kind, name, user)
            result.run_id = run.id
            result.total = await _count_rows(binary, name, required)
            if on_progress:
                on_progress(result)
            header: list[str] = []  # for start(): the rows go to it as lists of cells
            rows = read_csv(binary, name, required, header_to=header if start else None)
            try:
                async with bulk.WriteBehind(written) as behind:
                    async def one_batch(batch) -> None:
                        started.append(start(header, batch) if start else batch)
                        while len(started) > ahead:
                            await behind.add(await prepare(run.id, started.popleft(), result))

                    batch: list[tuple[int, dict[str, str]]] = []
                    for item in rows:
                        batch.append(item)
                        if len(batch) >= size:
                            await one_batch(batch)
                            batch = []
                    if batch:
                        await one_batch(batch)
                    while started:
                        await behind.add(await prepare(run.id, started.popleft(), result))
            finally:
                rows.close()
                for begun in started:  # stopped early: checks not yet begun need not be
                    if isinstance(begun, (asyncio.Future, concurrent.futures.Future)):
                        begun.cancel()
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
                reasons.append(reason("site_repeated", f"site code {code} appears again (first on line {seen[code]})",
                                      code=code, first=seen[code]))
            elif code:
                seen[code] = line
            if reasons:
                rejects.append(RowError.of(line, reasons))
                continue
            try:
                counts[await _upsert_site(values)] += 1
            except BaseORMException:
                rejects.append(RowError.of(line, [DATABASE_REFUSED]))
        await _save_progress(run_id, result, counts, len(batch), rejects)
        _apply(result, counts, len(batch), rejects)
        return rejects

    return await _run_import(SITES, source, SITE_COLUMNS, prepare, run=run, user=user,
                             on_progress=on_progress, on_reject=on_reject)


# A sites file's columns, as the vocabulary names them (a site's name is not a person's).
SITE_WORDS = {"code": "site_code", "name": "site_name", "address": "site_address", "phone": "site_phone",
              "subdistrict": "subdistrict"}


def _empty(column: str, words: dict[str, str] | None = None) -> Reason:
    return reason("empty", f"{column} is empty", column=(words or {}).get(column, column))


def _too_long(column: str, limit: int, words: dict[str, str] | None = None) -> Reason:
    return reason("too_long", f"{column} is longer than {limit} characters",
                  column=(words or {}).get(column, column), limit=limit)


def _not_a_subdistrict(text: str) -> Reason:
    return reason("subdistrict_unknown", f"subdistrict {_quote(text)} is not one of Tianhe's 21 sub-districts",
                  value=_quote(text))


DATABASE_REFUSED = reason("database", "the database refused this row")


def _check_site(row: dict[str, str]) -> tuple[list[Reason], dict[str, str]]:
    reasons: list[Reason] = []
    code = row["code"]
    if not SITE_CODE.match(code):
        reasons.append(_empty("code", SITE_WORDS) if not code else
                       reason("site_code_format", "code must be up to 32 letters, digits, '-' or '_'"))
    subdistrict = normalise_subdistrict(row["subdistrict"])
    if not subdistrict:
        reasons.append(_empty("subdistrict", SITE_WORDS) if not row["subdistrict"]
                       else _not_a_subdistrict(row["subdistrict"]))
    for column, limit in (("name", 100), ("address", 200), ("phone", 40)):
        value = row.get(column, "")
        if not value and column != "phone":
            reasons.append(_empty(column, SITE_WORDS))
        elif len(value) > limit:
            reasons.append(_too_long(column, limit, SITE_WORDS))
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
                             on_reject: Reject | None = None, command_line: bool = False,
                             workers: int | None = None) -> ImportResult:
    """Create or update first-dose records from a CSV file (a path or a binary file object);
    re-importing the same file changes nothing. Streams: see the module's docstring.

    The run (ImportRun) is `run` or a new one; its counts move after each batch. on_progress(result)
    is called after the check pass (result.total known) and each batch; on_reject(error) for each
    refused row, in line order. A whole-file problem raises ImportFileError, nothing written.

    command_line: the operator's import (run.py), the only thing running: its rows are checked,
    hashed and encrypted in COMMAND_LINE_WORKERS other processes while this one writes (both
    cores work), COMMAND_LINE_BATCH rows a transaction, and commits do not wait for the disk
    (_sqlite_settings; on PostgreSQL, synchronous_commit off for the import's transactions).
    Otherwise (the console's import, inside the server) all of it happens in this process, in
    batches of BATCH, letting the event loop serve other requests every YIELD_EVERY rows.
    `workers` overrides the number of worker processes (0: none). The same rows are written and
    the same rows refused, for the same reasons, either way.
    """
    sites = {site.code: _SiteRef(site.id, site.subdistrict) for site in await Site.all()}
    checker = _Checker(vault, sites, today)
    if workers is None:
        workers = COMMAND_LINE_WORKERS if command_line else 0
    seen: _SeenIds | None = None
    encrypt_ahead = True  # whether the workers encrypt every good row (most rows are new)
    pool: concurrent.futures.ProcessPoolExecutor | None = None
    first_import = False  # no residents when the import began (_nobody_yet)

    def start(header: list[str], batch):
        """Begin checking a batch in a worker process."""
        return pool.submit(_check_in_worker, header, batch, encrypt_ahead)

    async def prepare(run_id: int, started, result: ImportResult):
        """Check the batch's rows (or take the worker's answers), find the repeated ID numbers,
        look up who is already there, encrypt what is new; return the write of the batch."""
        nonlocal seen, encrypt_ahead, first_import
        if seen is None:
            seen = _SeenIds(result.total)
            first_import = await _nobody_yet()
        if pool is not None:
            checked = await asyncio.wrap_future(started)
        else:
            checked = []
            for i in range(0, len(started), YIELD_EVERY):
                if i:
                    await asyncio.sleep(0)  # a batch is some seconds of work: let the server answer others
                checked += checker.rows(started[i:i + YIELD_EVERY], encrypt=False)
        rejects: list[RowError] = []
        good: list[tuple] = []
        for line, reasons, id_hash, number, phone, fields in checked:
            if id_hash:
                first = seen.first_line(id_hash, line)
                if first is not None:
                    reasons.append(reason("id_repeated", f"id_number {pii.mask_id(number)} appears again "
                                          f"(first on line {first})", id=pii.mask_id(number), first=first))
            if reasons:
                rejects.append(RowError.of(line, reasons))
            else:
                good.append((line, id_hash, number, phone, fields))
        counts, new, changes = await _prepare_residents(vault, good, look_up=not first_import)
        if good:  # a file of people already there (a re-import): the workers need not encrypt
            encrypt_ahead = 2 * counts["created"] >= len(good)
        rows = len(checked)

        async def write() -> list[RowError]:
            nonlocal counts
            try:
                await _write_residents(run_id, new, changes, result, counts, rows, rejects,
                                       command_line=command_line)
            except BaseORMException:
                # Someone else wrote one of these people meanwhile (or the database refused a
                # value): the batch again, row by row, so that one row blocks nobody.
                counts = Counter()
                for line, _, number, phone, fields in good:
                    try:
                        _, outcome = await upsert_resident(vault, **_upsert_values(number, phone, fields))
                        counts[outcome] += 1
                    except BaseORMException:
                        rejects.append(RowError.of(line, [DATABASE_REFUSED]))
                rejects.sort(key=lambda e: e.line)
                await _save_progress(run_id, result, counts, rows, rejects)
            _apply(result, counts, rows, rejects)
            return rejects

        return write

    async def run_it() -> ImportResult:
        return await _run_import(
            FIRST_DOSES, source, DOSE_COLUMNS, prepare, run=run, user=user,
            on_progress=on_progress, on_reject=on_reject,
            batch_rows=COMMAND_LINE_BATCH if command_line else None,
            start=start if pool is not None else None, ahead=workers if pool is not None else 0,
            command_line=command_line)

    if not workers:
        return await run_it()
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker, initargs=(checker,))
    try:
        return await run_it()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _SiteRef(NamedTuple):
    """What a first-dose row needs of its site (upsert_resident reads the same two)."""
    id: int
    subdistrict: str


@dataclass(frozen=True)
class _Checker:
    """What checking a first-dose row needs; handed once to each worker process (pickled: the
    Vault as its derived keys, pii.Vault.__reduce__)."""
    vault: pii.Vault
    sites: dict[str, _SiteRef]
    today: dt.date

    def rows(self, batch: list[tuple[int, dict[str, str]]], encrypt: bool) -> list[tuple]:
        """Each row checked, as (line, reasons, ID hash or "", ID number, phone, fields): the
        reasons it is refused (the repeated-ID one is added by the caller, who sees the whole
        file), the normalised ID number and phone, and for a row without reasons the record's
        FIELDS as upsert_resident() writes them (the two ciphers only when `encrypt`, else None:
        a record already there needs none). Tuples, not dicts: a worker's answers cross a pipe."""
        vault = self.vault
        out = []
        for line, row in batch:
            reasons, values = _check_first_dose(row, self.sites, self.today)
            number = values.get("id_number")
            phone = values.get("phone")
            id_hash = vault.keyed_hash(number) if number else ""
            fields = None
            if not reasons:
                site: _SiteRef = values["site"]
                fields = (
                    values["name"].strip(), vault.keyed_hash(phone), pii.mask_phone(phone),
                    values["first_dose_date"], site.id, values["vaccine"].strip(),
                    (values["subdistrict"] or site.subdistrict).strip(),
                    pii.mask_id(number), values["birth_date"].year,
                    vault.encrypt(number) if encrypt else None,
                    vault.encrypt(phone) if encrypt else None)
            out.append((line, reasons, id_hash, number, phone, fields))
        return out


_WORKER_CHECKER: _Checker | None = None  # in a worker process: set once when it starts


def _start_worker(checker: _Checker) -> None:
    global _WORKER_CHECKER
    _WORKER_CHECKER = checker


def _check_in_worker(header: list[str], batch: list[tuple[int, list[str]]],
                     encrypt: bool) -> list[tuple]:
    return _WORKER_CHECKER.rows([(line, row_dict(header, cells)) for line, cells in batch], encrypt)


# What upsert_resident() compares on an existing record (and writes when one differs).
COMPARED = ("name", "phone_hash", "phone_masked", "first_dose_date", "first_site_id", "vaccine",
            "subdistrict")


# A checked row's record, as _Checker.rows() gives it: COMPARED first, then what a new one adds.
FIELDS = COMPARED + ("id_masked", "birth_year", "id_cipher", "phone_cipher")


async def _residents_by_hash(hashes: list[str]) -> dict[str, dict]:
    """The records already there for these ID hashes: their id and the COMPARED values (plain
    values, not Model objects: re-importing a million rows reads a million records)."""
    found: dict[str, dict] = {}
    for i in range(0, len(hashes), IN_CLAUSE):
        for resident in await Resident.filter(id_hash__in=hashes[i:i + IN_CLAUSE]).values(
                "id", "id_hash", *COMPARED):
            found[resident["id_hash"]] = resident
    return found


async def _nobody_yet() -> bool:
    """Whether there are no residents at all (a district's first import): then a batch need not
    look anyone up. Someone writing one of its people meanwhile makes its INSERT fail, and the
    batch is done again row by row (import_first_doses), as when a look-up missed them."""
    return not await Resident.exists()


async def _prepare_residents(vault: pii.Vault, good: list[tuple], *, look_up: bool = True):
    """What a batch's good rows (line, ID hash, ID number, phone, FIELDS) change, as
    upsert_resident() would: (counts of created, updated, unchanged; new records as rows; (id,
    changed columns) of the others), worked out before the batch's transaction (comparing, and
    encrypting what the check left to do), which then only writes."""
    existing = await _residents_by_hash([id_hash for _, id_hash, _, _, _ in good]) if look_up else {}
    counts: Counter = Counter()
    new: list[dict] = []
    changes: list[tuple[int, dict]] = []
    compared = tuple(enumerate(COMPARED))
    for n, (_, id_hash, number, phone, fields) in enumerate(good, 1):
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        old = existing.get(id_hash)
        if old is None:
            record = dict(zip(FIELDS, fields), id_hash=id_hash)
            if record["id_cipher"] is None:
                record.update(id_cipher=vault.encrypt(number), phone_cipher=vault.encrypt(phone))
            new.append(record)
            counts["created"] += 1
            continue
        changed = {k: fields[i] for i, k in compared if old[k] != fields[i]}
        if not changed:
            counts["unchanged"] += 1
            continue
        if "phone_hash" in changed:
            changed["phone_cipher"] = fields[-1] or vault.encrypt(phone)
        changes.append((old["id"], changed))
        counts["updated"] += 1
    return counts, new, changes


async def _write_residents(run_id: int, new: list[dict], changes: list[tuple[int, dict]],
                           result: ImportResult, counts: Counter, rows: int,
                           rejects: list[RowError], *, command_line: bool = False) -> None:
    """A batch's records (new ones with one INSERT … executemany, changed ones by id), its
    refusals and the run's counts, in one transaction."""
    async with in_transaction() as conn:
        if command_line and conn.capabilities.dialect == "postgres":
            # As SQLite's synchronous = NORMAL (_sqlite_settings): this transaction only.
            await conn.execute_script("SET LOCAL synchronous_commit = off")
        if new:
            await bulk.Rows(Resident, conn).insert(new)
        for resident_id, changed in changes:
            # As upsert_resident()'s save(update_fields=…): the changed columns only.
            await Resident.filter(id=resident_id).using_db(conn).update(**changed)
        await _save_progress(run_id, result, counts, rows, rejects, conn)


def _upsert_values(number: str, phone: str, fields: tuple) -> dict:
    """A checked row as upsert_resident() takes it (the same values it would work out)."""
    name, _, _, first_dose_date, site_id, vaccine, subdistrict = fields[:len(COMPARED)]
    return dict(name=name, id_number=number, phone=phone, first_dose_date=first_dose_date,
                site=_SiteRef(site_id, subdistrict), vaccine=vaccine, subdistrict=subdistrict)


def _check_first_dose(row: dict[str, str], sites: dict[str, _SiteRef], today: dt.date):
    """Return (reasons the row is refused, the values for upsert_resident)."""
    reasons: list[Reason] = []
    values: dict = {"name": row["name"], "vaccine": row.get("vaccine", "")}
    if not row["name"]:
        reasons.append(_empty("name"))
    elif len(row["name"]) > 50:
        reasons.append(_too_long("name", 50))
    if len(values["vaccine"]) > 50:
        reasons.append(_too_long("vaccine", 50))

    first_dose = _check_date(row["first_dose_date"], today, reasons)
    values["first_dose_date"] = first_dose

    if not row["id_number"]:
        reasons.append(_empty("id_number"))
    else:
        try:
            values["id_number"] = pii.validate_id(row["id_number"])
        except pii.InvalidIdNumber as exc:
            code, text = ID_REASONS.get(exc.reason, ("id_invalid", "id_number is not a valid resident ID number"))
            if exc.reason == "length":
                length = len(pii.normalise_id(row["id_number"]))
                reasons.append(reason(code, f"{text}, not {length}", length=length))
            else:
                reasons.append(reason(code, text))
        else:
            born = values["birth_date"] = pii.birth_date(values["id_number"])
            if born > (first_dose or today):
                reasons.append(reason("id_born_after", "id_number birth date is after the first dose"))

    if not row["phone"]:
        reasons.append(_empty("phone"))
    else:
        try:
            values["phone"] = pii.normalise_phone(row["phone"])
        except pii.InvalidPhone:
            reasons.append(reason("phone_invalid", "phone is not a mainland mobile number (11 digits starting with 1)"))

    code = row["site_code"]
    values["site"] = sites.get(code)
    if not code:
        reasons.append(_empty("site_code"))
    elif values["site"] is None:
        reasons.append(reason("site_unknown", f"unknown site code {_quote(code)}", code=_quote(code)))

    subdistrict = row.get("subdistrict", "")
    values["subdistrict"] = normalise_subdistrict(subdistrict) if subdistrict else ""
    if values["subdistrict"] is None:
        reasons.append(_not_a_subdistrict(subdistrict))
    return reasons, values


def _quote(text: str) -> str:
    """A cell value fit to print: a long run of digits may be an ID number or phone put in the wrong column."""
    text = text[:32]
    return LONG_NUMBER.sub(lambda m: "*" * len(m.group()), text)


def _check_date(text: str, today: dt.date, reasons: list[Reason]) -> dt.date | None:
    if not text:
        reasons.append(_empty("first_dose_date"))
        return None
    match = DATE.match(text)
    try:
        day = dt.date(*map(int, match.groups())) if match else None
    except ValueError:
        day = None
    if day is None:
        # Quote the value only when it looks like a date: a misplaced ID number or phone must not be echoed.
        shown = f" {text}" if match else ""
        english = f"first_dose_date{shown} is not a date (YYYY-MM-DD)"
        reasons.append(reason("date_format", english, value=text) if match else reason("date_format_hidden", english))
    elif day > today:
        reasons.append(reason("date_future", f"first_dose_date {day} is in the future", day=day))
    elif day < EARLIEST_FIRST_DOSE:
        reasons.append(reason("date_too_early", f"first_dose_date {day} is before vaccination began "
                                                f"({EARLIEST_FIRST_DOSE})", day=day, earliest=EARLIEST_FIRST_DOSE))
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
