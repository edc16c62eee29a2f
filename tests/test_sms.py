"""SMS texts: within two parts, with what the resident needs (rules 8 and 9)."""
from __future__ import annotations

import datetime as dt

from models.messaging import wording

LINK = "http://127.0.0.1:8000/b/" + "A" * 22


def confirmation(**kw):
    values = dict(kind="book", masked_name="欧阳*明", code="TCJK-JHYT", site_name="五山街社区卫生服务中心",
                  day=dt.date(2021, 6, 21), start="09:00", end="10:00", companion=False)
    return wording.confirmation_body(**{**values, **kw})


def test_confirmation_carries_code_day_time_site_and_what_to_bring():
    body = confirmation()
    for part in ("TCJK-JHYT", "6月21日", "周一", "09:00-10:00", "五山街社区卫生服务中心", "身份证", "口罩"):
        assert part in body
    assert body.startswith(wording.SIGNATURE)
    assert "家属陪同" not in body


def test_confirmation_tells_people_of_70_to_come_with_family():
    assert "70岁以上请家属陪同" in confirmation(companion=True)


def test_a_very_long_site_name_is_shortened_not_the_advice():
    body = confirmation(site_name="天河区某某街道社区卫生服务中心第二临时接种点（体育中心东门旁边的大帐篷）",
                        companion=True)
    assert len(body) <= wording.MAX_CHARS
    assert body.endswith("改约或取消请点短信原链接。") and "家属陪同" in body and "TCJK-JHYT" in body


def test_invitation_with_link_fits_two_sms_parts():
    body = wording.invitation_body("欧阳*明", dt.date(2021, 7, 31), LINK)
    assert len(body) <= wording.MAX_CHARS and LINK in body and "第二剂" in body


def test_cancellation_fits_two_parts():
    assert len(wording.cancellation_body(masked_name="张*明", code="TCJK-JHYT")) <= wording.MAX_CHARS


def test_late_invitation_does_not_name_a_day_already_gone():
    body = wording.invitation_body("张*明", dt.date(2021, 7, 31), LINK, today=dt.date(2021, 8, 5))
    assert "7月31日" not in body and "尽快" in body and len(body) <= wording.MAX_CHARS
