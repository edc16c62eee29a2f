"""Issue 21, finding 7: a weak secret was accepted, and a key could not be changed.

`serve` started with SECRET_KEY=CHANGE-ME (deploy/booking.env.example's value) and an https
BASE_URL, and with that key a forged session cookie opened a stranger's booking. Now `serve`
refuses a placeholder or a short key (exit 2, one line naming SECRET_KEY, before anything else),
and a key can be rotated: SECRET_KEY_OLD keeps old cookies and ciphers readable, new ones are
written with the new key, and `run.py rotate-keys` rewrites every cipher and look-up hash.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from cryptography.fernet import InvalidToken

from models.channels import entry
from models.db.tables import AuditEntry, GroupList, GroupMember, LoginCode, Resident, SmsMessage
from models.messaging.outbox import queue
from models.messaging.sms import Sms
from models.people import lookup, pii
from models.people.links import issue_link, resolve_token, verify_identity
from models.staff.scope import Area
from tests.conftest import TEST_SECRET, VAULT
from tests.factories import make_resident, make_site
from tests.pages import parse
from tests.realserver import ROOT
from tests.staff_helpers import make_staff
from web.settings import Settings, build_district

NEW_SECRET = "rotated-key-Zq8v3LkP0wYt6Hc2Rn9Sd4Fg7Jm1Xb5U"
EXAMPLE = ROOT / "deploy" / "booking.env.example"


def example_secret() -> str:
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("SECRET_KEY="):
            return line.split("=", 1)[1]
    raise AssertionError("deploy/booking.env.example sets no SECRET_KEY")


def serve(tmp_path, secret: str) -> tuple[subprocess.CompletedProcess, float]:
    """`run.py serve` as systemd would start it with this key (port 0: none is bound twice);
    a server that starts instead ("Serving on …") is stopped and the test fails."""
    env = {**os.environ, "SECRET_KEY": secret, "BASE_URL": "https://booking.example.gov.cn",
           "DATABASE_URL": f"sqlite://{tmp_path}/serve.sqlite3"}
    env.pop("SECRET_KEY_OLD", None)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "run.py", "serve", "--port", "0"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        for line in proc.stdout:  # ends when the process exits
            if line.startswith("Serving on"):
                pytest.fail(f"serve started with SECRET_KEY={secret!r}")
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    took = time.monotonic() - started
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", proc.stderr.read()), took


@pytest.mark.parametrize("secret", ["example", "CHANGE-ME", "changeme", "secret", "a" * 20,
                                    "Kq3vX9pLm2Rt7Yw1Zs4Hb6N", "x" * 48])
def test_serve_refuses_a_placeholder_or_short_secret_key(tmp_path, secret):
    secret = example_secret() if secret == "example" else secret
    done, took = serve(tmp_path, secret)
    assert done.returncode == 2, (done.returncode, done.stderr[-500:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "SECRET_KEY" in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert len(secret) < 10 or secret not in lines[0], "the refusal does not print the key"
    # Before anything else: Python's start-up and the settings (about 1-2 s on a quiet machine;
    # the bound leaves room for a loaded CI machine).
    assert took < 60
    assert not (tmp_path / "serve.sqlite3").exists(), "refused before the database is touched"


def test_serve_starts_with_a_real_key_and_with_the_generated_one(monkeypatch, tmp_path):
    import run
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path}/x.sqlite3")
    monkeypatch.setenv("SECRET_KEY", NEW_SECRET)
    assert run.main(["serve"]) == 0 and len(calls) == 1
    # `make run` and `demo`: no SECRET_KEY, the random key generated into data/secret_key.
    monkeypatch.delenv("SECRET_KEY")
    assert run.main(["serve"]) == 0 and len(calls) == 2


def test_secret_problems_are_named():
    assert pii.secret_problem(NEW_SECRET) is None
    assert pii.secret_problem(TEST_SECRET) is None  # the suite's own, 34 characters
    assert "placeholder" in pii.secret_problem(example_secret())
    assert "placeholder" in pii.secret_problem("Change_Me_" + NEW_SECRET)
    assert "20 characters" in pii.secret_problem("k" * 10 + "0123456789")


# ---- rotation: sessions and device cookies signed with the old key


@pytest.fixture
async def linked(db, clock):
    site = await make_site("TH01", "五山街")
    resident, number = await make_resident(site, first_dose=clock.today() - dt.timedelta(days=30))
    return resident, number, await issue_link(resident, now=clock.now())


def _client(settings: Settings, clock, cookies=None) -> httpx.AsyncClient:
    from web.app import create_app

    app = create_app(settings, manage_db=False, clock=clock)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 5000)),
                               base_url="http://testserver")
    for name, value in (cookies or {}).items():
        client.cookies.set(name, value, domain="testserver.local")  # where the app's own go
    return client


async def test_a_session_signed_with_the_old_key_still_opens_after_rotation(linked, settings, clock):
    _, number, token = linked
    async with _client(settings, clock) as before:  # signed with TEST_SECRET
        assert (await before.get(f"/b/{token}")).status_code == 303
        session = before.cookies["session"]
        page = await before.get("/booking")
        assert "张*明" in page.text
        form_token = parse(page).find("input", attrs={"name": "csrftoken"})["value"]
        csrf_cookie = before.cookies["csrftoken"]

    rotated = settings.with_(secret_key=NEW_SECRET, secret_key_old=(TEST_SECRET,))
    async with _client(rotated, clock, cookies={"session": session, "csrftoken": csrf_cookie}) as after:
        page = await after.get("/booking")
        assert page.status_code == 200 and "张*明" in page.text, "the old session still opens"
        # A form loaded before the restart still posts (its CSRF token signed with the old key).
        posted = await after.post("/booking/verify", data={"csrftoken": form_token, "id_number": number})
        assert posted.status_code == 303, (posted.status_code, posted.text[:300])
        # What the server signs now, it signs with the new key only.
        await after.get(f"/b/{token}")
        fresh = after.cookies["session"]
    async with _client(settings.with_(secret_key=NEW_SECRET), clock, cookies={"session": fresh}) as new_only:
        assert "张*明" in (await new_only.get("/booking")).text
    # Once SECRET_KEY_OLD is gone, a cookie signed with the old key opens nothing.
    async with _client(settings.with_(secret_key=NEW_SECRET), clock, cookies={"session": session}) as gone:
        assert "张*明" not in (await gone.get("/booking")).text


def test_settings_read_old_keys_and_sign_with_the_new_one(monkeypatch):
    from web.settings import load_settings

    monkeypatch.setenv("SECRET_KEY", NEW_SECRET)
    monkeypatch.setenv("SECRET_KEY_OLD", f"{TEST_SECRET}, older-key-0123456789abcdefghijklmn")
    settings = load_settings()
    assert settings.secret_key_old == (TEST_SECRET, "older-key-0123456789abcdefghijklmn")
    assert settings.signing_keys[-1] == NEW_SECRET  # itsdangerous signs with the last
    vault = build_district(settings).vault
    assert vault.decrypt(VAULT.encrypt("x")) == "x" and vault.is_current(vault.encrypt("y"))
    assert not VAULT.is_current(vault.encrypt("y"))


# ---- rotation: every cipher and hash rewritten with the new key (SQLite and PostgreSQL)


CIPHERS = {Resident: ("id_cipher", "phone_cipher"), GroupMember: ("id_cipher", "phone_cipher"),
           SmsMessage: ("phone_cipher", "body_cipher", "params_cipher")}


async def _old_world(clock):
    """Residents, an SMS each, a group-list row, a used log-in code: all under TEST_SECRET."""
    site = await make_site("TH01", "五山街")
    first = clock.today() - dt.timedelta(days=30)
    people = []
    for n in range(5):
        resident, number = await make_resident(site, first_dose=first, name=f"张{n}明",
                                               phone=f"1381234{n:04d}")
        await queue(VAULT, resident, Sms("confirm", {"name": "张*明"}, f"预约成功 {n}", "zh"), kind="confirm")
        people.append((resident, number, f"1381234{n:04d}"))
    resident, number, phone = people[0]
    owner = await make_staff("admin")
    group = await GroupList.create(name="一组", owner=owner)
    await GroupMember.create(group=group, row=1, name="张0明", id_hash=VAULT.keyed_hash(number),
                             id_cipher=VAULT.encrypt(number), id_masked=pii.mask_id(number),
                             phone_cipher=VAULT.encrypt(phone), phone_masked=pii.mask_phone(phone),
                             resident=resident)
    # The public way in: a log-in code sent to the phone (its SMS) and used (a phone session).
    await queue(VAULT, None, Sms("login_code", {"code": "123456"}, "验证码 123456", "zh"),
                kind="login_code", phone=phone)
    now = clock.now()
    login = await LoginCode.create(phone_hash=VAULT.keyed_hash(phone), code_hash="x", created_at=now,
                                   expires_at=now + dt.timedelta(minutes=10), used=True)
    return people, login


async def test_rotate_keys_rewrites_every_cipher_and_hash_and_look_ups_still_find_people(db, settings, clock):
    from models.operations import rotation

    people, login = await _old_world(clock)
    new = build_district(settings.with_(secret_key=NEW_SECRET, secret_key_old=(TEST_SECRET,)), clock=clock)
    lines = []
    result = await rotation.rotate_keys(new.vault, now=clock.now(), say=lines.append)
    assert result.tables["resident"].rewritten == 5 and result.tables["sms_message"].rewritten == 6
    assert result.tables["group_member"].rewritten == 1 and result.mapped >= 1
    assert any(line.startswith("resident: 5 of 5 rows") for line in lines), lines

    new_only = pii.Vault(NEW_SECRET)
    for model, columns in CIPHERS.items():
        for row in await model.all().values("id", *columns):
            for column in columns:
                if row[column]:
                    new_only.decrypt(row[column])  # opens with the new key alone
                    with pytest.raises(InvalidToken):
                        VAULT.decrypt(row[column])
    area = Area(everyone=True)  # the whole district, as the call centre
    for resident, number, phone in people:
        by_id = await lookup.search(new_only, lookup.Query("id", number), area)
        by_phone = await lookup.search(new_only, lookup.Query("phone", phone), area)
        assert [r.id for r in by_id.rows] == [r.id for r in by_phone.rows] == [resident.id]
        link_token = await issue_link(resident, now=clock.now())
        link = await resolve_token(link_token, clock.now())
        assert (await verify_identity(new_only, link, number, now=clock.now())).ok
    assert await GroupMember.filter(id_hash=new_only.keyed_hash(people[0][1])).exists()
    # A phone session begun before the rotation still finds the family on that phone.
    phone_hash = await entry.phone_session(login.id, now=clock.now())
    assert phone_hash == new_only.keyed_hash(people[0][2])
    assert [m.resident_id for m in await entry.family(new, phone_hash)] == [people[0][0].id]

    # Resumable, and run twice it rewrites nothing.
    again = await rotation.rotate_keys(new.vault, now=clock.now())
    assert sum(c.rewritten for c in again.tables.values()) == 0 and again.mapped == 0


async def test_rotate_keys_stops_on_a_value_no_key_opens(db, settings, clock):
    from models.operations import rotation

    await _old_world(clock)
    stranger = pii.Vault("a-third-key-nobody-set-0123456789abcdef")
    await Resident.filter(id=(await Resident.first()).id).update(phone_cipher=stranger.encrypt("13800000000"))
    with pytest.raises(rotation.RotationError, match="SECRET_KEY_OLD"):
        await rotation.rotate_keys(pii.Vault(NEW_SECRET, [TEST_SECRET]), now=clock.now())


def test_rotate_keys_command_prints_progress_and_is_audited(tmp_path):
    from tests.realserver import seed

    url = f"sqlite://{tmp_path}/r.sqlite3"

    async def build():
        site = await make_site("TH01", "五山街")
        await make_resident(site, first_dose=dt.date(2021, 6, 1))

    seed(url, build)
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": NEW_SECRET, "SECRET_KEY_OLD": TEST_SECRET}
    done = subprocess.run([sys.executable, "run.py", "rotate-keys"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "rotate-keys: resident: 1 of 1 rows read, 1 rewritten" in done.stdout
    assert "SECRET_KEY_OLD can be removed" in done.stdout

    async def trail():
        resident = await Resident.first()
        return (pii.Vault(NEW_SECRET).decrypt(resident.id_cipher),
                await AuditEntry.filter(username="cli", action="rotate_keys").values_list("detail", flat=True))

    number, details = seed(url, trail)
    assert len(number) == 18 and len(details) == 1 and details[0].startswith("done: resident: 1 of 1")
