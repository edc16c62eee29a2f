"""The resident's journey as kept in the signed session cookie: one typed object, not loose keys."""
from __future__ import annotations

import datetime as dt
import secrets

from .http import parse_day, parse_id


class Journey:
    """What a resident has done so far in this browser: which link, verified or not, the choices.

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
        """A personal link was opened: forget everything else."""
        self._s.clear()
        self._s["link"] = link_id

    def end(self) -> None:
        self._s.clear()

    def mark_verified(self) -> None:
        self._s["verified"] = self.link_id

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

    def forget_choices(self) -> None:
        for name in ("slot", "key", "site", "day"):
            self._s.pop(name, None)
