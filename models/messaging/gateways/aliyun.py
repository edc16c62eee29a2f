"""Alibaba Cloud SMS (dysmsapi, API 2017-05-25) through its official SDK.

A message is one SendSms call: the number, the approved signature (SignName), the approved
template code and its parameters as a JSON object. The answer's Code says what happened: "OK"
with a BizId, or why not (business refusals come back as HTTP 200 with another Code). Delivery is
read back with QuerySendDetails, by number, day (China time) and BizId: SendStatus 3 delivered,
2 failed (ErrCode says why), 1 still on its way.

The SDK is synchronous (requests), so every call runs in a worker thread. Its own retries stay
off: the sender retries, with backoff, and knows which failures are worth it.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_dysmsapi20170525.models import QuerySendDetailsRequest, SendSmsRequest
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.runtime import RuntimeOptions

from ...clock import TZ
from ..config import SmsConfig
from . import GatewayError, Outgoing, Pending, Receipt, network_reason, quiet_sdk_logs, split_endpoint, template_code

log = logging.getLogger("booking.sms")

DEFAULT_HOST = "dysmsapi.aliyuncs.com"
DELIVERED, FAILED = 3, 2  # QuerySendDetails SendStatus (1: waiting for the carrier's report)

# Refusals that are about this message, its signature or its template: the same request will be
# refused again. Anything else (flow control, balance, credentials, outages) may pass later.
PERMANENT = frozenset({
    "isv.MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_COUNT_OVER_LIMIT", "isv.DOMESTIC_NUMBER_NOT_SUPPORTED",
    "isv.SMS_SIGNATURE_ILLEGAL", "isv.SMS_SIGN_ILLEGAL", "isv.SIGN_STATE_ILLEGAL",
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
    "isv.SMS_TEMPLATE_ILLEGAL", "isv.TEMPLATE_MISSING_PARAMETERS", "isv.INVALID_JSON_PARAM",
    "isv.INVALID_PARAMETERS", "isv.PARAM_LENGTH_LIMIT", "isv.PARAM_NOT_SUPPORT_URL",
    "isv.BLACK_KEY_CONTROL_LIMIT", "isv.SMS_CONTENT_ILLEGAL",
})


def refusal(code: str, message: str, status: int | None = None) -> GatewayError:
    http = f" (HTTP {status})" if status and status != 200 else ""
    return GatewayError(f"{code}{http}: {message}", permanent=code in PERMANENT and (status or 200) < 500)


class AliyunBackend:
    def __init__(self, config: SmsConfig):
        quiet_sdk_logs()
        protocol, host = split_endpoint(config.endpoint, DEFAULT_HOST)
        millis = max(1, round(config.timeout_seconds * 1000))
        self._config = config
        self._client = Client(Config(
            access_key_id=config.access_key_id, access_key_secret=config.access_key_secret,
            endpoint=host, protocol=protocol, connect_timeout=millis, read_timeout=millis))
        self._runtime = RuntimeOptions(connect_timeout=millis, read_timeout=millis)

    async def send(self, msg: Outgoing) -> str:
        request = SendSmsRequest(
            phone_numbers=msg.phone, sign_name=self._config.signature,
            template_code=template_code(self._config, msg),
            template_param=json.dumps(msg.params, ensure_ascii=False) if msg.params else None)
        body = await asyncio.to_thread(self._call, self._client.send_sms_with_options, request)
        if body.code != "OK":
            raise refusal(body.code or "no code", body.message or "")
        return body.biz_id or ""

    async def receipts(self, pending: list[Pending]) -> list[Receipt]:
        return await asyncio.to_thread(self._receipts, pending)

    def _receipts(self, pending: list[Pending]) -> list[Receipt]:
        found = []
        for done, (biz_id, phone, sent_at) in enumerate(pending):
            request = QuerySendDetailsRequest(
                phone_number=phone, biz_id=biz_id, send_date=_china_day(sent_at),
                page_size=10, current_page=1)
            try:
                body = self._call(self._client.query_send_details_with_options, request)
                if body.code != "OK":
                    raise refusal(body.code or "no code", body.message or "")
            except GatewayError as exc:
                if exc.permanent:
                    continue  # this one cannot be asked about (e.g. older than the gateway keeps)
                if not found:
                    raise  # nothing to keep: the caller hears of the outage
                log.warning("delivery reports: stopped after %d of %d: %s", done, len(pending), exc.reason)
                break  # throttled or unreachable: the rest wait for the next round
            if receipt := _final(biz_id, body):
                found.append(receipt)
        return found

    def _call(self, method, request):
        try:
            return method(request, self._runtime).body
        except AlibabaCloudException as exc:
            data = exc.data if isinstance(exc.data, dict) else {}
            code = data.get("Code") or data.get("code") or "no code"
            raise refusal(code, data.get("Message") or data.get("message") or "", exc.status_code) from None
        except Exception as exc:  # a timeout, a refused connection, an answer that is not JSON
            inner = getattr(exc, "inner_exception", None) or exc  # the SDK wraps what requests raised
            text = getattr(inner, "message", None) or str(inner)
            raise GatewayError(network_reason(text, self._config.timeout_seconds), permanent=False) from None


def _china_day(moment: dt.datetime) -> str:
    """The day Alibaba filed the message under (China time); a naive moment is UTC, as stored."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(TZ).strftime("%Y%m%d")


def _final(biz_id: str, body) -> Receipt | None:
    details = body.sms_send_detail_dtos.sms_send_detail_dto if body.sms_send_detail_dtos else []
    for detail in details or []:
        if detail.send_status == DELIVERED:
            return Receipt(biz_id, True)
        if detail.send_status == FAILED:
            return Receipt(biz_id, False, f"{detail.err_code or 'FAILED'}")
    return None
