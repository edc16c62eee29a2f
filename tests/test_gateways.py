"""The SMS gateways through the vendors' real SDKs, against the local stand-in (tests/sms_standin.py):
every scripted answer becomes a gateway id or a GatewayError with the gateway's reason and the
right permanence; template codes come from configuration; delivery reports come back.

No database. The only test that waits is the timeout: 0.2 s against a server that stalls until the test ends;
every other answer gets the generous timeout, so a loaded machine cannot turn it into a timeout."""
from __future__ import annotations

import datetime as dt
import logging
import socket

import pytest

from models.messaging.config import SmsConfig
from models.messaging.gateways import GatewayError, Outgoing, Receipt, get_backend
from models.messaging.gateways.console import ConsoleBackend
from tests.sms_standin import SHORT_TIMEOUT_SECONDS, StandIn

PHONE = "13912345678"
CODES = {"confirm": "SMS_100", "confirm.en": "SMS_101", "invite": "SMS_102"}
TENCENT_CODES = {"confirm": "1100", "confirm.en": "1101", "invite": "1102"}
GATEWAYS = ["aliyun", "tencent"]
SENT_AT = dt.datetime(2021, 6, 30, 17, 30, tzinfo=dt.timezone.utc)  # 1 July, 01:30 in Beijing


def message(template="confirm", lang="zh", phone=PHONE) -> Outgoing:
    params = {"site": "天河区体育中心", "day": "7月2日", "time": "09:00-10:00"}  # in the template's order
    return Outgoing(phone=phone, template_key=template if lang == "zh" else f"{template}.{lang}",
                    template=template, params=params, body="【天河区卫健局】您已预约…", lang=lang)


@pytest.fixture
def standin():
    with StandIn() as running:
        yield running


def backend_for(standin: StandIn, gateway: str, **changes):
    if gateway == "aliyun":
        return get_backend(standin.aliyun_config(**{"template_codes": CODES, **changes}))
    return get_backend(standin.tencent_config(**{"template_codes": TENCENT_CODES, **changes}))


async def test_aliyun_sends_the_number_signature_template_code_and_parameters(standin):
    gateway_id = await backend_for(standin, "aliyun").send(message())
    assert gateway_id.endswith("^0")  # Alibaba's BizId
    [sent] = standin.sent
    assert (sent.phone, sent.signature, sent.template_code) == (PHONE, "天河区卫健局", "SMS_100")
    assert sent.params == {"site": "天河区体育中心", "day": "7月2日", "time": "09:00-10:00"}
    assert sent.authorization.startswith("ACS3-HMAC-SHA256 ")


async def test_tencent_sends_the_parameters_as_a_list_in_the_templates_order(standin):
    gateway_id = await backend_for(standin, "tencent").send(message())
    assert gateway_id.startswith("2433:")  # Tencent's SerialNo
    [sent] = standin.sent
    assert (sent.phone, sent.app_id, sent.signature, sent.template_code) == (
        f"+86{PHONE}", "1400006666", "天河区卫健局", "1100")
    assert sent.params == ["天河区体育中心", "7月2日", "09:00-10:00"]
    assert sent.authorization.startswith("TC3-HMAC-SHA256 ")


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_english_messages_use_the_english_template_code(standin, gateway):
    await backend_for(standin, gateway).send(message(lang="en"))
    assert standin.sent[0].template_code == {"aliyun": "SMS_101", "tencent": "1101"}[gateway]


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_a_template_without_a_code_fails_for_good_naming_its_key_and_sends_nothing(standin, gateway):
    backend = backend_for(standin, gateway, template_codes={"confirm": "SMS_100"})
    with pytest.raises(GatewayError) as failure:
        await backend.send(message(template="invite", lang="en"))
    assert failure.value.permanent
    assert "'invite.en'" in failure.value.reason and "SMS_TEMPLATE_CODES" in failure.value.reason
    assert standin.sent == []


ANSWERS = [
    # gateway, scripted answer, the code the reason starts with, permanent
    ("aliyun", "throttled", "isv.BUSINESS_LIMIT_CONTROL", False),
    ("aliyun", "api_throttled", "Throttling.User (HTTP 400)", False),
    ("aliyun", "invalid_number", "isv.MOBILE_NUMBER_ILLEGAL", True),
    ("aliyun", "signature", "isv.SMS_SIGNATURE_ILLEGAL", True),
    ("aliyun", "template", "isv.SMS_TEMPLATE_ILLEGAL", True),
    ("aliyun", "outage", "ServiceUnavailable (HTTP 503)", False),
    ("aliyun", "timeout", "timeout: no answer within 0.2 s", False),
    ("tencent", "throttled", "LimitExceeded.PhoneNumberDailyLimit", False),
    ("tencent", "api_throttled", "RequestLimitExceeded", False),
    ("tencent", "invalid_number", "InvalidParameterValue.IncorrectPhoneNumber", True),
    ("tencent", "signature", "FailedOperation.SignatureIncorrectOrUnapproved", True),
    ("tencent", "template", "FailedOperation.TemplateIncorrectOrUnapproved", True),
    ("tencent", "outage", "ServerNetworkError", False),
    ("tencent", "timeout", "timeout: no answer within 0.2 s", False),
]


