"""Closing a day or a window: the preview's counts, one target picker with free places only, buttons
that say in numbers what they do (and are refused when they would do something else), confirm forms
tied to the numbers they showed, a bulk move that runs out of room (the rest cancelled), one SMS
each, the same closure run twice, and a crash in the middle of the CLI run."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from models.booking import service
from models.clock import SystemClock
from models.db.tables import AuditEntry, Booking, Hold, SmsMessage, Slot
from models.messaging import wording
from models.operations import closing
from models.operations.checks import check_database
from models.people.links import resolve_token
from tests.conftest import BASE_URL, TEST_SECRET, VAULT
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import get_page, parse, post_form, text
from tests.staff_helpers import make_staff, sign_in

ROOT = Path(__file__).resolve().parent.parent
CLOSED_DAY = dt.date(2021, 7, 5)
MOVE_DAY = dt.date(2021, 7, 6)
CLOSURE_KINDS = ("closure_move", "closure_cancel")


def form_fields(page, form_id: str, button: str | None = None, **changes) -> dict:
    """What a browser would send from the form `form_id` as the page shows it: its inputs and each
    select's selected option, the pressed button's value, then `changes` (a select changed)."""
    form = page.find("form", id=form_id)
    assert form is not None, form_id
    data = {i["name"]: i.get("value", "") for i in form.find_all("input") if i.get("name")}
    for select in form.find_all("select"):
        chosen = select.find("option", selected=True) or select.find("option")
        data[select["name"]] = chosen.get("value", "") if chosen else ""
    if button is not None:
        data["mode"] = button
    data.pop("csrftoken", None)
    return {**data, **changes}


def move_button(page):
    return page.find("button", attrs={"name": "mode", "value": "move"})


async def _people(district, site, slot, n: int, *, first: int = 0):
    bookings = []
    for i in range(first, first + n):
        resident, _ = await make_resident(site, first_dose=dt.date(2021, 6, 1), phone=f"139{i:08d}",
                                          name="李秀英" if i % 2 else "王建国")
        bookings.append(await book_for(district, resident, slot))
    return bookings


async def _closure_sms() -> dict[int, list[SmsMessage]]:
    by_resident: dict[int, list[SmsMessage]] = {}
    for sms in await SmsMessage.filter(kind__in=CLOSURE_KINDS).order_by("id"):
        by_resident.setdefault(sms.resident_id, []).append(sms)
    return by_resident


async def _world(district):
    """TH01 on CLOSED_DAY: 09:00 with 3 bookings, 10:00 with 2. TH02 on MOVE_DAY: 08:30 with one
    free place (of 2), 14:00 with two free places: room for 3 of the 5."""
    home = await make_site("TH01")
    other = await make_site("TH02", "石牌街", name="石牌街社区卫生服务中心")
    nine = await make_slot(home, CLOSED_DAY, "09:00", "10:00", capacity=10)
    ten = await make_slot(home, CLOSED_DAY, "10:00", "11:00", capacity=10)
    early = await make_slot(other, MOVE_DAY, "08:30", "09:30", capacity=2)
    late = await make_slot(other, MOVE_DAY, "14:00", "15:00", capacity=2)
    await _people(district, other, early, 1, first=90)  # somebody already there
    # Booked in this order: the closure moves by booking order, not by window.
    bookings = (await _people(district, home, ten, 1) + await _people(district, home, nine, 3, first=1)
                + await _people(district, home, ten, 1, first=4))
    return home, other, (nine, ten), (early, late), bookings


async def test_closing_a_day_with_a_move_that_runs_out_of_room_moves_the_first_and_cancels_the_rest(
        client, district):
    home, other, closed, (early, late), bookings = await _world(district)
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    query = f"site={home.id}&day={CLOSED_DAY}&start=&reason=疫苗未到货"
    page = await get_page(client, f"/admin/closing/preview?{query}&to={other.id}:{MOVE_DAY}")
    shown = text(page)
    assert "受影响的有效预约：5个" in shown and "（5人）" in shown
    assert "3个空余名额（2个时段）。" in shown
    assert text(move_button(page)) == "停诊：改约3人，取消2人" and not move_button(page).has_attr("disabled")
    assert await Slot.exclude(closed_reason="").count() == 0  # a preview changes nothing
    response = await post_form(client, "/admin/closing/run", page, form_fields(page, "closing-move", "move"))
    done = text(await get_page(client, response.headers["location"]))
    assert "3个预约已改约" in done and "2个预约已取消" in done and "停诊时段上已没有有效预约" in done

    assert [s.closed_reason for s in await Slot.filter(id__in=[s.id for s in closed])] == ["疫苗未到货"] * 2
    after = {b.id: b for b in await Booking.filter(id__in=[b.id for b in bookings])}
    # Booking order: the first three bookings fill 08:30 (one place), then 14:00 (two places).
    assert [(after[b.id].status, after[b.id].slot_id) for b in bookings] == [
        ("active", early.id), ("active", late.id), ("active", late.id),
        ("cancelled", closed[0].id), ("cancelled", closed[1].id)]
    sms = await _closure_sms()
    assert sorted(sms) == sorted(b.resident_id for b in bookings)
    assert all(len(messages) == 1 for messages in sms.values())  # exactly one SMS each
    moved_sms = VAULT.decrypt(sms[bookings[0].resident_id][0].body_cipher)
    assert "因原预约时段停诊" in moved_sms and "7月6日（周二）08:30-09:30" in moved_sms
    cancel_sms = VAULT.decrypt(sms[bookings[4].resident_id][0].body_cipher)
    assert "已取消" in cancel_sms and len(cancel_sms) <= wording.MAX_CHARS
    token = cancel_sms.rsplit("/b/", 1)[1]
    link = await resolve_token(token, district.clock.now())  # a new, live link to book again
    assert link is not None and link.resident_id == bookings[4].resident_id
    assert (await check_database(district.rules)).ok
    entry = await AuditEntry.get(action="close_window")
    assert entry.username == "boss" and "3 moved, 2 cancelled" in entry.detail


async def test_a_closed_window_takes_no_booking_and_the_same_closure_run_twice_moves_nobody_twice(db, district):
    home, other, closed, (early, late), bookings = await _world(district)
    asked = await closing.closure(home, CLOSED_DAY, "", "暴雨", today=district.clock.today())
    target = await closing.target(asked, other, MOVE_DAY, now=district.clock.now())
    first = await closing.close(district, asked, move_to=target)
    assert (first.moved, first.cancelled, first.closed) == (3, 2, 2)
    # Places free up at the target, then the same closure runs again: nothing left to move.
    await service.cancel(district, bookings[0].resident_id, bookings[0].id)
    again = await closing.close(district, asked, move_to=await closing.target(
        asked, other, MOVE_DAY, now=district.clock.now()))
    assert (again.moved, again.cancelled, again.gone, again.closed) == (0, 0, 0, 0)
    sms = await _closure_sms()
    assert all(len(m) == 1 for m in sms.values()) and len(sms) == 5
    # Nobody can book the closed window any more.
    newcomer, _ = await make_resident(home, first_dose=dt.date(2021, 6, 1), phone="13600000000")
    with pytest.raises(service.Refused):
        await book_for(district, newcomer, closed[0])
    assert (await check_database(district.rules)).ok


async def test_a_booking_moved_by_another_run_meanwhile_is_not_cancelled_over_it(db, district):
    home, other, closed, (early, late), bookings = await _world(district)
    booking = await Booking.get(id=bookings[1].id).select_related("resident")
    stale = await Booking.get(id=bookings[1].id).select_related("resident")
    await service.move_off_closed(district, booking, late.id)
    assert not await service.cancel_off_closed(district, stale, CLOSED_DAY)  # read before the move
    fresh = await Booking.get(id=booking.id)
    assert (fresh.status, fresh.slot_id) == ("active", late.id)
    assert [s.kind for s in await SmsMessage.filter(resident_id=booking.resident_id, kind__in=CLOSURE_KINDS)] == [
        "closure_move"]
    assert (await check_database(district.rules)).ok


async def test_the_closure_form_refuses_what_cannot_be_closed_with_a_clear_message(client, district):
    home, other, *_ = await _world(district)
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    cases = [(f"site={home.id}&day={CLOSED_DAY}&reason=", "请填写停诊原因"),
             (f"site={home.id}&day=2021-06-30&reason=雨", "不能停诊已经过去的日期"),
             (f"site={home.id}&day={CLOSED_DAY}&start=9点&reason=雨", "时段开始时间须为时:分"),
             (f"site={home.id}&day={CLOSED_DAY}&start=12:00&reason=雨", "没有从这个时间开始的时段"),
             (f"site={other.id}&day={CLOSED_DAY}&reason=雨", "当天没有时段"),
             (f"day={CLOSED_DAY}&reason=雨", "请选择接种点")]
    for query, message in cases:
        page = await get_page(client, f"/admin/closing/preview?{query}", status=422)
        assert message in text(page.find(class_="error-summary")), query
    page = await get_page(client, f"/admin/closing/preview?site={home.id}&day={CLOSED_DAY}&reason=雨")
    same = await post_form(client, "/admin/closing/run", page, {
        "site": home.id, "day": CLOSED_DAY.isoformat(), "reason": "雨", "mode": "move",
        "to": f"{home.id}:{CLOSED_DAY}"}, status=422)
    assert "不能改约到正在停诊的同一接种点的同一天" in text(parse(same))
    assert await Slot.exclude(closed_reason="").count() == 0 and await SmsMessage.filter(
        kind__in=CLOSURE_KINDS).count() == 0


async def test_closing_one_window_can_move_its_bookings_into_the_same_days_other_windows(db, district):
    home, other, (nine, ten), _, bookings = await _world(district)
    asked = await closing.closure(home, CLOSED_DAY, "09:00", "医生不足", today=district.clock.today())
    assert (await closing.preview(asked)).bookings == 3
    target = await closing.target(asked, home, CLOSED_DAY, now=district.clock.now())
    assert [w.id for w in target.windows] == [ten.id]
    result = await closing.close(district, asked, move_to=target)
    assert (result.moved, result.cancelled, result.closed) == (3, 0, 1)
    assert await Booking.filter(slot_id=ten.id, status="active").count() == 5
    assert (await Slot.get(id=ten.id)).closed_reason == ""


# ---- one picker, buttons in numbers, confirm forms tied to what they showed (issue 22, finding 2)


async def _admin_preview(client, home, *, to: str = "", status: int = 200):
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    query = f"site={home.id}&day={CLOSED_DAY}&start=&reason=暴雨" + (f"&to={to}" if to else "")
    return await get_page(client, f"/admin/closing/preview?{query}", status=status)


async def _untouched(bookings) -> bool:
    """Nothing closed, nobody moved or cancelled, no closure SMS."""
    return (await Slot.exclude(closed_reason="").count() == 0
            and await Booking.filter(id__in=[b.id for b in bookings], status="active").count() == len(bookings)
            and await SmsMessage.filter(kind__in=CLOSURE_KINDS).count() == 0)


async def test_the_preview_has_one_picker_listing_only_sites_and_days_with_free_places_never_the_closed_day(
        client, district):
    home, other, closed, (early, late), bookings = await _world(district)
    full = await make_site("TH03", "龙洞街", name="龙洞街社区卫生服务中心")
    await make_slot(full, MOVE_DAY, "09:00", "10:00", capacity=3, booked=3)
    await make_slot(home, MOVE_DAY, "09:00", "10:00", capacity=4)  # the closed site, another day: fine
    await make_slot(other, CLOSED_DAY + dt.timedelta(days=30), "09:00", "10:00")  # too far off
    page = await _admin_preview(client, home)
    assert len(page.find_all("select")) == 1 and not page.find(attrs={"name": "to_site"})
    options = {o["value"]: text(o) for o in page.find("select", attrs={"name": "to"}).find_all("option")
               if o["value"]}
    assert options == {f"{home.id}:{MOVE_DAY}": "TH01（空余4个） 五山街社区卫生服务中心",
                       f"{other.id}:{MOVE_DAY}": "TH02（空余3个） 石牌街社区卫生服务中心"}
    assert move_button(page) is None  # no target picked yet: no move button at all
    assert text(page.find("form", id="closing-cancel").find("button")) == "停诊并取消5人"


async def test_a_target_with_no_free_place_disables_the_move_and_the_server_refuses_it(client, district):
    """Finding 2: a target with 0 free places, "确认停诊并改约" active: 0 moved, 5 cancelled."""
    home, other, closed, (early, late), bookings = await _world(district)
    full = await make_site("TH03", "龙洞街")
    await make_slot(full, MOVE_DAY, "09:00", "10:00", capacity=3, booked=3)
    page = await _admin_preview(client, home, to=f"{full.id}:{MOVE_DAY}")
    button = move_button(page)
    assert button.has_attr("disabled") and text(button) == "停诊并改约0人"
    assert "一个人也改约不了" in text(page.find(id="closing-plan"))
    picked = page.find("select", attrs={"name": "to"}).find("option", selected=True)
    assert "没有空余名额" in text(picked)  # the page says which target the numbers are for
    refused = await post_form(client, "/admin/closing/run", page, form_fields(page, "closing-move", "move"),
                              status=422)
    assert "这个目标一个人也改约不了" in text(parse(refused).find(class_="error-summary"))
    assert await _untouched(bookings)


async def test_the_numbers_changed_since_the_preview_so_the_confirm_changes_nothing_and_asks_to_check_again(
        client, district):
    home, other, closed, (early, late), bookings = await _world(district)
    page = await _admin_preview(client, home, to=f"{other.id}:{MOVE_DAY}")
    assert text(move_button(page)) == "停诊：改约3人，取消2人"
    # Somebody takes one of TH02's places meanwhile: the button's numbers are no longer true.
    await _people(district, other, late, 1, first=50)
    stale = await post_form(client, "/admin/closing/run", page, form_fields(page, "closing-move", "move"),
                            status=409)
    again = parse(stale)
    assert "情况已变化，请再核对一次" in text(again.find(class_="error-summary"))
    assert await _untouched(bookings)
    assert text(move_button(again)) == "停诊：改约2人，取消3人"  # the numbers as they are now
    done = await post_form(client, "/admin/closing/run", again, form_fields(again, "closing-move", "move"))
    assert "moved=2" in done.headers["location"] and "cancelled=3" in done.headers["location"]
    assert await Booking.filter(id__in=[b.id for b in bookings], status="cancelled").count() == 3


async def test_a_target_changed_in_the_picker_without_looking_again_moves_nobody(client, district):
    """Without JavaScript the select can change while the numbers below it are still the old
    target's: the confirm is refused, and the page shows the numbers for the target now picked."""
    home, other, closed, (early, late), bookings = await _world(district)
    roomy = await make_site("TH04", "龙洞街", name="龙洞街社区卫生服务中心")
    await make_slot(roomy, MOVE_DAY, "09:00", "10:00", capacity=20)
    page = await _admin_preview(client, home, to=f"{other.id}:{MOVE_DAY}")
    stale = await post_form(client, "/admin/closing/run", page,
                            form_fields(page, "closing-move", "move", to=f"{roomy.id}:{MOVE_DAY}"), status=409)
    assert await _untouched(bookings)
    assert text(move_button(parse(stale))) == "停诊并改约5人"
    look = await post_form(client, "/admin/closing/run", page,  # the picker's own button
                           form_fields(page, "closing-move", "look", to=f"{roomy.id}:{MOVE_DAY}"))
    assert f"to={roomy.id}%3A{MOVE_DAY}" in look.headers["location"] and await _untouched(bookings)
    shown = await get_page(client, look.headers["location"])
    assert text(move_button(shown)) == "停诊并改约5人"
    done = await post_form(client, "/admin/closing/run", shown, form_fields(shown, "closing-move", "move"))
    assert "moved=5" in done.headers["location"] and "cancelled=0" in done.headers["location"]
    assert await Booking.filter(slot__site_id=roomy.id, status="active").count() == 5


