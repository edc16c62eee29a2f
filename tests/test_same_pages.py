"""The same pages for the same input, byte for byte (issue 25): a resident journey walked in-process
on a fixed clock, a fixed secret and a seeded world, each response compared with the snapshot
committed under tests/snapshots/journey/ (its status, the Location of a redirect, and the HTML
body as the server sent it).

Only what is random by design is normalised, by regex, before comparing: CSRF tokens
(`csrftoken` fields), the confirm's request key (the `key` field), link and offer tokens
(`/b/…`, `/o/…`, and the tokens issued in the test itself), and booking codes (the code the
test's booking got, wherever it appears, whole or in part). Everything else — ids, dates, names,
the order of attributes, whitespace — must be the same.

Regenerate the snapshots, after a change meant to change a page, with
`UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_same_pages.py -q -p no:xdist`
and review the diff of tests/snapshots/journey/ before committing it.

SQLite only: the pages do not depend on the database, and the test stays fast.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest

from models.db.tables import Booking, Slot
from models.people import pii
from models.people.links import issue_link
from tests.conftest import NOW
from tests.factories import make_resident, make_site, make_slot
from tests.pages import csrf, parse

SNAPSHOTS = Path(__file__).parent / "snapshots" / "journey"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
FIRST = dt.date(2021, 6, 5)

RANDOM = [
    (re.compile(r'(name="csrftoken"[^>]*value=")[^"]*(")'), r"\1{CSRF}\2"),
    (re.compile(r'(value=")[^"]*("[^>]*name="csrftoken")'), r"\1{CSRF}\2"),
    (re.compile(r'(name="key"[^>]*value=")[^"]*(")'), r"\1{KEY}\2"),
    (re.compile(r'(value=")[^"]*("[^>]*name="key")'), r"\1{KEY}\2"),
    (re.compile(r"/b/[A-Za-z0-9_-]+"), "/b/{TOKEN}"),
    (re.compile(r"/o/[A-Za-z0-9_-]+"), "/o/{TOKEN}"),
    # A static file's fingerprint is the hash of the file (a stylesheet fix changes it), not the
    # page's own work: the page must still name the same files.
    (re.compile(r"\?v=[0-9a-f]+"), "?v={HASH}"),
]


class Pages:
    """The journey's responses, each named, normalised and compared (or written)."""

    def __init__(self, client):
        self.client = client
        self.secrets: list[str] = []  # tokens and codes seen in this test, to hide wherever they are
        self.seen: list[str] = []

    def normalise(self, body: str) -> str:
        for pattern, repl in RANDOM:
            body = pattern.sub(repl, body)
        for secret in sorted(set(self.secrets), key=len, reverse=True):
            body = body.replace(secret, "{SECRET}")
        return body

    def check(self, name: str, response) -> None:
        self.seen.append(name)
        lines = [f"status: {response.status_code}"]
        if "location" in response.headers:
            lines.append(f"location: {self.normalise(response.headers['location'])}")
        got = "\n".join(lines) + "\n\n" + self.normalise(response.text)
        path = SNAPSHOTS / f"{name}.txt"
        if UPDATE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(got, encoding="utf-8")
            return
        assert path.exists(), f"no snapshot {path.name}: UPDATE_SNAPSHOTS=1 writes it"
        want = path.read_text(encoding="utf-8")
        assert got == want, f"{name}: the page changed (diff it with {path})"

    async def get(self, name: str, url: str, **kw):
        response = await self.client.get(url, **kw)
        self.check(name, response)
        return response

    async def post(self, name: str, url: str, page, data: dict):
        response = await self.client.post(url, data={"csrftoken": csrf(parse(page)), **data})
        self.check(name, response)
        return response


