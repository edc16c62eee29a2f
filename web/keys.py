"""Signed cookies that survive a key rotation (SECRET_KEY_OLD, web/settings.py: signing_keys).

itsdangerous takes a list of keys, oldest first: it signs with the last and accepts a signature
by any. Starlette's SessionMiddleware takes one key (it calls str() on it); this one takes the
list, so a resident's or agent's session signed before the rotation still opens after it.
"""
from __future__ import annotations

import itsdangerous
from starlette.middleware.sessions import SessionMiddleware


class RotatingSessionMiddleware(SessionMiddleware):
    def __init__(self, app, *, secret_keys: list[str], **options):
        super().__init__(app, secret_key=secret_keys[-1], **options)
        self.signer = itsdangerous.TimestampSigner(list(secret_keys))
