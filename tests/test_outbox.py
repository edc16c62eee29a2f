"""The SMS outbox never loses a message: it is written with what it reports, claimed by one sender
only, sent most urgent first, retried with backoff, failed with a reason, resent by an admin, and
held (never dropped) by the per-number and gateway limits."""
from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest
from tortoise.transactions import in_transaction

from models.db.tables import AuditEntry, SmsMessage
from models.messaging import delivery
from models.messaging.config import SmsConfig
from models.messaging.gateways import GatewayError, Receipt
from models.messaging.outbox import queue
from models.messaging.sms import Sms
from tests.conftest import NOW, VAULT
from tests.factories import make_resident, make_site
from tests.pages import get_page, post_form, text
from tests.staff_helpers import make_staff, sign_in

CONFIG = SmsConfig(per_phone_per_hour=100, max_attempts=4)


def sms(template: str = "confirm", n: int = 0) -> Sms:
    return Sms(template, {"n": str(n)}, body=f"【天河区卫健局】{template} {n}")


class Recorder:
    """A gateway that records what it was asked to send; it yields between calls, so two senders
    running together interleave."""

    def __init__(self, fail_with: GatewayError | None = None):
        self.sent: list[tuple[str, str]] = []
        self.fail_with = fail_with

    async def send(self, msg) -> str:
        await asyncio.sleep(0)
        if self.fail_with:
            raise self.fail_with
        self.sent.append((msg.phone, msg.body))
        return f"gw-{len(self.sent)}"

    async def receipts(self, pending):
        return []


@pytest.fixture
async def person(db):
    site = await make_site()
    resident, _ = await make_resident(site, first_dose=dt.date(2021, 6, 5))
    return resident


async def test_a_message_is_rolled_back_with_its_transaction(person):
    with pytest.raises(RuntimeError):
        async with in_transaction() as conn:
            await queue(VAULT, person, sms(), using_db=conn)
            raise RuntimeError("the booking failed after the message was written")
    assert await SmsMessage.all().count() == 0
    async with in_transaction() as conn:
        await queue(VAULT, person, sms(), using_db=conn)
    assert await SmsMessage.all().count() == 1


async def test_two_senders_racing_send_each_message_exactly_once(person):
    for n in range(120):
        await queue(VAULT, None, sms("invite", n), phone=f"139{n:08d}")
    gateway = Recorder()

    async def sender():
        while (await delivery.send_due(VAULT, gateway, CONFIG, now=NOW, batch=7)).claimed:
            pass

    await asyncio.gather(sender(), sender(), sender())
    bodies = [body for _, body in gateway.sent]
    assert len(bodies) == 120 and len(set(bodies)) == 120
    assert await SmsMessage.filter(status=SmsMessage.SENT).count() == 120


async def test_log_in_codes_and_confirmations_overtake_an_invitation_batch(person):
    for n in range(50):
        await queue(VAULT, None, sms("invite", n), phone=f"139{n:08d}")
    await queue(VAULT, person, sms("confirm"))
    await queue(VAULT, None, sms("login_code"), phone="13700000000")
    await queue(VAULT, person, sms("day_before"))
    gateway = Recorder()
    await delivery.send_due(VAULT, gateway, CONFIG, now=NOW, batch=3)
    assert [body.split()[0] for _, body in gateway.sent] == [
        "【天河区卫健局】login_code", "【天河区卫健局】confirm", "【天河区卫健局】day_before"]


async def test_a_gateway_failure_is_retried_with_growing_waits_then_failed_with_its_reason(person):
    await queue(VAULT, person, sms())
    down = Recorder(GatewayError("HTTP 503 Service Unavailable", permanent=False))
    now, waits = NOW, []
    for attempt in range(1, CONFIG.max_attempts + 1):
        report = await delivery.send_due(VAULT, down, CONFIG, now=now, rng=random.Random(attempt))
        assert report.claimed == 1
        msg = await SmsMessage.get()
        assert msg.attempts == attempt and msg.last_error == "HTTP 503 Service Unavailable"
        if attempt < CONFIG.max_attempts:
            assert msg.status == SmsMessage.QUEUED
            waits.append((msg.next_attempt_at - now).total_seconds())
            # not due before its time: another round now sends nothing
            assert (await delivery.send_due(VAULT, down, CONFIG, now=now)).claimed == 0
            now = msg.next_attempt_at
    assert msg.status == SmsMessage.FAILED
    assert waits == sorted(waits) and 15 <= waits[0] <= 30 and waits[-1] >= 60

    assert await delivery.resend_failed() == 1
    up = Recorder()
    assert (await delivery.send_due(VAULT, up, CONFIG, now=now)).sent == 1
    msg = await SmsMessage.get()
    assert msg.status == SmsMessage.SENT and msg.attempts == 1 and len(up.sent) == 1


def test_backoff_reaches_hours_in_all():
    rng = random.Random(7)
    total = sum(delivery.retry_delay(n, rng).total_seconds() for n in range(1, 10))
    assert 1.5 * 3600 <= total <= 3.2 * 3600
    assert delivery.retry_delay(30, rng) <= dt.timedelta(hours=1)


