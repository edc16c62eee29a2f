"""What each SMS says: one approved template per message and language, and the values put in it.

Chinese gateways send only templates approved in advance, so every message here is a fixed text
with named `${param}` parameters (TEMPLATES); the builders below choose the values, shortening a
long site name or name until the message fits, and render the same text for the console backend,
for operators and for the length checks (`Sms.body`).

Length: residents have mainland numbers, and for mainland (domestic) SMS Alibaba Cloud and
Tencent Cloud count every character as one, Chinese or Latin, signature and its 【】 included:
70 for a single message, 67 a part once a message is longer. GSM-7's 160/153 only applies to
international numbers, and the Chinese signature would make any message UCS-2 anyway. So:
- Chinese messages fit two parts (MAX_CHARS, 134 characters);
- English ones, which need about half as many characters again for the same facts, fit three
  parts (MAX_CHARS_EN, 201): one more billed part for the few who chose English, rather than
  leaving out the address or the entry notes;
- the log-in code fits one part (LOGIN_CODE_MAX, 67) in either language.
What the gateways accept of a parameter is checked too (PARAM_MAX): a value of 1 to 35
characters, the link excepted, and no two parameters side by side in a template.

The signature is rendered as SIGNATURE (SmsConfig's default): the gateway adds the configured
one itself, and the limits above hold for a signature of up to six characters.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from string import Template
from typing import Iterable

from ..booking_codes import format_code
from ..clock import TZ
from ..db.tables import Booking, Resident, Slot
from ..people.pii import mask_name
from ..rules.eligibility import needs_companion
from .sms import Sms

SIGNATURE = "天河区卫健局"  # the default of SmsConfig.signature: the gateway adds the configured one
MAX_CHARS = 134  # two parts of 67
MAX_CHARS_EN = 201  # three parts of 67
LOGIN_CODE_MAX = 67  # one part
PARAM_MAX = 35  # Alibaba Cloud's limit for one parameter of a notification template
LANGS = ("zh", "en")

# The entry notes, shortened to fit: ID card, mask, health code, temperature, one metre apart.
_ENTRY_ZH = "请带身份证、戴口罩，亮健康码、测体温，隔一米排队。"
_ENTRY_EN = "Bring ID & mask, show health code, temp check, 1m apart. "

TEMPLATES: dict[str, dict[str, str]] = {
    "invite": {
        "zh": "${name}您好，您可预约新冠疫苗第二剂，请于${due}前接种。预约：${link}",
        "en": "${name}, you can book your 2nd COVID-19 dose now; please have it by ${due}. Book: ${link}",
    },
    "late_invite": {
        "zh": "${name}您好，您的新冠疫苗第二剂已超过建议接种时间，仍可接种，请尽快预约：${link}",
        "en": "${name}, your 2nd COVID-19 dose is overdue but you can still have it. Please book "
              "soon: ${link}",
    },
    "reminder": {
        "zh": "${name}您好，您尚未预约新冠疫苗第二剂，请于${due}前接种。新预约链接：${link}",
        "en": "${name}, you have not booked your 2nd COVID-19 dose; please have it by ${due}. "
              "New link: ${link}",
    },
    "late_reminder": {
        "zh": "${name}您好，您尚未预约新冠疫苗第二剂，已过建议接种时间，仍可接种，请尽快预约：${link}",
        "en": "${name}, your 2nd COVID-19 dose is not booked and is overdue; you can still have "
              "it. Book soon: ${link}",
    },
    "reissue": {
        "zh": "${name}您好，这是您新的第二剂预约链接，旧链接已失效。查看、预约、改约或取消：${link}",
        "en": "${name}, your new 2nd-dose booking link (old links no longer work). View, book, change "
              "or cancel: ${link}",
    },
    "confirm": {
        "zh": "${name}已预约第二剂新冠疫苗：${when}，${site}（${address}）。预约码${code}。"
              + _ENTRY_ZH + "${note}。改约或取消请点短信原链接。",
        "en": "${name}: 2nd dose booked, ${when}, ${site} (${address}). Code ${code}. "
              + _ENTRY_EN + "${note}. Change/cancel: SMS link",
    },
    "change": {
        "zh": "${name}已改约第二剂新冠疫苗：${when}，${site}（${address}）。预约码${code}。"
              + _ENTRY_ZH + "${note}。改约或取消请点短信原链接。",
        "en": "${name}: 2nd dose moved to ${when}, ${site} (${address}). Code ${code}. "
              + _ENTRY_EN + "${note}. Change/cancel: SMS link",
    },
    "cancel": {
        "zh": "${name}，您的第二剂新冠疫苗预约${code}已取消，名额已释放。如需接种请重新预约。",
        "en": "${name}, your 2nd COVID-19 dose booking ${code} is cancelled and the place released. "
              "Book again if you still need it.",
    },
    "callcentre_confirm": {
        "zh": "${name}已预约第二剂新冠疫苗：${when}，${site}。预约码${code}。${note}。"
              "查看详情、改约或取消：${link}",
        "en": "${name}: 2nd dose booked, ${when}, ${site}. Code ${code}. ${note}. "
              "Address, what to bring, change or cancel: ${link}",
    },
    "callcentre_change": {
        "zh": "${name}已改约第二剂新冠疫苗：${when}，${site}。预约码${code}。${note}。"
              "查看详情、改约或取消：${link}",
        "en": "${name}: 2nd dose moved to ${when}, ${site}. Code ${code}. ${note}. "
              "Address, what to bring, change or cancel: ${link}",
    },
    "closure_move": {
        "zh": "${name}，因原预约时段停诊，您的第二剂新冠疫苗已改约到${when}，${site}（${address}）。"
              "预约码${code}。" + _ENTRY_ZH + "${note}。有疑问请拨12345。",
        "en": "${name}: slot closed, 2nd dose moved to ${when}, ${site} (${address}). "
              "Code ${code}. " + _ENTRY_EN + "${note}. Help: 12345",
    },
    "closure_cancel": {
        "zh": "${name}，因接种点停诊，您${day}的第二剂新冠疫苗预约已取消，已为您候补，有空位会短信通知。也可重新预约：${link}",
        "en": "${name}: site closed, your 2nd-dose booking on ${day} is cancelled. You are on the "
              "waiting list (we SMS a free place), or book again: ${link}",
    },
    "risk_cancel": {
        "zh": "${name}，因您所在的${subdistrict}为${level}地区，按防控要求，您的第二剂新冠疫苗预约"
              "${code}已取消。解除后请点短信原链接或拨打12345重新预约。",
        "en": "${name}, ${subdistrict} is now a ${level} area, so your 2nd-dose booking ${code} is "
              "cancelled. Once lifted, book again with your SMS link or call 12345.",
    },
    "day_before": {
        "zh": "${name}您好，请于${when}到${site}（${address}）接种第二剂新冠疫苗，预约码${code}。"
              + _ENTRY_ZH + "${note}。不能来请点原链接取消。",
        "en": "${name}: 2nd dose ${when} at ${site} (${address}). Code ${code}. "
              + _ENTRY_EN + "${note}. Can't come? Cancel: SMS link",
    },
    "offer": {
        "zh": "${name}：您候补的第二剂疫苗有空位，${when}，${site}，保留至${until}。确认或放弃：${link}",
        "en": "${name}: a 2nd-dose place is free for you, ${when}, ${site}, held till ${until}. "
              "Take it or pass: ${link}",
    },
    "waitlist_off": {
        "zh": "${name}您好，您有3次候补空位未确认，已退出第二剂疫苗候补名单。如需再候补，请点短信原链接或拨12345。",
        "en": "${name}, 3 offers of a 2nd-dose place went unanswered, so you are off the waiting list. "
              "To rejoin: SMS link or 12345.",
    },
    "login_code": {
        "zh": "您的验证码为${code}，5分钟内有效，请勿告诉他人。",
        "en": "Verification code: ${code}, valid 5 minutes. Tell no one.",
    },
}

# Said in place of the address when it does not fit: where to find it.
ADDRESS_ELSEWHERE = {"zh": "地址见预约页面", "en": "address: SMS link"}
COMPANION = {"zh": "70岁以上请家属陪同", "en": "Aged 70+: bring family"}
_ON_TIME = {"zh": "请准时到场", "en": "Be on time"}
_RISK_LEVELS = {"zh": {"medium": "中风险", "high": "高风险"}, "en": {"medium": "medium-risk", "high": "high-risk"}}
_ANY_RISK = {"zh": "中高风险", "en": "medium- or high-risk"}
_WEEKDAYS_ZH = "一二三四五六日"
_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MIN_SITE = 2  # two characters of the site's name and an ellipsis still tell sites apart
_MIN_SITE_WITH_ADDRESS = 8  # the site's name is not cut shorter to keep the address: that gives way


def limit(template: str, lang: str) -> int:
    """The most characters the message may have, signature included."""
    if template == "login_code":
        return LOGIN_CODE_MAX
    return MAX_CHARS_EN if lang == "en" else MAX_CHARS


def fits(sms: Sms) -> bool:
    return len(sms.body) <= limit(sms.template, sms.lang)


def render(template: str, params: dict[str, str], lang: str = "zh", *, signature: str = SIGNATURE) -> Sms:
    """The message as the resident reads it: 【signature】 and the template with its values."""
    lang = lang if lang in LANGS else "zh"
    text = TEMPLATES[template][lang]
    values = {name: params[name] for name in placeholders(text)}
    return Sms(template, values, f"【{signature}】{Template(text).substitute(values)}", lang)


def placeholders(text: str) -> list[str]:
    """The parameters of a template text, in the order they appear (Tencent numbers them so)."""
    return [m.group("braced") for m in Template.pattern.finditer(text) if m.group("braced")]


def short_day(day: dt.date, lang: str = "zh") -> str:
    """6月21日 / 21 Jun."""
    return f"{day.day} {_MONTHS_EN[day.month - 1]}" if lang == "en" else f"{day.month}月{day.day}日"


def time_span(start: str, end: str) -> str:
    """09:00-10:00, in either language: how a time window is written everywhere, in the SMS and
    on every page (web/i18n.py: window_text), so what a resident reads on the page is what
    the message says."""
    return f"{dt.time.fromisoformat(start):%H:%M}-{dt.time.fromisoformat(end):%H:%M}"


def when(day: dt.date, start: str, end: str, lang: str = "zh") -> str:
    """6月21日（周一）09:00-10:00 / Mon 21 Jun 09:00-10:00: one parameter, as templates may not
    put two side by side."""
    if lang == "en":
        return f"{_WEEKDAYS_EN[day.weekday()]} {short_day(day, lang)} {time_span(start, end)}"
    return f"{short_day(day)}（周{_WEEKDAYS_ZH[day.weekday()]}）{time_span(start, end)}"


def _lang(resident: Resident) -> str:
    return "en" if resident.lang == "en" else "zh"


def _named(resident: Resident, params: dict[str, str], min_site: int = 0) -> list[tuple[dict[str, str], int]]:
    """The values with the masked name, then with the name given way to its first character."""
    initial = resident.name.strip()[:1] + "*"
    masked = mask_name(resident.name)
    return [({**params, "name": masked if len(masked) <= PARAM_MAX else initial}, min_site),
            ({**params, "name": initial}, min_site)]


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _fit(template: str, lang: str, variants: Iterable[tuple[dict[str, str], int]]) -> Sms:
    """The first variant of the values that fits, its `site` (if any) shortened down to the
    variant's minimum; else the last one tried, too long (callers check with `fits`)."""
    sms = None
    for params, min_site in variants:
        sms = render(template, params, lang)
        over = len(sms.body) - limit(template, lang)
        if over <= 0:
            return sms
        site = params.get("site")
        if site is not None and len(site) - over - 1 >= min_site:
            return render(template, {**params, "site": _cut(site, len(site) - over)}, lang)
    return sms


