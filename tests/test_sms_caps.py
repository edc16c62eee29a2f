"""SMS that cannot be turned into a weapon or a bill (issue 21, finding 5).

A number gets at most 5 SMS asked for on demand (log-in codes, link re-sends) in any hour and 10
in any day, counted in the database in the transaction that queues them, so concurrent requests
cannot both pass; booking news neither is capped nor counts. A log-in code is never sent once it
has expired: it ends `expired`, and expired codes never count toward the sender's hourly limit.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path

import httpx
import pytest

from models.clock import as_utc
from models.db.tables import Link, LoginCode, SmsMessage, SmsQuota
from models.messaging import caps, delivery
from models.messaging.config import SmsConfig
from models.messaging.outbox import queue
from models.messaging.sms import Sms
from models.operations import outreach
from models.metrics import RATE_LIMIT_REFUSALS
from models.operations.gauges import read_gauges
from models.channels import entry
from tests.conftest import NOW, PG_URL, TEST_SECRET, VAULT, reset_postgres
from tests.factories import make_resident, make_site
from tests.pages import get_page, parse, post_form, text
from tests.realserver import Server, seed
from tests.staff_helpers import make_staff, sign_in

ROOT = Path(__file__).resolve().parent.parent
FIRST = dt.date(2021, 6, 5)
PHONE = "13912345678"
UNKNOWN = "13787654321"
OTHER = "13800000002"
CONFIG = SmsConfig(per_phone_per_hour=10)


class Recorder:
    """A gateway that keeps what it was asked to send."""

    def __init__(self):
        self.sent: list[tuple[str, str]] = []  # (phone, body)

    async def send(self, msg) -> str:
        self.sent.append((msg.phone, msg.body))
        return f"gw-{len(self.sent)}"

    async def receipts(self, pending):
        return []


@pytest.fixture
async def people(db):
    site = await make_site("S01", "五山街")
    one, _ = await make_resident(site, first_dose=FIRST, phone=PHONE)
    other, _ = await make_resident(site, first_dose=FIRST, name="王五芳", born=dt.date(1970, 1, 2),
                                   phone=OTHER)
    return {"one": one, "other": other, "site": site}


def hash_of(phone: str) -> str:
    return VAULT.keyed_hash(phone)


async def codes_queued(phone: str) -> int:
    return await SmsMessage.filter(phone_hash=hash_of(phone), kind="login_code").count()


async def ask(district, phone: str, at: dt.datetime) -> str:
    """Ask a code at `at`: 'sent', or the reason it was refused."""
    try:
        await entry.request_code(district, phone, now=at)
    except entry.EntryRefused as exc:
        return exc.reason
    return "sent"


def confirm_sms(n: int = 0) -> Sms:
    return Sms("confirm", {"n": str(n)}, body=f"【天河区卫健局】confirm {n}")


# ---- the caps at the door: the public way in


def browser(app, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 5000)),
                             base_url="http://testserver")


async def ask_page(c, phone: str):
    page = await get_page(c, "/entry")
    return await c.post("/entry", data={"csrftoken": page.find("input", attrs={"name": "csrftoken"})["value"],
                                        "phone": phone})


def normalised(response) -> str:
    return re.sub(r"1[3-9]\d\*{4}\d{4}", "PHONE", text(parse(response)))


async def ten_minutes_of_asking(app, clock, phone: str, address: str) -> list[tuple[int, str]]:
    """One address asks a code for one number every 61 seconds for ten minutes: every answer."""
    c = browser(app, address)
    answers = []
    for _ in range(10):
        response = await ask_page(c, phone)
        answers.append((response.status_code, response.headers.get("location") or normalised(response)))
        if response.status_code == 429:
            answers.append((0, response.headers["retry-after"]))
        clock.advance(seconds=61)
    await c.aclose()
    return answers


async def test_one_address_asking_codes_for_one_number_for_ten_minutes_gets_five_sent(client, people, clock):
    start = clock.moment
    refusals = RATE_LIMIT_REFUSALS.labels("sms_number")._value.get()
    known = await ten_minutes_of_asking(client.app, clock, PHONE, "198.51.100.1")
    assert await codes_queued(PHONE) == 5, "at most the hourly cap queued (11 before)"
    assert [status for status, _ in known if status] == [303] * 5 + [429] * 5
    refusal = known[5][1]
    until = start + dt.timedelta(hours=1)
    assert "这个号码的短信已达上限" in refusal and "每小时最多发送5条" in refusal
    assert f"{until:%H:%M}" in refusal, "the page says when they may try again"
    assert int(known[6][1]) == int((until - (start + dt.timedelta(seconds=5 * 61))).total_seconds())

    # An unknown number gets the very same answers, page for page: nobody learns it is unknown.
    clock.moment = start
    unknown = await ten_minutes_of_asking(client.app, clock, UNKNOWN, "198.51.100.2")
    assert unknown == known
    assert await SmsMessage.filter(phone_hash=hash_of(UNKNOWN)).count() == 0
    assert await LoginCode.filter(phone_hash=hash_of(UNKNOWN)).count() == 5
    assert RATE_LIMIT_REFUSALS.labels("sms_number")._value.get() == refusals + 10  # in /metrics


async def test_the_refusal_is_in_english_and_the_code_already_sent_can_still_be_typed(client, people, clock):
    client.cookies.set("lang", "en")
    for _ in range(5):
        assert (await ask_page(client, PHONE)).status_code == 303
        clock.advance(seconds=61)
    response = await ask_page(client, PHONE)
    assert response.status_code == 429
    page = text(parse(response))
    assert "no more text messages" in page.lower() and "at most 5" in page and "10 in 24 hours" in page
    assert "这个号码" not in page
    last = await SmsMessage.filter(kind="login_code").order_by("-id").first()
    code = json.loads(VAULT.decrypt(last.params_cipher))["code"]
    form = await get_page(client, "/entry/code")
    await post_form(client, "/entry/code", form, {"code": code})


async def test_the_cap_holds_from_the_resend_button_too(client, people, clock):
    assert (await ask_page(client, PHONE)).status_code == 303
    for _ in range(6):
        clock.advance(seconds=61)
        page = await get_page(client, "/entry/code")
        response = await client.post("/entry/resend", data={"csrftoken": page.find(
            "input", attrs={"name": "csrftoken"})["value"]})
    assert response.status_code == 429 and "之后再获取验证码" in text(parse(response))
    assert await codes_queued(PHONE) == 5


# ---- the daily cap across every kind asked for on demand


async def test_the_daily_cap_counts_codes_and_link_resends_but_not_booking_news(people, district):
    one = people["one"]
    for n in range(20):  # booking news: ours, never capped, never counted
        await queue(VAULT, one, confirm_sms(n), kind="confirm")
    t0 = NOW
    assert [await ask(district, PHONE, t0 + dt.timedelta(seconds=61 * i)) for i in range(6)] == \
        ["sent"] * 5 + ["sms_cap"]
    with pytest.raises(caps.CapReached) as held:  # a link re-send in the same hour: over the hour's 5
        district.clock.moment = t0 + dt.timedelta(minutes=30)
        await outreach.reissue_one(district, one.id)
    assert held.value.window == "hour" and held.value.until == as_utc(t0 + dt.timedelta(hours=1))
    assert await Link.filter(resident_id=one.id, revoked=True).count() == 0, "nothing revoked"

    district.clock.moment = t0 + dt.timedelta(hours=2)
    for _ in range(3):
        await outreach.reissue_one(district, one.id)
    later = t0 + dt.timedelta(hours=2, minutes=5)
    assert [await ask(district, PHONE, later + dt.timedelta(seconds=61 * i)) for i in range(2)] == ["sent"] * 2
    assert await SmsMessage.filter(phone_hash=hash_of(PHONE), kind="reissue").count() == 3

    # Ten in the day: the next code and the next re-send wait for the first to be a day old.
    district.clock.moment = t0 + dt.timedelta(hours=5)
    refused = await ask(district, PHONE, district.clock.moment)
    assert refused == "sms_cap"
    with pytest.raises(caps.CapReached) as day:
        await outreach.reissue_one(district, one.id)
    assert day.value.window == "day" and day.value.until == as_utc(t0 + dt.timedelta(days=1))
    with pytest.raises(entry.EntryRefused) as refusal:
        await entry.request_code(district, PHONE, now=district.clock.moment)
    assert refusal.value.until == as_utc(t0 + dt.timedelta(days=1))
    await queue(VAULT, one, confirm_sms(99), kind="confirm")  # booking news still goes
    assert await ask(district, OTHER, district.clock.moment) == "sent", "another number is not held"

    assert await ask(district, PHONE, t0 + dt.timedelta(days=1, seconds=1)) == "sent"
    assert await codes_queued(PHONE) == 8


async def test_concurrent_code_requests_for_one_number_queue_at_most_the_cap(people, district, monkeypatch):
    """Thirty requests at once (the minute rule off, so that only the caps stand in the way): the
    count is taken under the number's row lock, in the queueing transaction, on either database."""
    monkeypatch.setattr(entry, "RESEND_SECONDS", 0)
    results = await asyncio.gather(*(ask(district, PHONE, NOW) for _ in range(30)))
    assert sorted(results) == ["sent"] * 5 + ["sms_cap"] * 25
    assert await codes_queued(PHONE) == 5 and await LoginCode.all().count() == 5
    row = await SmsQuota.get(phone_hash=hash_of(PHONE))
    assert len(row.times.split(",")) == 5


