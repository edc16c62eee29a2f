"""`python run.py purge`: personal data erased once its purpose is served (PIPL), the figures of
the reports and the audit trail kept, idempotent, audited, `--dry-run` only counting.

The world, as of TODAY (2021-07-01), PURGE_AFTER_DAYS 30, every product 21..56 days:

  person    first dose  what happened                                   purge
  given     05-01       booked 06-29, checked in 06-29 (second dose)    erased
  closed    03-01       invited, SMS sent, on a group list, never came  erased (window closed 04-26, +30 = 05-26)
  late      03-02       an active booking for 07-02 (late is allowed)   kept
  pending   03-03       an SMS still queued                             kept (next run)
  recent    04-20       overdue, window closed 06-15 (+30 = 07-15)      kept
  waiting   06-20       not yet due                                     kept
"""
from __future__ import annotations

import argparse
import datetime as dt

import pytest
from tortoise import connections

import run
from models.clock import TZ
from models.db.tables import (AuditEntry, Booking, GroupList, GroupMember, Link, LoginCode, Resident,
                              SmsMessage, StaffUser)
from models.operations import checks, reports
from models.operations.checkin import check_in
from models.operations.purge import ERASED, purge
from models.people import pii
from models.people.links import issue_link
from models.staff.audit import record
from models.staff.scope import Area
from tests.conftest import NOW, TODAY, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot

pytestmark = pytest.mark.anyio

DAY = dt.timedelta(days=1)
TABLES = ("resident", "sms_message", "link", "group_member", "group_list", "booking", "slot", "hold",
          "audit_entry", "login_code", "site", "staff_user")


def at(day: dt.date, hour: int = 8) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=TZ)


async def sms(resident, body: str, *, status: str = SmsMessage.SENT, phone: str = "", created=None):
    phone = phone or VAULT.decrypt(resident.phone_cipher)
    msg = await SmsMessage.create(
        resident=resident, kind="invite", phone_cipher=VAULT.encrypt(phone), phone_masked=pii.mask_phone(phone),
        phone_hash=VAULT.keyed_hash(phone), body_cipher=VAULT.encrypt(body),
        params_cipher=VAULT.encrypt('{"name": "x"}'), status=status)
    if created:
        await SmsMessage.filter(id=msg.id).update(created_at=created)
    return msg


@pytest.fixture
async def world(db, district):
    site = await make_site("TH01", "五山街")
    people = {}
    for key, first, name, phone in [("given", "2021-05-01", "张三明", "13812345601"),
                                    ("closed", "2021-03-01", "李四华", "13812345602"),
                                    ("late", "2021-03-02", "王五芳", "13812345603"),
                                    ("pending", "2021-03-03", "赵六军", "13812345604"),
                                    ("recent", "2021-04-20", "陈七英", "13812345605"),
                                    ("waiting", "2021-06-20", "刘八妹", "13812345606")]:
        resident, number = await make_resident(site, first_dose=dt.date.fromisoformat(first), name=name,
                                               phone=phone, born=dt.date(1961, 5, 17))
        people[key] = {"resident": resident, "number": number, "phone": phone, "name": name}

    # given: booked on 06-25 for 06-29, checked in that day.
    slot = await make_slot(site, dt.date(2021, 6, 29))
    booking = await book_for(district, people["given"]["resident"], slot, now=at(dt.date(2021, 6, 25)))
    await check_in(booking.id, site.id, slot.day, area=Area(everyone=True))
    # closed: invited (a link, an SMS with it), on a group list, and an audit entry naming them.
    closed = people["closed"]["resident"]
    token = await issue_link(closed, now=NOW)
    people["closed"]["token"] = token
    await sms(closed, f"请预约第二剂 http://testserver/b/{token}")
    owner = await StaffUser.create(username="office", password_hash="x", role="subdistrict",
                                   subdistrict="五山街")
    group = await GroupList.create(name="居委会", owner=owner, subdistrict="五山街")
    number, phone = people["closed"]["number"], people["closed"]["phone"]
    await GroupMember.create(group=group, row=1, name="李四华", id_hash=VAULT.keyed_hash(number),
                             id_cipher=VAULT.encrypt(number), id_masked=pii.mask_id(number),
                             phone_cipher=VAULT.encrypt(phone), phone_masked=pii.mask_phone(phone),
                             resident=closed)
    await record(action="reveal_id", username="callcentre", address="203.0.113.7", resident=closed)
    # late: an active booking for tomorrow.
    tomorrow = await make_slot(site, TODAY + DAY)
    await book_for(district, people["late"]["resident"], tomorrow, now=NOW)
    await SmsMessage.filter(status=SmsMessage.QUEUED).update(status=SmsMessage.SENT)  # as the sender does
    # pending: an SMS not sent yet.
    await sms(people["pending"]["resident"], "提醒", status=SmsMessage.QUEUED)
    # Log-in codes of the public way in: an SMS to a phone without a record, old and new.
    for created in (at(dt.date(2021, 5, 1)), at(dt.date(2021, 6, 30))):
        msg = await sms(None, "验证码 123456", phone="13900001111", created=created)
        await LoginCode.create(phone_hash=VAULT.keyed_hash("13900001111"), code_hash="h",
                               created_at=created, expires_at=created + dt.timedelta(minutes=10))
        people.setdefault("codes", []).append(msg.id)
    return people