@dataclass(frozen=True)
class Visit:
    """What a message says of a booking: when and where, its code, whether family must come."""

    code: str  # as read out: ACEF-7HJK
    day: dt.date
    start: str
    end: str
    site: str
    address: str
    companion: bool  # 70 or more on the day (rule 8)


def visit(resident: Resident, booking: Booking, slot: Slot, born: dt.date) -> Visit:
    """The Visit of `booking` in `slot` (its site loaded); `born`: the person's birth date, read
    from their encrypted ID number (people.residents.birth_date_of), for rule 8."""
    return Visit(format_code(booking.code), slot.day, slot.start, slot.end, slot.site.name,
                 slot.site.address, needs_companion(born, slot.day))


def _visit_values(v: Visit, lang: str, **more: str) -> dict[str, str]:
    return {"when": when(v.day, v.start, v.end, lang), "site": _cut(v.site, PARAM_MAX), "code": v.code,
            "note": (COMPANION if v.companion else _ON_TIME)[lang], **more}


def _visit_variants(resident: Resident, v: Visit, lang: str) -> list[tuple[dict[str, str], int]]:
    """Name, time, site, address, code and note. What gives way, in turn: the site's name a
    little; then the address, to where to find it, and the site's name down to two characters;
    then the name, to its first character."""
    elsewhere = ADDRESS_ELSEWHERE[lang]
    address = v.address.strip() if 0 < len(v.address.strip()) <= PARAM_MAX else elsewhere
    shorter = min(address, elsewhere, key=len)  # in English the pointer may be the longer
    (masked, _), (initial, _) = _named(resident, _visit_values(v, lang))
    return [({**masked, "address": address}, _MIN_SITE_WITH_ADDRESS),
            ({**masked, "address": shorter}, _MIN_SITE),
            ({**initial, "address": shorter}, _MIN_SITE)]


