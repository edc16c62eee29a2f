"""The official account's callback: WeChat's servers call it (GET: the URL check, POST: messages).

Off (404) while WECHAT_TOKEN is unset. A bad or missing signature and a timestamp more than five
minutes off get 403, a message we cannot read 400, always as plain text: WeChat's servers read
these, not people. The reply logic is models/channels/wechat.py.
"""
from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from models.channels import wechat

from ..http import district, url_for

log = logging.getLogger("booking.wechat")

STATUS = {"signature": 403, "stale": 403, "message": 400}
SAYS = {"signature": "bad signature", "stale": "stale timestamp", "message": "bad message"}


def _signed(request: Request) -> wechat.Signed:
    q = request.query_params
    return wechat.Signed(signature=q.get("signature", ""), timestamp=q.get("timestamp", ""),
                         nonce=q.get("nonce", ""), msg_signature=q.get("msg_signature", ""),
                         encrypt_type=q.get("encrypt_type", ""))


def _links(request: Request) -> wechat.Links:
    """Whole addresses (BASE_URL + path): the reply is read inside WeChat, not on this site."""
    base = district(request).base_url.rstrip("/")
    entry, guide = url_for(request, "entry"), url_for(request, "guide")
    return wechat.Links(
        entry=base + entry, guide=base + guide,
        entry_en=base + url_for(request, "set_language", lang="en", next=entry),
        guide_en=base + url_for(request, "set_language", lang="en", next=guide))


async def wechat_callback(request: Request):
    settings = request.app.state.settings
    if not settings.wechat_token:
        raise HTTPException(404)
    account = wechat.account(settings.wechat_token, settings.wechat_app_id,
                             settings.wechat_aes_key)
    now = district(request).clock.now()
    try:
        if request.method == "POST":
            reply = wechat.answer(account, _signed(request), await request.body(), now,
                                  _links(request))
        else:
            reply = wechat.echo(account, _signed(request), request.query_params.get("echostr", ""),
                                now)
    except wechat.Refused as refused:
        # No OpenID, nonce or signature in the log: only what went wrong.
        log.warning("wechat %s refused: %s", request.method, refused.kind)
        return PlainTextResponse(SAYS[refused.kind], status_code=STATUS[refused.kind])
    if reply.startswith("<xml>"):
        return Response(reply, media_type="application/xml; charset=utf-8")
    return PlainTextResponse(reply)
