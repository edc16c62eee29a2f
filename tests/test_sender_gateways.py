"""The sender through the vendors' real SDKs against the local stand-in gateway: an outage retried
until the message is failed with the gateway's reason, resent by an admin, then delivered; and
sender processes racing over one outbox, each message reaching the gateway exactly once."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from models.db.tables import SmsMessage
from models.messaging import delivery
from models.messaging.gateways import get_backend
from models.messaging.outbox import queue
from models.messaging.sms import Sms
from tests.conftest import NOW, TEST_SECRET, VAULT
from tests.sms_standin import StandIn

ROOT = Path(__file__).resolve().parent.parent
CODES = {"confirm": "SMS_100", "invite": "SMS_200"}


def sms(template: str = "confirm", n: int = 0) -> Sms:
    return Sms(template, {"n": str(n)}, body=f"【天河区卫健局】{template} {n}")


@pytest.fixture
def standin():
    with StandIn() as s:
        yield s


@pytest.mark.parametrize("vendor", ["aliyun", "tencent"])
async def test_an_outage_is_retried_then_failed_then_resent_and_delivered(db, standin, vendor):
    config = getattr(standin, f"{vendor}_config")(template_codes=CODES, max_attempts=3)
    backend = get_backend(config)
    await queue(VAULT, None, sms(), phone="13912345678")
    standin.script("outage", "throttled", "api_throttled")  # timeouts: test_gateways.py
    now = NOW
    for attempt in range(1, 4):
        await delivery.send_due(VAULT, backend, config, now=now, rng=random.Random(attempt))
        msg = await SmsMessage.get()
        assert msg.attempts == attempt
        if msg.status == SmsMessage.QUEUED:
            now = msg.next_attempt_at
    assert msg.status == SmsMessage.FAILED and msg.last_error  # the third answer's reason

    assert await delivery.resend_failed([msg.id]) == 1
    assert (await delivery.send_due(VAULT, backend, config, now=now)).sent == 1
    msg = await SmsMessage.get()
    assert msg.status == SmsMessage.SENT and msg.gateway_id
    assert standin.sent[-1].template_code == "SMS_100" and standin.sent[-1].signature == "天河区卫健局"

    standin.report(msg.gateway_id, delivered=True)
    assert await delivery.apply_receipts(VAULT, backend, now=now) == 1
    assert (await SmsMessage.get()).status == SmsMessage.DELIVERED


async def test_a_rejected_template_fails_at_once_with_the_gateways_reason(db, standin):
    config = standin.aliyun_config(template_codes=CODES)
    await queue(VAULT, None, sms(), phone="13912345678")
    standin.script("template")
    report = await delivery.send_due(VAULT, get_backend(config), config, now=NOW)
    msg = await SmsMessage.get()
    assert report.failed == 1 and msg.attempts == 1 and "SMS_TEMPLATE_ILLEGAL" in msg.last_error


async def _senders_race(db_url: str, standin: StandIn, senders: int, messages: int) -> None:
    for n in range(messages):
        await queue(VAULT, None, sms("invite", n), phone=f"139{n:08d}")
    config = standin.aliyun_config(template_codes=CODES)
    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": TEST_SECRET, "SMS_BACKEND": "aliyun",
           "SMS_ENDPOINT": config.endpoint, "SMS_ACCESS_KEY_ID": config.access_key_id,
           "SMS_ACCESS_KEY_SECRET": config.access_key_secret,
           "SMS_TEMPLATE_CODES": "confirm=SMS_100,invite=SMS_200", "SMS_TIMEOUT_SECONDS": "5",
           "SMS_RATE_PER_SECOND": "100000"}
    env.pop("REDIS_URL", None)
    processes = [await asyncio.create_subprocess_exec(
        sys.executable, "run.py", "send-sms", "--once", cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(senders)]
    for process in processes:
        _, err = await asyncio.wait_for(process.communicate(), timeout=300)
        assert process.returncode == 0, err.decode()[-2000:]


async def test_sender_processes_racing_send_each_message_exactly_once(db_url, standin):
    await _senders_race(db_url, standin, senders=3, messages=300)
    phones = [s.phone for s in standin.sent]
    assert len(phones) == 300 and len(set(phones)) == 300
    assert await SmsMessage.filter(status=SmsMessage.SENT).count() == 300


def test_the_server_started_with_send_sms_delivers_the_outbox(tmp_path, standin):
    """`make run` serves with --send-sms: the queued message reaches the gateway without a
    separate sender process."""
    import time

    from tests.realserver import Server, seed

    url = f"sqlite://{tmp_path}/served.sqlite3"
    seed(url, lambda: queue(VAULT, None, sms("confirm", 7), phone="13912345678"))
    config = standin.aliyun_config(template_codes=CODES)
    server = Server(url, TEST_SECRET, SMS_IN_SERVER="1", SMS_BACKEND="aliyun",
                    SMS_ENDPOINT=config.endpoint, SMS_ACCESS_KEY_ID=config.access_key_id,
                    SMS_ACCESS_KEY_SECRET=config.access_key_secret,
                    SMS_TEMPLATE_CODES="confirm=SMS_100")
    try:
        deadline = time.monotonic() + 60  # waiting for an event, not measuring how long it takes
        while not standin.sent and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.stop()
    assert [(s.phone, s.template_code) for s in standin.sent] == [("13912345678", "SMS_100")]