# ---- the builders: one per message; each returns an Sms in the resident's language


def invitation(resident: Resident, due_by: dt.date, link: str, *, today: dt.date | None = None) -> Sms:
    """The invitation; past the recommended date it says so instead of naming a day gone by."""
    if today and today > due_by:
        return _fit("late_invite", _lang(resident), _named(resident, {"link": link}))
    return _fit("invite", _lang(resident),
                _named(resident, {"link": link, "due": short_day(due_by, _lang(resident))}))


def reminder(resident: Resident, due_by: dt.date, link: str, *, today: dt.date | None = None) -> Sms:
    """The one reminder to someone invited days ago who has not booked: a new link (the old one
    no longer works); past the recommended date it says so instead of naming a day gone by."""
    if today and today > due_by:
        return _fit("late_reminder", _lang(resident), _named(resident, {"link": link}))
    return _fit("reminder", _lang(resident),
                _named(resident, {"link": link, "due": short_day(due_by, _lang(resident))}))


def reissue(resident: Resident, link: str) -> Sms:
    """A new personal link in place of the old ones (revoked or expired)."""
    return _fit("reissue", _lang(resident), _named(resident, {"link": link}))


def closure_cancel(resident: Resident, day: dt.date, link: str) -> Sms:
    """A booking on a closed window the district cancelled: a new personal link to book again."""
    return _fit("closure_cancel", _lang(resident),
                _named(resident, {"link": link, "day": short_day(day, _lang(resident))}))