async def test_an_invalid_number_fails_at_once_without_retries(person):
    await queue(VAULT, person, sms())
    bad = Recorder(GatewayError("isv.MOBILE_NUMBER_ILLEGAL: 非法手机号", permanent=True))
    report = await delivery.send_due(VAULT, bad, CONFIG, now=NOW)
    msg = await SmsMessage.get()
    assert report.failed == 1 and msg.status == SmsMessage.FAILED and msg.attempts == 1
    assert "MOBILE_NUMBER_ILLEGAL" in msg.last_error


async def test_a_sender_that_died_leaves_its_messages_to_another_after_the_lease(person):
    await queue(VAULT, person, sms())
    assert len(await delivery.claim(NOW, 10)) == 1  # claimed, then the process was killed
    gateway = Recorder()
    assert (await delivery.send_due(VAULT, gateway, CONFIG, now=NOW + dt.timedelta(minutes=1))).claimed == 0
    later = NOW + delivery.LEASE + dt.timedelta(seconds=1)
    assert (await delivery.send_due(VAULT, gateway, CONFIG, now=later)).sent == 1


async def test_too_many_for_one_number_wait_for_the_next_hour_and_are_not_dropped(person):
    for n in range(5):
        await queue(VAULT, person, sms("confirm", n))
    await queue(VAULT, None, sms("confirm", 9), phone="13900000009")  # someone else: not held up
    gateway = Recorder()
    limited = SmsConfig(per_phone_per_hour=3)
    report = await delivery.send_due(VAULT, gateway, limited, now=NOW)
    assert report.sent == 4 and report.delayed == 2
    waiting = await SmsMessage.filter(status=SmsMessage.QUEUED)
    assert {m.next_attempt_at for m in waiting} == {NOW + dt.timedelta(hours=1)}
    assert (await delivery.send_due(VAULT, gateway, limited, now=NOW + dt.timedelta(minutes=59))).sent == 0
    assert (await delivery.send_due(VAULT, gateway, limited, now=NOW + dt.timedelta(hours=1))).sent == 2


async def test_the_gateways_rate_holds_messages_back_for_the_next_round(person):
    for n in range(5):
        await queue(VAULT, None, sms("invite", n), phone=f"139{n:08d}")
    gateway = Recorder()
    # per hour, not per second: however slow the machine, the fourth message comes within the window
    rate = delivery.GatewayRate(3, "memory://", prefix=f"test-{random.random()}", per="hour")
    report = await delivery.send_due(VAULT, gateway, CONFIG, now=NOW, rate=rate)
    assert report.sent == 3 and report.held_back == 2
    assert await SmsMessage.filter(status=SmsMessage.QUEUED, attempts=0).count() == 2


async def test_delivery_receipts_mark_messages_delivered_or_failed(person):
    await queue(VAULT, person, sms("confirm", 1))
    await queue(VAULT, person, sms("confirm", 2))
    gateway = Recorder()
    await delivery.send_due(VAULT, gateway, CONFIG, now=NOW)

    class Reports(Recorder):
        async def receipts(self, pending):
            assert {p[1] for p in pending} == {"13812345678"}
            return [Receipt("gw-1", True), Receipt("gw-2", False, "DELIVRD:MK:0001 用户关机")]

    assert await delivery.apply_receipts(VAULT, Reports(), now=NOW) == 2
    first, second = await SmsMessage.all().order_by("id")
    assert first.status == SmsMessage.DELIVERED and first.delivered_at == NOW
    assert second.status == SmsMessage.FAILED and "关机" in second.last_error
    counts = await delivery.status_counts()
    assert counts["delivered"] == 1 and counts["failed"] == 1 and counts["queued"] == 0


async def test_run_once_delivers_everything_due_and_stops(person):
    for n in range(25):
        await queue(VAULT, None, sms("invite", n), phone=f"139{n:08d}")
    gateway, lines = Recorder(), []

    class Clock:
        def utc(self):
            return NOW

    await delivery.run_sender(VAULT, gateway, CONFIG, Clock(), once=True, batch=10, say=lines.append)
    assert len(gateway.sent) == 25 and lines


async def test_admins_see_the_counts_and_resend_failed_messages(person, client):
    await queue(VAULT, person, sms("confirm", 1))
    await queue(VAULT, person, sms("confirm", 2))
    await delivery.send_due(VAULT, Recorder(GatewayError("isv.SMS_TEMPLATE_ILLEGAL: 模板不合法", permanent=True)),
                            CONFIG, now=NOW)
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    page = await get_page(client, "/admin/messages")
    assert "SMS_TEMPLATE_ILLEGAL" in text(page) and "138****5678" in text(page)
    assert "13812345678" not in page.text
    await post_form(client, "/admin/messages/resend", page, {"all": "1"}, status=303)
    assert await SmsMessage.filter(status=SmsMessage.QUEUED).count() == 2
    assert await AuditEntry.filter(action="sms_resend").count() == 1


async def test_the_outbox_is_for_admins_only(person, client):
    await make_staff("callcentre", "agent1")
    await sign_in(client, "agent1")
    response = await client.get("/admin/messages")
    assert response.status_code in (403, 303)
