"""Signed cookies that survive a key rotation (SECRET_KEY_OLD, web/settings.py: signing_keys).

itsdangerous takes a list of keys, oldest first: it signs with the last and accepts a signature
by any. Starlette's SessionMiddleware takes one key (it calls str() on it); this one takes the
list, so a resident's or agent's session signed before the rotation still opens after it.

Starlette's own __call__, less work per request (issue 25, bench/stack.py): a request without
the session cookie (a first visit, /healthz, /static) parses no cookies; a cookie whose
signature was found good before (a resident's next page) is not verified again, only its age
checked as itsdangerous does. The session, the cookie sent back and when: Starlette's.
"""
from __future__ import annotations

import json
import time
from base64 import b64decode, b64encode

import itsdangerous
from itsdangerous import BadSignature
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import Session, SessionMiddleware
from starlette.requests import cookie_parser

VERIFIED_KEPT = 10_000  # signed cookies found good: their payload and timestamp, per process


class RotatingSessionMiddleware(SessionMiddleware):
    def __init__(self, app, *, secret_keys: list[str], **options):
        super().__init__(app, secret_key=secret_keys[-1], **options)
        self.signer = itsdangerous.TimestampSigner(list(secret_keys))
        self._name = self.session_cookie.encode("latin-1")
        self._verified: dict[bytes, tuple[bytes, int]] = {}

    def _open(self, signed: bytes) -> bytes:
        """self.signer.unsign(signed, max_age=self.max_age), a signature checked once a process."""
        known = self._verified.get(signed)
        if known is None:
            payload, stamp = self.signer.unsign(signed, max_age=self.max_age, return_timestamp=True)
            known = (payload, int(stamp.timestamp()))
            if len(self._verified) >= VERIFIED_KEPT:
                self._verified.clear()
            self._verified[signed] = known
        elif self.max_age is not None:  # TimestampSigner.unsign's age check
            age = int(time.time()) - known[1]
            if age > self.max_age or age < 0:
                raise BadSignature("expired")
        return known[0]

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        header = None
        for key, value in scope["headers"]:  # the first Cookie header, as Starlette reads it
            if key == b"cookie":
                header = value
                break
        initial_session_was_empty = True
        if header is not None and self._name in header:  # else no cookie can be ours
            cookies = cookie_parser(header.decode("latin-1"))
            if self.session_cookie in cookies:
                try:
                    data = self._open(cookies[self.session_cookie].encode("utf-8"))
                    scope["session"] = Session(json.loads(b64decode(data)))
                    initial_session_was_empty = False
                except BadSignature:
                    scope["session"] = Session()
            else:
                scope["session"] = Session()
        else:
            scope["session"] = Session()

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                session = scope["session"]
                message.setdefault("headers", [])
                if session.accessed:
                    headers = MutableHeaders(scope=message)
                    headers.add_vary_header("Cookie")
                    if session.modified and session:  # session data to persist
                        data = self.signer.sign(b64encode(json.dumps(session).encode("utf-8")))
                        max_age = f"Max-Age={self.max_age}; " if self.max_age is not None else ""
                        headers.append("Set-Cookie", f"{self.session_cookie}={data.decode('utf-8')}; "
                                       f"path={self.path}; {max_age}{self.security_flags}")
                    elif session.modified and not initial_session_was_empty:  # cleared
                        headers.append("Set-Cookie", f"{self.session_cookie}=null; path={self.path}; "
                                       f"expires=Thu, 01 Jan 1970 00:00:00 GMT; {self.security_flags}")
            await send(message)

        await self.app(scope, receive, send_wrapper)
