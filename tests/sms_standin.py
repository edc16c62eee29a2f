"""A stand-in for the Alibaba Cloud and Tencent Cloud SMS APIs, on 127.0.0.1, for the real SDKs.

One small HTTP server answers both, as their documentation describes: Alibaba's RPC-style API
(the action in the `x-acs-action` header or `Action=`, parameters in the query string or a form
body, a flat JSON answer with `Code`) and Tencent's API 3.0 (the action in `X-TC-Action`, a JSON
body, the answer wrapped in `Response`). Signatures are not checked, only that the request is
signed the vendor's way.

Tests script it: `standin.script("throttled", "ok")` sets the next answers, one per request, then
"ok" again. Each send is recorded (`standin.sent`) with what the gateway would have read.
`standin.report(gateway_id, delivered=…)` queues a delivery report for the receipts calls.

    with StandIn() as standin:
        config = standin.aliyun_config(template_codes={"confirm": "SMS_1"})
"""
from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from models.messaging.config import SmsConfig

TIMEOUT_SECONDS = 10.0  # the SDKs' timeout in tests: generous, so a loaded machine never turns an answer into a timeout
SHORT_TIMEOUT_SECONDS = 0.2  # what a test of the "timeout" answer sets instead
SLOW_SECONDS = 30.0  # how long a "timeout" answer keeps the caller waiting (it ends at once on shutdown)
ANSWERS = ("ok", "throttled", "api_throttled", "invalid_number", "signature", "template",
           "timeout", "outage")