async def test_cancel_all_says_how_many_and_is_refused_when_that_number_changed(client, district):
    home, other, closed, (early, late), bookings = await _world(district)
    page = await _admin_preview(client, home)
    assert text(page.find("form", id="closing-cancel").find("button")) == "停诊并取消5人"
    newcomer = await _people(district, home, closed[0], 1, first=60)  # booked the closed day meanwhile
    stale = await post_form(client, "/admin/closing/run", page, form_fields(page, "closing-cancel"), status=409)
    assert await _untouched(bookings + newcomer)
    again = parse(stale)
    assert text(again.find("form", id="closing-cancel").find("button")) == "停诊并取消6人"
    await post_form(client, "/admin/closing/run", again, form_fields(again, "closing-cancel"))
    assert await Booking.filter(status="cancelled").count() == 6


async def test_the_plan_counts_exactly_what_the_closure_then_does_interval_rules_and_holds_included(db, district):
    """Moving to an earlier day: the first booking's interval does not allow it (cancelled, not a
    place lost); a live hold takes a place, an expired one does not (the engine sweeps it)."""
    home, other = await make_site("TH01"), await make_site("TH04", "龙洞街")
    closed = await make_slot(home, CLOSED_DAY, "09:00", "10:00")
    earlier = await make_slot(other, dt.date(2021, 7, 3), "09:00", "10:00", capacity=4)
    recent, _ = await make_resident(home, first_dose=dt.date(2021, 6, 13), phone="13700000000")  # from 7月4日
    assert district.rules.window(recent.first_dose_date).earliest == dt.date(2021, 7, 4)
    bookings = [await book_for(district, recent, closed)] + await _people(district, home, closed, 3)
    holders = [(await make_resident(home, first_dose=dt.date(2021, 6, 1), phone=f"136{i:08d}"))[0]
               for i in range(2)]
    now = district.clock.now()
    await Hold.create(slot=earlier, resident=holders[0], expires_at=now + dt.timedelta(minutes=5))
    await Hold.create(slot=earlier, resident=holders[1], expires_at=now - dt.timedelta(minutes=1))
    await Slot.filter(id=earlier.id).update(held=2)
    asked = await closing.closure(home, CLOSED_DAY, "", "暴雨", today=district.clock.today())
    target = await closing.target(asked, other, earlier.day, now=now)
    plan = await closing.plan(asked, target, rules=district.rules, now=now)
    assert (plan.moved, plan.cancelled, plan.free) == (3, 1, 3)
    result = await closing.close(district, asked, move_to=target)
    assert (result.moved, result.cancelled) == (plan.moved, plan.cancelled)
    assert (await Booking.get(id=bookings[0].id)).status == "cancelled"