async def dump() -> dict[str, list[dict]]:
    """Every row of every table this touches, as the database holds it."""
    conn = connections.get("default")
    return {t: await conn.execute_query_dict(f"SELECT * FROM {t} ORDER BY id") for t in TABLES}


def readable(rows: dict[str, list[dict]]) -> str:
    """The whole dump as text, with every encrypted value decrypted."""
    parts = []
    for table in rows.values():
        for row in table:
            for value in row.values():
                text = str(value)
                if text.startswith(("gAAAA", pii.CIPHER_PREFIX)):  # Fernet, or AES-GCM (issue 25)
                    text = VAULT.decrypt(text)
                parts.append(text)
    return "\n".join(parts)


async def figures(district) -> tuple:
    snapshot = await reports.take_snapshot(district)
    days = await reports.site_days(district, reports.Asked(dt.date(2021, 6, 1), dt.date(2021, 7, 31)))
    channels = await reports.by_channel(district, reports.Asked())
    return snapshot.cohorts, snapshot.seconds, days.rows, days.totals, channels.rows


async def test_purge_erases_the_people_done_with_and_keeps_everyone_else(world, district):
    before = await dump()
    result = await purge(district, as_of=TODAY, after_days=30)
    assert (result.given, result.closed) == (1, 1)
    assert result.group_rows == 1 and result.login_codes == 1
    # The given person's confirmation, the closed person's invitation, the old log-in code.
    assert result.messages == 3

    everything = readable(await dump())
    for key in ("given", "closed"):
        person = world[key]
        for secret in (person["number"], person["phone"], person["name"], VAULT.keyed_hash(person["number"]),
                       VAULT.keyed_hash(person["phone"]), pii.mask_id(person["number"]),
                       pii.mask_phone(person["phone"])):
            assert secret not in everything, f"{key}: {secret!r} is still in the database"
        resident = await Resident.get(id=person["resident"].id)
        assert resident.name == pii.mask_name(person["name"])
        assert VAULT.decrypt(resident.id_cipher) == VAULT.decrypt(resident.phone_cipher) == ERASED
        assert resident.id_masked == person["number"][:6] + "*" * 12
        assert resident.birth_year == 1961  # only the year was ever stored in clear; it stays
    assert world["closed"]["token"] not in everything
    assert not await Link.filter(resident_id=world["closed"]["resident"].id, revoked=False).exists()
    old, new = world["codes"]
    assert VAULT.decrypt((await SmsMessage.get(id=old)).body_cipher) == ERASED
    assert VAULT.decrypt((await SmsMessage.get(id=new)).body_cipher) == "验证码 123456"
    assert await LoginCode.all().count() == 1

    # Everyone else exactly as they were.
    after = {row["id"]: row for row in (await dump())["resident"]}
    for key in ("late", "pending", "recent", "waiting"):
        rid = world[key]["resident"].id
        assert after[rid] == next(r for r in before["resident"] if r["id"] == rid), key
        assert world[key]["name"] in everything and world[key]["number"] in everything


async def test_the_reports_give_the_same_figures_and_check_stays_clean(world, district):
    before = await figures(district)
    await purge(district, as_of=TODAY, after_days=30)
    assert await figures(district) == before
    report = await checks.check_database(district.rules)
    assert report.ok, report.errors


async def test_purging_again_changes_nothing(world, district):
    await purge(district, as_of=TODAY, after_days=30)
    once = await dump()
    again = await purge(district, as_of=TODAY, after_days=30)
    assert (again.people, again.messages, again.group_rows, again.login_codes) == (0, 0, 0, 0)
    assert await dump() == once


