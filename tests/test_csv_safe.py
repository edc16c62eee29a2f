"""CSV downloads are safe to open in Excel and WPS (issue 21, finding 9): no cell of any CSV the
service writes begins with = + - @ (or a tab or carriage return), whatever the site names,
addresses and people's names hold; a negative number stays a number.

The walk takes every route of the app whose path ends in .csv, so a new download is covered, or
this test fails until it is; a source scan fails on any csv.writer outside models/csv_safe.py."""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import re
from pathlib import Path

import pytest

import run
from models import csv_safe
from models.db.tables import ImportReject, Resident
from models.channels import groups
from models.operations import imports
from tests.conftest import NOW, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.staff_helpers import make_staff, sign_in

ROOT = Path(__file__).resolve().parent.parent
HYPERLINK = '=HYPERLINK("http://evil.example/","点此")'
HOSTILE = [HYPERLINK, "+SUM(1,2)", "-2+3+cmd|' /C calc'!A0", "@SUM(A1:A2)", "\t=1+1", "\r=1+1"]
FIRST = dt.date(2021, 6, 1)  # due from 06-22: bookable on 07-02
DANGER = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"-\d+(\.\d+)?")


def test_a_cell_that_would_be_a_formula_is_kept_as_text():
    assert [csv_safe.cell(v) for v in HOSTILE] == ["'" + v for v in HOSTILE]
    assert csv_safe.cell("-12") == "-12" and csv_safe.cell("-1.5") == "-1.5"  # numbers stay numbers
    assert csv_safe.cell("-1-2") == "'-1-2" and csv_safe.cell("-") == "'-"
    assert csv_safe.cell(-3) == -3 and csv_safe.cell(0.5) == 0.5 and csv_safe.cell(None) == ""
    assert csv_safe.cell("五山街") == "五山街" and csv_safe.cell("a=b") == "a=b"
    assert csv_safe.cell(dt.date(2021, 7, 1)) == "2021-07-01"
    out = io.StringIO()
    csv_safe.writer(out).writerow([HYPERLINK, 5, "-5"])
    assert next(csv.reader(io.StringIO(out.getvalue()))) == ["'" + HYPERLINK, "5", "-5"]


def test_no_csv_is_written_but_through_the_helper():
    offenders = []
    for folder in ("web", "models"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name != "csv_safe.py" and re.search(r"csv\.(writer|DictWriter)\(", path.read_text("utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    if re.search(r"csv\.(writer|DictWriter)\(", (ROOT / "run.py").read_text("utf-8")):
        offenders.append("run.py")
    assert offenders == []


def assert_safe(where: str, body: str) -> int:
    """Every cell of the CSV is safe; returns how many cells were neutralised (begin with ')."""
    assert body.startswith("\ufeff"), f"{where}: Excel needs the BOM"
    quoted = 0
    for row in csv.reader(io.StringIO(body[1:])):
        for value in row:
            assert not value.startswith(DANGER) or NUMBER.fullmatch(value), f"{where}: {value!r}"
            quoted += value.startswith("'")
    return quoted


@pytest.fixture
async def hostile(db, district, clock):
    """Sites and people whose names and addresses are formulas, booked, overdue, in a group list,
    and an import run with refused rows whose reasons are formulas."""
    sites = []
    for n, text in enumerate(HOSTILE, 1):
        sites.append(await make_site(f"X{n:02d}", "五山街", name=text, address=text))
    day = clock.today() + dt.timedelta(days=1)
    slots = [await make_slot(site, day, capacity=10) for site in sites]
    people = []
    for n, name in enumerate(["=1+2", "@SUM(A1)", "-3+3", "+1"]):
        resident, number = await make_resident(sites[n], first_dose=FIRST, name=name)
        people.append((resident, number))
    await book_for(district, people[0][0], slots[0], NOW)
    await Resident.filter(id=people[1][0].id).update(first_dose_date=dt.date(2021, 4, 1))  # overdue
    admin = await make_staff("admin", "boss")
    rows = "".join(f"{name},{number},\n" for name, number in
                   [("=1+2", people[0][1]), ("-3+3", people[2][1]), ("+1", people[3][1])])
    group = await groups.create_list(VAULT, admin, "=HYPERLINK(list)", rows.encode(), "list.csv")
    await groups.book(district, admin, group.id, [slots[2].id, slots[3].id], key="abcdefgh123")
    run_ = await imports.start_run(imports.FIRST_DOSES, "doses.csv")
    for line, reason in enumerate(HOSTILE, 2):
        await ImportReject.create(run_id=run_.id, line=line, reason=reason)
    return dict(group=group, run=run_, day=day)


def csv_downloads(app, hostile) -> dict[str, str]:
    """Every CSV route of the app -> a URL that downloads it in the `hostile` world; fails when
    the app has a CSV route this list does not know (tests/test_staff_words.py uses it too)."""
    day = hostile["day"].isoformat()
    urls = {
        "/admin/reports/subdistricts.csv": "/admin/reports/subdistricts.csv",
        "/admin/reports/sites.csv": f"/admin/reports/sites.csv?from_day={day}&to_day={day}",
        "/admin/reports/completion.csv": "/admin/reports/completion.csv",
        "/admin/reports/channels.csv": "/admin/reports/channels.csv",
        "/admin/reports/waitlist.csv": "/admin/reports/waitlist.csv",
        "/admin/overdue.csv": "/admin/overdue.csv",
        "/admin/imports/{run_id}/rejects.csv": f"/admin/imports/{hostile['run'].id}/rejects.csv",
        "/group/{list_id}/result.csv": f"/group/{hostile['group'].id}/result.csv",
    }
    routes = {r.path for r in app.routes if getattr(r, "path", "").endswith(".csv")}
    assert routes == set(urls), "a CSV route this test does not download"
    return urls


async def test_every_csv_download_is_safe_in_a_spreadsheet(client, hostile):
    await sign_in(client, "boss")
    urls = csv_downloads(client.app, hostile)
    quoted = {}
    for route, url in urls.items():
        response = await client.get(url)
        assert response.status_code == 200, (url, response.text[:300])
        assert response.headers["content-type"].startswith("text/csv")
        quoted[route] = assert_safe(url, response.content.decode("utf-8"))
    # The hostile values were there, and came out quoted: the walk is not vacuous.
    assert quoted["/admin/reports/sites.csv"] == len(HOSTILE)  # the site names
    assert quoted["/admin/overdue.csv"] >= 1  # the masked name "@*******)"
    assert quoted["/admin/imports/{run_id}/rejects.csv"] == len(HOSTILE)
    assert quoted["/group/{list_id}/result.csv"] >= 3 + 2 * 2  # names, and two sites' name and address
    sites = (await client.get(urls["/admin/reports/sites.csv"])).content.decode("utf-8")
    assert "'" + HYPERLINK in next(csv.reader(io.StringIO(sites[1:].split("\n", 1)[1])))


async def test_the_outbox_listing_at_the_command_line_is_safe(settings, district, monkeypatch, capsys):
    async def rows(vault, status=None):
        yield 1, "138****5678", "queued", HYPERLINK
        yield 2, "138****5678", "queued", "-5"

    monkeypatch.setattr("models.messaging.outbox.outbox_rows", rows)
    assert await run.cmd_outbox(settings, district, argparse.Namespace(status=None)) == 0
    table = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert table[1][3] == "'" + HYPERLINK and table[2][3] == "-5"
