"""Random tokens for links and sessions: made here, and kept only as their SHA-256."""
from __future__ import annotations

import hashlib
import secrets


def new_link_token() -> str:
    """128 random bits, URL-safe: 22 characters."""
    return secrets.token_urlsafe(16)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
