"""The second-dose guide (/guide): what it says comes from the rules the booking follows, it is
small, readable without JavaScript, in both languages, and linked from where residents are."""
from __future__ import annotations

import datetime as dt
import gzip
import re

import httpx
import pytest

from models.people.links import issue_link
from models.rules import guide as guide_facts
from models.rules.eligibility import needs_companion
from models.rules.interval import IntervalRule, RuleBook
from models.rules.tianhe import SUBDISTRICTS
from tests.conftest import NOW, TEST_SECRET
from tests.factories import book_for, make_resident, make_site, make_slot
from tests.pages import get_page, post_form, text
from tests.realserver import Server, seed

HTML_BUDGET = 8 * 1024


async def _app_client(settings, clock):
    from web.app import create_app

    app = create_app(settings, manage_db=False, clock=clock)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_the_guide_says_who_when_where_how_and_what_to_bring(client):
    await make_site("TH01", "五山街", name="五山街社区卫生服务中心", address="天河区五山路71号")
    await make_site("TH03", "龙洞街", name="龙洞街社区卫生服务中心", address="天河区龙洞北路2号")
    await make_site("TH09", "石牌街", name="已关闭的接种点", address="天河区石牌路1号", active=False)
    page = await get_page(client, "/guide")
    words = text(page)
    assert page.h1.get_text() == "新冠疫苗第二剂接种指引"
    # who, and from when to when
    assert "在天河区接种了第一剂新冠疫苗" in words
    assert "第一剂后满21天可以接种第二剂，请在第56天内尽早完成" in words
    assert "第一剂后第14天起可以预约" in words
    # the open sites only, by sub-district in the district's order
    assert [h.get_text() for h in page.find_all("h3")] == ["五山街", "龙洞街"]
    assert "天河区五山路71号" in words and "龙洞街社区卫生服务中心" in words
    assert "已关闭的接种点" not in words
    # every channel of the notice
    for channel in ("政务短信", "没有链接？用手机号登录预约", "关注“广州天河发布”公众号，回复“疫苗”",
                    "拨打12345", "“广州健康通”微信小程序", "家庭医生、社区卫生服务中心",
                    "街道、居委会团体预约"):
        assert channel in words, channel
    assert page.find("a", href="/entry") and page.find("a", href="/find")
    # the day itself
    for thing in ("身份证", "全程佩戴口罩", "健康码", "测量体温", "一米线", "70岁及以上的市民，请由家属陪同"):
        assert thing in words, thing
    assert "不预约不接种，现场不派号" in words


def test_the_guides_numbers_are_the_rules_numbers():
    """A second dose booked by the guide's words is one the rules allow, and the other way round."""
    rules = RuleBook(IntervalRule(28, 42), {"科兴": IntervalRule(21, 56), "北京生物": IntervalRule(28, 42)},
                     lead_days=5)
    facts = guide_facts.facts(rules)
    first = dt.date(2021, 6, 1)
    window = rules.window(first)
    assert first + dt.timedelta(days=facts.min_days) == window.earliest
    assert first + dt.timedelta(days=facts.max_days) == window.due_by
    assert first + dt.timedelta(days=facts.opens_on_day) == window.opens_on
    assert facts.others == (("科兴", IntervalRule(21, 56)),)  # only the product that differs
    born = dt.date(1950, 3, 1)
    older = born.replace(year=born.year + facts.companion_age)
    assert needs_companion(born, older)
    assert not needs_companion(born, older - dt.timedelta(days=1))


async def test_changing_a_rule_changes_the_guide(db, settings, clock, tmp_path):
    rules_file = tmp_path / "vaccines.toml"
    rules_file.write_text('[default]\nmin_days = 28\nmax_days = 42\n\n'
                          '[products."智飞"]\nmin_days = 30\nmax_days = 90\n', encoding="utf-8")
    changed = settings.with_(vaccine_rules_file=str(rules_file), booking_lead_days=3)
    async with await _app_client(changed, clock) as other:
        words = text(await get_page(other, "/guide"))
        start = text(await get_page(other, "/"))
    assert "已满28天仍未接种第二剂" in start and "第一剂后42天内完成" in start  # the start page too
    assert "满21天" not in start and "56天" not in start
    assert "第一剂后满28天可以接种第二剂，请在第42天内尽早完成；超过42天仍可接种" in words
    assert "第一剂后第25天起可以预约（可约第28天及以后的日期）" in words
    assert "智飞：第一剂后满30天，90天内完成" in words
    assert "满21天" not in words and "56天" not in words


