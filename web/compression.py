"""Gzip for responses: Starlette's GZipMiddleware with less work per request (issue 25).

Starlette's builds a Headers of the request and normalises its list of excluded content types
again for each request; here the Accept-Encoding header is found in the raw headers and the
list is normalised once. What is compressed, how (the level: web/app.py) and the headers are
Starlette's own. (A compressor sized to the page, a smaller window and hash table for a body of
a few KB, was measured and did not win: bench/RESULTS.md, issue 25.)
"""
from __future__ import annotations

from starlette.middleware.gzip import (DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware, GZipResponder,
                                       IdentityResponder, _normalize_content_types)


def _lean_init(self, app, minimum_size: int, exclude_content_types: tuple[str, ...]) -> None:
    """IdentityResponder.__init__, the excluded types given normalised already (GZip.__init__)."""
    self.app = app
    self.minimum_size = minimum_size
    self.exclude_content_types = exclude_content_types
    self.send = None
    self.initial_message = {}
    self.started = False
    self.content_encoding_set = False
    self.content_type_is_excluded = False
    self.partial_response = False


class LeanIdentityResponder(IdentityResponder):
    def __init__(self, app, minimum_size: int, *, exclude_content_types: tuple[str, ...]):
        _lean_init(self, app, minimum_size, exclude_content_types)


class LeanGZipResponder(GZipResponder):
    def __init__(self, app, minimum_size: int, compresslevel: int, *, thread_minimum_size: int,
                 exclude_content_types: tuple[str, ...]):
        _lean_init(self, app, minimum_size, exclude_content_types)
        self.compresslevel = compresslevel
        self.thread_minimum_size = thread_minimum_size
        self._compressor = None


class GZip(GZipMiddleware):
    def __init__(self, app, minimum_size: int = 500, compresslevel: int = 9,
                 thread_minimum_size: int = 128 * 1024, *,
                 exclude_content_types: tuple[str, ...] = DEFAULT_EXCLUDED_CONTENT_TYPES):
        super().__init__(app, minimum_size, compresslevel, thread_minimum_size,
                         exclude_content_types=exclude_content_types)
        self.exclude_content_types = _normalize_content_types(exclude_content_types)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        accept = b""
        for key, value in scope["headers"]:  # the first, as Starlette's Headers.get
            if key == b"accept-encoding":
                accept = value
                break
        if b"gzip" in accept:
            responder = LeanGZipResponder(self.app, self.minimum_size, self.compresslevel,
                                          thread_minimum_size=self.thread_minimum_size,
                                          exclude_content_types=self.exclude_content_types)
        else:
            responder = LeanIdentityResponder(self.app, self.minimum_size,
                                              exclude_content_types=self.exclude_content_types)
        await responder(scope, receive, send)
