"""The first-dose import in the admin console and its streaming: an Excel file with bad rows gives
the right counts and a CSV of refusals, the same file twice changes nothing, the run's page
refreshes itself only while it runs, a wrong upload gets a clear message, the file is read a line
at a time, and the command line shows progress."""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import tracemalloc

import pytest

from models.db.tables import AuditEntry, ImportReject, ImportRun, Resident
from models.operations import imports
from models.operations.imports import csvfile, first_doses, pipeline, runs
from models.people import pii
from models.people.residents import upsert_resident
from models.staff.vocabulary import Words
from tests.conftest import TODAY, VAULT
from tests.factories import make_site
from tests.pages import csrf, get_page, parse, text
from tests.pii_scan import find_personal_numbers
from tests.staff_helpers import make_staff, sign_in
from web.routes.admin import imports as console

HEADER = "name,id_number,phone,first_dose_date,site_code,vaccine,subdistrict"


def ids(n: int, born=dt.date(1980, 5, 17)) -> list[str]:
    return [pii.build_id_number("440106", born, 200 + i) for i in range(n)]


def bad_check(number: str) -> str:
    return number[:17] + ("0" if number[17] != "0" else "1")


def excel_file() -> tuple[bytes, list[str]]:
    """What Excel's "CSV UTF-8" makes of a sheet someone typed: a BOM, CRLF, a stray blank line."""
    a, b, c, d = ids(4)
    lines = [
        "Name,ID_Number,Phone,First_Dose_Date,Site_Code,Vaccine,Subdistrict",   # 1
        f"张三明,{a},13812345678,2021/6/1,TH01,北京生物,五山街",                   # 2 good (Excel's date)
        "",                                                                     # 3 blank
        f"李四华,{bad_check(b)},13812345679,2021-06-01,TH01,,",                   # 4 wrong check digit
        f"王五芳,{c},13812345670,2021-02-30,TH01,,",                              # 5 no such date
        f"赵六军,{d},13812345671,2021-06-02,TH01,科兴,",                          # 6 good
        ",,,,,,",                                                               # 7 only commas
    ]
    return "\ufeff".encode() + "\r\n".join(lines).encode() + b"\r\n", [a, b, c, d]


@pytest.fixture
async def admin(client, db):
    await make_site("TH01")
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    return client


async def upload(client, content: bytes, filename: str = "first_doses.csv", status: int = 303):
    """Post the upload form as a browser does: the CSRF field first, then the file."""
    page = await get_page(client, "/admin/imports")
    response = await client.post("/admin/imports/upload", data={"csrftoken": csrf(page)},
                                 files={"file": (filename, content, "text/csv")})
    assert response.status_code == status, response.text[:800]
    return response


async def uploaded(client, content: bytes, filename: str = "first_doses.csv") -> int:
    """Upload, wait for the background import to end; the run's id."""
    response = await upload(client, content, filename)
    match = re.fullmatch(r"/admin/imports/(\d+)", response.headers["location"])
    assert match, response.headers["location"]
    await console.wait_for_imports(client.app)
    return int(match.group(1))


def counts(soup) -> dict[str, int]:
    return {kind: int(soup.find(id=f"count-{kind}").get_text())
            for kind in ("created", "updated", "unchanged", "rejected")}


def refreshes(soup) -> bool:
    return soup.find("meta", attrs={"http-equiv": "refresh"}) is not None


async def test_the_upload_form_sends_the_csrf_field_before_the_file_and_takes_csv(admin):
    page = await get_page(admin, "/admin/imports")
    form = page.find("form", attrs={"enctype": "multipart/form-data"})
    assert form["method"] == "post" and form["action"] == "/admin/imports/upload"
    fields = form.find_all("input")
    assert fields[0]["name"] == "csrftoken" and fields[1]["name"] == "file"
    assert fields[1]["type"] == "file" and ".csv" in fields[1]["accept"]