async def test_concurrent_link_resends_and_codes_share_one_cap(people, district, monkeypatch):
    monkeypatch.setattr(entry, "RESEND_SECONDS", 0)

    async def resend():
        try:
            await outreach.reissue_one(district, people["one"].id)
        except caps.CapReached:
            return "sms_cap"
        return "sent"

    results = await asyncio.gather(*(ask(district, PHONE, NOW) if n % 2 else resend() for n in range(20)))
    assert results.count("sent") == 5
    assert await SmsMessage.filter(phone_hash=hash_of(PHONE)).count() == 5


async def test_an_admin_resending_a_link_past_the_cap_gets_a_clear_page(client, people, district):
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    page = await get_page(client, "/admin/links")
    for _ in range(5):
        await post_form(client, "/admin/links/reissue", page, {"r": people["one"].id}, status=303)
    response = await post_form(client, "/admin/links/reissue", page, {"r": people["one"].id}, status=429)
    assert "已达上限" in text(parse(response)) and "旧链接也没有作废" in text(parse(response))
    assert await SmsMessage.filter(kind="reissue").count() == 5
    assert await Link.filter(resident_id=people["one"].id, revoked=False).count() == 1


async def test_numbers_idle_for_a_day_are_forgotten(people, district):
    await entry.request_code(district, PHONE, now=NOW)
    await entry.request_code(district, OTHER, now=NOW + dt.timedelta(hours=20))
    assert await caps.forget(NOW + dt.timedelta(days=1, seconds=1)) == 1
    assert [q.phone_hash for q in await SmsQuota.all()] == [hash_of(OTHER)]


