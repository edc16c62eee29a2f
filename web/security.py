"""Security plumbing: response headers, CSRF, rate limits, and an access log that hides tokens."""
from __future__ import annotations

import logging
import re
import time

from asgi_csrf import asgi_csrf
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.datastructures import MutableHeaders

from . import i18n

access_log = logging.getLogger("booking.access")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_TOKEN_IN_PATH = re.compile(r"^/b/[^/]+")


def redact_path(path: str) -> str:
    """Hide the token of a personal link: /b/abc… -> /b/…"""
    return _TOKEN_IN_PATH.sub("/b/…", path)


class SecurityHeaders:
    """Adds no-referrer, no-store on pages, CSP and friends to every response; logs requests."""

    def __init__(self, app, *, https: bool = False):
        self.app = app
        self.https = https

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.monotonic()
        is_static = scope["path"].startswith("/static/")
        status = 0

        async def send_with_headers(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers.setdefault("Content-Security-Policy", CSP)
                if self.https:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
                if not is_static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            access_log.info(
                "%s %s %s %.0fms", scope["method"], redact_path(scope["path"]), status,
                (time.monotonic() - started) * 1000,
            )


_CSRF_FAILED = {
    "zh": ("页面已过期", "为了您的安全，这个页面已失效。请返回上一页，刷新后重新提交。"),
    "en": ("This page has expired", "For your safety this page is no longer valid. "
           "Go back, reload the page and submit it again."),
}


async def send_csrf_failed(scope, send, message_id=None):
    """A plain-words page in the user's language when a form's CSRF token does not match."""
    cookies = {}
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, val = part.strip().partition("=")
                cookies[name] = val
    lang = i18n.choose_language(cookies.get(i18n.LANG_COOKIE))
    title, text = _CSRF_FAILED[lang]
    body = (
        f'<!doctype html><html lang="{"zh-Hans" if lang == "zh" else "en"}"><head>'
        f'<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head><body><main><h1>{title}</h1><p>{text}</p>"
        f'<p><a href="/booking">{"返回预约" if lang == "zh" else "Back to booking"}</a></p>'
        f"</main></body></html>"
    ).encode()
    await send({"type": "http.response.start", "status": 403, "headers": [
        (b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


def with_csrf(app, *, secret: str, post_paths: set[str], https: bool):
    """Wrap the app in asgi-csrf; every POST path is protected even when no cookie came with it."""
    return asgi_csrf(
        app, signing_secret=secret, always_protect=post_paths, cookie_secure=https,
        cookie_samesite="Lax", send_csrf_failed=send_csrf_failed,
    )


class RateLimits:
    """Moving-window limits keyed by client address: in Redis when a URL is given, so every worker
    and host counts together; in this process's memory otherwise."""

    def __init__(self, *, open_link: str, verify: str, staff_login: str, redis_url: str = "",
                 prefix: str = "booking"):
        storage = storage_from_string(redis_url, key_prefix=prefix) if redis_url else \
            storage_from_string("memory://")
        self.limiter = MovingWindowRateLimiter(storage)
        self.rules = {"open_link": parse(open_link), "verify": parse(verify),
                      "staff_login": parse(staff_login)}

    def hit(self, name: str, key: str) -> bool:
        """Count one attempt; False when the limit is exceeded."""
        return self.limiter.hit(self.rules[name], name, key)
