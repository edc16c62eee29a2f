"""Booking codes: short, unambiguous, easy to read out on the phone and type at the door (rule 9)."""
from __future__ import annotations

import secrets

# No look-alikes: 0/O/Q/D, 1/I/L, 2/Z, 5/S, 6/G, 8/B, U/V are left out so a code survives
# being read aloud on the phone and typed at the door.
CODE_ALPHABET = "ACEFHJKMNPRTWXY3479"
CODE_LENGTH = 8


def new_booking_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    """ACEF7HJK -> ACEF-7HJK, easier to read out."""
    return f"{code[:4]}-{code[4:]}"


def normalise_code(text: str) -> str:
    return "".join(ch for ch in (text or "").upper() if ch.isalnum())


def spell_code(code: str) -> list[tuple[str, str]]:
    """ACEF7HJK -> [("A", "letter"), …, ("7", "digit"), …]: each character and how to say it."""
    return [(ch, "digit" if ch.isdigit() else "letter") for ch in code]
