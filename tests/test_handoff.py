"""The city health platform's signed hand-off: POST /api/handoff signed as a partner signs it,
every refusal by its code, and the one-time address into a verified journey, used once."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets

import httpx
import pytest

from models.db.tables import AuditEntry, Booking, HandoffNonce, Link, Resident, RiskArea, SmsMessage
from models.people import pii
from models.channels.handoff import parse_partners
from tests.conftest import BASE_URL, NOW, TEST_SECRET
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import get_page, parse, post_form, text
from web.security import redact_path

FIRST = dt.date(2021, 6, 5)
SECRET = "jkt-shared-secret-0123456789"
PATH = "/api/handoff"


@pytest.fixture
async def world(db):
    site = await make_site("S01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路1号")
    slots = [await make_slot(site, dt.date(2021, 7, 2), "09:00", "10:00", capacity=5),
             await make_slot(site, dt.date(2021, 7, 3), "14:00", "15:00", capacity=5)]
    resident, number = await make_resident(site, first_dose=FIRST, name="张三明")
    return {"site": site, "slots": slots, "resident": resident, "number": number}


def make_client(settings, clock, **changes) -> httpx.AsyncClient:
    from web.app import create_app

    app = create_app(settings.with_(**changes), manage_db=False, clock=clock)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 5000))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


@pytest.fixture
async def api(settings, clock):
    """The app with one partner, jkt, configured (HANDOFF_PARTNERS=jkt:SECRET)."""
    async with make_client(settings, clock, handoff_partners=(("jkt", SECRET),)) as c:
        yield c


def signed(body: dict | bytes, *, when: dt.datetime = NOW, secret: str = SECRET,
           partner: str = "jkt", nonce: str | None = None) -> dict:
    """The request a partner sends: body and headers, signed the way the README shows."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    timestamp = str(int(when.timestamp()))
    nonce = nonce or secrets.token_hex(16)
    message = "\n".join(["POST", PATH, timestamp, nonce, hashlib.sha256(raw).hexdigest()])
    signature = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return {"content": raw, "headers": {
        "content-type": "application/json", "x-partner": partner, "x-timestamp": timestamp,
        "x-nonce": nonce, "x-signature": signature}}


async def ask(api, body: dict | bytes, **kw) -> httpx.Response:
    return await api.post(PATH, **signed(body, **kw))


def token_of(url: str) -> str:
    assert url.startswith(f"{BASE_URL}/h/"), url
    return url.rsplit("/", 1)[1]


async def test_a_signed_request_for_an_eligible_person_gets_a_one_time_address(api, world):
    r = await ask(api, {"id_number": world["number"]})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["can_book"] is True and answer["expires_in"] == 600
    token_of(answer["url"])
    entry = await AuditEntry.get(action="handoff")
    assert entry.username == "partner:jkt" and entry.resident_id == world["resident"].id
    assert world["number"] not in entry.detail and pii.mask_id(world["number"]) in entry.detail


async def test_the_address_opens_a_verified_journey_that_books_with_channel_handoff(api, world):
    answer = (await ask(api, {"id_number": world["number"], "lang": "zh"})).json()
    links_before = await Link.filter(resident=world["resident"]).count()
    r = await api.get(f"/h/{token_of(answer['url'])}")
    assert r.status_code == 303 and r.headers["location"] == "/booking/site", "no ID check asked"
    site_page = await get_page(api, "/booking/site")
    assert "五山街社区卫生服务中心" in text(site_page)
    await post_form(api, "/booking/site", site_page, {"site": world["site"].id})
    slot_page = await get_page(api, "/booking/slot")
    await post_form(api, "/booking/slot", slot_page, {"slot": world["slots"][0].id})
    check = await get_page(api, "/booking/check")
    key = check.find("input", attrs={"name": "key"})["value"]
    r = await post_form(api, "/booking/confirm", check, {"key": key, "slot": world["slots"][0].id})
    assert r.headers["location"] == "/booking/done"
    done = await get_page(api, "/booking/done")
    booking = await Booking.get(resident=world["resident"])
    assert booking.channel == "handoff" and booking.code[:4] in text(done)
    # They came without their SMS link: the confirmation SMS carries a new one, to come back.
    assert await SmsMessage.filter(resident=world["resident"], kind="confirm").count() == 1
    assert await Link.filter(resident=world["resident"]).count() == links_before + 2
    assert await AuditEntry.filter(action="handoff_open", resident_id=world["resident"].id).count() == 1


async def test_the_language_the_platform_asks_for_is_the_pages_and_the_sms(api, world):
    answer = (await ask(api, {"id_number": world["number"], "lang": "en"})).json()
    r = await api.get(f"/h/{token_of(answer['url'])}")
    assert r.cookies.get("lang") == "en"
    assert (await Resident.get(id=world["resident"].id)).lang == "en"


