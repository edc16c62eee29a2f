"""Staff accounts: sign-in, lock-out, server-side sessions, roles, the audit trail."""
from __future__ import annotations

import datetime as dt

import pytest
from tortoise.exceptions import IntegrityError, OperationalError

from models.clock import as_utc
from models.db.tables import AuditEntry, StaffSession, StaffUser
from models.staff import sessions
from tests.factories import make_site
from tests.pages import csrf, get_page, parse, text
from tests.staff_helpers import browser_at, make_staff, sign_in


async def test_sign_in_opens_a_server_session_and_is_audited(client):
    await make_staff("admin", "boss")
    response = await sign_in(client, "Boss")
    assert response.headers["location"] == "/admin"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    session = await StaffSession.get()
    assert client.cookies["staff_session"] not in session.token_hash  # only the hash is kept
    assert await AuditEntry.filter(action="login", username="boss").exists()
    assert "操作记录" in text(await get_page(client, "/admin"))


async def test_a_new_session_id_at_each_sign_in(client):
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    first = client.cookies["staff_session"]
    client.cookies.clear()
    await sign_in(client, "boss")
    assert client.cookies["staff_session"] != first


async def test_five_wrong_passwords_slow_down_this_address_not_the_account(client):
    await make_staff("callcentre", "agent1")
    for _ in range(5):
        response = await sign_in(client, "agent1", "wrong-password-x", status=422)
        assert "用户名或密码不正确" in text(parse(response))
    response = await sign_in(client, "agent1", status=429)  # not even tried: a guesser learns nothing
    assert 0 < int(response.headers["retry-after"]) <= 15 * 60
    assert "登录尝试过多" in text(parse(response))
    assert await AuditEntry.filter(action="login_throttled", username="agent1").exists()
    async with browser_at(client.app, "198.51.100.20") as elsewhere:
        await sign_in(elsewhere, "agent1")  # the account itself is not locked
    assert (await StaffUser.get(username="agent1")).locked_until is None


async def test_an_attacker_guessing_all_day_never_keeps_the_real_person_out(client):
    """The attacker knows the username and guesses from two addresses, one of them the real
    person's own office address; the person signs in from their usual browser throughout."""
    await make_staff("site", "site-th01", site_code=(await make_site("TH01")).code)
    async with browser_at(client.app, "203.0.113.7") as desk:  # the office, as the client fixture
        await sign_in(desk, "site-th01")  # once, so this browser is known
        desk.cookies.delete("staff_session")
        async with browser_at(client.app, "198.51.100.66") as attacker_far:
            statuses = set()
            for round_ in range(12):  # rounds of guessing, as through a day
                for _ in range(10):
                    for attacker in (attacker_far, client):  # client: the same office address
                        page = await get_page(attacker, "/staff")
                        r = await attacker.post("/staff/login", data={
                            "csrftoken": csrf(page), "username": "site-th01",
                            "password": f"guess-{round_}-{_}"})
                        statuses.add(r.status_code)
                await sign_in(desk, "site-th01")  # still works, from the office, every round
                desk.cookies.delete("staff_session")
    assert statuses == {422, 429}, "guessing is slowed to a trickle, never let through"
    failed = await AuditEntry.filter(action="login_failed", username="site-th01").count()
    assert failed <= 5 + 5, "each address got its five tries and then only refusals"
    assert await AuditEntry.filter(action="login", username="site-th01").count() == 13


async def test_unknown_user_answers_like_a_wrong_password(client):
    response = await sign_in(client, "nobody", "whatever-password", status=422)
    assert "用户名或密码不正确" in text(parse(response))


async def test_too_many_wrong_passwords_from_one_address_are_throttled(client):
    for n in range(30):  # a different username each time: the per-address limit
        await sign_in(client, f"nobody{n}", "whatever-password", status=422)
    response = await sign_in(client, "nobody99", "whatever-password", status=429)
    assert int(response.headers["retry-after"]) > 0


async def test_sign_out_revokes_the_session_on_the_server(client):
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    token = client.cookies["staff_session"]
    page = await get_page(client, "/admin")
    from tests.pages import post_form

    await post_form(client, "/staff/logout", page, {})
    client.cookies.set("staff_session", token)  # a copied cookie replayed
    response = await client.get("/admin")
    assert response.status_code == 303 and response.headers["location"].startswith("/staff")


async def test_idle_and_absolute_expiry(client, clock):
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    now = clock.now()
    clock.moment = now + sessions.IDLE + dt.timedelta(seconds=1)
    assert (await client.get("/admin")).status_code == 303
    await StaffSession.all().update(last_seen=as_utc(now + dt.timedelta(hours=13)))
    clock.moment = now + dt.timedelta(hours=13)
    assert (await client.get("/admin")).status_code == 303  # active, but past its lifetime


async def test_disabling_an_account_ends_its_sessions(client):
    user = await make_staff("admin", "boss")
    await sign_in(client, "boss")
    await sessions.disable_user(user.id)
    assert (await client.get("/admin")).status_code == 303
    assert not await StaffSession.filter(revoked=False).exists()


async def test_other_roles_get_403_and_strangers_the_sign_in_page(client):
    await make_site("TH01")
    await make_staff("site", "door1", site_code="TH01")
    response = await client.get("/admin")
    assert response.status_code == 303 and response.headers["location"] == "/staff?next=/admin"
    await sign_in(client, "door1")
    assert (await client.get("/admin")).status_code == 403
    assert await AuditEntry.filter(action="forbidden", username="door1").exists()


async def test_login_form_without_csrf_token_is_refused(client):
    await make_staff("admin", "boss")
    response = await client.post("/staff/login", data={"username": "boss", "password": "x"})
    assert response.status_code == 403


async def test_the_audit_trail_is_append_only(client):
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    with pytest.raises((IntegrityError, OperationalError, Exception)) as err:
        await AuditEntry.all().update(action="edited")
    assert "append-only" in str(err.value)
    with pytest.raises(Exception) as err:
        await AuditEntry.all().delete()
    assert "append-only" in str(err.value)


async def test_admin_filters_the_audit_trail(client):
    await make_staff("admin", "boss")
    await make_staff("callcentre", "agent1")
    await sign_in(client, "agent1", "bad-password-xx", status=422)
    await sign_in(client, "boss")
    page = await get_page(client, "/admin?username=agent1")
    rows = page.select("table.data tbody tr")
    assert len(rows) == 1 and "登录失败" in rows[0].text  # the action named, not its code (issue 22)


def test_the_unknown_username_is_checked_against_a_hash_made_like_every_real_one():
    """The dummy hash is written out (not made at import): with the hasher's own parameters, and
    of the dummy password, so an unknown username costs exactly what a wrong password does."""
    from argon2 import PasswordHasher

    from models.staff.accounts import DUMMY_HASH

    assert not PasswordHasher().check_needs_rehash(DUMMY_HASH)  # the hasher the service ships
    assert PasswordHasher().verify(DUMMY_HASH, "not-a-real-password")