def test_next_allowed_names_the_moment_the_oldest_falls_out():
    limits = caps.SmsCaps(per_hour=2, per_day=3)
    assert caps.next_allowed([], 10_000, limits) is None
    assert caps.next_allowed([1000, 2000], 4000, limits) == (1000 + 3600, "hour")
    assert caps.next_allowed([100, 5000, 6000], 7000, limits) == (100 + 86400, "day")
    assert caps.next_allowed([100, 5000], 7000, limits) is None


# ---- the sender: a code past its five minutes is dropped, unsent, unpaid


async def test_a_sender_paused_for_eleven_minutes_sends_no_expired_code(db, district):
    site = await make_site()
    for n in range(20):
        await make_resident(site, first_dose=FIRST, born=dt.date(1960, 1, 1) + dt.timedelta(days=n),
                            phone=f"139{n:08d}")
        await entry.request_code(district, f"139{n:08d}", now=NOW + dt.timedelta(seconds=15 * n))
    one, _ = await make_resident(site, first_dose=FIRST, phone=PHONE)
    await queue(VAULT, one, confirm_sms(), kind="confirm")  # booking news has no deadline
    gateway, lines = Recorder(), []

    class Paused:
        def utc(self):
            return as_utc(NOW + dt.timedelta(minutes=11))

    await delivery.run_sender(VAULT, gateway, CONFIG, Paused(), once=True, say=lines.append)
    assert [body for _, body in gateway.sent] == ["【天河区卫健局】confirm 0"], "no expired code sent"
    assert await SmsMessage.filter(kind="login_code", status=SmsMessage.EXPIRED).count() == 20
    assert "20 expired unsent" in " ".join(lines)
    assert (await delivery.status_counts())["expired"] == 20
    gauges = await read_gauges(NOW + dt.timedelta(minutes=11))
    assert gauges.sms[("login_code", "expired")] == 20


async def test_a_code_still_good_is_sent_and_one_just_expired_is_not(people, district):
    await entry.request_code(district, PHONE, now=NOW)
    await entry.request_code(district, OTHER, now=NOW + dt.timedelta(minutes=1))
    gateway = Recorder()
    report = await delivery.send_due(VAULT, gateway, CONFIG, now=NOW + dt.timedelta(minutes=5, seconds=30))
    assert [phone for phone, _ in gateway.sent] == [OTHER] and report.expired == 1


