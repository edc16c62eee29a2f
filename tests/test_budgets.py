"""Page weight budgets on a cheap phone: gzip sizes of every resident page and of our static files."""
from __future__ import annotations

import datetime as dt
import gzip
import re

from models.people.links import issue_link
from tests.conftest import TODAY
from tests.factories import make_resident, make_site, make_slot
from tests.pages import csrf, parse

HTML_BUDGET = 8 * 1024
CSS_BUDGET = 6 * 1024
OWN_JS_BUDGET = 1024
JOURNEY_BUDGET = 50 * 1024
ASSET = re.compile(r'(?:href|src)="(/static/[^"]+)"')


def wire_size(response) -> int:
    """Bytes as sent: the body must come gzip-compressed."""
    assert response.headers.get("content-encoding") == "gzip", response.url
    assert response.num_bytes_downloaded == int(response.headers["content-length"])
    return response.num_bytes_downloaded


async def test_every_resident_page_and_the_whole_journey_stay_small(client, clock):
    sites = [await make_site(f"S{i:02d}", sub) for i, sub in
             enumerate(["五山街", "五山街", "石牌街", "龙洞街", "天河南街", "车陂街"], 1)]
    for site in sites:
        for offset in range(1, 15):
            for start, end in (("08:30", "09:30"), ("09:30", "10:30"), ("14:00", "15:00")):
                await make_slot(site, TODAY + dt.timedelta(days=offset), start, end, capacity=20)
    resident, number = await make_resident(sites[0], first_dose=TODAY - dt.timedelta(days=26),
                                           name="欧阳小明", born=dt.date(1948, 1, 1))
    token = await issue_link(resident, now=clock.now())
    headers = {"Accept-Encoding": "gzip"}
    sizes: dict[str, int] = {}

    async def get(name, url):
        response = await client.get(url, headers=headers)
        if response.status_code == 200:
            sizes[name] = wire_size(response)
        return response

    async def post(url, page, data):
        response = await client.post(url, data={"csrftoken": csrf(page), **data}, headers=headers)
        assert response.status_code in (303, 422), (url, response.status_code)
        return response

    await get("start", "/")
    await client.get(f"/b/{token}", headers=headers)
    verify = parse(await get("verify", "/booking"))
    wrong = await post("/booking/verify", verify, {"id_number": "11010519491231002X"})
    sizes["verify with error"] = wire_size(wrong)
    await post("/booking/verify", verify, {"id_number": number})
    site_page = parse(await get("site", "/booking/site"))
    assert len(site_page.find_all(["input", "button"], attrs={"name": "site"})) == 6  # keep + 5 others
    await post("/booking/site", site_page, {"site": sites[0].id})
    slot_page = parse(await get("slot", "/booking/slot"))
    first_slot = slot_page.find("input", attrs={"name": "slot"})["value"]
    await post("/booking/slot", slot_page, {"slot": first_slot})
    check = parse(await get("check", "/booking/check"))
    await post("/booking/confirm", check, {"key": check.find("input", attrs={"name": "key"})["value"],
                                           "slot": first_slot})
    done = await get("confirmation", "/booking/done")
    await get("booking", "/booking")
    await get("cancel", "/booking/cancel")

    over = {name: size for name, size in sizes.items() if size > HTML_BUDGET}
    assert not over, f"pages over {HTML_BUDGET} bytes gzipped: {over}"

    assets = sorted(set(ASSET.findall(done.text)))
    asset_sizes = {}
    for url in assets:
        response = await client.get(url, headers=headers)
        assert "max-age=31536000" in response.headers["cache-control"], url
        asset_sizes[url.split("?")[0]] = wire_size(response)
    assert asset_sizes["/static/app.css"] <= CSS_BUDGET
    assert asset_sizes["/static/app.js"] <= OWN_JS_BUDGET
    assert [u for u in asset_sizes if "htmx" in u] == ["/static/htmx-1.9.12.min.js"]
    journey = sum(sizes.values()) + sum(asset_sizes.values())
    print(f"\nresident pages, bytes gzipped: {sizes}\nstatic: {asset_sizes}\njourney total: {journey}")
    assert journey <= JOURNEY_BUDGET


async def test_pages_name_no_other_origin_and_no_web_font(client):
    page = await client.get("/")
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page.text)
    css = (await client.get(ASSET.findall(page.text)[0])).text
    assert "@font-face" not in css and "url(" not in css


def test_our_javascript_is_small_and_old_browser_safe():
    from web.templating import STATIC_DIR

    source = (STATIC_DIR / "app.js").read_text()
    assert len(gzip.compress(source.encode())) <= OWN_JS_BUDGET
    for modern in ("=>", "const ", "let ", "`", "?.", "async ", "class "):
        assert modern not in source, f"{modern!r} would break an old WebView"
