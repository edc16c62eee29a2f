"""The demo data set's content: sites, showcase people, staff logins, and the seeded crowd of residents.

Every person here is fictional; their ID numbers are generated (valid check character, not real).
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from ..people.pii import build_id_number
from ..rules.tianhe import AREA_CODE, SUBDISTRICTS

SEED = 2021
CAPACITY = 20
DAYS = 14
WINDOWS = [("08:30", "09:30"), ("09:30", "10:30"), ("10:30", "11:30"),
           ("14:00", "15:00"), ("15:00", "16:00"), ("16:00", "17:00")]
# A small station with one short session a day, every place of it booked: rule 7's alternatives show.
FULL_SITE = "TH02"
FULL_SITE_WINDOWS = [("09:30", "10:30")]
FULL_SITE_CAPACITY = 2
RISK_SUBDISTRICT = "珠吉街"

# code, name, sub-district, address, phone
SITES = [
    ("TH01", "五山街社区卫生服务中心", "五山街", "天河区五山路371号", "020-85211301"),
    ("TH02", "五山街茶山社区卫生服务站", "五山街", "天河区茶山路12号", "020-85211302"),
    ("TH03", "石牌街社区卫生服务中心", "石牌街", "天河区石牌东路40号", "020-85211303"),
    ("TH04", "天河南街社区卫生服务中心", "天河南街", "天河区天河南二路31号", "020-85211304"),
    ("TH05", "林和街社区卫生服务中心", "林和街", "天河区林和中路168号", "020-85211305"),
    ("TH06", "沙河街社区卫生服务中心", "沙河街", "天河区先烈东路86号", "020-85211306"),
    ("TH07", "员村街社区卫生服务中心", "员村街", "天河区员村二横路7号", "020-85211307"),
    ("TH08", "车陂街社区卫生服务中心", "车陂街", "天河区车陂路龙口大街3号", "020-85211308"),
    ("TH09", "棠下街社区卫生服务中心", "棠下街", "天河区中山大道西棠下村58号", "020-85211309"),
    ("TH10", "龙洞街社区卫生服务中心", "龙洞街", "天河区龙洞北路九龙大道6号", "020-85211310"),
    ("TH11", "珠吉街社区卫生服务中心", "珠吉街", "天河区珠吉路220号", "020-85211311"),
]
SITE_CODES = {code for code, *_ in SITES}
OPEN_SITES = [code for code, *_ in SITES if code not in (FULL_SITE, "TH11")]

# role, username, password, site code, sub-district
STAFF = [
    ("admin", "admin", "demo-admin-2021", None, None),
    ("callcentre", "callcentre", "demo-callcentre-2021", None, None),
    ("site", "site-th01", "demo-site-2021", "TH01", None),
    ("subdistrict", "wushan", "demo-subdistrict-2021", None, "五山街"),
    ("clinic", "clinic-wushan", "demo-clinic-2021", None, "五山街"),  # family doctors of 五山街
]

VACCINES = ["北京生物", "武汉生物", "科兴"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗梁宋郑谢韩唐冯邓曹彭曾萧田潘袁蔡"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰辉鹏志红建国文斌晓燕婷欣怡俊豪"
OTHER_REGIONS = ["440104", "440105", "440111", "430102", "450103", "360102"]
PHONE_PREFIXES = ["130", "131", "132", "133", "135", "136", "137", "138", "139",
                  "150", "151", "152", "155", "156", "157", "158", "159",
                  "180", "181", "182", "183", "185", "186", "187", "188", "189"]


@dataclass(frozen=True)
class Person:
    case: str
    name: str
    id_number: str
    phone: str
    first_dose_ago: int  # days before today
    site: str
    subdistrict: str
    vaccine: str = "北京生物"
    second_dose_ago: int | None = None  # set for people already vaccinated


# What each case is, as printed next to the showcase person.
CASES = {
    "eligible": "eligible now 可预约（首剂后21-56天）",
    "late": "late, over 56 days 已超56天（仍可接种）",
    "opens_soon": "booking open, first allowed day still ahead 可预约，首个可约日期在后",
    "too_early": "too early 未到预约时间（首剂3天前）",
    "vaccinated": "already vaccinated 已完成第二剂",
    "booked": "already booked 已有预约",
    "restricted": "lives in a medium-risk area 中风险地区（珠吉街）",
    "elderly": "aged 70+ 七十岁以上（家属陪同）",
    "site_full": "first-dose site fully booked 首剂接种点已约满",
    "elsewhere": "ID from outside Tianhe 外地身份证",
    "family": "family on the aged 70+ person's phone, for /entry 与黄桂英同一手机号（家人）",
}
FAMILY_PHONE = "13800138008"  # 黄桂英's, shared with her son and his wife: /entry lists all three


def showcase() -> list[Person]:
    """One fixed, fictional person per case (two for "family"); their full ID numbers and their
    made-up phone numbers are printed by `demo`."""
    def person(case, name, born, seq, phone, ago, site, sub, region=AREA_CODE, **kw):
        return Person(case, name, build_id_number(region, born, seq), phone, ago, site, sub, **kw)

    return [
        person("eligible", "张三明", dt.date(1988, 3, 12), 401, "13800138001", 30, "TH01", "五山街"),
        person("late", "李四华", dt.date(1986, 7, 21), 402, "13800138002", 70, "TH03", "石牌街"),
        person("opens_soon", "吴小燕", dt.date(1995, 11, 2), 404, "13800138003", 16, "TH04", "天河南街"),
        person("too_early", "王五芳", dt.date(1990, 1, 30), 406, "13800138004", 3, "TH04", "天河南街"),
        person("vaccinated", "赵六军", dt.date(1987, 9, 9), 407, "13800138005", 60, "TH05", "林和街",
               second_dose_ago=30),
        person("booked", "陈七英", dt.date(1993, 4, 18), 408, "13800138006", 35, "TH01", "五山街"),
        person("restricted", "刘八妹", dt.date(1991, 6, 6), 410, "13800138007", 30, "TH11", RISK_SUBDISTRICT),
        person("elderly", "黄桂英", dt.date(1945, 5, 6), 412, FAMILY_PHONE, 28, "TH05", "林和街"),
        person("site_full", "周十全", dt.date(1989, 12, 1), 413, "13800138009", 30, FULL_SITE, "五山街"),
        person("elsewhere", "孙小雨", dt.date(1992, 8, 15), 414, "13800138010", 25, "TH06", "沙河街",
               region="430102"),
        person("family", "林建国", dt.date(1970, 10, 3), 415, FAMILY_PHONE, 33, "TH05", "林和街"),
        person("family", "何丽华", dt.date(1972, 4, 27), 416, FAMILY_PHONE, 26, "TH05", "林和街"),
    ]


# How many of the seeded crowd fall in each case, and their first dose (days ago, from..to).
CROWD = [("eligible", 60, (21, 56)), ("late", 15, (57, 90)), ("opens_soon", 10, (14, 20)),
         ("too_early", 15, (0, 13)), ("vaccinated", 25, (40, 100)), ("booked", 20, (21, 50)),
         ("restricted", 10, (21, 50)), ("elderly", 15, (21, 56))]


def crowd() -> list[Person]:
    """The ~170 other residents: the same people, in the same order, on every run."""
    rng = random.Random(SEED)
    people = []
    for case, count, (low, high) in CROWD:
        for _ in range(count):
            seq = len(people) + 1
            if case == "restricted":
                site, sub = "TH11", RISK_SUBDISTRICT
            else:
                site = rng.choice(OPEN_SITES)
                sub = _site_subdistrict(site) if rng.random() < 0.7 else rng.choice(
                    [s for s in SUBDISTRICTS if s != RISK_SUBDISTRICT])
            ago = rng.randint(low, high)
            second = rng.randint(1, ago - 21) if case == "vaccinated" else None
            people.append(Person(
                case, _name(rng), _id_number(rng, seq, elderly=case == "elderly"), _phone(rng),
                ago, site, sub, rng.choice(VACCINES), second,
            ))
    return people


def filler(k: int) -> Person:
    """The k-th person booked into the fully booked site (as many as its places need)."""
    rng = random.Random(f"{SEED}-filler-{k}")
    # Sequence 500-999 is theirs alone; past 500 fillers the birth date moves on, so numbers stay unique.
    born = dt.date(1962, 1, 1) + dt.timedelta(days=(k % 500) * 29 + k // 500)
    return Person("site_full", _name(rng), build_id_number(AREA_CODE, born, 500 + k % 500),
                  _phone(rng), rng.randint(25, 40), FULL_SITE, "五山街", rng.choice(VACCINES))


WAITING = 6  # people on the waiting list for the fully booked site


def waiter(k: int) -> Person:
    """The k-th person waiting for a place at the fully booked site (the waiting list): every
    other one aged 70 or more, first doses a few days apart, so the list's order shows."""
    rng = random.Random(f"{SEED}-waiter-{k}")
    born = dt.date(1948 if k % 2 else 1975, 3, 1) + dt.timedelta(days=k * 41)
    return Person("waiting", _name(rng), build_id_number(AREA_CODE, born, 300 + k), _phone(rng),
                  30 + 4 * (k % 3), FULL_SITE, "五山街", rng.choice(VACCINES))


def _site_subdistrict(code: str) -> str:
    return next(sub for c, _, sub, *_ in SITES if c == code)


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


def _id_number(rng: random.Random, seq: int, *, elderly: bool) -> str:
    if elderly:
        born = dt.date(1941, 1, 1) + dt.timedelta(days=rng.randint(0, 9 * 365))
    else:
        born = dt.date(1955, 1, 1) + dt.timedelta(days=rng.randint(0, 47 * 365))
    region = AREA_CODE if rng.random() < 0.85 else rng.choice(OTHER_REGIONS)
    return build_id_number(region, born, seq)


def _phone(rng: random.Random) -> str:
    return rng.choice(PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}"