def confirmation(resident: Resident, v: Visit, *, moved: bool = False) -> Sms:
    """A booking made or moved (`moved`) by the person through their link."""
    lang = _lang(resident)
    return _fit("change" if moved else "confirm", lang, _visit_variants(resident, v, lang))


def callcentre_confirmation(resident: Resident, v: Visit, link: str, *, moved: bool = False) -> Sms | None:
    """A booking made or moved by phone, with a personal link to see, move or cancel it (and the
    address and what to bring). The link is what this message is for, so the rest gives way: the
    site's name, then the name. None when even that does not fit (a very long BASE_URL)."""
    lang = _lang(resident)
    sms = _fit("callcentre_change" if moved else "callcentre_confirm", lang,
               _named(resident, _visit_values(v, lang, link=link), _MIN_SITE))
    return sms if fits(sms) else None


def closure_move(resident: Resident, v: Visit) -> Sms:
    """A booking the district moved off a closed window into another one."""
    lang = _lang(resident)
    return _fit("closure_move", lang, _visit_variants(resident, v, lang))


def day_before(resident: Resident, v: Visit) -> Sms:
    """The reminder before the day: when and where, the code, and what to bring."""
    lang = _lang(resident)
    return _fit("day_before", lang, _visit_variants(resident, v, lang))


def cancellation(resident: Resident, code: str) -> Sms:
    """A booking the person cancelled (`code` as read out)."""
    return _fit("cancel", _lang(resident), _named(resident, {"code": code}))