# What Alibaba answers (HTTP status, Code, Message): business refusals are HTTP 200.
ALIYUN = {
    "throttled": (200, "isv.BUSINESS_LIMIT_CONTROL", "触发号码天级流控Permits:10"),
    "api_throttled": (400, "Throttling.User", "Request was denied due to user flow control."),
    "invalid_number": (200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"),
    "signature": (200, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名"),
    "template": (200, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板"),
    "outage": (503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
}
# What Tencent answers: per number in SendStatusSet, or for the whole call in Response.Error.
TENCENT_PER_NUMBER = {
    "throttled": ("LimitExceeded.PhoneNumberDailyLimit", "the number of SMS messages sent from a single "
                  "mobile number every day exceeds the upper limit"),
    "invalid_number": ("InvalidParameterValue.IncorrectPhoneNumber", "incorrect number format"),
    "signature": ("FailedOperation.SignatureIncorrectOrUnapproved",
                  "signature format is incorrect or signature is not approved"),
}
TENCENT_CALL = {
    "api_throttled": ("RequestLimitExceeded", "请求的次数超过了频率限制。"),
    "template": ("FailedOperation.TemplateIncorrectOrUnapproved",
                 "template is not approved or request content does not match the approved template content"),
}


@dataclass
class Sent:
    gateway: str  # aliyun | tencent
    phone: str  # as the gateway received it: 139…, or +86139… for Tencent
    signature: str
    template_code: str
    params: dict | list  # Alibaba: the TemplateParam object; Tencent: TemplateParamSet
    app_id: str = ""
    authorization: str = ""  # the SDK's signature header (ACS3-HMAC-SHA256 …, TC3-HMAC-SHA256 …)


@dataclass
class StandIn:
    host: str = "127.0.0.1"
    sent: list[Sent] = field(default_factory=list)
    actions: list[tuple[str, str]] = field(default_factory=list)  # (gateway, action), every request
    queries: list[dict] = field(default_factory=list)  # the parameters of every receipts query
    _answers: deque = field(default_factory=deque)
    _aliyun_reports: dict = field(default_factory=dict)  # BizId -> (SendStatus, ErrCode)
    _tencent_reports: deque = field(default_factory=deque)  # PullSmsSendStatus entries, handed out once
    _tencent_phones: dict = field(default_factory=dict)  # SerialNo -> the number it went to
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

    # -- the test's side -----------------------------------------------------------------------

    def script(self, *answers: str) -> None:
        """The next answers, one per request (sends and receipt queries alike), then "ok"."""
        unknown = set(answers) - set(ANSWERS)
        assert not unknown, f"unknown answers {unknown}; known: {ANSWERS}"
        with self._lock:
            self._answers.extend(answers)

    def report(self, gateway_id: str, *, delivered: bool, error: str = "") -> None:
        """A delivery report from the carrier, for the gateway that issued `gateway_id`."""
        with self._lock:
            if "^" in gateway_id:  # Alibaba's BizId
                self._aliyun_reports[gateway_id] = (3, "DELIVERED") if delivered else (2, error or "MK:0001")
                return
            phone = self._tencent_phones[gateway_id]
            self._tencent_reports.append({
                "UserReceiveTime": int(time.time()), "CountryCode": "86",
                "SubscriberNumber": phone.removeprefix("+86"), "PhoneNumber": phone,
                "SerialNo": gateway_id, "ReportStatus": "SUCCESS" if delivered else "FAIL",
                "Description": "DELIVRD" if delivered else (error or "UNDELIV"), "SessionContext": ""})

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._server.server_address[1]}"

    def aliyun_config(self, **changes) -> SmsConfig:
        return SmsConfig(**{"backend": "aliyun", "signature": "天河区卫健局", "endpoint": self.url,
                            "access_key_id": "LTAI-standin", "access_key_secret": "standin-secret",
                            "timeout_seconds": TIMEOUT_SECONDS, **changes})

    def tencent_config(self, **changes) -> SmsConfig:
        return SmsConfig(**{"backend": "tencent", "signature": "天河区卫健局", "endpoint": self.url,
                            "access_key_id": "AKID-standin", "access_key_secret": "standin-secret",
                            "app_id": "1400006666", "region": "ap-guangzhou",
                            "timeout_seconds": TIMEOUT_SECONDS, **changes})

    def __enter__(self) -> StandIn:
        self._server = ThreadingHTTPServer((self.host, 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()  # a request kept waiting ("timeout") ends now
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # -- the gateways' side --------------------------------------------------------------------

    def _next_answer(self) -> str:
        with self._lock:
            return self._answers.popleft() if self._answers else "ok"

    def _stall(self) -> None:
        self._stopping.wait(SLOW_SECONDS)

    def aliyun(self, action: str, params: dict, headers) -> tuple[int, dict]:
        self.actions.append(("aliyun", action))
        request_id = str(uuid.uuid4()).upper()
        if action == "SendSms":
            self.sent.append(Sent("aliyun", params.get("PhoneNumbers", ""), params.get("SignName", ""),
                                  params.get("TemplateCode", ""), json.loads(params.get("TemplateParam") or "{}"),
                                  authorization=headers.get("Authorization", "")))
        answer = self._next_answer()
        if answer == "timeout":
            self._stall()
            return 0, {}
        if answer in ALIYUN:
            status, code, message = ALIYUN[answer]
            return status, {"Code": code, "Message": message, "RequestId": request_id}
        if action == "SendSms":
            biz_id = f"{next(self._ids):012d}^0"
            return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id}
        if action == "QuerySendDetails":
            self.queries.append(params)
            status, err = self._aliyun_reports.get(params.get("BizId", ""), (1, ""))
            detail = {"PhoneNum": params.get("PhoneNumber", ""), "SendStatus": status, "ErrCode": err,
                      "TemplateCode": "SMS_0", "Content": "", "SendDate": "", "ReceiveDate": "", "OutId": ""}
            return 200, {"Code": "OK", "Message": "OK", "RequestId": request_id, "TotalCount": 1,
                         "SmsSendDetailDTOs": {"SmsSendDetailDTO": [detail]}}
        return 404, {"Code": "InvalidAction.NotFound", "Message": f"{action} not found", "RequestId": request_id}

    def tencent(self, action: str, body: dict, headers) -> tuple[int, dict | str]:
        self.actions.append(("tencent", action))
        request_id = str(uuid.uuid4())
        sent = None
        if action == "SendSms":
            phones = body.get("PhoneNumberSet") or [""]
            sent = Sent("tencent", phones[0], body.get("SignName", ""), body.get("TemplateId", ""),
                        body.get("TemplateParamSet") or [], app_id=body.get("SmsSdkAppId", ""),
                        authorization=headers.get("Authorization", ""))
            self.sent.append(sent)
        answer = self._next_answer()
        if answer == "timeout":
            self._stall()
            return 0, {}
        if answer == "outage":
            return 503, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
        if answer in TENCENT_CALL:
            code, message = TENCENT_CALL[answer]
            return 200, {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}
        if action == "SendSms":
            code, message = TENCENT_PER_NUMBER.get(answer, ("Ok", "send success"))
            serial = ""
            if code == "Ok":
                serial = f"2433:{next(self._ids):028d}"
                self._tencent_phones[serial] = sent.phone
            return 200, {"Response": {"SendStatusSet": [{
                "SerialNo": serial, "PhoneNumber": sent.phone, "Fee": 1 if code == "Ok" else 0,
                "SessionContext": "", "Code": code, "Message": message, "IsoCode": "CN"}],
                "RequestId": request_id}}
        if action == "PullSmsSendStatus":
            self.queries.append(body)
            with self._lock:
                limit = int(body.get("Limit") or 100)
                batch = [self._tencent_reports.popleft() for _ in range(min(limit, len(self._tencent_reports)))]
            return 200, {"Response": {"PullSmsSendStatusSet": batch, "RequestId": request_id}}
        return 200, {"Response": {"Error": {"Code": "InvalidAction", "Message": f"{action} not found"},
                                  "RequestId": request_id}}


def _handler(standin: StandIn):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self._answer()

        def do_POST(self):
            self._answer()

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if tc_action := self.headers.get("X-TC-Action"):
                status, answer = standin.tencent(tc_action, json.loads(raw or b"{}"), self.headers)
                content_type = "application/json"
            else:
                params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
                if raw and "form-urlencoded" in self.headers.get("Content-Type", ""):
                    params.update(parse_qsl(raw.decode(), keep_blank_values=True))
                action = self.headers.get("x-acs-action") or params.get("Action", "")
                status, answer = standin.aliyun(action, params, self.headers)
                content_type = "application/json;charset=utf-8"
            if status == 0:
                self.close_connection = True
                return  # gave up waiting: the caller timed out long ago
            text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if isinstance(answer, str) else content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):
            pass  # the request line holds the phone number (Alibaba's query string)

    return Handler
