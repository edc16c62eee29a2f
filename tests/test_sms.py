"""SMS texts: approved templates with what the resident needs (rules 8 and 9), within their length.

Lengths as mainland gateways count them (models/messaging/wording.py): every character one,
signature included; Chinese within two parts of 67 (134), English within three (201), the log-in
code within one (67) in either language.
"""
from __future__ import annotations

import datetime as dt
import re

import pytest

from models.db.tables import Resident
from models.demo.data import SITES
from models.messaging import wording
from models.messaging.sms import PRIORITY
from models.operations.invitations import SAMPLE_TOKEN, InviteError, check_base_url
from models.people.links import link_url
from models.rules.tianhe import SUBDISTRICTS

LINK = "http://127.0.0.1:8000/b/" + "A" * 22
ENTRY_NOTES = {"zh": ("身份证", "口罩", "健康码", "体温", "一米"),
               "en": ("ID", "mask", "health code", "temp", "1m")}


def person(name: str = "欧阳明", lang: str = "zh", born: dt.date = dt.date(1980, 5, 17)) -> Resident:
    return Resident(name=name, lang=lang, birth_year=born.year)


def visit(**kw) -> wording.Visit:
    values = dict(code="TCJK-JHYT", day=dt.date(2021, 6, 21), start="09:00", end="10:00",
                  site="五山街社区卫生服务中心", address="天河区五山路371号", companion=False)
    return wording.Visit(**{**values, **kw})


def confirmation(**kw) -> str:
    return wording.confirmation(person(), visit(**kw)).body


def test_confirmation_carries_code_day_time_site_address_and_what_to_bring():
    body = confirmation()
    for part in ("TCJK-JHYT", "6月21日", "周一", "09:00-10:00", "五山街社区卫生服务中心", "天河区五山路371号",
                 *ENTRY_NOTES["zh"]):
        assert part in body
    assert body.startswith("【" + wording.SIGNATURE + "】")
    assert "家属陪同" not in body


def test_confirmation_tells_people_of_70_to_come_with_family():
    assert "70岁以上请家属陪同" in confirmation(companion=True)


def test_a_very_long_site_name_is_shortened_not_the_advice():
    body = confirmation(site="天河区某某街道社区卫生服务中心第二临时接种点（体育中心东门旁边的大帐篷）", companion=True)
    assert len(body) <= wording.MAX_CHARS
    assert body.endswith("改约或取消请点短信原链接。") and "家属陪同" in body and "TCJK-JHYT" in body
    assert all(note in body for note in ENTRY_NOTES["zh"])


def test_an_address_that_does_not_fit_gives_way_to_where_to_find_it():
    body = confirmation(address="天河区" + "某" * 40 + "号", companion=True)
    assert "地址见预约页面" in body and len(body) <= wording.MAX_CHARS


def test_invitation_with_link_fits_two_sms_parts():
    body = wording.invitation(person(), dt.date(2021, 7, 31), LINK).body
    assert len(body) <= wording.MAX_CHARS and LINK in body and "第二剂" in body


def test_cancellation_fits_two_parts():
    assert len(wording.cancellation(person("张三明"), "TCJK-JHYT").body) <= wording.MAX_CHARS


def test_late_invitation_does_not_name_a_day_already_gone():
    sms = wording.invitation(person("张三明"), dt.date(2021, 7, 31), LINK, today=dt.date(2021, 8, 5))
    assert sms.template == "late_invite"
    assert "7月31日" not in sms.body and "尽快" in sms.body and len(sms.body) <= wording.MAX_CHARS


def test_a_message_is_a_template_and_its_parameters_and_renders_back_to_its_body():
    sms = wording.confirmation(person(), visit(companion=True))
    assert sms.template == "confirm" and sms.lang == "zh" and sms.template_key == "confirm"
    assert list(sms.params) == wording.placeholders(wording.TEMPLATES["confirm"]["zh"])
    assert sms.params["code"] == "TCJK-JHYT" and sms.params["name"] == "欧*明"
    assert wording.render("confirm", sms.params, "zh") == sms


def test_a_resident_who_chose_english_gets_english():
    sms = wording.confirmation(person(lang="en"), visit(), moved=True)
    assert sms.template == "change" and sms.lang == "en" and sms.template_key == "change.en"
    for part in ("moved to", "Mon 21 Jun 09:00-10:00", "五山街社区卫生服务中心", "TCJK-JHYT", *ENTRY_NOTES["en"]):
        assert part in sms.body
    assert not re.search(r"[\u4e00-\u9fff]", wording.TEMPLATES["change"]["en"])


def test_the_log_in_code_is_the_code_and_nothing_else():
    for lang in wording.LANGS:
        sms = wording.login_code("123456", lang)
        assert sms.params == {"code": "123456"} and "123456" in sms.body and sms.priority == 0


# ---- every template, in both languages, with the longest realistic values


def longest_accepted_base_url() -> str:
    """The longest BASE_URL the service accepts today: one more character and a batch refuses it."""
    accepted = None
    for n in range(1, 200):
        base_url = "https://" + "a" * n + ".gov.cn"
        try:
            check_base_url(base_url)
        except InviteError:
            assert accepted, "even the shortest BASE_URL is refused"
            return accepted
        accepted = base_url
    raise AssertionError("no BASE_URL is too long: the check does not work")


