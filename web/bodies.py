"""Request bodies: what a body's Content-Type says, read by one parser for every valid form of
the header, and a multipart body's CSRF token found as the body streams past, without keeping
more of it than the token.

Both BodyGuard (web/security.py) and the CSRF check (web/csrf.py) use these; so does Starlette's
own form parser (python-multipart's), and BodyGuard hands it the header in one canonical form.
"""
from __future__ import annotations

import re

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
TOKEN_FIELD = b"csrftoken"
MAX_TOKEN_BYTES = 256  # a token is about 90 characters; a longer field is not one of ours
MAX_PART_HEADER_BYTES = 8 * 1024  # a browser writes under 300 bytes of headers for a part
# RFC 2046 5.1.1: 1 to 70 of these characters, not ending in a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


class BodyRefused(HTTPException):
    """A body refused while a handler reads it (raised from `receive`). Starlette answers it as
    any HTTPException: errors.http_error draws the page in the user's language."""

    status = 400
    kind = "bad_request"  # the error page's (templates/pages/error.html)

    def __init__(self, why: str = ""):
        super().__init__(status_code=self.status, detail=why or None)


class BadBody(BodyRefused):
    status = 400
    kind = "bad_request"


class BodyTooLarge(BodyRefused):
    status = 413
    kind = "too_large"


class CsrfRefused(BodyRefused):
    status = 403
    kind = "expired"


def header_values(scope, name: bytes) -> list[bytes]:
    return [value for key, value in scope.get("headers", []) if key == name]


def content_type(scope) -> tuple[str, dict[str, str]]:
    """The body's media type (lower case) and its parameters (names in lower case), as
    python-multipart reads the header (the parser Starlette's request.form() uses): with a space
    after `;` or none, a quoted value or not, any case, extra parameters, RFC 2231 values.
    ("", {}) when no Content-Type came; ("?", {}) when several did."""
    values = header_values(scope, b"content-type")
    if not values:
        return "", {}
    if len(values) > 1:
        return "?", {}
    kind, params = parse_options_header(values[0].decode("latin-1"))
    return (kind.decode("latin-1").strip().lower(),
            {k.decode("latin-1"): v.decode("latin-1") for k, v in params.items()})


def good_boundary(params: dict[str, str]) -> str | None:
    """The multipart boundary if it is one RFC 2046 allows (so it can be quoted back), else None."""
    boundary = params.get("boundary", "")
    return boundary if _BOUNDARY.fullmatch(boundary) else None


def set_content_type(scope, value: str) -> None:
    """Replace the request's Content-Type by `value`: what comes after sees one canonical form."""
    scope["headers"] = [(k, v) for k, v in scope.get("headers", []) if k != b"content-type"]
    scope["headers"].append((b"content-type", value.encode("latin-1")))


def replaying(body: bytes, receive):
    """A `receive` that gives the app a body already read, whole, once; then the real one (a
    disconnect, as the server tells it)."""
    replayed = False

    async def replay():
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class TokenReader:
    """Feeds a multipart body, a chunk at a time, to python-multipart's parser and keeps only the
    `csrftoken` field's value (at most MAX_TOKEN_BYTES) and the part headers of the part being
    read (at most MAX_PART_HEADER_BYTES).

    After each `feed`: `token` is the first csrftoken field once its part has ended (None
    before), `file_first` is True when a file part began before it. A malformed body raises
    BadBody."""

    def __init__(self, boundary: str):
        self.token: bytes | None = None
        self.file_first = False
        self._reset_part()
        self._parser = MultipartParser(boundary.encode("latin-1"), {
            "on_part_begin": self._reset_part,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        })

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except BodyRefused:
            raise
        except Exception as error:  # noqa: BLE001 - any complaint of the parser: a bad body
            raise BadBody("malformed multipart body") from error

    # python-multipart's callbacks

    def _reset_part(self) -> None:
        self._name = b""
        self._value = b""
        self._headers = 0
        self._disposition = b""
        self._in_token = False
        self._data = bytearray()

    def _count(self, size: int) -> None:
        self._headers += size
        if self._headers > MAX_PART_HEADER_BYTES:
            raise BadBody("part headers too long")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._name.strip().lower() == b"content-disposition":
            self._disposition = self._value
        self._name = self._value = b""

    def _headers_finished(self) -> None:
        try:
            _, options = parse_options_header(self._disposition.decode("latin-1"))
        except Exception as error:  # noqa: BLE001
            raise BadBody("unreadable Content-Disposition") from error
        if b"filename" in options:
            if self.token is None:
                self.file_first = True
        elif options.get(b"name") == TOKEN_FIELD and self.token is None:
            self._in_token = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_token:
            self._data += data[start:end]
            if len(self._data) > MAX_TOKEN_BYTES:
                self._in_token = False
                self.token = b""  # too long to be ours: a wrong token

    def _part_end(self) -> None:
        if self._in_token:
            self.token = bytes(self._data)
        self._in_token = False
