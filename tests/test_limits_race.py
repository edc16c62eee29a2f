"""Issue 21, finding 2, against the real server (`run.py serve`): fifty attempts sent at once get
no more than the limit checked, with one worker or two, without Redis (the database counts for
every worker) and with it, on SQLite and PostgreSQL. Before: 50 wrong passwords at once were all
checked and the right one as the 50th signed in; 50 wrong ID numbers on one link: 16 checked;
50 code requests from one address: 35 SMS for a limit of 20; two workers without Redis counted
apart."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import secrets

import httpx
import pytest

from models.clock import SystemClock
from models.db.tables import LoginCode, StaffUser
from models.people.links import issue_link
from tests.conftest import PG_URL, TEST_SECRET, reset_postgres
from tests.factories import make_resident, make_site
from tests.realserver import Server, seed
from tests.staff_helpers import PASSWORD, make_staff

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
CSRF = re.compile(r'name="csrftoken" value="([^"]+)"')
AT_ONCE = 50

CONFIGS = [
    pytest.param("sqlite", 1, False, id="sqlite-1worker"),
    pytest.param("sqlite", 2, False, id="sqlite-2workers"),
    pytest.param("sqlite", 2, True, id="sqlite-2workers-redis",
                 marks=pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set")),
    pytest.param("postgres", 2, False, id="postgres-2workers",
                 marks=pytest.mark.skipif(not PG_URL, reason="TEST_POSTGRES_URL is not set")),
]


def _world(url: str) -> dict:
    clock = SystemClock()

    async def build():
        await make_staff("callcentre", "agent1")
        site = await make_site("S01")
        resident, number = await make_resident(site, first_dose=clock.today() - dt.timedelta(days=30))
        _, other = await make_resident(site, first_dose=clock.today() - dt.timedelta(days=30),
                                       phone="13900000001")
        return {"token": await issue_link(resident, now=clock.now()), "number": number,
                "wrong": other}

    return seed(url, build)


def _counts(url: str) -> dict:
    async def read():
        return {"checked": (await StaffUser.get(username="agent1")).failed_logins,
                "codes": await LoginCode.all().count()}

    return seed(url, read)


async def _form(c: httpx.AsyncClient, path: str) -> str:
    r = await c.get(path)
    assert r.status_code in (200, 423), (path, r.status_code)  # 423: the link's locked page
    return CSRF.search(r.text).group(1)


async def _at_once(c: httpx.AsyncClient, path: str, forms: list[dict]) -> list[int]:
    token = await _form(c, "/staff" if path == "/staff/login" else
                        "/booking" if path == "/booking/verify" else "/entry")
    answers = await asyncio.gather(*(c.post(path, data={"csrftoken": token, **f}) for f in forms))
    return [r.status_code for r in answers]


async def _attack(base_url: str, world: dict) -> dict:
    timeout = httpx.Timeout(120)
    seen = {}
    # 50 wrong passwords for one account at once, then the right one: refused.
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as c:
        seen["passwords"] = await _at_once(c, "/staff/login", [
            {"username": "agent1", "password": f"wrong-{n}-{secrets.token_hex(4)}"}
            for n in range(AT_ONCE)])
        seen["right_password"] = (await _at_once(c, "/staff/login", [
            {"username": "agent1", "password": PASSWORD}]))[0]
    # 50 wrong ID numbers on one personal link at once, then the right one: locked.
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as c:
        await c.get(f"/b/{world['token']}")
        seen["ids"] = await _at_once(c, "/booking/verify",
                                     [{"id_number": world["wrong"]} for _ in range(AT_ONCE)])
        seen["right_id"] = (await _at_once(c, "/booking/verify",
                                           [{"id_number": world["number"]}]))[0]
    # 50 code requests from one address at once, each for another number.
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as c:
        seen["codes"] = await _at_once(c, "/entry", [{"phone": f"137{n:08d}"} for n in range(AT_ONCE)])
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("database,workers,redis", CONFIGS)
def test_fifty_at_once_get_no_more_than_the_limit_checked(tmp_path, database, workers, redis):
    if database == "postgres":
        asyncio.run(reset_postgres(PG_URL))  # migrated from nothing by the seeding below
        url = PG_URL
    else:
        url = f"sqlite://{tmp_path}/race.sqlite3"
    world = _world(url)
    env = {"REDIS_URL": REDIS_URL if redis else "", "REDIS_PREFIX": f"test-{secrets.token_hex(6)}",
           "WAITING_ROOM_POST_WAIT": "120"}
    server = Server(url, TEST_SECRET, workers=workers, **env)
    try:
        seen = asyncio.run(_attack(server.base_url, world))
    finally:
        server.stop()
    counts = _counts(url)
    # Passwords: 5 per username and address (login_guess); the rest refused unchecked.
    assert counts["checked"] <= 5, f"{counts['checked']} of {AT_ONCE} wrong passwords checked"
    assert seen["passwords"].count(422) <= 5 and seen["passwords"].count(429) >= AT_ONCE - 5
    assert seen["right_password"] == 429, "the right password after them is refused too"
    # ID numbers: the link's 5 tries (4 answered "wrong", the 5th locks it); the rest locked.
    assert seen["ids"].count(422) <= 4, seen["ids"]
    assert set(seen["ids"]) <= {422, 423}
    assert seen["right_id"] == 423, "the right number after them finds the link locked"
    # Codes: 20 an hour per address (sms_code), each counted before anything is queued.
    assert counts["codes"] <= 20, f"{counts['codes']} codes queued for {AT_ONCE} requests"
    assert seen["codes"].count(429) >= AT_ONCE - 20