async def test_the_one_time_address_used_twice_gets_the_dead_link_page(api, world):
    url = (await ask(api, {"id_number": world["number"]})).json()["url"]
    assert (await api.get(f"/h/{token_of(url)}")).status_code == 303
    api.cookies.clear()
    second = await api.get(f"/h/{token_of(url)}")
    assert second.status_code == 404
    page = parse(second)
    assert "链接无效或已过期" in text(page)
    assert page.find("a", href="/entry"), "the dead-link page shows the way in by phone"
    assert (await api.get("/booking")).status_code == 404, "no journey was started"


async def test_the_one_time_address_dies_after_ten_minutes(api, world, clock):
    url = (await ask(api, {"id_number": world["number"]})).json()["url"]
    clock.advance(minutes=10, seconds=1)
    assert (await api.get(f"/h/{token_of(url)}")).status_code == 404
    assert (await api.get("/h/not-a-token-at-all")).status_code == 404


async def test_a_bad_signature_or_an_unknown_partner_is_refused(api, world):
    wrong_key = await ask(api, {"id_number": world["number"]}, secret="another-secret-0123456789")
    assert wrong_key.status_code == 401 and wrong_key.json() == {"error": "bad_signature"}
    stranger = await ask(api, {"id_number": world["number"]}, partner="other")
    assert stranger.status_code == 401 and stranger.json() == {"error": "bad_signature"}
    request = signed({"id_number": world["number"]})
    request["content"] = json.dumps({"id_number": "440106198001010000"}).encode()  # body changed
    tampered = await api.post(PATH, **request)
    assert tampered.status_code == 401 and tampered.json() == {"error": "bad_signature"}
    unsigned = await api.post(PATH, json={"id_number": world["number"]})
    assert unsigned.status_code == 401
    audited = await AuditEntry.filter(action="handoff").values_list("username", "detail")
    assert sorted(audited) == sorted([("partner:jkt", "bad_signature"), ("partner:other", "bad_signature"),
                                      ("partner:jkt", "bad_signature"), ("partner:?", "bad_signature")])


async def test_a_timestamp_more_than_five_minutes_off_is_stale(api, world):
    for when in (NOW - dt.timedelta(minutes=5, seconds=1), NOW + dt.timedelta(minutes=5, seconds=1)):
        r = await ask(api, {"id_number": world["number"]}, when=when)
        assert r.status_code == 401 and r.json() == {"error": "stale"}
    fresh = await ask(api, {"id_number": world["number"]}, when=NOW - dt.timedelta(minutes=4))
    assert fresh.status_code == 200


async def test_a_nonce_used_again_is_a_replay(api, world, clock):
    request = signed({"id_number": world["number"]}, nonce="nonce-0001-abcdef")
    assert (await api.post(PATH, **request)).status_code == 200
    again = await api.post(PATH, **request)
    assert again.status_code == 401 and again.json() == {"error": "replayed"}
    # The same nonce signed afresh a moment later is still a replay.
    clock.advance(minutes=1)
    later = await ask(api, {"id_number": world["number"]}, when=clock.now(), nonce="nonce-0001-abcdef")
    assert later.json() == {"error": "replayed"}
    # Nonces are kept only while their timestamp could pass: old ones are swept.
    clock.advance(minutes=30)
    await ask(api, {"id_number": world["number"]}, when=clock.now())
    assert await HandoffNonce.filter(nonce="nonce-0001-abcdef").count() == 0


async def test_people_who_cannot_book_are_told_why_as_a_code(api, world, district, clock):
    site = world["site"]
    booked, booked_number = await make_resident(site, first_dose=FIRST, name="陈七英", phone="13900000001")
    await book_for(district, booked, world["slots"][1])
    done, done_number = await make_resident(site, first_dose=FIRST, name="赵六军", phone="13900000002")
    await Resident.filter(id=done.id).update(second_dose_date=dt.date(2021, 6, 28))
    early, early_number = await make_resident(site, first_dose=dt.date(2021, 6, 20), name="王五芳",
                                              phone="13900000003")
    risky, risky_number = await make_resident(site, first_dose=FIRST, name="刘八妹", phone="13900000004",
                                              subdistrict="珠吉街")
    await RiskArea.create(subdistrict="珠吉街", level="medium")

    answer = (await ask(api, {"id_number": booked_number})).json()
    assert answer["can_book"] is False and answer["reason"] == "booked"
    assert answer["booking"] == {"day": "2021-07-03", "start": "14:00", "end": "15:00",
                                 "site": "五山街社区卫生服务中心"}
    # Their booking is theirs to see, move or cancel: the address opens it.
    r = await api.get(f"/h/{token_of(answer['url'])}")
    assert r.headers["location"] == "/booking"
    assert "14:00" in text(await get_page(api, "/booking")) or "下午2:00" in text(await get_page(api, "/booking"))

    assert (await ask(api, {"id_number": done_number})).json() == {"can_book": False, "reason": "vaccinated"}
    assert (await ask(api, {"id_number": risky_number})).json() == {"can_book": False, "reason": "restricted"}
    too_early = (await ask(api, {"id_number": early_number})).json()
    assert too_early["reason"] == "too_early" and "url" not in too_early
    assert too_early["earliest"] == "2021-07-11" and too_early["opens_on"] == "2021-07-04"