async def test_an_excel_file_with_bad_rows_imports_the_good_ones_and_the_refusals_download_as_csv(admin):
    content, (a, b, c, d) = excel_file()
    run_id = await uploaded(admin, content)

    page = await get_page(admin, f"/admin/imports/{run_id}")
    assert counts(page) == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 2}
    assert not refreshes(page)
    assert [r.name for r in await Resident.all().order_by("id")] == ["张三明", "赵六军"]
    assert (await Resident.get(id_hash=VAULT.keyed_hash(a))).first_dose_date == dt.date(2021, 6, 1)

    link = page.find(id="rejects")
    assert link["href"] == f"/admin/imports/{run_id}/rejects.csv"
    response = await admin.get(link["href"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")  # Excel opens it as UTF-8
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows == [["行号", "原因"], ["4", "身份证号最后一位校验码不对"],
                    ["5", "第一剂日期“2021-02-30”不是日期（年-月-日）"]]
    assert find_personal_numbers(response.text + text(page)) == []
    admin.cookies.set("lang", "en")  # the staff interface in English: the same file in English
    english = list(csv.reader(io.StringIO((await admin.get(link["href"])).content.decode("utf-8-sig"))))
    admin.cookies.delete("lang")
    assert english == [["Line", "Reason"], ["4", "The ID number's check character (the last one) is wrong"],
                       ["5", "First-dose date “2021-02-30” is not a date (year-month-day)"]]

    actions = {e.action: e.detail for e in await AuditEntry.filter(username="boss")}
    assert actions["upload_first_doses"].startswith(f"run {run_id}: first_doses.csv")
    assert actions["import_first_doses"].endswith("2 created, 0 updated, 0 unchanged, 2 rejected")


async def test_the_same_file_uploaded_twice_changes_nothing_the_second_time(admin):
    content, _ = excel_file()
    await uploaded(admin, content)
    before = [(r.id, r.updated_at) for r in await Resident.all().order_by("id")]
    again = await uploaded(admin, content)

    page = await get_page(admin, f"/admin/imports/{again}")
    assert counts(page) == {"created": 0, "updated": 0, "unchanged": 2, "rejected": 2}
    assert [(r.id, r.updated_at) for r in await Resident.all().order_by("id")] == before
    listing = text(await get_page(admin, "/admin/imports"))
    assert listing.count("first_doses.csv") == 2


async def test_the_run_page_refreshes_itself_while_running_and_stops_when_done(admin):
    run = await imports.start_run(imports.FIRST_DOSES, "big.csv")
    await ImportRun.filter(id=run.id).update(rows=3000, created=2990, rejected=10)

    page = await get_page(admin, f"/admin/imports/{run.id}")
    meta = page.find("meta", attrs={"http-equiv": "refresh"})
    assert meta and meta["content"] == "2"
    assert "已处理3000行" in text(page) and page.find(id="rejects") is None
    assert not page.find_all("script", src=False)  # no JavaScript does it

    await ImportRun.filter(id=run.id).update(status=ImportRun.DONE, rows=5000, created=4990,
                                             finished_at=dt.datetime.now(dt.timezone.utc))
    page = await get_page(admin, f"/admin/imports/{run.id}")
    assert not refreshes(page)
    assert counts(page) == {"created": 4990, "updated": 0, "unchanged": 0, "rejected": 10}
    assert page.find(id="rejects")


async def test_a_file_that_stops_part_way_says_how_far_it_got(admin):
    run = await imports.start_run(imports.FIRST_DOSES, "big.csv")
    await ImportRun.filter(id=run.id).update(status=ImportRun.FAILED, rows=4000, error="interrupted:4000")
    page = await get_page(admin, f"/admin/imports/{run.id}")
    assert not refreshes(page)
    assert "已写入前4000行" in text(page) and "再次上传同一文件" in text(page)


@pytest.mark.parametrize("filename, content, says", [
    ("doses.xlsx", b"PK\x03\x04 a workbook", "只能上传CSV文件"),
    ("doses.csv", b"", "文件是空的"),
    ("doses.csv", f"{HEADER}\n张三,440106198005172001,13812345678,2021-06-01,TH01,,\n".encode("gbk"),
     "不是UTF-8编码"),
    ("doses.csv", "\ufeffname,id_number,phone,site_code\n".encode(), "缺少必需的列：first_dose_date"),
    ("doses.csv", (f"{HEADER}\n" + "\"an unclosed quote," + ("x" * 99 + "\n") * 1400).encode(),
     "第2行不是有效的CSV格式"),
])
async def test_a_wrong_file_is_refused_at_once_with_a_clear_message_and_nothing_recorded(
        admin, filename, content, says):
    response = await upload(admin, content, filename, status=422)
    page = parse(response)
    assert says in text(page.find(class_="error-summary"))
    assert await ImportRun.all().count() == 0 and await Resident.all().count() == 0


async def test_a_post_without_a_file_or_too_large_or_not_multipart_gets_an_error_page(admin, monkeypatch):
    page = await get_page(admin, "/admin/imports")
    response = await admin.post("/admin/imports/upload", files={"csrftoken": (None, csrf(page)),
                                                                "file": (None, "not a file")})
    assert response.status_code == 422 and "请选择要上传的接种记录文件" in response.text

    monkeypatch.setitem(console.UPLOADS, console.UPLOAD_PATH, 1000)
    response = await admin.post("/admin/imports/upload", data={"csrftoken": csrf(page)},
                                files={"file": ("big.csv", b"x" * 2000, "text/csv")})
    assert response.status_code == 413 and parse(response).title

    response = await admin.post("/admin/imports/upload", data={"csrftoken": csrf(page)})
    assert response.status_code == 422 and "请选择要上传的接种记录文件" in response.text
    response = await admin.post("/admin/imports/upload", content=b"{}",
                                headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500 and parse(response).title
    assert await ImportRun.all().count() == 0


async def test_a_file_that_is_not_utf8_far_down_is_refused_before_any_row_is_written(db, tmp_path):
    """The start of the file is fine, so the upload is accepted; the check pass finds the bad
    byte before the import pass writes anything."""
    await make_site("TH01")
    good = "\n".join(f"张三明,{n},13812345678,2021-06-01,TH01,," for n in ids(3000))
    path = tmp_path / "late.csv"
    path.write_bytes(f"{HEADER}\n{good}\n".encode() + "李四,x,1,2,3,,\n".encode("gbk"))
    run = await imports.start_first_dose_upload(path, filename="late.csv", user=None)
    with pytest.raises(imports.ImportFileError, match="not UTF-8"):
        await imports.import_first_doses(VAULT, path, today=TODAY, run=run)
    run = await ImportRun.get(id=run.id)
    assert (run.status, run.error, run.rows) == (ImportRun.FAILED, "not_utf8:", 0)
    assert await Resident.all().count() == 0


async def test_a_person_written_meanwhile_by_someone_else_does_not_block_the_batch(db, tmp_path, monkeypatch):
    """Between looking the batch's people up and inserting them, another import wrote one of
    them: the batch is written again row by row, nobody is refused, nobody is doubled."""
    site = await make_site("TH01")
    a, b = ids(2)
    await upsert_resident(VAULT, name="张三明", id_number=a, phone="13812345678",
                                  first_dose_date=dt.date(2021, 6, 1), site=site)

    async def nobody_yet(hashes):
        return {}

    monkeypatch.setattr(pipeline, "_residents_by_hash", nobody_yet)
    path = tmp_path / "f.csv"
    path.write_text(f"{HEADER}\n张三明,{a},13812345678,2021-06-01,TH01,,\n李四华,{b},13812345679,2021-06-01,TH01,,\n")
    result = await imports.import_first_doses(VAULT, path, today=TODAY)
    assert (result.created, result.unchanged, result.rejected) == (1, 1, 0)
    assert await Resident.all().count() == 2
    run = await ImportRun.get(id=result.run_id)
    assert (run.created, run.unchanged, run.rows, run.status) == (1, 1, 2, ImportRun.DONE)


# ---- streaming


def big_file(path, rows: int) -> int:
    """A first-dose file of `rows` good rows, written a line at a time; its size in bytes."""
    with path.open("w", encoding="utf-8") as out:
        out.write("\ufeff" + HEADER + "\n")
        for i in range(rows):
            number = pii.build_id_number("440106", dt.date(1950, 1, 1) + dt.timedelta(days=i // 1000), i % 1000)
            out.write(f"张三明,{number},138{i:08d},2021-06-01,TH01,北京生物,五山街\n")
    return path.stat().st_size


def test_the_reader_holds_a_line_at_a_time_not_the_file(tmp_path):
    path = tmp_path / "big.csv"
    size = big_file(path, 60_000)  # about 5 MB
    tracemalloc.start()
    try:
        with path.open("rb") as handle:
            n = sum(1 for _ in csvfile.read_csv(handle, "big.csv", first_doses.DOSE_COLUMNS))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 60_000 and size > 4_000_000
    assert peak < 500_000, f"reading held {peak} bytes at once"


async def test_rows_are_written_in_batches_while_the_file_is_still_being_read(db, tmp_path, monkeypatch):
    await make_site("TH01")
    monkeypatch.setattr(runs, "BATCH", 500)
    path = tmp_path / "big.csv"
    size = big_file(path, 2000)
    seen = []
    with path.open("rb") as handle:
        def progress(result):
            seen.append((result.rows, result.total, handle.tell()))

        result = await imports.import_first_doses(VAULT, handle, today=TODAY, on_progress=progress)
    assert result.created == 2000
    # After the check pass (the whole file once, then back to its start), a batch at a time:
    assert [(rows, total) for rows, total, _ in seen] == [(0, 2000), (500, 2000), (1000, 2000),
                                                          (1500, 2000), (2000, 2000)]
    # The first batch is written while the second is checked: two batches read of four.
    assert seen[0][2] == 0 and seen[1][2] < size * 2 / 3
    run = await ImportRun.get(id=result.run_id)
    assert (run.status, run.rows, run.created, run.kind) == (ImportRun.DONE, 2000, 2000, "first_doses")


async def test_an_import_stopped_part_way_keeps_whole_batches_and_importing_again_finishes_it(
        db, tmp_path, monkeypatch):
    await make_site("TH01")
    monkeypatch.setattr(runs, "BATCH", 500)
    path = tmp_path / "big.csv"
    big_file(path, 1200)

    def stop_after_the_first_batch(result):
        if result.rows == 500:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await imports.import_first_doses(VAULT, path, today=TODAY, on_progress=stop_after_the_first_batch)
    run = await ImportRun.get(kind="first_doses")
    assert (run.status, run.rows, run.created, run.error) == (ImportRun.FAILED, 500, 500, "interrupted:500")
    assert await Resident.all().count() == 500

    again = await imports.import_first_doses(VAULT, path, today=TODAY)
    assert (again.created, again.unchanged, again.rejected) == (700, 500, 0)
    assert await Resident.all().count() == 1200


def test_repeated_id_numbers_are_found_with_a_few_bytes_a_row():
    seen = pipeline._SeenIds(1_000_000)
    table = seen._keys.itemsize * len(seen._keys) + seen._lines.itemsize * len(seen._lines)
    assert table <= 32 * 1_000_000
    hashes = [VAULT.keyed_hash(f"number {i}") for i in range(3000)]
    assert all(seen.first_line(h, line) is None for line, h in enumerate(hashes, 2))
    assert seen.first_line(hashes[1234], 9999) == 1236
    small = pipeline._SeenIds()  # grows when more come than expected
    assert all(small.first_line(h, line) is None for line, h in enumerate(hashes, 2))
    assert small.first_line(hashes[-1], 5) == 3001


async def test_refusals_are_kept_as_import_rejects_of_the_run(db, tmp_path):
    await make_site("TH01")
    (a,) = ids(1)
    path = tmp_path / "f.csv"
    path.write_text(f"{HEADER}\n张三明,{a},13812345678,2021-06-01,TH01,,\n"
                    f"李四华,{a},13812345679,2021-06-01,TH01,,\n,,,,,,\n王五,1,2,3,4,,\n")
    result = await imports.import_first_doses(VAULT, path, today=TODAY)
    rejects = await ImportReject.filter(run_id=result.run_id).order_by("line").values_list("line", "reason")
    # Kept as codes with their values (shown in the staff's language), the command line's English aside.
    assert rejects == [(3, f'[["id_repeated",{{"id":"{pii.mask_id(a)}","first":"2"}}]]'),
                       (5, result.errors[1].codes)]
    assert result.errors[0].reason == f"id_number {pii.mask_id(a)} appears again (first on line 2)"
    assert result.errors[1].line == 5 and result.errors[1].reason.startswith("first_dose_date is not a date")
    words = Words()
    assert words.import_reason(rejects[0][1]) == f"身份证号{pii.mask_id(a)}重复（第一次出现在第2行）"
    assert words.import_reason(rejects[1][1]).startswith("第一剂日期不是日期（年-月-日）；身份证号应为18位")
    assert words.import_reason("phone is empty") == "phone is empty"  # a row kept before issue 22: as written
    run = await ImportRun.get(id=result.run_id)
    assert (run.rows, run.created, run.rejected, run.status) == (3, 1, 2, ImportRun.DONE)


# ---- the command line's progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_command_line_draws_a_progress_line_and_prints_refusals_clear_of_it():
    import run

    screen = Terminal()
    shown = run.ImportProgress("first doses", screen)
    shown.progress(imports.ImportResult(rows=0, total=2000))
    shown.progress(imports.ImportResult(rows=2000, total=2000, created=2000))
    shown.reject(imports.RowError(5, "phone is empty"))
    shown.clear()
    out = screen.getvalue()
    assert "\r\x1b[Kfirst doses [" in out and "100% 2,000/2,000 rows" in out and "rows/s" in out
    assert "\r\x1b[Kline 5: phone is empty\n" in out


def test_elsewhere_the_command_line_logs_the_counts_every_n_rows(caplog):
    import run

    shown = run.ImportProgress("first doses", io.StringIO())
    with caplog.at_level(logging.INFO, logger="booking.imports"):
        for rows in range(0, 25_001, 1000):
            shown.progress(imports.ImportResult(rows=rows, total=25_000, created=rows))
    lines = [r.getMessage() for r in caplog.records if r.name == "booking.imports"]
    assert len(lines) == 2 and lines[0].startswith("first doses: 10000 of 25000 rows, 10000 created")
