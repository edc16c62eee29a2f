"""An import run: recorded (ImportRun), fed batch by batch, its counts and refused rows kept as it
goes, finished done or failed; and, for the console, the runs and their refusals.

A file is read twice (the package's docstring says why): the check pass (count_rows) and the
import pass (run_import), which hands each batch to the kind's own prepare() and writes one batch
while the next is worked out. What a row may be refused for, in words both kinds share, is here
too (RowError and the reasons below); each kind's own rules live in sites.py and first_doses.py.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import AsyncIterator, BinaryIO, Callable

from ...db import bulk, tuning
from ...db.tables import ImportReject, ImportRun, StaffUser
from ...staff.vocabulary import Reason, encode_reasons, reason
from .csvfile import ImportFileError, opened, quote, read_csv, safe_filename

log = logging.getLogger("booking.imports")

SITES, FIRST_DOSES = "sites", "first_doses"  # ImportRun.kind
BATCH = 5000  # rows checked and written together, in one transaction; the run's counts move by this
KEPT_ERRORS = 1000  # refusals kept in ImportResult.errors (all of them go to ImportReject and on_reject)
YIELD_EVERY = 100  # rows checked between two chances for the event loop to serve other requests
SQLITE_CACHE_KB = 65536  # SQLite's page cache while an import runs (db/tuning.py: sqlite_bulk_settings)
# The same for the command line's import: a million records' two hash indexes (some 150 MB) fit.
COMMAND_LINE_CACHE_KB = 262144


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


# ---- why a row is refused, in words both kinds of file share


def empty(column: str, words: dict[str, str] | None = None) -> Reason:
    return reason("empty", f"{column} is empty", column=(words or {}).get(column, column))


def too_long(column: str, limit: int, words: dict[str, str] | None = None) -> Reason:
    return reason("too_long", f"{column} is longer than {limit} characters",
                  column=(words or {}).get(column, column), limit=limit)


def not_a_subdistrict(text: str) -> Reason:
    return reason("subdistrict_unknown", f"subdistrict {quote(text)} is not one of Tianhe's 21 sub-districts",
                  value=quote(text))


DATABASE_REFUSED = reason("database", "the database refused this row")


# ---- the run: created, moved on batch by batch, finished


def _utc_now() -> dt.datetime:
    # Durations (rows a second) are measured against started_at, which the database stamps in real time.
    return dt.datetime.now(dt.timezone.utc)


async def start_run(kind: str, filename: str, user: StaffUser | None = None) -> ImportRun:
    """Record an import about to start (running, no rows yet)."""
    return await ImportRun.create(kind=kind, filename=safe_filename(filename), user=user)


async def save_progress(run_id: int, result: ImportResult, counts: Counter, rows: int,
                        rejects: list[RowError], conn=None) -> None:
    if rejects:
        await ImportReject.bulk_create(
            [ImportReject(run_id=run_id, line=e.line, reason=(e.codes or e.reason)[:500]) for e in rejects],
            using_db=conn)
    await ImportRun.filter(id=run_id).using_db(conn).update(
        rows=result.rows + rows, rejected=result.rejected + len(rejects),
        **{k: getattr(result, k) + counts[k] for k in ("created", "updated", "unchanged")})


def add_batch(result: ImportResult, counts: Counter, rows: int, rejects: list[RowError]) -> None:
    """A written batch's counts and refusals added to the result."""
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


async def count_rows(binary: BinaryIO, name: str, required: tuple[str, ...]) -> int:
    """The check pass: read the whole file once (raising on a whole-file problem), count its rows."""
    start = binary.tell()
    rows = 0
    # As lists of cells (header_to): the same rows and errors without a dict made for each row.
    for rows, _ in enumerate(read_csv(binary, name, required, header_to=[]), 1):
        if rows % (50 * YIELD_EVERY) == 0:
            await asyncio.sleep(0)  # a big file must not hold up the server's other requests
    binary.seek(start)
    return rows


async def run_import(kind: str, source, required: tuple[str, ...], prepare, *,
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
    after the one before it is done.

    On SQLite the page cache is larger while it runs (SQLITE_CACHE_KB; COMMAND_LINE_CACHE_KB on
    the command line, where the server's processes are not sharing the machine's memory), and on
    the command line commits do not wait for the disk: db/tuning.py says why."""
    cache_kb = COMMAND_LINE_CACHE_KB if command_line else SQLITE_CACHE_KB
    async with tuning.sqlite_bulk_settings(cache_kb, relaxed_commits=command_line):
        return await _import_batches(kind, source, required, prepare, run=run, user=user,
                                     on_progress=on_progress, on_reject=on_reject,
                                     batch_rows=batch_rows, start=start, ahead=ahead)


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
        with opened(source) as (binary, name):
            if run is None:
                run = await start_run(kind, name, user)
            result.run_id = run.id
            result.total = await count_rows(binary, name, required)
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