async def test_someone_without_a_first_dose_here_is_not_found_in_the_same_shape(api, world):
    from tests.factories import id_number

    r = await ask(api, {"id_number": id_number(dt.date(1990, 3, 4))})
    assert r.status_code == 200 and r.json() == {"can_book": False, "reason": "not_found"}


async def test_malformed_bodies_and_invalid_id_numbers_are_refused(api, world):
    bad = [b"", b"not json", b"[1, 2]", b'{"id": "x"}', b'{"id_number": 440106}',
           b'{"id_number": "x", "lang": "fr"}', b"\xff\xfe", json.dumps({"id_number": "1" * 100}).encode()]
    for body in bad:
        r = await ask(api, body)
        assert r.status_code == 400 and r.json() == {"error": "bad_request"}, body
    typo = world["number"][:17] + ("0" if world["number"][17] != "0" else "1")
    r = await ask(api, {"id_number": typo})
    assert r.status_code == 422 and r.json() == {"error": "invalid_id"}
    weird = await api.post(PATH, **{**signed({"id_number": world["number"]}), "headers": {
        **signed({"id_number": world["number"]})["headers"], "x-nonce": "short"}})
    assert weird.status_code in (400, 401)


async def test_calls_are_rate_limited_per_partner(settings, clock, world):
    async with make_client(settings, clock, handoff_partners=(("jkt", SECRET), ("other", SECRET + "x")),
                           rate_limit_handoff="3/minute") as api:
        for _ in range(3):
            assert (await ask(api, {"id_number": world["number"]})).status_code == 200
        limited = await ask(api, {"id_number": world["number"]})
        assert limited.status_code == 429 and limited.json() == {"error": "rate_limited"}
        assert limited.headers["retry-after"]
        other = await ask(api, {"id_number": world["number"]}, partner="other", secret=SECRET + "x")
        assert other.status_code == 200, "another partner has its own count"


async def test_an_address_sending_bad_signatures_is_stopped_before_any_work(settings, clock, world):
    async with make_client(settings, clock, handoff_partners=(("jkt", SECRET),),
                           rate_limit_handoff="3/minute") as api:
        for _ in range(3):
            assert (await ask(api, {"id_number": world["number"]}, secret="guess-" * 4)).status_code == 401
        stopped = await ask(api, {"id_number": world["number"]})
        assert stopped.status_code == 429 and stopped.json() == {"error": "rate_limited"}
        assert await AuditEntry.filter(action="handoff").count() == 3, "the flood is not written down"


async def test_off_while_no_partner_is_configured(client, world):
    r = await client.post(PATH, **signed({"id_number": world["number"]}))
    assert r.status_code == 404
    assert (await client.get("/h/anything-at-all")).status_code == 404


async def test_answers_are_json_and_the_log_holds_neither_id_number_nor_token(api, world, caplog):
    r = await ask(api, {"id_number": world["number"]})
    token = token_of(r.json()["url"])
    await api.get(f"/h/{token}")
    assert r.headers["content-type"].startswith("application/json")
    assert redact_path(f"/h/{token}") == "/h/…"
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("booking"))
    assert "/h/…" in ours, "the access log names the path, not the token"
    assert world["number"] not in ours and token not in ours


def test_partners_are_read_from_name_secret_pairs():
    assert parse_partners("") == ()
    assert parse_partners("jkt:" + SECRET + ", Other:" + SECRET) == (("jkt", SECRET), ("other", SECRET))
    for bad in ("jkt", "jkt:short", "j k:" + SECRET, f"jkt:{SECRET},jkt:{SECRET}"):
        with pytest.raises(ValueError) as problem:
            parse_partners(bad)
        assert SECRET not in str(problem.value)


def test_the_setting_reads_handoff_partners(monkeypatch):
    from web.settings import load_settings

    monkeypatch.setenv("HANDOFF_PARTNERS", f"jkt:{SECRET}")
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    settings = load_settings()
    assert dict(settings.handoff_partners) == {"jkt": SECRET} and SECRET not in repr(settings)
