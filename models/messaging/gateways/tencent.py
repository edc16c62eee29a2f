"""Tencent Cloud SMS (API 2021-01-11) through its official SDK.

A message is one SendSms call: the number as +86…, the application (SmsSdkAppId), the approved
signature and template id, and the template's parameters as a list. Tencent's templates number
their placeholders ({1}, {2} …), so the list follows the order of `Outgoing.params`, which the
wording module builds in the template's order. A refusal comes either for the whole call
(Response.Error) or for the number (SendStatusSet[].Code other than "Ok").

Delivery reports are pulled with PullSmsSendStatus: Tencent hands each report out once, whoever
asks, so every report pulled is returned, also for ids the caller did not list (sent by another
sender, or beyond its batch); the caller ignores ids it does not know.

The SDK is synchronous (requests), so every call runs in a worker thread; its retries stay off.
"""
from __future__ import annotations

import asyncio
import logging
import re

from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models
from tencentcloud.sms.v20210111.sms_client import SmsClient

from ..config import SmsConfig
from . import GatewayError, Outgoing, Pending, Receipt, network_reason, quiet_sdk_logs, split_endpoint, template_code

log = logging.getLogger("booking.sms")

DEFAULT_HOST = "sms.tencentcloudapi.com"
OK = "Ok"
PULL_LIMIT = 100  # the most PullSmsSendStatus returns at once
PULL_ROUNDS = 10  # per call: the rest wait for the next round
NETWORK = frozenset({"ClientNetworkError"})
_TAG = re.compile(r"<[^>]*>")

# Refusals about this message, its number, signature or template: the same request will be
# refused again. Anything else (LimitExceeded.*, RequestLimitExceeded, arrears, outages) may pass.
PERMANENT = frozenset({
    "InvalidParameterValue.IncorrectPhoneNumber", "FailedOperation.PhoneNumberParseFail",
    "FailedOperation.PhoneNumberInBlacklist", "UnsupportedOperation.ChineseMainlandTemplateToGlobalPhone",
    "FailedOperation.SignatureIncorrectOrUnapproved", "FailedOperation.MissingSignature",
    "FailedOperation.TemplateIncorrectOrUnapproved", "FailedOperation.TemplateIdNotExist",
    "FailedOperation.TemplateUnapprovedOrNotExist", "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
    "InvalidParameterValue.TemplateParameterFormatError", "InvalidParameterValue.TemplateParameterLengthLimit",
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter", "InvalidParameterValue.ContentLengthLimit",
    "FailedOperation.ContainSensitiveWord", "InvalidParameter.DirtyWordFound",
})


def refusal(code: str, message) -> GatewayError:
    if isinstance(message, bytes):  # ServerNetworkError: the body of a non-200 answer, often a page
        message = _TAG.sub(" ", message.decode("utf-8", "replace"))
    return GatewayError(f"{code}: {' '.join(str(message or '').split())}", permanent=code in PERMANENT)


class TencentBackend:
    def __init__(self, config: SmsConfig):
        quiet_sdk_logs()
        scheme, host = split_endpoint(config.endpoint, DEFAULT_HOST)
        profile = ClientProfile(httpProfile=HttpProfile(protocol=scheme, endpoint=host,
                                                        reqTimeout=config.timeout_seconds))
        self._config = config
        self._client = SmsClient(Credential(config.access_key_id, config.access_key_secret),
                                 config.region, profile)

    async def send(self, msg: Outgoing) -> str:
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [f"+86{msg.phone}"]
        request.SmsSdkAppId = self._config.app_id
        request.SignName = self._config.signature
        request.TemplateId = template_code(self._config, msg)
        request.TemplateParamSet = list(msg.params.values())
        response = await asyncio.to_thread(self._call, self._client.SendSms, request)
        status = (response.SendStatusSet or [None])[0]
        if status is None:
            raise GatewayError("no SendStatusSet in the answer", permanent=False)
        if status.Code != OK:
            raise refusal(status.Code or "no code", status.Message)
        return status.SerialNo or ""

    async def receipts(self, pending: list[Pending]) -> list[Receipt]:
        return await asyncio.to_thread(self._pull)

    def _pull(self) -> list[Receipt]:
        found = []
        for _ in range(PULL_ROUNDS):
            request = models.PullSmsSendStatusRequest()
            request.SmsSdkAppId = self._config.app_id
            request.Limit = PULL_LIMIT
            try:
                statuses = self._call(self._client.PullSmsSendStatus, request).PullSmsSendStatusSet or []
            except GatewayError as exc:
                if not found:
                    raise
                log.warning("delivery reports: stopped after %d: %s", len(found), exc.reason)
                break  # keep what was pulled: Tencent will not hand it out again
            found += [Receipt(s.SerialNo, s.ReportStatus == "SUCCESS",
                              "" if s.ReportStatus == "SUCCESS" else f"{s.ReportStatus}: {s.Description or ''}")
                      for s in statuses if s.SerialNo and s.ReportStatus in ("SUCCESS", "FAIL")]
            if len(statuses) < PULL_LIMIT:
                break
        return found

    def _call(self, method, request):
        try:
            return method(request)
        except TencentCloudSDKException as exc:
            if exc.code in NETWORK:
                raise GatewayError(network_reason(exc.message, self._config.timeout_seconds),
                                   permanent=False) from None
            raise refusal(exc.code or "no code", exc.message) from None
