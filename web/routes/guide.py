"""The second-dose guide (/guide): who may book, when, where, how by each channel, the day itself."""
from __future__ import annotations

from starlette.requests import Request

from models.operations import sites

from ..http import district
from ..templating import render


async def guide_page(request: Request):
    facts = await sites.guide(district(request).rules)
    return render(request, "pages/public/guide.html", {"guide": facts})
