"""Importing a first-dose file: its rows checked (first_doses.py) in worker processes or here, ID
numbers repeated in the file found, who is already there looked up, the new records encrypted,
and each batch written in one transaction while the next is worked out (runs.py).

The command line's import (import_first_doses(command_line=True), run.py) has the rows checked,
hashed and encrypted by COMMAND_LINE_WORKERS worker processes while this process reads the file
and writes (both cores work): batches of COMMAND_LINE_BATCH, at most one being checked per
worker, one being worked out and one being written; a larger page cache; commits that do not
wait for the disk. The console's import (in the server) does it all in the server's process.
Both write the same records and refuse the same lines for the same reasons.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import multiprocessing
from array import array
from collections import Counter
from pathlib import Path

from tortoise.exceptions import BaseORMException
from tortoise.transactions import in_transaction

from ...db import bulk, tuning
from ...db.tables import ImportRun, Resident, Site, StaffUser
from ...people import pii
from ...people.residents import upsert_resident
from ...staff.vocabulary import reason
from .csvfile import check_header, row_dict
from .first_doses import COMPARED, DOSE_COLUMNS, FIELDS, Checker, SiteRef
from .runs import (DATABASE_REFUSED, FIRST_DOSES, YIELD_EVERY, ImportResult, Progress, Reject,
                   RowError, add_batch, run_import, save_progress, start_run)

COMMAND_LINE_BATCH = 10_000  # rows a transaction for the command line's import (runs.BATCH otherwise)
COMMAND_LINE_WORKERS = 2  # processes that check, hash and encrypt the command line's rows


async def start_first_dose_upload(path: str | Path, *, filename: str,
                                  user: StaffUser | None) -> ImportRun:
    """An uploaded file, checked as far as its start tells (encoding, header, empty), recorded as
    a running import; import_first_doses(…, run=…) then imports it. Raises ImportFileError."""
    check_header(path, DOSE_COLUMNS)
    return await start_run(FIRST_DOSES, filename, user)


async def import_first_doses(vault: pii.Vault, source, *, today: dt.date,
                             run: ImportRun | None = None, user: StaffUser | None = None,
                             on_progress: Progress | None = None,
                             on_reject: Reject | None = None, command_line: bool = False,
                             workers: int | None = None) -> ImportResult:
    """Create or update first-dose records from a CSV file (a path or a binary file object);
    re-importing the same file changes nothing. Streams: see the package's docstring.

    The run (ImportRun) is `run` or a new one; its counts move after each batch. on_progress(result)
    is called after the check pass (result.total known) and each batch; on_reject(error) for each
    refused row, in line order. A whole-file problem raises ImportFileError, nothing written.

    command_line: the operator's import (run.py), the only thing running: its rows are checked,
    hashed and encrypted in COMMAND_LINE_WORKERS other processes while this one writes (both
    cores work), COMMAND_LINE_BATCH rows a transaction, and commits do not wait for the disk
    (db/tuning.py: on SQLite synchronous = NORMAL; on PostgreSQL, synchronous_commit off for the
    import's transactions). Otherwise (the console's import, inside the server) all of it happens
    in this process, in batches of runs.BATCH, letting the event loop serve other requests every
    YIELD_EVERY rows. `workers` overrides the number of worker processes (0: none). The same rows
    are written and the same rows refused, for the same reasons, either way.
    """
    sites = {site.code: SiteRef(site.id, site.subdistrict) for site in await Site.all()}
    checker = Checker(vault, sites, today)
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
                await save_progress(run_id, result, counts, rows, rejects)
            add_batch(result, counts, rows, rejects)
            return rejects

        return write

    async def run_it() -> ImportResult:
        return await run_import(
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


# ---- in a worker process


_WORKER_CHECKER: Checker | None = None  # in a worker process: set once when it starts


def _start_worker(checker: Checker) -> None:
    global _WORKER_CHECKER
    _WORKER_CHECKER = checker


def _check_in_worker(header: list[str], batch: list[tuple[int, list[str]]],
                     encrypt: bool) -> list[tuple]:
    return _WORKER_CHECKER.rows([(line, row_dict(header, cells)) for line, cells in batch], encrypt)


# ---- in this process: repeats, look-ups, writes


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


async def _residents_by_hash(hashes: list[str]) -> dict[str, dict]:
    """The records already there for these ID hashes: their id and the COMPARED values (plain
    values, not Model objects: re-importing a million rows reads a million records)."""
    found: dict[str, dict] = {}
    for i in range(0, len(hashes), tuning.IN_CLAUSE):
        for resident in await Resident.filter(id_hash__in=hashes[i:i + tuning.IN_CLAUSE]).values(
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
        if command_line:
            await tuning.relax_commit(conn)  # this transaction only
        if new:
            await bulk.Rows(Resident, conn).insert(new)
        for resident_id, changed in changes:
            # As upsert_resident()'s save(update_fields=…): the changed columns only.
            await Resident.filter(id=resident_id).using_db(conn).update(**changed)
        await save_progress(run_id, result, counts, rows, rejects, conn)


def _upsert_values(number: str, phone: str, fields: tuple) -> dict:
    """A checked row as upsert_resident() takes it (the same values it would work out)."""
    name, _, _, first_dose_date, site_id, vaccine, subdistrict = fields[:len(COMPARED)]
    return dict(name=name, id_number=number, phone=phone, first_dose_date=first_dose_date,
                site=SiteRef(site_id, subdistrict), vaccine=vaccine, subdistrict=subdistrict)
