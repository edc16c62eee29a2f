"""Booking codes and link tokens."""
from __future__ import annotations

import hashlib
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


def new_link_token() -> str:
    """128 random bits, URL-safe: 22 characters."""
    return secrets.token_urlsafe(16)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
