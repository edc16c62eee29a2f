"""The day a day picker opens on, one rule for the resident's picker, the call centre's and a group
list's (models/booking/availability.py: day_to_show), and each of them using it."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from models.booking.availability import DayChoice, day_to_show

ROOT = Path(__file__).resolve().parent.parent
MON, TUE, WED = dt.date(2021, 6, 21), dt.date(2021, 6, 22), dt.date(2021, 6, 23)
DAYS = [DayChoice(MON, 0), DayChoice(TUE, 5), DayChoice(WED, 2)]


def test_the_picker_opens_on_the_day_asked_for_even_when_it_is_full():
    assert day_to_show(DAYS, MON) == MON
    assert day_to_show(DAYS, WED) == WED


def test_a_day_the_site_does_not_have_or_none_asked_opens_on_the_first_day_with_room():
    assert day_to_show(DAYS, dt.date(2021, 6, 30)) == TUE
    assert day_to_show(DAYS, None) == TUE


def test_when_every_day_is_full_no_day_is_shown_except_to_a_group_lists_clerk():
    full = [DayChoice(MON, 0), DayChoice(TUE, 0)]
    assert day_to_show(full, None) is None
    assert day_to_show(full, None, or_first_day=True) == MON
    assert day_to_show(full, TUE, or_first_day=True) == TUE
    assert day_to_show([], None) is None and day_to_show([], MON, or_first_day=True) is None


def test_the_resident_call_centre_and_group_pickers_all_use_the_one_rule():
    for source in ("web/routes/resident.py", "web/routes/callcentre.py", "models/channels/groups/picker.py"):
        text = (ROOT / source).read_text(encoding="utf-8")
        assert "day_to_show(" in text, f"{source} picks its day itself"
        assert "if d.free)" not in text, f"{source} still has its own copy of the rule"