LONGEST_LINK = link_url(longest_accepted_base_url(), SAMPLE_TOKEN)
GOV_LINK = link_url("https://yuyue.thwsjk.gov.cn", SAMPLE_TOKEN)
LONGEST_DAY = dt.date(2021, 12, 29)  # two-digit month and day
NAMES = {"zh": ["欧阳小明", "张三明", "诸葛孔明明"], "en": ["Alexandra Montgomery-Smith", "欧阳小明", "Li Na"]}
SITE_NAMES = [max((s[1] for s in SITES), key=len),
              "天河区某某街道社区卫生服务中心第二临时接种点（体育中心东门旁边的大帐篷）"]
ADDRESSES = [max((s[3] for s in SITES), key=len), "天河区中山大道西1234号天河体育中心东门旁临时接种点帐篷"]


def every_message(resident: Resident, link: str):
    """One of every message, as long as the values make it."""
    due = dt.date(2021, 12, 31)
    for site in SITE_NAMES:
        for address in ADDRESSES:
            v = visit(day=LONGEST_DAY, start="14:00", end="15:00", site=site, address=address, companion=True)
            yield wording.confirmation(resident, v)
            yield wording.confirmation(resident, v, moved=True)
            yield wording.closure_move(resident, v)
            yield wording.day_before(resident, v)
            for moved in (False, True):
                yield (wording.callcentre_confirmation(resident, v, link, moved=moved)
                       or wording.confirmation(resident, v, moved=moved))
                yield wording.callcentre_confirmation(resident, v, GOV_LINK, moved=moved)
    yield wording.invitation(resident, due, link)
    yield wording.invitation(resident, due, link, today=due + dt.timedelta(days=1))
    yield wording.reminder(resident, due, link)
    yield wording.reminder(resident, due, link, today=due + dt.timedelta(days=1))
    yield wording.reissue(resident, link)
    yield wording.cancellation(resident, "TCJK-JHYT")
    yield wording.closure_cancel(resident, LONGEST_DAY, link)
    for level in ("medium", "high"):
        yield wording.risk_cancel(resident, "TCJK-JHYT", subdistrict=max(SUBDISTRICTS, key=len), level=level)
    yield wording.login_code("123456", resident.lang)
    # A waiting-list offer, held until another day than the window's: its link is what it is for,
    # and with the longest BASE_URL accepted it takes three parts; with a district's real
    # address (GOV_LINK), two.
    for site in SITE_NAMES:
        yield wording.offer(resident, LONGEST_DAY, "14:00", "15:00", site, GOV_LINK,
                            dt.datetime(2021, 12, 30, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=8))))
    yield wording.off_list(resident)


@pytest.mark.parametrize("lang", wording.LANGS)
def test_every_template_fits_with_the_longest_values(lang):
    seen = set()
    for name in NAMES[lang]:
        for sms in every_message(person(name, lang, born=dt.date(1940, 1, 1)), LONGEST_LINK):
            assert sms is not None, "the call centre's SMS with a link did not fit a gov.cn address"
            seen.add(sms.template)
            most = {"zh": 2 * 67, "en": 3 * 67}[lang] if sms.template != "login_code" else 67
            assert len(sms.body) <= most, f"{sms.template}.{lang}: {len(sms.body)} > {most}: {sms.body}"
            assert sms.lang == lang and sms.body.startswith("【" + wording.SIGNATURE + "】")
            for key, value in sms.params.items():  # what the gateways take as a parameter
                assert value.strip(), f"{sms.template}.{lang}: {key} is empty"
                assert key == "link" or len(value) <= wording.PARAM_MAX, f"{sms.template}.{lang}: {key}={value}"
            if sms.template in ("confirm", "change", "closure_move", "day_before"):
                assert all(note in sms.body for note in ENTRY_NOTES[lang]), sms.body
                assert sms.params["address"] in (*ADDRESSES, wording.ADDRESS_ELSEWHERE[lang]), sms.body
                assert sms.params["code"] in sms.body and sms.params["note"] == wording.COMPANION[lang]
    assert seen == set(PRIORITY) == set(wording.TEMPLATES)


def test_the_longest_demo_site_keeps_its_address_in_chinese():
    v = visit(day=LONGEST_DAY, start="14:00", end="15:00", companion=True,
              site=max((s[1] for s in SITES), key=len), address=max((s[3] for s in SITES), key=len))
    for build in (wording.confirmation, wording.day_before):
        sms = build(person("欧阳小明"), v)
        assert v.address in sms.body and len(sms.body) <= wording.MAX_CHARS


def test_the_templates_are_what_gateways_approve():
    """Every key in both languages; each parameter once, never two side by side, no 【】 (the
    gateway adds the signature)."""
    for template, texts in wording.TEMPLATES.items():
        assert set(texts) == set(wording.LANGS), template
        for lang, text in texts.items():
            names = wording.placeholders(text)
            assert len(names) == len(set(names)), f"{template}.{lang} repeats a parameter"
            assert not re.search(r"\}\s*\$\{", text), f"{template}.{lang} has two parameters side by side"
            assert "【" not in text and "】" not in text
            assert set(names) == set(wording.placeholders(texts["zh"])), f"{template}.{lang}"


def test_a_base_url_one_character_too_long_is_refused_for_every_message_with_a_link():
    too_long = longest_accepted_base_url().replace("https://", "https://a")
    with pytest.raises(InviteError, match="BASE_URL .* too long"):
        check_base_url(too_long)
    assert not wording.fits(wording.longest_with(link_url(too_long, SAMPLE_TOKEN)))