async def test_the_guide_is_small_even_with_three_sites_in_every_subdistrict(client):
    for n, subdistrict in enumerate(SUBDISTRICTS):
        for k in range(3):
            await make_site(f"S{n:02d}{k}", subdistrict, name=f"{subdistrict}第{k + 1}社区卫生服务中心",
                            address=f"天河区{subdistrict[:-1]}路{100 + n * 3 + k}号")
    for lang in ("zh", "en"):
        client.cookies.set("lang", lang)
        response = await client.get("/guide", headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        size = response.num_bytes_downloaded
        print(f"\n/guide in {lang}: {size} bytes gzipped")
        assert size <= HTML_BUDGET, f"/guide in {lang}: {size} bytes gzipped"
        assert len(gzip.compress(response.content)) <= HTML_BUDGET
        assert response.text.count("社区卫生服务中心</li>") + response.text.count("社区卫生服务中心<br>") == 63


async def test_the_guide_needs_no_javascript(client):
    await make_site("TH01")
    response = await client.get("/guide")
    main = response.text.split('<main id="main">', 1)[1].split("</main>", 1)[0]
    assert "<script" not in main and not re.search(r"\son[a-z]+=", main)
    page = await get_page(client, "/guide")
    assert not page.find("main").find_all(["form", "details", "button"])  # nothing to open or press


async def test_the_guide_in_large_text(client):
    client.cookies.set("text", "large")
    page = await get_page(client, "/guide")
    assert "large" in page.body["class"]


async def test_the_guide_in_english(client):
    await make_site("TH01")
    client.cookies.set("lang", "en")
    page = await get_page(client, "/guide")
    words = text(page)
    assert page.html["lang"] == "en"
    assert not re.search(r"[\u4e00-\u9fff]", page.h1.get_text()), page.h1.get_text()
    assert "21 days" in words and "56 days" in words and "12345" in words and "70 or older" in words
    assert [h.get_text() for h in page.find_all("h2")][:3] == ["Who can book", "When", "How to book"]


async def test_the_start_page_and_the_phone_entry_link_to_the_guide(client):
    for address in ("/", "/entry"):
        page = await get_page(client, address)
        assert page.find("a", href="/guide"), address


async def test_the_confirmation_links_to_the_guide(client, district):
    site = await make_site("TH01")
    slot = await make_slot(site, NOW.date() + dt.timedelta(days=1))
    resident, number = await make_resident(site, first_dose=NOW.date() - dt.timedelta(days=30))
    await book_for(district, resident, slot)
    token = await issue_link(resident, now=NOW)
    assert (await client.get(f"/b/{token}")).status_code == 303
    page = await get_page(client, "/booking")
    await post_form(client, "/booking/verify", page, {"id_number": number})
    booking = await get_page(client, "/booking")
    assert booking.find("p", class_="code"), "not the booking page"
    assert booking.find("a", href="/guide")


# In Chromium at 360 px, JavaScript off, as a cheap phone shows it (the real server, its own data).

@pytest.fixture(scope="module")
def served_guide(tmp_path_factory):
    url = f"sqlite://{tmp_path_factory.mktemp('guide')}/guide.sqlite3"

    async def build():
        for n, subdistrict in enumerate(SUBDISTRICTS[:6]):
            await make_site(f"G{n:02d}", subdistrict, name=f"{subdistrict}社区卫生服务中心",
                            address=f"天河区{subdistrict[:-1]}路{n + 1}号")

    seed(url, build)
    server = Server(url, TEST_SECRET)
    yield server.base_url
    server.stop()


@pytest.mark.browser
@pytest.mark.parametrize("lang,size", [("zh", "normal"), ("zh", "large"), ("en", "normal"), ("en", "large")])
def test_the_guide_on_a_phone_without_javascript(served_guide, browser, lang, size):
    from tests.test_screens import SMALL_TARGETS, fits

    context = browser.new_context(viewport={"width": 360, "height": 640}, java_script_enabled=False,
                                  locale="zh-CN")
    context.add_cookies([{"name": "lang", "value": lang, "url": served_guide},
                         {"name": "text", "value": size, "url": served_guide}])
    page = context.new_page()
    response = page.goto(served_guide + "/guide")
    assert response.status == 200
    assert fits(page), "the guide scrolls sideways at 360 px"
    assert page.evaluate(SMALL_TARGETS) == [], "tap targets under 44 px"
    assert page.locator("main h3").count() == 6  # every sub-district with a site
    page.locator("main a[href='/entry']").click()  # on to the phone entry, no script needed
    assert page.url == served_guide + "/entry"
    context.close()