@pytest.fixture
def sqlite_only(db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("the pages do not depend on the database: SQLite only")


@pytest.fixture
async def world(sqlite_only, db):
    site = await make_site("S01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路1号")
    other = await make_site("S02", "五山街", name="华工医院接种点", address="天河区五山路381号")
    await make_site("S03", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞路9号")
    slots = [
        await make_slot(site, dt.date(2021, 7, 2), "09:00", "10:00", capacity=5),
        await make_slot(site, dt.date(2021, 7, 2), "10:00", "11:00", capacity=1, booked=1),
        await make_slot(site, dt.date(2021, 7, 3), "14:00", "15:00", capacity=5),
        await make_slot(other, dt.date(2021, 7, 2), "09:00", "10:00", capacity=5),
    ]
    people = []
    for seq, name, phone in ((901, "张三明", "13812345678"), (902, "李四华", "13812340002")):
        # The ID number fixed, not the factory's next one: the typo page echoes what was typed.
        number = pii.build_id_number("440106", dt.date(1980, 5, 17), seq)
        resident, _ = await make_resident(site, first_dose=FIRST, name=name, phone=phone, number=number)
        people.append((resident, number, await issue_link(resident, now=NOW)))
    return dict(site=site, other=other, slots=slots, people=people)


async def walk(pages: Pages, world, who: int, prefix: str) -> None:
    """Link, ID (a typo first), site, day, window, check, confirm, confirmation, booking home."""
    resident, number, token = world["people"][who]
    pages.secrets.append(token)
    await pages.get(f"{prefix}-01-link", f"/b/{token}")
    home = await pages.get(f"{prefix}-02-home", "/booking")
    typo = number[:17] + ("1" if number[17] != "1" else "2")
    await pages.post(f"{prefix}-03-verify-typo", "/booking/verify", home, {"id_number": typo})
    await pages.post(f"{prefix}-04-verify", "/booking/verify", home, {"id_number": number})
    await pages.get(f"{prefix}-05-home-verified", "/booking")
    site_page = await pages.get(f"{prefix}-06-site", "/booking/site")
    await pages.post(f"{prefix}-07-site-post", "/booking/site", site_page, {"site": world["site"].id})
    await pages.get(f"{prefix}-08-slot", "/booking/slot")
    await pages.get(f"{prefix}-09-slot-fragment", "/booking/slot?day=2021-07-03", headers={"HX-Request": "true"})
    slot_page = await pages.get(f"{prefix}-10-slot-day", "/booking/slot?day=2021-07-02")
    await pages.post(f"{prefix}-11-slot-post", "/booking/slot", slot_page, {"slot": world["slots"][0].id})
    check = await pages.get(f"{prefix}-12-check", "/booking/check")
    key = parse(check).find("input", attrs={"name": "key"})["value"]
    await pages.post(f"{prefix}-13-confirm", "/booking/confirm", check, {"key": key, "slot": world["slots"][0].id})
    booking = await Booking.get(resident=resident)
    pages.secrets += [booking.code, f"{booking.code[:4]}-{booking.code[4:]}", booking.code[:4], booking.code[4:]]
    await pages.get(f"{prefix}-14-done", "/booking/done")
    await pages.get(f"{prefix}-15-home-booked", "/booking")
    await pages.get(f"{prefix}-16-cancel", "/booking/cancel")


async def test_the_journey_in_chinese_gives_the_same_pages(client, world):
    pages = Pages(client)
    await pages.get("zh-00-start", "/")
    await walk(pages, world, 0, "zh")


async def test_the_journey_in_english_large_text_gives_the_same_pages(client, world):
    client.cookies.set("lang", "en")
    client.cookies.set("text", "large")
    pages = Pages(client)
    await pages.get("en-large-00-start", "/")
    await walk(pages, world, 1, "en-large")


async def test_no_room_and_the_waiting_list_give_the_same_pages(client, world):
    await Slot.all().update(booked=0, capacity=0)
    resident, number, token = world["people"][0]
    pages = Pages(client)
    pages.secrets.append(token)
    await pages.get("noroom-01-link", f"/b/{token}")
    home = await pages.get("noroom-02-home", "/booking")
    await pages.post("noroom-03-verify", "/booking/verify", home, {"id_number": number})
    no_room = await pages.get("noroom-04-no-room", "/booking")
    form = parse(no_room).find("form", attrs={"action": "/booking/waitlist"})
    data = {f["name"]: f.get("value", "") for f in form.find_all("input")
            if f.get("type") != "radio" or f.has_attr("checked")}
    data.pop("csrftoken")
    await pages.post("noroom-05-join", "/booking/waitlist", no_room, data)
    await pages.get("noroom-06-waiting", "/booking/waitlist")
