"""Cross-site request forgery: our own small ASGI middleware, which never holds a large body.

Every request that is not GET, HEAD, OPTIONS or TRACE, on every path but the few that other
servers call with a signature of their own (`skip`: web/app.py SIGNED_BY_CALLER), must pass:

1. the same-origin check: `Sec-Fetch-Site: cross-site` or `same-site` is refused, and so is an
   `Origin` that is neither BASE_URL's nor the request's own host's (`Origin: null` is what
   browsers send for our own form posts, our pages being Referrer-Policy: no-referrer: it is
   left to Sec-Fetch-Site and the token);
2. the double submit: a `csrftoken` cookie signed with SECRET_KEY, and the same value in the
   `X-CSRFToken` header or the `csrftoken` form field. No cookie, no pass; no other way around
   it (an `Authorization` header changes nothing).

The form field is read from the body BodyGuard has already read and bounded (64 KB), urlencoded or
multipart (python-multipart's parser, web/bodies.py). On an upload path (`streamed`) the body is
not read here at all: the handler reads it, after its staff check, and as it does, each chunk
passes through a TokenReader first. A file part that begins before a valid token, a wrong token,
or a body that ends without one raises CsrfRefused from `receive`, so no handler ever gets a
file, or a whole form, without the token, and none has to remember to check it.

A refusal is a 403 page in the user's language with every safety header (web/errors.py).
The cookie and field names, the token's format and `scope["csrftoken"]` (web/templating.py calls
it to put the token in a page) are those of asgi-csrf, which this replaces: a browser's cookie
from before the change still works.
"""
from __future__ import annotations

import secrets
from urllib.parse import parse_qsl, urlsplit

from itsdangerous import BadData, URLSafeSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser

from .bodies import (MULTIPART, URLENCODED, BodyRefused, CsrfRefused, TokenReader, content_type,
                     good_boundary, header_values, replaying)
from .security import MAX_FORM_BYTES

COOKIE = "csrftoken"
FIELD = "csrftoken"
HEADER = b"x-csrftoken"
SCOPE_KEY = "csrftoken"
NAMESPACE = "csrftoken"  # itsdangerous' salt, as asgi-csrf signed it
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FOREIGN_FETCH = frozenset({b"cross-site", b"same-site"})
MAX_COOKIE = 200
MAX_BODY = MAX_FORM_BYTES  # what BodyGuard lets through; checked again here, for this layer alone
_UNREAD = object()  # the cookie not looked at yet
VERIFIED_KEPT = 10_000  # cookie values whose signature was found good, kept per process


