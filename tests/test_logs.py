"""What reaches the logs: no link tokens, no full ID or phone numbers."""
from __future__ import annotations

import datetime as dt
import logging

from models.messaging.config import SmsConfig
from models.messaging.delivery import send_due
from models.messaging.gateways.console import ConsoleBackend
from models.messaging.outbox import queue
from models.messaging.sms import Sms
from models.people import pii
from models.people.links import issue_link
from tests.conftest import NOW, VAULT
from tests.factories import make_resident, make_site
from tests.pii_scan import find_personal_numbers


def test_scanner_finds_a_full_id_and_phone_but_not_masked_ones():
    number = pii.build_id_number("440106", dt.date(1950, 1, 1), 7)
    assert find_personal_numbers(f"id={number} phone=13812345678") == [number, "13812345678"]
    assert find_personal_numbers(f"id={pii.mask_id(number)} phone=138****5678") == []


async def test_opening_a_link_logs_the_request_without_its_token(client, caplog):
    site = await make_site()
    resident, number = await make_resident(site, first_dose=dt.date(2021, 6, 1))
    token = await issue_link(resident, now=NOW)
    with caplog.at_level(logging.INFO):
        await client.get(f"/b/{token}")
    server_side = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("http"))
    assert "/b/…" in server_side  # the test client (httpx) logs its own URLs; the server must not
    assert token not in server_side


async def test_console_sms_backend_logs_masked_phone_and_no_token(db, caplog):
    site = await make_site()
    resident, _ = await make_resident(site, first_dose=dt.date(2021, 6, 1), phone="13912345678")
    body = "【天河区卫健局】您好，预约：http://x/b/SECRETTOKEN123"
    await queue(VAULT, resident, Sms("invite", {"link": "http://x/b/SECRETTOKEN123"}, body))
    with caplog.at_level(logging.INFO):
        assert (await send_due(VAULT, ConsoleBackend(), SmsConfig(), now=NOW)).sent == 1
    assert "139****5678" in caplog.text
    assert "SECRETTOKEN123" not in caplog.text and "13912345678" not in caplog.text