@pytest.mark.parametrize("gateway, answer, code, permanent", ANSWERS, ids=[f"{a[0]}-{a[1]}" for a in ANSWERS])
async def test_each_refusal_keeps_the_gateways_reason_and_says_whether_to_retry(standin, gateway, answer,
                                                                                 code, permanent):
    standin.script(answer)
    changes = {"timeout_seconds": SHORT_TIMEOUT_SECONDS} if answer == "timeout" else {}
    with pytest.raises(GatewayError) as failure:
        await backend_for(standin, gateway, **changes).send(message())
    assert failure.value.reason.startswith(code), failure.value.reason
    assert failure.value.permanent is permanent
    assert len(failure.value.reason) <= 200 and PHONE not in failure.value.reason
    assert len(standin.sent) == 1  # the request did reach the gateway


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_after_a_retryable_refusal_the_same_message_goes_through(standin, gateway):
    backend = backend_for(standin, gateway)
    standin.script("throttled", "outage")
    for _ in range(2):
        with pytest.raises(GatewayError):
            await backend.send(message())
    assert await backend.send(message())
    assert len(standin.sent) == 3


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_a_refused_connection_is_retried_later_and_its_reason_holds_no_number(standin, gateway):
    backend = backend_for(standin, gateway, endpoint=f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(GatewayError) as failure:
        await backend.send(message())
    assert not failure.value.permanent
    assert failure.value.reason.startswith("connection failed"), failure.value.reason
    assert PHONE not in failure.value.reason and "Signature" not in failure.value.reason


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_delivery_reports_come_back_final_ones_only(standin, gateway):
    backend = backend_for(standin, gateway)
    delivered, failed, waiting = [await backend.send(message(phone=f"1391234567{n}")) for n in range(3)]
    standin.report(delivered, delivered=True)
    standin.report(failed, delivered=False, error="MK:0005" if gateway == "aliyun" else "UNDELIV")
    pending = [(gid, f"1391234567{n}", SENT_AT) for n, gid in enumerate((delivered, failed, waiting))]

    receipts = await backend.receipts(pending)

    assert sorted(receipts, key=lambda r: r.delivered) == [
        Receipt(failed, False, "MK:0005" if gateway == "aliyun" else "FAIL: UNDELIV"),
        Receipt(delivered, True)]


async def test_aliyun_asks_by_number_biz_id_and_the_day_in_china_time(standin):
    backend = backend_for(standin, "aliyun")
    biz_id = await backend.send(message())
    await backend.receipts([(biz_id, PHONE, SENT_AT)])
    [query] = standin.queries
    assert (query["PhoneNumber"], query["BizId"], query["SendDate"]) == (PHONE, biz_id, "20210701")


async def test_tencent_hands_each_report_out_once_also_for_ids_not_asked_about(standin):
    backend = backend_for(standin, "tencent")
    mine, another_senders = await backend.send(message()), await backend.send(message())
    standin.report(mine, delivered=True)
    standin.report(another_senders, delivered=True)
    receipts = await backend.receipts([(mine, PHONE, SENT_AT)])
    assert {r.gateway_id for r in receipts} == {mine, another_senders}
    assert await backend.receipts([(mine, PHONE, SENT_AT)]) == []
    assert standin.queries[0] == {"SmsSdkAppId": "1400006666", "Limit": 100}


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_reports_unavailable_raise_a_retryable_error(standin, gateway):
    backend = backend_for(standin, gateway)
    gateway_id = await backend.send(message())
    standin.report(gateway_id, delivered=True)
    standin.script("outage")
    with pytest.raises(GatewayError) as failure:
        await backend.receipts([(gateway_id, PHONE, SENT_AT)])
    assert not failure.value.permanent
    assert await backend.receipts([(gateway_id, PHONE, SENT_AT)]) == [Receipt(gateway_id, True)]


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_the_sdks_debug_logs_never_hold_the_phone_number(standin, gateway, caplog):
    backend = backend_for(standin, gateway)
    with caplog.at_level(logging.DEBUG):
        gateway_id = await backend.send(message())
        standin.report(gateway_id, delivered=True)
        await backend.receipts([(gateway_id, PHONE, SENT_AT)])
    assert PHONE not in caplog.text


async def test_the_console_backend_logs_a_masked_number_and_no_link_token(caplog):
    backend = get_backend(SmsConfig())
    assert isinstance(backend, ConsoleBackend)
    msg = Outgoing(phone=PHONE, template_key="invite", template="invite", params={},
                   body="【天河区卫健局】预约：http://x/b/SECRETTOKEN123")
    with caplog.at_level(logging.INFO):
        assert await backend.send(msg) == ""
    assert "139****5678" in caplog.text and PHONE not in caplog.text and "SECRETTOKEN123" not in caplog.text
    assert await backend.receipts([("", PHONE, SENT_AT)]) == []


@pytest.mark.parametrize("config, error", [
    (SmsConfig(backend="twilio"), "unknown SMS_BACKEND 'twilio'"),
    (SmsConfig(backend="aliyun", access_key_id="id"), "SMS_BACKEND=aliyun needs SMS_ACCESS_KEY_SECRET"),
    (SmsConfig(backend="tencent", access_key_id="id", access_key_secret="secret"),
     "SMS_BACKEND=tencent needs SMS_APP_ID"),
    (SmsConfig(backend="aliyun", access_key_id="id", access_key_secret="secret",
               endpoint="http://dysmsapi.aliyuncs.com"), "plain http only to this machine"),
])
def test_a_backend_that_cannot_work_is_refused_at_start_up(config, error):
    with pytest.raises(ValueError, match=error):
        get_backend(config)