def origin_of(url: str) -> str:
    """scheme://host[:port] in lower case, the default port left out, as a browser writes Origin."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not scheme or not host:
        return ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return ""
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class CSRF:
    def __init__(self, app, *, secret: str | list[str], https: bool, refuse, base_url: str = "",
                 skip: frozenset[str] = frozenset(), streamed=()):
        self.app = app
        # A list of keys, oldest first (key rotation): itsdangerous signs with the last, accepts any.
        self.signer = URLSafeSerializer(secret)
        # What self.signer.loads/dumps(…, salt=NAMESPACE) build afresh at each call, built once.
        self._salted = self.signer.make_signer(NAMESPACE)
        # Cookies already found signed by us: a resident's page after page shows the same one,
        # and the keys do not change while the process runs. Emptied when full.
        self._verified: dict[str, None] = {}
        self.https = https
        self.refuse = refuse  # async (scope, send, status, kind) -> None
        self.base_origin = origin_of(base_url) if base_url else ""
        self.skip = frozenset(skip)
        self.streamed = streamed  # paths whose multipart body the handler reads (a container)

    def _cookie_token(self, scope) -> str | None:
        """The request's csrftoken cookie when it is one we signed, else None."""
        header = "; ".join(v.decode("latin-1") for v in header_values(scope, b"cookie"))
        value = cookie_parser(header).get(COOKIE, "") if header else ""
        if not value or len(value) > MAX_COOKIE:
            return None
        if value in self._verified:
            return value
        try:
            self.signer.load_payload(self._salted.unsign(value))  # = self.signer.loads(value, salt=NAMESPACE)
        except BadData:
            return None
        if len(self._verified) >= VERIFIED_KEPT:
            self._verified.clear()
        self._verified[value] = None
        return value

    def _new_token(self) -> str:
        """self.signer.dumps(a random value, salt=NAMESPACE), with the signer built once."""
        payload = self.signer.dump_payload(secrets.token_urlsafe(16))
        return self._salted.sign(payload).decode("utf-8")

    def _same_origin(self, scope) -> bool:
        fetch = header_values(scope, b"sec-fetch-site")
        if any(v.strip().lower() in FOREIGN_FETCH for v in fetch):
            return False
        origins = header_values(scope, b"origin")
        if not origins:
            return True  # an old browser, or not a browser: the token decides
        if len(origins) > 1:
            return False
        if origins[0].strip().lower() == b"null":
            # What a browser sends for every form post from our pages: they carry
            # Referrer-Policy: no-referrer, and the Fetch standard then serialises the Origin of
            # a non-CORS POST as "null". Sec-Fetch-Site (above) still tells a cross-site one; a
            # browser without it is left to the token.
            return True
        origin = origin_of(origins[0].decode("latin-1"))
        if not origin:
            return False
        if origin == self.base_origin:
            return True
        hosts = header_values(scope, b"host")
        scheme = origin.partition("://")[0]
        own = origin_of(f"{scheme}://{hosts[0].decode('latin-1')}") if len(hosts) == 1 else ""
        return scheme in ("http", "https") and origin == own

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # The cookie is read when a page asks for the token, or below for a request that must
        # show it: a GET whose page has no form parses and verifies nothing (issue 25).
        token = _UNREAD
        used = set_cookie = False
        started = False

        def get_token() -> str:
            nonlocal token, used, set_cookie
            used = True
            if token is _UNREAD:
                token = self._cookie_token(scope)
            if token is None:
                token = self._new_token()
                set_cookie = True
            return token

        scope[SCOPE_KEY] = get_token

        async def send_with_cookie(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if used:
                    headers = MutableHeaders(scope=message)
                    headers.add_vary_header("Cookie")
                    if set_cookie:
                        attrs = [f"{COOKIE}={token}", "Path=/", "SameSite=Lax", "HttpOnly"]
                        if self.https:
                            attrs.append("Secure")
                        headers.append("Set-Cookie", "; ".join(attrs))
            await send(message)

        async def refused():
            await self.refuse(scope, send_with_cookie, 403, "expired")

        if scope["method"] in SAFE_METHODS or scope["path"] in self.skip:
            return await self.app(scope, receive, send_with_cookie)
        cookie = token = self._cookie_token(scope)
        if not self._same_origin(scope) or cookie is None:
            return await refused()
        sent = header_values(scope, HEADER)
        if len(sent) == 1 and secrets.compare_digest(sent[0], cookie.encode("latin-1")):
            return await self.app(scope, receive, send_with_cookie)
        expected = cookie.encode("latin-1")
        kind, params = content_type(scope)
        if kind == MULTIPART and scope["path"] in self.streamed:
            boundary = good_boundary(params)
            if boundary is None:
                return await refused()
            checked = _checked_stream(receive, TokenReader(boundary), expected)
            try:
                return await self.app(scope, checked, send_with_cookie)
            except BodyRefused as refusal:  # not answered below (a middleware read the body)
                if started:
                    raise
                return await self.refuse(scope, send_with_cookie, refusal.status, refusal.kind)
        if kind not in (URLENCODED, MULTIPART):
            return await refused()
        body, ended = await _read_small(receive)
        if body is None:
            return  # the client left
        if not ended:
            return await self.refuse(scope, send_with_cookie, 413, "too_large")
        if kind == URLENCODED:
            fields = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            found = next((v.encode("utf-8") for k, v in fields if k == FIELD), None)
        else:
            boundary = good_boundary(params)
            if boundary is None:
                return await self.refuse(scope, send_with_cookie, 400, "bad_request")
            reader = TokenReader(boundary)
            try:
                reader.feed(body)
            except BodyRefused:
                return await self.refuse(scope, send_with_cookie, 400, "bad_request")
            found = reader.token
        if found is None or not secrets.compare_digest(found, expected):
            return await refused()
        return await self.app(scope, replaying(body, receive), send_with_cookie)


async def _read_small(receive) -> tuple[bytes | None, bool]:
    """The whole body if it is within MAX_BODY: (body, True); (what came, False) if longer;
    (None, False) if the client left."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return b"", False
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks), True


def _checked_stream(receive, reader: TokenReader, expected: bytes):
    """`receive` for an upload's handler: every chunk is read for the token before the handler
    gets it; once the token has been found right, the rest passes unread."""
    verified = False

    async def checked():
        nonlocal verified
        message = await receive()
        if verified or message["type"] != "http.request":
            return message
        reader.feed(message.get("body", b""))
        if reader.file_first:
            raise CsrfRefused("a file before the token")
        if reader.token is not None:
            if not secrets.compare_digest(reader.token, expected):
                raise CsrfRefused("wrong token")
            verified = True
        elif not message.get("more_body", False):
            raise CsrfRefused("no token")
        return message

    return checked
