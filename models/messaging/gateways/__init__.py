"""SMS gateways behind one interface, for the sender (models/messaging/delivery.py).

A backend takes one `Outgoing` message and answers with the gateway's message id, or raises
`GatewayError` saying whether trying again later can help: the sender retries the first kind with
backoff and fails the second at once. Chinese gateways send only templates approved in advance,
so a message goes out as a template code (looked up in `SmsConfig.template_codes` by the
message's template key, `confirm` or `confirm.en`) plus its parameters.

`receipts()` asks what became of messages already sent; only final answers come back.

Backends: `console` (the log), `aliyun` (Alibaba Cloud SMS) and `tencent` (Tencent Cloud SMS),
the last two through the vendors' official SDKs, imported only when chosen.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from ..config import SmsConfig

REASON_LENGTH = 200
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_URL = re.compile(r"(with url: )?\S*\?\S*")
_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")]*")
# The SDKs' debug lines carry the request (Alibaba's query string, Tencent's JSON) and the
# answer, phone numbers included; personal numbers never reach the log.
_SDK_LOGGERS = ("urllib3", "tencentcloud_sdk_common", "darabonba")


@dataclass(frozen=True)
class Outgoing:
    phone: str  # normalised, 11 digits, mainland
    template_key: str  # the key of the template code: "confirm", or "confirm.en" in English
    template: str  # "confirm"
    params: dict[str, str] = field(hash=False)  # in the order of the template's placeholders
    body: str  # the whole text as the resident reads it (console, operators)
    lang: str = "zh"


class GatewayError(Exception):
    """The gateway did not take the message. `reason`: its own code and message (≤200 chars, no
    phone number); `permanent`: retrying cannot help (bad number, signature or template)."""

    def __init__(self, reason: str, *, permanent: bool):
        self.reason = scrub(reason)
        self.permanent = permanent
        super().__init__(self.reason)


@dataclass(frozen=True)
class Receipt:
    gateway_id: str
    delivered: bool
    reason: str = ""  # why not, in the gateway's words


Pending = tuple[str, str, dt.datetime]  # (gateway id, phone, sent at)


class Backend(Protocol):
    async def send(self, msg: Outgoing) -> str: ...

    async def receipts(self, pending: list[Pending]) -> list[Receipt]: ...


def scrub(text: str) -> str:
    """A reason fit for the log and the admin page: mobile numbers masked, short."""
    return _MOBILE.sub(r"\1****\2", text)[:REASON_LENGTH]


def network_reason(error: object, timeout: float) -> str:
    """What a failed call says, without the request URL (Alibaba's query holds the number)."""
    text = _URL.sub("…", str(error))
    if "timed out" in text.lower():
        return f"timeout: no answer within {timeout:g} s"
    if "connect" in text.lower():
        errno = _ERRNO.search(text)
        return f"connection failed: {errno.group(0).strip() if errno else text}"
    return f"no usable answer: {text}"


def template_code(config: SmsConfig, msg: Outgoing) -> str:
    """The approved template code for this message; none configured is a permanent failure."""
    code = config.template_codes.get(msg.template_key, "").strip()
    if not code:
        raise GatewayError(f"no template code for {msg.template_key!r} in SMS_TEMPLATE_CODES",
                           permanent=True)
    return code


def split_endpoint(endpoint: str, default_host: str) -> tuple[str, str]:
    """'http://127.0.0.1:8080' → ('http', '127.0.0.1:8080'); 'host' → ('https', 'host').

    Plain HTTP only to this machine (a stand-in gateway): messages hold phone numbers and links."""
    endpoint = endpoint.strip().rstrip("/")
    if not endpoint:
        return "https", default_host
    if "://" not in endpoint:
        return "https", endpoint
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"SMS_ENDPOINT {endpoint!r}: expected host, https://host or http://127.0.0.1:port")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(f"SMS_ENDPOINT {endpoint!r}: plain http only to this machine; use https")
    return parts.scheme, parts.netloc


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def quiet_sdk_logs() -> None:
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def _require(config: SmsConfig, *names: str) -> None:
    missing = [f"SMS_{name.upper()}" for name in names if not str(getattr(config, name)).strip()]
    if missing:
        raise ValueError(f"SMS_BACKEND={config.backend} needs {', '.join(missing)}")


def get_backend(config: SmsConfig) -> Backend:
    """The backend SMS_BACKEND names, checked for what it cannot work without."""
    if config.backend == "console":
        from .console import ConsoleBackend

        return ConsoleBackend()
    if config.backend == "aliyun":
        _require(config, "access_key_id", "access_key_secret", "signature")
        from .aliyun import AliyunBackend

        return AliyunBackend(config)
    if config.backend == "tencent":
        _require(config, "access_key_id", "access_key_secret", "app_id", "signature")
        from .tencent import TencentBackend

        return TencentBackend(config)
    raise ValueError(f"unknown SMS_BACKEND {config.backend!r}; known: console, aliyun, tencent")