def risk_cancel(resident: Resident, code: str, *, subdistrict: str, level: str) -> Sms:
    """A booking the district cancelled because the person's sub-district is marked risky."""
    lang = _lang(resident)
    return _fit("risk_cancel", lang, _named(resident, {
        "code": code, "subdistrict": _cut(subdistrict, PARAM_MAX),
        "level": _RISK_LEVELS[lang].get(level, _ANY_RISK[lang])}))


def login_code(code: str, lang: str = "zh") -> Sms:
    """The 6-digit code for the public way in: one part, nothing else in it."""
    return render("login_code", {"code": code}, lang)


# ---- from the tables


def booking_sms(resident: Resident, booking: Booking, slot: Slot, *, born: dt.date,
                moved: bool = False) -> Sms:
    """The message for a booking made or moved into `slot` (its site loaded)."""
    return confirmation(resident, visit(resident, booking, slot, born), moved=moved)


def callcentre_booking_sms(resident: Resident, booking: Booking, slot: Slot, link: str, *,
                           born: dt.date, moved: bool = False) -> Sms:
    """The message for a booking made or moved by the call centre: with a personal link when it
    fits, else the one the person's own link would give."""
    v = visit(resident, booking, slot, born)
    return callcentre_confirmation(resident, v, link, moved=moved) or confirmation(resident, v, moved=moved)


def cancel_sms(resident: Resident, booking: Booking) -> Sms:
    return cancellation(resident, format_code(booking.code))


def risk_cancel_sms(resident: Resident, booking: Booking, *, subdistrict: str, level: str) -> Sms:
    return risk_cancel(resident, format_code(booking.code), subdistrict=subdistrict, level=level)


def closure_move_sms(resident: Resident, booking: Booking, slot: Slot, *, born: dt.date) -> Sms:
    return closure_move(resident, visit(resident, booking, slot, born))


def day_before_sms(resident: Resident, booking: Booking, slot: Slot, *, born: dt.date) -> Sms:
    return day_before(resident, visit(resident, booking, slot, born))


# ---- BASE_URL: long enough for every message that carries a link?

SHORTEST_NAME = "张*"  # the shortest a name gets: room for it is checked before a batch
LINKED = ("invite", "late_invite", "reminder", "late_reminder", "reissue", "closure_cancel")


def longest_with(link: str) -> Sms:
    """Of the messages carrying a link, in either language, the one furthest over (or least under)
    its limit when the name is as short as it gets: if even that one does not fit, no such message
    can be sent with this BASE_URL."""
    longest_day = dt.date(2021, 12, 31)
    rendered = [render(template, {"name": SHORTEST_NAME, "link": link, "due": short_day(longest_day, lang),
                                  "day": short_day(longest_day, lang)}, lang)
                for template in LINKED for lang in LANGS]
    return max(rendered, key=lambda sms: len(sms.body) - limit(sms.template, sms.lang))


def offer(resident: Resident, day: dt.date, start: str, end: str, site: str, link: str,
          until: dt.datetime) -> Sms:
    """A waiting-list offer: the freed window, until when it is held, and its personal link. The
    link is what it is for, so the rest gives way: the site's name (to two characters), the
    weekday, then the name (to its first character)."""
    lang = _lang(resident)
    held = until_text(until, lang)
    full = {"when": when(day, start, end, lang), "site": _cut(site, PARAM_MAX), "link": link, "until": held}
    short = {**full, "when": f"{short_day(day, lang)} {time_span(start, end)}"}
    (masked, _), (initial, _) = _named(resident, short, _MIN_SITE)
    return _fit("offer", lang, [(_named(resident, full)[0][0], _MIN_SITE), (masked, _MIN_SITE),
                                (initial, _MIN_SITE)])


def until_text(until: dt.datetime, lang: str = "zh") -> str:
    """When a held offer runs out, as a message says it: "12月9日14:30" / "9 Dec 14:30"."""
    local = until.astimezone(TZ)
    return f"{short_day(local.date(), lang)}{' ' if lang == 'en' else ''}{local:%H:%M}"


def off_list(resident: Resident) -> Sms:
    """Taken off the waiting list after three offers let expire: how to rejoin."""
    return _fit("waitlist_off", _lang(resident), _named(resident, {}))