async def test_a_code_held_by_the_hour_limit_expires_instead_of_going_an_hour_later(people, district):
    limited = SmsConfig(per_phone_per_hour=3)
    gateway = Recorder()
    for i in range(3):  # three codes sent in the hour: the number's share of the sender's limit
        at = NOW + dt.timedelta(seconds=61 * i)
        await entry.request_code(district, PHONE, now=at)
        assert (await delivery.send_due(VAULT, gateway, limited, now=at)).sent == 1
    fourth = NOW + dt.timedelta(minutes=4)
    await entry.request_code(district, PHONE, now=fourth)
    report = await delivery.send_due(VAULT, gateway, limited, now=fourth)
    assert report.sent == 0 and report.delayed == 0 and report.expired == 1
    held = await SmsMessage.filter(kind="login_code").order_by("-id").first()
    assert held.status == SmsMessage.EXPIRED and held.next_attempt_at is None
    assert (await delivery.send_due(VAULT, gateway, limited, now=NOW + dt.timedelta(hours=1, minutes=5))).sent == 0
    assert len(gateway.sent) == 3


async def test_a_code_held_a_little_is_sent_when_its_turn_comes_before_it_expires(people, district):
    limited = SmsConfig(per_phone_per_hour=2)
    gateway = Recorder()
    await entry.request_code(district, PHONE, now=NOW)
    await delivery.send_due(VAULT, gateway, limited, now=NOW)
    await entry.request_code(district, PHONE, now=NOW + dt.timedelta(minutes=58))
    await delivery.send_due(VAULT, gateway, limited, now=NOW + dt.timedelta(minutes=58))
    at = NOW + dt.timedelta(minutes=59)
    await entry.request_code(district, PHONE, now=at)
    report = await delivery.send_due(VAULT, gateway, limited, now=at)
    assert report.delayed == 1  # its turn (the hour after the first) comes within its 5 minutes
    assert (await delivery.send_due(VAULT, gateway, limited, now=NOW + dt.timedelta(hours=1))).sent == 1
    assert len(gateway.sent) == 3


async def test_expired_codes_do_not_count_toward_the_hour_limit(people, district):
    limited = SmsConfig(per_phone_per_hour=3)
    for i in range(3):  # asked while the sender was down
        await entry.request_code(district, PHONE, now=NOW + dt.timedelta(seconds=61 * i))
    back = NOW + dt.timedelta(minutes=10)
    await entry.request_code(district, PHONE, now=back)  # asked again once it is back
    fresh = await SmsMessage.filter(kind="login_code").order_by("-id").first()
    gateway = Recorder()
    report = await delivery.send_due(VAULT, gateway, limited, now=back)
    assert report.sent == 1 and report.expired == 3 and report.delayed == 0
    assert gateway.sent == [(PHONE, VAULT.decrypt(fresh.body_cipher))]
    at = back + dt.timedelta(seconds=61)  # nor the one after it: only codes that went count
    await entry.request_code(district, PHONE, now=at)
    assert (await delivery.send_due(VAULT, gateway, limited, now=at)).sent == 1


async def test_booking_news_never_holds_a_code_back(people, district):
    limited = SmsConfig(per_phone_per_hour=3)
    for n in range(3):
        await queue(VAULT, people["one"], confirm_sms(n), kind="confirm")
    gateway = Recorder()
    assert (await delivery.send_due(VAULT, gateway, limited, now=NOW)).sent == 3
    await entry.request_code(district, PHONE, now=NOW + dt.timedelta(minutes=1))
    await queue(VAULT, people["one"], confirm_sms(3), kind="confirm")
    report = await delivery.send_due(VAULT, gateway, limited, now=NOW + dt.timedelta(minutes=1))
    assert report.sent == 1 and report.delayed == 1  # the code went; the fourth news waits
    assert (await SmsMessage.get(kind="login_code")).status == SmsMessage.SENT


async def test_a_retry_that_would_come_too_late_ends_the_code_as_expired(people, district):
    await entry.request_code(district, PHONE, now=NOW)

    class Down(Recorder):
        async def send(self, msg):
            from models.messaging.gateways import GatewayError

            raise GatewayError("isp.RAM_PERMISSION_DENY: timeout", permanent=False)

    report = await delivery.send_due(VAULT, Down(), CONFIG, now=NOW + dt.timedelta(minutes=4, seconds=50))
    assert report.expired == 1 and report.retrying == 0
    msg = await SmsMessage.get(kind="login_code")
    assert msg.status == SmsMessage.EXPIRED and "timeout" in msg.last_error


