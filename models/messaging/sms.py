"""One SMS as the outbox keeps it: an approved template, its parameters, and the rendered text.

Chinese gateways send only templates approved in advance (a template code plus parameters), so
every message is built as one (models/messaging/wording.py); `body` is the same text rendered
with the signature, for the console backend, for operators and for the length checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Which messages overtake which: a log-in code first, then news about a booking, then the rest.
LOGIN_CODE, BOOKING_NEWS, REMINDER, BATCH = 0, 1, 2, 3
CODE_KIND = "login_code"  # the outbox's kind of a log-in code (its template's name)
PRIORITY = {
    "login_code": LOGIN_CODE,
    "confirm": BOOKING_NEWS, "change": BOOKING_NEWS, "cancel": BOOKING_NEWS,
    "closure_move": BOOKING_NEWS, "closure_cancel": BOOKING_NEWS, "risk_cancel": BOOKING_NEWS,
    "callcentre_confirm": BOOKING_NEWS, "callcentre_change": BOOKING_NEWS,
    "offer": BOOKING_NEWS, "waitlist_off": REMINDER,
    "day_before": REMINDER, "reissue": REMINDER,
    "invite": BATCH, "late_invite": BATCH, "reminder": BATCH, "late_reminder": BATCH,
}


@dataclass(frozen=True)
class Sms:
    template: str  # a key of wording.TEMPLATES; with lang, picks the gateway's template code
    params: dict[str, str] = field(hash=False)
    body: str  # the whole text, signature included, as the resident reads it
    lang: str = "zh"

    @property
    def priority(self) -> int:
        return PRIORITY.get(self.template, REMINDER)

    @property
    def template_key(self) -> str:
        """The key of the gateway template code: 'confirm' in Chinese, 'confirm.en' in English."""
        return self.template if self.lang == "zh" else f"{self.template}.{self.lang}"