async def test_dry_run_counts_what_a_purge_would_erase_and_writes_nothing(world, district):
    before = await dump()
    counted = await purge(district, as_of=TODAY, after_days=30, dry_run=True)
    assert await dump() == before
    done = await purge(district, as_of=TODAY, after_days=30)
    assert (counted.given, counted.closed, counted.messages, counted.group_rows, counted.login_codes) == (
        done.given, done.closed, done.messages, done.group_rows, done.login_codes)


async def test_the_window_and_the_days_after_it_decide_who_goes(world, district):
    # A month on, the recent one's window has been closed 31 days; a long wait keeps everyone.
    later = await purge(district, as_of=dt.date(2021, 7, 16), after_days=30, dry_run=True)
    assert (later.given, later.closed) == (1, 2)
    patient = await purge(district, as_of=TODAY, after_days=365, dry_run=True)
    assert (patient.given, patient.closed) == (1, 0)
    # A second dose given today is kept until tomorrow (a check-in may still be put right today).
    same_day = await purge(district, as_of=dt.date(2021, 6, 29), after_days=30, dry_run=True)
    assert same_day.given == 0


async def test_the_command_audits_counts_only_and_keeps_the_audit_trail(world, district, settings, capsys):
    trail = await AuditEntry.all().order_by("id").values()
    args = argparse.Namespace(as_of=None, dry_run=True)
    assert await run.cmd_purge(settings, district, args) == run.OK
    assert "would erase 2 people (1 second dose given, 1 window closed)" in capsys.readouterr().out
    assert await AuditEntry.all().count() == len(trail), "a dry run writes nothing, not even the audit"

    args = argparse.Namespace(as_of=None, dry_run=False)
    assert await run.cmd_purge(settings, district, args) == run.OK
    assert "purge: erased 2 people" in capsys.readouterr().out
    entries = await AuditEntry.all().order_by("id").values()
    assert entries[:len(trail)] == trail, "the audit trail is kept as it was"
    (added,) = entries[len(trail):]
    assert added["action"] == "purge" and added["username"] == "cli" and added["resident_id"] is None
    assert "2 people" in added["detail"] and "as_of=2021-07-01 after_days=30" in added["detail"]
    assert trail[0]["resident_id"] == world["closed"]["resident"].id  # still names the row


async def test_an_erased_person_cannot_come_back_through_their_link(world, district, client):
    token = world["closed"]["token"]
    assert (await client.get(f"/b/{token}")).status_code == 303  # the link works before
    await purge(district, as_of=TODAY, after_days=30)
    client.cookies.clear()
    assert (await client.get(f"/b/{token}")).status_code == 404


def test_purge_refuses_a_date_that_is_not_one(capsys):
    with pytest.raises(SystemExit) as exit:
        run.build_parser().parse_args(["purge", "--as-of", "2021-02-30"])
    assert exit.value.code == 2
    assert "2021-02-30 is not a date" in capsys.readouterr().err


def test_the_command_runs_from_the_shell(tmp_path):
    import os
    import subprocess
    import sys

    from tests.test_cli import ROOT

    env = {**os.environ, "DATABASE_URL": f"sqlite://{tmp_path}/x.sqlite3", "SECRET_KEY": "test",
           "PURGE_AFTER_DAYS": "0"}
    for args, said in [(["--dry-run"], "purge: would erase 0 people"),
                       (["--as-of", "2021-07-01"], "purge: erased 0 people")]:
        done = subprocess.run([sys.executable, "run.py", "purge", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert said in done.stdout


def test_purge_after_days_is_read_from_the_environment(monkeypatch):
    from web.settings import load_settings

    monkeypatch.setenv("SECRET_KEY", "test")
    assert load_settings().purge_after_days == 30
    monkeypatch.setenv("PURGE_AFTER_DAYS", "90")
    assert load_settings().purge_after_days == 90
    monkeypatch.setenv("PURGE_AFTER_DAYS", "soon")
    with pytest.raises(ValueError, match="PURGE_AFTER_DAYS: 'soon' is not a number"):
        load_settings()


async def test_no_invitation_or_reminder_batch_texts_an_erased_person(world, district):
    from models.operations import invitations, outreach

    closed = world["closed"]["resident"].id
    assert closed in await invitations._candidates(district.rules, TODAY).values_list("id", flat=True)
    await purge(district, as_of=TODAY, after_days=30)
    assert closed not in await invitations._candidates(district.rules, TODAY).values_list("id", flat=True)
    assert closed not in await outreach._to_remind(district, 1).values_list("id", flat=True)
    assert closed not in await outreach._expired(district).values_list("id", flat=True)
    assert await invitations.due_count(district.rules, TODAY) == 2  # pending and recent, still there