# ---- the command line, killed in the middle


def _cli_env(db_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": TEST_SECRET, "BASE_URL": BASE_URL,
            "SMS_BACKEND": "console"}


def _run(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=_cli_env(db_url),
                          capture_output=True, text=True, timeout=300)


async def _states(bookings, closed_ids, target_ids):
    """Every booking's state; fails on one that is half-moved (moved or cancelled without its one
    SMS, an SMS without the change, or two SMS)."""
    sms = await _closure_sms()
    states = Counter()
    for b in await Booking.filter(id__in=[b.id for b in bookings]).order_by("id"):
        kinds = [m.kind for m in sms.get(b.resident_id, [])]
        if b.status == "active" and b.slot_id in closed_ids:
            assert kinds == [], (b.id, kinds)
            states["untouched"] += 1
        elif b.status == "active" and b.slot_id in target_ids:
            assert kinds == ["closure_move"], (b.id, kinds)
            states["moved"] += 1
        else:
            assert (b.status, kinds) == ("cancelled", ["closure_cancel"]), (b.id, b.status, kinds)
            assert b.slot_id in closed_ids
            states["cancelled"] += 1
    return states


@pytest.mark.slow
async def test_a_closure_killed_half_way_leaves_each_booking_moved_or_untouched_and_a_rerun_finishes(
        db_url, district, clock):
    """300 bookings on the closed day, room for 200 elsewhere. The CLI is killed (SIGKILL) as soon
    as the database shows one booking moved, wherever it then is: early, late or already done."""
    clock.moment = SystemClock().now()
    today = clock.moment.date()
    closed_day, move_day = today + dt.timedelta(days=2), today + dt.timedelta(days=3)
    home = await make_site("TH01")
    other = await make_site("TH02", "石牌街")
    closed = [await make_slot(home, closed_day, f"{h:02d}:00", f"{h:02d}:59", capacity=100) for h in (9, 10, 11)]
    targets = [await make_slot(other, move_day, f"{h:02d}:00", f"{h:02d}:59", capacity=100) for h in (9, 14)]
    first_dose = today - dt.timedelta(days=30)
    bookings = []
    for i in range(300):
        resident, _ = await make_resident(home, first_dose=first_dose, phone=f"139{i:08d}")
        bookings.append(await book_for(district, resident, closed[i % 3]))
    closed_ids, target_ids = {s.id for s in closed}, {s.id for s in targets}
    args = ("close-window", "--site", "TH01", "--day", closed_day.isoformat(), "--reason", "暴雨停诊",
            "--move-to-site", "TH02", "--move-to-day", move_day.isoformat())

    process = subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, env=_cli_env(db_url),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None:
            if await Booking.filter(slot_id__in=target_ids).count() >= 1:
                os.kill(process.pid, signal.SIGKILL)
                break
            await asyncio.sleep(0.005)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)

    check = _run(db_url, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    halfway = await _states(bookings, closed_ids, target_ids)
    assert halfway["moved"] >= 1 and sum(halfway.values()) == 300
    assert all(s.closed_reason == "暴雨停诊" for s in await Slot.filter(id__in=closed_ids))

    rerun = _run(db_url, *args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{200 - halfway['moved']} moved, {100 - halfway['cancelled']} cancelled" in rerun.stdout
    final = await _states(bookings, closed_ids, target_ids)
    assert final == {"moved": 200, "cancelled": 100}
    moved = await Booking.filter(id__in=[b.id for b in bookings], slot_id__in=target_ids).values_list(
        "id", flat=True)
    assert sorted(moved) == sorted(b.id for b in bookings)[:200]  # booking order, across the crash
    assert _run(db_url, "check").returncode == 0
    assert await AuditEntry.filter(action="close_window", username="cli").count() >= 1
    again = _run(db_url, *args)
    assert "0 moved, 0 cancelled" in again.stdout
    assert await _states(bookings, closed_ids, target_ids) == final


async def test_the_cli_dry_run_shows_the_preview_and_writes_nothing(db_url, district, clock):
    clock.moment = SystemClock().now()
    today = clock.moment.date()
    home = await make_site("TH01")
    slot = await make_slot(home, today + dt.timedelta(days=2), "09:00", "10:00")
    await _people(district, home, slot, 2)
    done = _run(db_url, "close-window", "--site", "TH01", "--day", slot.day.isoformat(), "--reason", "x",
                "--cancel", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "1 window(s), 2 active booking(s) (2 people); cancel all" in done.stdout
    assert "dry run: nothing written" in done.stdout
    assert await Slot.exclude(closed_reason="").count() == 0
    bad = _run(db_url, "close-window", "--site", "TH01", "--day", slot.day.isoformat(), "--reason", "x",
               "--move-to-site", "TH01")
    assert bad.returncode == 1 and "--move-to-site needs --move-to-day" in bad.stderr


async def test_closure_sms_fit_in_two_parts_with_a_long_name_and_a_long_site_name(db, district):
    long_name = "阿卜杜热合曼·买买提艾力·吐尔逊江·阿不都热依木·艾合买提·克热木·吐尔洪·买买提·艾力·吐尔逊"
    site = await make_site("TH01", name="五山街社区卫生服务中心" * 9)
    resident, _ = await make_resident(site, first_dose=dt.date(2021, 6, 1), name=long_name,
                                      born=dt.date(1940, 1, 1))
    slot = await make_slot(site, dt.date(2021, 12, 31), "10:00", "11:00")
    booking = await book_for(district, resident, slot)
    slot = await Slot.get(id=slot.id).select_related("site")
    moved = wording.closure_move_sms(resident, booking, slot, born=dt.date(1940, 1, 1)).body
    assert len(moved) <= wording.MAX_CHARS and "70岁以上请家属陪同" in moved and "预约码" in moved
    link = "http://127.0.0.1:8000/b/" + "x" * 22
    cancelled = wording.closure_cancel(resident, slot.day, link).body
    assert len(cancelled) <= wording.MAX_CHARS and cancelled.endswith(link)
    with pytest.raises(closing.ClosingError):
        closing.check_link_fits("https://" + "x" * 80 + ".example.org")