async def test_admins_see_expired_codes_counted(client, people, district):
    await entry.request_code(district, PHONE, now=NOW)
    await delivery.send_due(VAULT, Recorder(), CONFIG, now=NOW + dt.timedelta(minutes=6))
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    page = await get_page(client, "/admin/messages")
    heads = [th.get_text(strip=True) for th in page.find("table").find_all("th")]
    cells = [td.get_text(strip=True) for td in page.find("table").find("tbody").find_all("td")]
    assert dict(zip(heads, cells))["过期未发"] == "1"


# ---- `run.py send-sms --once` after a pause, as the finding measured it


async def test_send_sms_once_after_a_pause_drops_the_expired_codes(db_url):
    """Codes asked for 11 minutes ago (real time: the command reads the system clock) and one
    asked for just now: `run.py send-sms --once` sends the fresh one and drops the others."""
    from models.clock import FixedClock
    from web.settings import Settings, build_district

    now = dt.datetime.now(dt.timezone.utc)
    district = build_district(Settings(database_url=db_url, secret_key=TEST_SECRET), clock=FixedClock(now))
    site = await make_site()
    for n in range(12):
        await make_resident(site, first_dose=FIRST, born=dt.date(1960, 1, 1) + dt.timedelta(days=n),
                            phone=f"139{n:08d}")
        await entry.request_code(district, f"139{n:08d}", now=now - dt.timedelta(minutes=11, seconds=-n))
    await entry.request_code(district, "13900000011", now=now)
    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": TEST_SECRET,
           "BASE_URL": "http://127.0.0.1:8000", "SMS_BACKEND": "console"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "run.py", "send-sms", "--once", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = (part.decode() for part in await asyncio.wait_for(proc.communicate(), 60))
    assert proc.returncode == 0, err
    assert "sms: 1 sent" in out and "12 expired unsent" in out
    assert err.count("SMS to 139****") == 1 and "139****0011" in err
    assert await SmsMessage.filter(status=SmsMessage.EXPIRED).count() == 12


async def test_concurrent_first_requests_for_one_number_send_one_code(people, district):
    """Twenty people asking at the same moment for a number nobody asked for before: one code a
    minute holds (the number's cap row is the lock; before, a number without a code row had
    nothing to lock, and PostgreSQL let several through)."""
    results = await asyncio.gather(*(ask(district, PHONE, NOW) for _ in range(20)))
    assert sorted(results) == ["sent"] + ["wait"] * 19
    assert await codes_queued(PHONE) == 1 and await LoginCode.all().count() == 1


# ---- the real server, two workers: two clients asking at once for one number


def _seeded(url: str) -> None:
    from models.clock import SystemClock

    async def build():
        site = await make_site()
        await make_resident(site, first_dose=SystemClock().today() - dt.timedelta(days=30), phone=PHONE)

    seed(url, build)


def _code_rows(url: str) -> tuple[int, int]:
    async def read():
        return await LoginCode.all().count(), await SmsMessage.filter(kind="login_code").count()

    return seed(url, read)


async def _two_clients_at_once(base_url: str, each: int) -> list[int]:
    async def one_client():
        async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(60)) as c:
            page = await c.get("/entry")
            token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
            answers = await asyncio.gather(*(c.post("/entry", data={"csrftoken": token, "phone": PHONE})
                                             for _ in range(each)))
            return [r.status_code for r in answers]

    first, second = await asyncio.gather(one_client(), one_client())
    return first + second


@pytest.mark.slow
@pytest.mark.parametrize("database", [
    "sqlite", pytest.param("postgres", marks=pytest.mark.skipif(not PG_URL, reason="TEST_POSTGRES_URL is not set"))])
def test_two_clients_asking_at_once_on_two_workers_get_one_code(tmp_path, database):
    """`serve --workers 2`: twenty requests at once for one number from two clients queue one
    code (the minute's share; the caps are counted under the same lock). Before, PostgreSQL let
    several through: a number without a code row had nothing to lock."""
    if database == "postgres":
        asyncio.run(reset_postgres(PG_URL))  # migrated from nothing by the seeding below
        url = PG_URL
    else:
        url = f"sqlite://{tmp_path}/codes.sqlite3"
    _seeded(url)
    server = Server(url, TEST_SECRET, workers=2, REDIS_URL="", WAITING_ROOM_POST_WAIT="60")
    try:
        statuses = asyncio.run(_two_clients_at_once(server.base_url, 10))
    finally:
        server.stop()
    assert statuses == [303] * 20  # every one answered: the code page, "on its way"
    assert _code_rows(url) == (1, 1)
