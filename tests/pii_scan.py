"""Find full resident ID numbers and mobile numbers in text (logs): they must never be there."""
from __future__ import annotations

import re

from stdnum.cn import ric

_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_PHONE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")


def find_personal_numbers(text: str) -> list[str]:
    """Valid ID numbers and mobile numbers written in full in `text`."""
    found = [m for m in _ID.findall(text) if ric.is_valid(m.upper()) or _region_ok(m)]
    found += _PHONE.findall(text)
    return found


def _region_ok(number: str) -> bool:
    try:
        return ric.calc_check_digit(number) == number[-1].upper()
    except Exception:
        return False
