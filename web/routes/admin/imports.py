"""Uploading the first-dose CSV: progress that updates itself, counts, the rejected rows as CSV.

The upload streams to disk (Starlette spools the file part; the body guard lets this one path
through unread, up to UPLOADS' limit), its start is checked at once (encoding, header), and the
import runs in the background (models/operations/imports/pipeline.py: import_first_doses()) while the
run's page refreshes itself every 2 seconds with no JavaScript. Every admin sees every run.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
import os
import shutil
import tempfile

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from models import csv_safe
from models.operations import imports
from models.staff import audit
from ...http import client_address, district, parse_id, see_other, url_for
from ...staff_auth import ADMIN, current_staff, record, staff_only
from ...templating import render
from ...words import words_for

UPLOAD_PATH = "/admin/imports/upload"
UPLOADS = {UPLOAD_PATH: 512 * 1024 * 1024}  # a million first-dose rows are about 100 MB
RECENT = 20  # runs listed on the imports page

log = logging.getLogger("booking.imports")


async def _imports_page(request: Request, *, error: str = "", detail: str = "", status: int = 200):
    return render(request, "pages/admin/imports.html", {
        "staff": await current_staff(request), "runs": await imports.recent_runs(RECENT),
        "error": error, "detail": detail, "max_mb": UPLOADS[UPLOAD_PATH] // (1024 * 1024),
    }, status=status)


async def _missing(request: Request):
    return render(request, "pages/admin/imports_missing.html",
                  {"staff": await current_staff(request)}, status=404)


@staff_only(*ADMIN)
async def admin_imports(request: Request):
    """GET /admin/imports: the upload form and the latest imports (browser and command line)."""
    return await _imports_page(request)


def _save(upload) -> tuple[str, int]:
    """Copy the spooled upload to a file of our own (the form's goes when the request ends)."""
    handle, path = tempfile.mkstemp(prefix="first-doses-", suffix=".csv")
    with os.fdopen(handle, "wb") as out:
        upload.seek(0)
        shutil.copyfileobj(upload, out, 1024 * 1024)
        return path, out.tell()


def _discard(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


@staff_only(*ADMIN)
async def admin_import_upload(request: Request):
    """POST /admin/imports/upload (multipart: csrftoken first, then file): check the file's start,
    record the run, import in the background, 303 to the run's page."""
    staff = await current_staff(request)
    form = await request.form(max_files=1, max_fields=10)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return await _imports_page(request, error="no_file", status=422)
        filename = imports.safe_filename(upload.filename)
        if not filename.lower().endswith(".csv"):
            return await _imports_page(request, error="not_csv", status=422)
        path, size = await asyncio.to_thread(_save, upload.file)
    finally:
        await form.close()
    if size == 0:
        _discard(path)
        return await _imports_page(request, error="empty", status=422)
    try:
        run = await imports.start_first_dose_upload(path, filename=filename, user=staff)
    except imports.ImportFileError as exc:
        _discard(path)
        return await _imports_page(request, error=exc.code, detail=exc.detail, status=422)
    task = asyncio.create_task(_import(district(request), run, path, staff, client_address(request)))
    running = request.app.state.import_tasks  # a reference keeps each task alive until it ends
    running.add(task)
    task.add_done_callback(running.discard)
    await record(request, "upload_first_doses", detail=f"run {run.id}: {run.filename}, {size} bytes")
    return see_other(url_for(request, "admin_import_run", run_id=run.id))


async def _import(district, run, path: str, staff, address: str) -> None:
    """The background part of an upload: import, audit the counts, remove the file."""
    what = f"run {run.id}: {run.filename}"
    try:
        result = await imports.import_first_doses(district.vault, path, today=district.clock.today(),
                                                  run=run)
        detail = f"{what}: {result.summary()}"
    except imports.ImportFileError as exc:
        detail = f"{what}: refused ({exc.code}), nothing written"
    except asyncio.CancelledError:
        raise  # the server is stopping: the run is marked failed, importing again finishes it
    except Exception as exc:  # the run is marked failed; the task must not die unseen
        log.error("import run %s failed: %s", run.id, type(exc).__name__)
        detail = f"{what}: failed ({type(exc).__name__})"
    finally:
        _discard(path)
    await audit.record(action="import_first_doses", user=staff, address=address, detail=detail)


async def wait_for_imports(app) -> None:
    """Wait until the app's background imports have ended (tests; the server's shutdown)."""
    running = app.state.import_tasks
    while running:
        await asyncio.gather(*running, return_exceptions=True)


async def stop_imports(app) -> None:
    """Stop the app's imports (the server is stopping): each run is marked failed, with the rows
    written so far; uploading the file again finishes it."""
    for task in list(app.state.import_tasks):
        task.cancel()
    await wait_for_imports(app)


def _seconds(run) -> float:
    end = run.finished_at or dt.datetime.now(dt.timezone.utc)
    return max((end - run.started_at).total_seconds(), 0.0)


@staff_only(*ADMIN)
async def admin_import_run(request: Request):
    """GET /admin/imports/{run_id}: progress (the page reloads itself every 2 s while running),
    then the counts and the refused rows to download."""
    run = await imports.find_run(parse_id(request.path_params.get("run_id")))
    if run is None:
        return await _missing(request)
    seconds = _seconds(run)
    code, detail = imports.run_failure(run)
    return render(request, "pages/admin/imports_run.html", {
        "staff": await current_staff(request), "run": run, "failure": code, "detail": detail,
        "seconds": int(seconds), "rate": int(run.rows / seconds) if seconds >= 1 else 0,
    })


@staff_only(*ADMIN)
async def admin_import_rejects(request: Request):
    """GET /admin/imports/{run_id}/rejects.csv: line number and reason (行号,原因; in English when the
    interface is), UTF-8 with a BOM (Excel and WPS read it right), streamed a page of rows at a time."""
    run = await imports.find_run(parse_id(request.path_params.get("run_id")))
    if run is None:
        return await _missing(request)
    await record(request, "download_import_rejects", detail=f"run {run.id}: {run.rejected} rows")
    words = words_for(request)

    async def lines():
        buffer = io.StringIO()
        out = csv_safe.writer(buffer)
        out.writerow(words.header(["line", "reason"]))
        yield "\ufeff".encode() + buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        async for line, reason in imports.reject_rows(run.id):
            out.writerow([line, words.import_reason(reason)])
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="import-{run.id}-rejects.csv"'})


ROUTES: list = [
    Route("/admin/imports", admin_imports, name="admin_imports"),
    Route(UPLOAD_PATH, admin_import_upload, methods=["POST"], name="admin_import_upload"),
    Route("/admin/imports/{run_id}", admin_import_run, name="admin_import_run"),
    Route("/admin/imports/{run_id}/rejects.csv", admin_import_rejects, name="admin_import_rejects"),
]
