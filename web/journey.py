"""The resident's journey as kept in the signed session cookie: one typed object, not loose keys."""
from __future__ import annotations

import datetime as dt
import secrets

from models.channel import Channel
from .http import parse_day, parse_id


PHONE_KEYS = ("phone", "phone_until")  # a phone proved by its SMS code outlives one person's journey
CODE_KEYS = ("code_for", "code_masked")  # where the log-in code went


class Journey:
    """What a resident has done so far in this browser: which link, verified or not, the choices;
    and, for the public way in, the phone a code was sent to (sealed) and the phone proved.

    Reads and writes `request.session` (signed by SessionMiddleware), and nothing else.
    """

    def __init__(self, session: dict):
        self._s = session

    @property
    def link_id(self) -> int | None:
        return parse_id(self._s.get("link"))

    @property
    def verified(self) -> bool:
        """The ID number was checked for this very link (a new link starts unverified)."""
        return self.link_id is not None and self._s.get("verified") == self.link_id

    @property
    def site_id(self) -> int | None:
        return parse_id(self._s.get("site"))

    @property
    def day(self) -> dt.date | None:
        return parse_day(self._s.get("day"))

    @property
    def slot_id(self) -> int | None:
        return parse_id(self._s.get("slot"))

    def start(self, link_id: int) -> None:
        """A personal link was opened (or reached by phone code): forget everything else but a
        proved phone, so the next person on that phone can be booked for too."""
        kept = {k: self._s[k] for k in PHONE_KEYS if k in self._s}
        self._s.clear()
        self._s.update(kept)
        self._s["link"] = link_id

    def end(self) -> None:
        self._s.clear()

    @property
    def sealed_phone(self) -> str:
        """The number the last log-in code went to, encrypted (models/channels/entry.py)."""
        return str(self._s.get("code_for") or "")

    @property
    def code_masked(self) -> str:
        return str(self._s.get("code_masked") or "")

    def await_code(self, sealed_phone: str, masked_phone: str) -> None:
        self._s["code_for"] = sealed_phone
        self._s["code_masked"] = masked_phone

    @property
    def phone_login(self) -> int | None:
        """The row id of the log-in code that proved this browser holds the phone."""
        return parse_id(self._s.get("phone"))

    @property
    def phone_until(self) -> dt.datetime | None:
        try:
            until = dt.datetime.fromisoformat(str(self._s.get("phone_until") or ""))
        except ValueError:
            return None
        return until if until.tzinfo is not None else None

    def phone_proved(self, login_id: int, until: dt.datetime) -> None:
        for name in CODE_KEYS:
            self._s.pop(name, None)
        self._s["phone"] = login_id
        self._s["phone_until"] = until.isoformat()

    def on_phone(self, now: dt.datetime) -> bool:
        """Whether a proved phone is still in force, to offer "book for someone else on this
        phone" (the server checks again: models/channels/entry.py: phone_session())."""
        until = self.phone_until
        return self.phone_login is not None and until is not None and until > now

    def leave_phone(self) -> None:
        for name in (*PHONE_KEYS, *CODE_KEYS):
            self._s.pop(name, None)

    def mark_verified(self) -> None:
        self._s["verified"] = self.link_id

    def handed_off(self) -> None:
        """This journey came from the city platform's one-time address (web/routes/api.py)."""
        self._s["via"] = Channel.HANDOFF.value

    @property
    def channel(self) -> Channel:
        """The channel a booking made in this journey is recorded with: "handoff" from the city
        platform, "phone" after a phone code, else "sms" (the personal link)."""
        if self._s.get("via") == Channel.HANDOFF:
            return Channel.HANDOFF
        return Channel.PHONE if self.phone_login is not None else Channel.SMS

    def choose_site(self, site_id: int) -> None:
        self._s["site"] = site_id
        self._s.pop("day", None)
        self._s.pop("slot", None)

    def look_at_day(self, day: dt.date) -> None:
        self._s["day"] = day.isoformat()

    def choose_slot(self, slot_id: int) -> None:
        """A window was held: a new check page, so a new request key."""
        self._s["slot"] = slot_id
        self._s.pop("key", None)

    def lose_slot(self, why: str) -> None:
        """The chosen window is gone: back to choosing, with a note saying why."""
        self._s.pop("slot", None)
        self._s["flash"] = why

    def request_key(self) -> str:
        """One key per check page: a double tap or a resubmit sends it again, one booking results."""
        return self._s.setdefault("key", secrets.token_urlsafe(16))

    def pop_flash(self) -> str:
        return str(self._s.pop("flash", "") or "")

    def checking(self, current_slot_id: int | None) -> None:
        """A check page was shown: the window the person's booking is in now (None for a new
        booking). Kept before the confirm is sent, so a double tap's second answer still knows
        the confirmation is a move, and from where."""
        if current_slot_id is None:
            self._s.pop("moved_from", None)
        else:
            self._s["moved_from"] = current_slot_id

    @property
    def moved_from(self) -> int | None:
        """The window the booking was in before the confirm of the last check page."""
        return parse_id(self._s.get("moved_from"))

    @property
    def offer_id(self) -> int | None:
        """The waiting-list offer whose link (/o/…) was opened in this browser (web/routes/waitlist.py)."""
        return parse_id(self._s.get("offer"))

    def open_offer(self, offer_id: int) -> None:
        self._s["offer"] = offer_id
        self._s.pop("offer_taken", None)

    def take_offer(self) -> None:
        """The offer was confirmed in this browser: its confirmation may be shown here."""
        self._s["offer_taken"] = self.offer_id

    @property
    def took_offer(self) -> bool:
        return self.offer_id is not None and self._s.get("offer_taken") == self.offer_id

    def forget_choices(self) -> None:
        for name in ("slot", "key", "site", "day"):
            self._s.pop(name, None)
