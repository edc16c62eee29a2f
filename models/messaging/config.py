"""How SMS leave the service: the gateway, its credentials and templates, and the limits.

Built once from Settings (web/settings.py: sms_config) and handed to the sender and the gateways;
nothing here reads the environment.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SmsConfig:
    backend: str = "console"  # console | aliyun | tencent
    signature: str = "天河区卫健局"  # the approved signature (签名), without 【】
    # Approved template codes, one per template and language: {"confirm": "SMS_123", "confirm.en": …}
    template_codes: dict[str, str] = field(default_factory=dict)
    endpoint: str = ""  # the gateway's host (or http://host:port); empty: the vendor's default
    access_key_id: str = field(default="", repr=False)
    access_key_secret: str = field(default="", repr=False)
    app_id: str = ""  # Tencent: SmsSdkAppId
    region: str = "ap-guangzhou"  # Tencent: the API region
    timeout_seconds: float = 10.0  # one gateway call
    per_phone_per_hour: int = 10  # messages to one number in any hour; more wait, never dropped
    rate_per_second: int = 50  # what the gateway allows this account, all senders together
    max_attempts: int = 10  # then failed with the gateway's reason (admins can resend)


def parse_template_codes(text: str) -> dict[str, str]:
    """'confirm=SMS_1,confirm.en=SMS_2' → {'confirm': 'SMS_1', 'confirm.en': 'SMS_2'}."""
    codes = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, code = item.partition("=")
        if not sep or not key.strip() or not code.strip():
            raise ValueError(f"SMS_TEMPLATE_CODES: {item.strip()!r} is not template=CODE")
        codes[key.strip()] = code.strip()
    return codes
