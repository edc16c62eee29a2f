"""The staff's words: what the consoles, the audit trail, the import refusals and every CSV
download call things, in one place (issue 22).

Stored data stays as codes (audit actions, audit details, import refusal reasons, report
columns, channels, roles): they are put in words when shown or exported, in the interface's
language. Each code maps to a Chinese message id, marked with `_` (which returns it unchanged)
so that Babel extracts it into the catalog; the web layer passes its gettext to `Words`, which
gives Chinese by default and English when the staff interface is English.

Audit details are short English-ish texts written by many places (and the audit trail is
append-only: old rows are never rewritten). They are rendered through DETAILS: one pattern per
shape the code writes (its literal text with `{name}` for each value), each with its Chinese
message; a value is put in words by its name (a `day` as 12月10日, a `role` by ROLES …). A
detail that no pattern matches is shown as written. tests/test_staff_words.py checks that every
action the code writes has a name here, and that every detail shape it writes has a pattern.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Callable, Iterable

from ..channel import Channel


def _(message: str) -> str:
    """Mark a message for translation (Babel extracts `_`); translated when shown."""
    return message


Gettext = Callable[[str], str]

# ---- audit actions (AuditEntry.action)

ACTIONS = {
    # signing in
    "login": _("登录"),
    "login_failed": _("登录失败"),
    "login_throttled": _("登录尝试过多被暂停"),
    "logout": _("退出登录"),
    "forbidden": _("无权限的操作被拒绝"),
    "out_of_area": _("辖区外的查询被拒绝"),
    # the call centre and clinics
    "search": _("查找市民"),
    "view_resident": _("查看市民资料"),
    "reveal_id": _("查看完整身份证号"),
    "reveal_phone": _("查看完整手机号"),
    "book": _("预约"),
    "move": _("改约"),
    "cancel": _("取消预约"),
    "waitlist_add": _("加入候补"),
    "waitlist_leave": _("移出候补"),
    "waitlist_decline": _("候补名额：不需要"),
    # the site's door
    "check_in": _("签到"),
    "check_in_refused": _("签到被拒绝"),
    "check_in_lookup": _("签到查询"),
    "site_lookups_counted": _("签到查询计数"),
    "site_lookup_throttled": _("签到查询过多被暂停"),
    "no_shows": _("标记未到"),
    "leftovers": _("当天剩余名额通知候补"),
    # group lists
    "group_create": _("上传集体预约名单"),
    "group_view": _("查看集体预约名单"),
    "group_add": _("集体名单添加一行"),
    "group_edit": _("集体名单改正一行"),
    "group_remove": _("集体名单删除一行"),
    "group_book": _("集体预约"),
    "group_move": _("集体改约"),
    "group_cancel": _("集体取消预约"),
    "group_download": _("下载集体预约结果"),
    # the admin console
    "create_account": _("新建账号"),
    "create_user": _("新建账号（命令行）"),
    "reset_password": _("重设密码"),
    "disable_account": _("停用账号"),
    "enable_account": _("启用账号"),
    "site_create": _("新建接种点"),
    "site_edit": _("修改接种点"),
    "site_open": _("接种点开放预约"),
    "site_close": _("接种点停止预约"),
    "template_add": _("添加每周时段"),
    "template_remove": _("删除每周时段"),
    "template_apply": _("按每周时段开放预约"),
    "slot_capacity": _("修改时段名额"),
    "slot_reopen": _("重新开放时段"),
    "open_slots": _("开放时段（命令行）"),
    "close_window": _("停诊"),
    "close_day": _("结束当天（标记未到）"),
    "mark_risk_area": _("标记风险地区"),
    "lift_risk_area": _("解除风险地区"),
    "cancel_risk_bookings": _("取消风险地区的预约"),
    "invite": _("发送预约邀请"),
    "invite_start": _("开始发送预约邀请"),
    "remind": _("发送提醒短信"),
    "remind_start": _("开始发送提醒短信"),
    "send_reminders": _("排队发送前一天提醒"),
    "reissue_link": _("重发预约链接"),
    "reissue_expired": _("重发过期链接"),
    "reissue_expired_start": _("开始重发过期链接"),
    "sms_resend": _("重发短信"),
    "export_overdue": _("下载已超期名单"),
    "export_report": _("下载报表"),
    "upload_first_doses": _("上传第一剂接种记录"),
    "import_first_doses": _("导入第一剂接种记录"),
    "import_sites": _("导入接种点"),
    "download_import_rejects": _("下载被拒绝的行"),
    # the city platform
    "handoff": _("广州健康通查询"),
    "handoff_open": _("广州健康通转入"),
    # the command line's maintenance
    "purge": _("删除过期个人信息"),
    "backup": _("备份"),
    "restore": _("恢复备份"),
    "rotate_keys": _("更换密钥"),
}

ROLES = {
    "callcentre": _("12345话务员"),
    "site": _("接种点工作人员"),
    "subdistrict": _("街道工作人员"),
    "admin": _("区卫健局管理员"),
    "clinic": _("家庭医生/社区卫生服务中心"),
}

CHANNELS = {
    Channel.SMS: _("短信链接"),
    Channel.PHONE: _("公开入口（手机验证码）"),
    Channel.CALLCENTRE: _("12345热线"),
    Channel.GROUP: _("集体预约"),
    Channel.FAMILY_DOCTOR: _("电话/家庭医生"),
    Channel.CLINIC_DESK: _("社区卫生服务中心窗口"),
    Channel.HANDOFF: _("广州健康通"),
    Channel.DEMO: _("演示数据"),
}

# Column names: the reports' and lists' CSV headers, and the import files' columns (a refusal
# names the column it is about).
COLUMNS = {
    "day": _("日期"),
    "site_code": _("接种点编码"),
    "site_name": _("接种点名称"),
    "subdistrict": _("街道"),
    "capacity": _("名额"),
    "booked": _("已预约"),
    "checked_in": _("已签到"),
    "no_shows": _("未到"),
    "utilisation_percent": _("使用率（百分比）"),
    "first_doses": _("第一剂"),
    "second_doses": _("已接种第二剂"),
    "not_yet_due": _("未到时间"),
    "due": _("应接种"),
    "overdue": _("已超期"),
    "completion_percent": _("完成率（百分比）"),
    "first_doses_so_far": _("累计第一剂"),
    "second_doses_so_far": _("累计第二剂"),
    "channel": _("渠道"),
    "active": _("待接种"),
    "active_share_percent": _("占待接种的比例（百分比）"),
    "offers_sent": _("发出的候补通知"),
    "offers_taken": _("候补通知：已接受"),
    "offers_declined": _("候补通知：不需要"),
    "offers_expired": _("候补通知：过期未答复"),
    "offers_withdrawn": _("候补通知：已撤回"),
    "offers_open": _("候补通知：保留中"),
    "line": _("行号"),
    "reason": _("原因"),
    # people: the first-dose file's columns (interfaces.md), the overdue list
    "resident": _("市民编号"),
    "name": _("姓名"),
    "id_number": _("身份证号"),
    "phone": _("手机号"),
    "first_dose_date": _("第一剂日期"),
    "vaccine": _("疫苗"),
    "days_overdue": _("超期天数"),
    # sites: the sites file's columns (models/operations/imports/sites.py SITE_WORDS), the site form
    "site_name": _("接种点名称"),
    "site_address": _("接种点地址"),
    "site_phone": _("接种点电话"),
    "address": _("地址"),
}

# Cell values that are codes.
VALUES = {
    "total": _("合计"),
    "yes": _("是"),
    "no": _("否"),
}

CHECK_IN_REFUSALS = {
    "no_booking": _("没有预约"),
    "other_site": _("预约在其他接种点"),
    "other_day": _("预约在其他日期"),
    "cancelled": _("预约已取消"),
    "checked_in": _("已签到"),
    "vaccinated": _("已接种第二剂"),
    "no_show": _("已标记未到"),
    "restricted": _("住在风险地区"),
    "elsewhere": _("不是本接种点今天的预约"),
}

HANDOFF_OUTCOMES = {
    "ok": _("可以预约"),
    "not_found": _("没有这个人的记录"),
    "bad_signature": _("签名不对"),
    "bad_request": _("请求格式不对"),
    "stale": _("请求已过期"),
    "replayed": _("重复的请求"),
    "rate_limited": _("请求过多"),
    "invalid_id": _("身份证号无效"),
    "vaccinated": _("已接种第二剂"),
    "booked": _("已有预约"),
    "restricted": _("住在风险地区"),
    "too_early": _("未到预约时间"),
    "no_room": _("暂无可约名额"),
}

IMPORT_PROBLEMS = {  # ImportFileError.code, in short (the import page explains each at length)
    "missing_file": _("找不到文件"),
    "unreadable": _("无法读取"),
    "not_utf8": _("不是UTF-8编码"),
    "bad_csv": _("CSV格式不对"),
    "long_line": _("有超长的行"),
    "missing_columns": _("缺少必需的列"),
    "empty": _("文件是空的"),
    "interrupted": _("中途停止"),
}
SEARCH_KINDS = {"id": _("按身份证号"), "phone": _("按手机号"), "code": _("按预约码"), "name": _("按姓名")}
LEVELS = {"medium": _("中风险"), "high": _("高风险")}
GROUP_ACTIONS = {"book": _("预约"), "move": _("改约"), "cancel": _("取消")}
REPORT_TABLES = {"subdistricts": _("按街道"), "sites": _("按接种点和日期"), "completion": _("第二剂完成率"),
                 "channels": _("按预约渠道"), "waitlist": _("候补名单")}
WEEKDAYS = (_("周一"), _("周二"), _("周三"), _("周四"), _("周五"), _("周六"), _("周日"))
WEEKDAY_SETS = {"all": _("每天"), "workdays": _("工作日")}
CAP_REACHED = " (cap reached: more from this address are only counted for now)"
EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# ---- audit details: (actions, the shape the code writes, the message). First match wins, so a
# longer shape comes before a shorter one it would also match.

DETAILS: list[tuple[tuple[str, ...], str, str]] = [
    # the call centre, clinics and group lists
    (("search",), "by {kind}, {count} found", _("%(kind)s查找，找到%(count)s人")),
    (("book", "move"), "group list {list}: {code} {site} {day} {start}",
     _("集体名单%(list)s：%(code)s，%(site)s %(day)s %(start)s")),
    (("cancel",), "group list {list}: {code}", _("集体名单%(list)s：%(code)s")),
    (("book", "move"), "{code} {site} {day} {start} via {channel}",
     _("%(code)s，%(site)s %(day)s %(start)s，渠道：%(channel)s")),
    (("book", "move"), "{code} {site} {day} {start}", _("%(code)s，%(site)s %(day)s %(start)s")),
    (("waitlist_add",), "{shown} call back via {channel}", _("%(shown)s，无手机由客服回电，渠道：%(channel)s")),
    (("waitlist_add",), "{shown} call back", _("%(shown)s，无手机由客服回电")),
    (("waitlist_add",), "{shown} via {channel}", _("%(shown)s，渠道：%(channel)s")),
    (("waitlist_decline",), "{shown} {site} {day} {start}", _("%(shown)s：%(site)s %(day)s %(start)s")),
    (("group_create", "group_view", "group_download"), "list {list}: {rows} rows",
     _("名单%(list)s：%(rows)s行")),
    (("group_add",), "list {list}: row {row}", _("名单%(list)s：第%(row)s行")),
    (("group_edit",), "list {list}: row {row} corrected", _("名单%(list)s：第%(row)s行已改正")),
    (("group_remove",), "list {list}: row {row} removed", _("名单%(list)s：第%(row)s行已删除")),
    (("group_book", "group_move", "group_cancel"), "list {list}: {count} {what}, {outside} outside the area",
     _("名单%(list)s：%(what)s%(count)s人，%(outside)s人不在本辖区")),
    (("out_of_area",), "{method} {path} group list {list} row {row}",
     _("%(method)s %(path)s，集体名单%(list)s第%(row)s行")),
    (("out_of_area",), "{method} {path} group list {list}", _("%(method)s %(path)s，集体名单%(list)s")),
    (("out_of_area",), "{method} {path} booking={booking} site={site}",
     _("%(method)s %(path)s，预约%(booking)s，接种点%(site)s")),
    (("out_of_area",), "{method} {path} site={site}", _("%(method)s %(path)s，接种点%(site)s")),
    (("out_of_area",), "{method} {path} b={booking}", _("%(method)s %(path)s，预约%(booking)s")),
    # the site's door
    (("check_in_refused",), "{refusal} {shown} site={site}", _("%(refusal)s：%(shown)s，接种点%(site)s")),
    (("check_in", "check_in_lookup"), "{shown} site={site}", _("%(shown)s，接种点%(site)s")),
    (("site_lookups_counted",), "{count} look-ups this hour site={site}: the first {first} itemised, "
     "then counted every {every}",
     _("接种点%(site)s本小时已查询%(count)s次：前%(first)s次逐条记录，之后每%(every)s次记一条")),
    (("no_shows",), "{count} site={site} day={day}", _("接种点%(site)s %(day)s：%(count)s人未到")),
    (("leftovers",), "{count} left until {end} site={site}: {sent} offered",
     _("接种点%(site)s今天剩余%(count)s剂，截至%(end)s：发出%(sent)s个候补通知")),
    # signing in
    (("login_throttled",), "device" + CAP_REACHED, _("本设备；已达记录上限，此地址之后的尝试暂时只计数")),
    (("login_throttled",), CAP_REACHED.strip(), _("已达记录上限，此地址之后的尝试暂时只计数")),
    (("login_throttled",), "device", _("本设备")),
    # accounts
    (("create_account",), "{role} {username} site={site}", _("%(role)s %(username)s，接种点%(site)s")),
    (("create_account",), "{role} {username} subdistrict={subdistrict}",
     _("%(role)s %(username)s，%(subdistrict)s")),
    (("create_account",), "{role} {username}", _("%(role)s %(username)s")),
    (("create_user",), "{role} {username} for site {site}", _("%(role)s %(username)s，接种点%(site)s")),
    (("create_user",), "{role} {username} for the whole district", _("%(role)s %(username)s，全区")),
    (("create_user",), "{role} {username} for {subdistrict}", _("%(role)s %(username)s，%(subdistrict)s")),
    (("create_user",), "refused: {why}", _("被拒绝：%(why)s")),
    (("create_user",), "{role} {username}", _("%(role)s %(username)s")),
    (("reset_password", "disable_account"), "{username}, all sessions ended", _("%(username)s，已退出所有登录")),
    # sites and windows
    (("site_edit",), "{site}: {fields}", _("%(site)s：%(fields)s")),
    (("template_add",), "{site} weekday {weekday} {start}-{end} x{capacity}",
     _("%(site)s %(weekday)s %(start)s-%(end)s，%(capacity)s个名额")),
    (("template_remove",), "{site} weekday {weekday} {start}-{end}", _("%(site)s %(weekday)s %(start)s-%(end)s")),
    (("template_apply",), "{site} {from_day}..{to_day}: {created} created, {raised} raised, {lowered} lowered, "
     "{unchanged} unchanged, {held} kept taken places, {overlapping} overlapping",
     _("%(site)s %(from_day)s至%(to_day)s：新增%(created)s个时段，增加名额%(raised)s个，减少名额%(lowered)s个，"
       "未变%(unchanged)s个，保留已约名额%(held)s个，时间重叠%(overlapping)s个")),
    (("slot_capacity",), "{site} {day} {start}: {old} -> {new}", _("%(site)s %(day)s %(start)s：名额%(old)s → %(new)s")),
    (("slot_reopen",), "{site} {day} {start}", _("%(site)s %(day)s %(start)s")),
    (("open_slots",), "{created} created, {raised} raised, {lowered} lowered, {unchanged} unchanged, "
     "{overlapping} conflicts site={site} {from_day}..{to_day} capacity={capacity}",
     _("%(site)s %(from_day)s至%(to_day)s，每个时段%(capacity)s个名额：新增%(created)s个时段，增加名额%(raised)s个，"
       "减少名额%(lowered)s个，未变%(unchanged)s个，时间冲突%(overlapping)s个")),
    (("open_slots",), "refused: {why} site={site} {from_day}..{to_day} capacity={capacity}",
     _("被拒绝：%(why)s（%(site)s %(from_day)s至%(to_day)s，每个时段%(capacity)s个名额）")),
    # closing a day or a window
    (("close_window",), "{site} {day} {start} -> {to_site} {to_day}: {moved} moved, {cancelled} cancelled, "
     "{gone} changed meanwhile, {closed} window(s) closed",
     _("%(site)s %(day)s %(start)s → %(to_site)s %(to_day)s：改约%(moved)s人，取消%(cancelled)s人，"
       "期间已变动%(gone)s人，停诊%(closed)s个时段")),
    (("close_window",), "{site} {day} {start} (move to {to_site} {to_day}): {moved} moved, {cancelled} "
     "cancelled, {gone} changed meanwhile, {closed} window(s) closed",
     _("%(site)s %(day)s %(start)s → %(to_site)s %(to_day)s：改约%(moved)s人，取消%(cancelled)s人，"
       "期间已变动%(gone)s人，停诊%(closed)s个时段")),
    (("close_window",), "{site} {day} {start} (cancel all): {moved} moved, {cancelled} cancelled, "
     "{gone} changed meanwhile, {closed} window(s) closed",
     _("%(site)s %(day)s %(start)s（全部取消）：改约%(moved)s人，取消%(cancelled)s人，期间已变动%(gone)s人，"
       "停诊%(closed)s个时段")),
    (("close_day",), "{count} no-shows at {sites} sites day={day}",
     _("%(day)s：%(sites)s个接种点共%(count)s人标记未到")),
    # risk areas
    (("mark_risk_area",), "{subdistrict} {level} from {since} (new)", _("%(subdistrict)s %(level)s，自%(since)s起（新标记）")),
    (("mark_risk_area",), "{subdistrict} {level} from {since} (changed)",
     _("%(subdistrict)s %(level)s，自%(since)s起（已修改）")),
    (("lift_risk_area",), "{subdistrict} {level} from {since} lifted", _("%(subdistrict)s %(level)s（自%(since)s起）已解除")),
    (("cancel_risk_bookings",), "{cancelled} cancelled of {asked} chosen, {sms} SMS queued area={subdistrict}",
     _("%(subdistrict)s：选中的%(asked)s个预约取消了%(cancelled)s个，%(sms)s条短信待发")),
    (("cancel_risk_bookings",), "{cancelled} cancelled of {asked} active, {sms} SMS queued area={subdistrict}",
     _("%(subdistrict)s：%(asked)s个有效预约取消了%(cancelled)s个，%(sms)s条短信待发")),
    # invitations, reminders, links, SMS
    (("invite_start", "invite", "reissue_expired_start", "reissue_expired"), "{scope}, {due} due: stopped after {done}",
     _("%(scope)s，应发%(due)s人：发送%(done)s人后中断")),
    (("invite_start", "invite", "reissue_expired_start", "reissue_expired"), "{scope}, {due} due: {sent} sent",
     _("%(scope)s，应发%(due)s人：已发%(sent)s人")),
    (("invite_start", "invite", "reissue_expired_start", "reissue_expired"), "{scope}, {due} due",
     _("%(scope)s，应发%(due)s人")),
    (("remind_start", "remind"), "invited {days}+ days ago, {due} due: stopped after {done}",
     _("邀请%(days)s天以上未预约，应发%(due)s人：发送%(done)s人后中断")),
    (("remind_start", "remind"), "invited {days}+ days ago, {due} due: {sent} sent",
     _("邀请%(days)s天以上未预约，应发%(due)s人：已发%(sent)s人")),
    (("remind_start", "remind"), "invited {days}+ days ago, {due} due", _("邀请%(days)s天以上未预约，应发%(due)s人")),
    (("invite",), "{count} invited, {sms} SMS queued as_of={day} limit={limit}",
     _("截至%(day)s邀请%(count)s人（上限%(limit)s），%(sms)s条短信待发")),
    (("invite",), "{count} invited, {sms} SMS queued as_of={day}", _("截至%(day)s邀请%(count)s人，%(sms)s条短信待发")),
    (("send_reminders",), "{count} day-before SMS queued day={day}", _("%(day)s的前一天提醒%(count)s条待发")),
    (("reissue_link",), "old links revoked, 1 SMS queued", _("旧链接已作废，1条短信待发")),
    (("sms_resend",), "message {id}", _("短信%(id)s")),
    (("sms_resend",), "all failed: {count}", _("全部发送失败的短信：%(count)s条")),
    (("export_overdue",), "whole district", _("全区")),
    # reports and imports
    (("export_report",), "{table} {span}", _("%(table)s，%(span)s")),
    (("upload_first_doses",), "run {run}: {file}, {size} bytes", _("导入%(run)s：%(file)s，%(size)s字节")),
    (("import_first_doses", "import_sites"), "run {run}: {file}: {created} created, {updated} updated, "
     "{unchanged} unchanged, {rejected} rejected",
     _("导入%(run)s：%(file)s：新增%(created)s，更新%(updated)s，未变%(unchanged)s，拒绝%(rejected)s")),
    (("import_first_doses", "import_sites"), "run {run}: {file}: refused ({problem}), nothing written",
     _("导入%(run)s：%(file)s：文件被拒绝（%(problem)s），没有写入任何记录")),
    (("import_first_doses", "import_sites"), "run {run}: {file}: failed ({problem})",
     _("导入%(run)s：%(file)s：失败（%(problem)s）")),
    (("import_first_doses", "import_sites"), "{created} created, {updated} updated, {unchanged} unchanged, "
     "{rejected} rejected file={file}",
     _("%(file)s：新增%(created)s，更新%(updated)s，未变%(unchanged)s，拒绝%(rejected)s")),
    (("import_first_doses", "import_sites"), "file refused, nothing imported file={file}",
     _("%(file)s：文件被拒绝，没有导入任何记录")),
    (("download_import_rejects",), "run {run}: {rows} rows", _("导入%(run)s：%(rows)s行")),
    # the city platform
    (("handoff",), "{outcome}" + CAP_REACHED + " {shown}", _("%(outcome)s（已达记录上限，此地址之后的请求暂时只计数）%(shown)s")),
    (("handoff",), "{outcome}" + CAP_REACHED, _("%(outcome)s（已达记录上限，此地址之后的请求暂时只计数）")),
    (("handoff",), "{outcome} {shown}", _("%(outcome)s %(shown)s")),
    (("handoff",), "{outcome}", _("%(outcome)s")),
    # maintenance at the command line
    (("backup",), "{file} {size} bytes sha256={sha}, {pruned} older removed (keep {keep})",
     _("%(file)s，%(size)s字节，sha256=%(sha)s；删除%(pruned)s个旧备份（保留%(keep)s个）")),
    (("backup",), "failed: {why}", _("失败：%(why)s")),
    (("restore",), "from {file}, checksum ok, forced over {rows} rows", _("来自%(file)s，校验通过，覆盖了%(rows)s行")),
    (("restore",), "from {file}, checksum ok", _("来自%(file)s，校验通过")),
    (("rotate_keys",), "done: {summary}", _("完成：%(summary)s")),
    (("rotate_keys",), "stopped: {why}", _("中断：%(why)s")),
    (("purge",), "erased {summary}", _("已删除：%(summary)s")),
]

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# What a value of each name looks like (a count is digits; a code or a day one word); others: any text.
_NUMBERS = {"count", "due", "sent", "done", "moved", "cancelled", "gone", "closed", "created", "raised",
            "lowered", "unchanged", "held", "overlapping", "rejected", "updated", "rows", "row", "list", "run",
            "size", "outside", "asked", "sms", "first", "every", "days", "capacity", "old", "new", "limit",
            "pruned", "keep", "sites", "id"}
_WORDS = {"site", "to_site", "day", "to_day", "from_day", "code", "method", "path", "role", "level", "since",
          "kind", "what", "table", "refusal", "channel", "weekday"}


def _group(name: str) -> str:
    body = r"[\d,]+" if name in _NUMBERS else r"\S+" if name in _WORDS else ".*?"
    return f"(?P<{name}>{body})"


def _compile(shape: str) -> re.Pattern:
    parts, at = [], 0
    for m in _PLACEHOLDER.finditer(shape):
        parts.append(re.escape(shape[at:m.start()]))
        parts.append(_group(m.group(1)))
        at = m.end()
    parts.append(re.escape(shape[at:]))
    return re.compile("^" + "".join(parts) + "$", re.S)


_COMPILED = [(actions, _compile(shape), message) for actions, shape, message in DETAILS]


def shape_of(action: str, detail: str) -> str | None:
    """The DETAILS shape that renders this detail, or None (it is shown as written)."""
    for (actions, pattern, _message), (_a, shape, _m) in zip(_COMPILED, DETAILS):
        if action in actions and pattern.match(detail):
            return shape
    return None


# ---- import refusal reasons (ImportReject.reason): codes with their values, as JSON

IMPORT_REASONS = {
    "empty": _("%(column)s为空"),
    "too_long": _("%(column)s超过%(limit)s个字"),
    "site_code_format": _("编码最多32个字符，只能是字母、数字、“-”或“_”"),
    "site_repeated": _("接种点编码%(code)s重复（第一次出现在第%(first)s行）"),
    "subdistrict_unknown": _("“%(value)s”不是天河区21个街道之一"),
    "database": _("数据库拒绝了这一行"),
    "id_length": _("身份证号应为18位，这里是%(length)s位"),
    "id_format": _("身份证号应为17位数字加1位数字或X"),
    "id_birth_date": _("身份证号中的出生日期不存在"),
    "id_checksum": _("身份证号最后一位校验码不对"),
    "id_region": _("身份证号前6位不是已知的地区代码"),
    "id_invalid": _("不是有效的居民身份证号"),
    "id_born_after": _("身份证号中的出生日期晚于第一剂日期"),
    "id_repeated": _("身份证号%(id)s重复（第一次出现在第%(first)s行）"),
    "phone_invalid": _("手机号应为11位、以1开头的大陆手机号"),
    "site_unknown": _("没有编码为“%(code)s”的接种点"),
    "date_format": _("第一剂日期“%(value)s”不是日期（年-月-日）"),
    "date_format_hidden": _("第一剂日期不是日期（年-月-日）"),
    "date_future": _("第一剂日期%(day)s晚于今天"),
    "date_too_early": _("第一剂日期%(day)s早于开始接种的日期（%(earliest)s）"),
}


@dataclass(frozen=True)
class Reason:
    """Why an import row is refused: a code (IMPORT_REASONS) and its values; `text` is the English
    the command line prints (interfaces.md: line number and reason)."""

    code: str
    text: str
    values: tuple[tuple[str, str], ...] = ()


def reason(code: str, text: str, /, **values) -> Reason:
    return Reason(code, text, tuple((k, str(v)) for k, v in values.items()))


def encode_reasons(reasons: Iterable[Reason]) -> str:
    """What ImportReject.reason stores: [[code, {name: value}], …] as compact JSON."""
    return json.dumps([[r.code, dict(r.values)] for r in reasons], ensure_ascii=False, separators=(",", ":"))


def _decode_reasons(stored: str) -> list[tuple[str, dict]] | None:
    if not stored.startswith("["):
        return None  # written before issue 22: English text, shown as it is
    try:
        found = json.loads(stored)
        return [(str(code), dict(values)) for code, values in found]
    except (ValueError, TypeError):
        return None


# ---- putting codes in words


class Words:
    """The vocabulary in one language: `gettext` translates a Chinese message id (identity for
    Chinese); `lang` is "zh" or "en" (how dates are written)."""

    def __init__(self, gettext: Gettext | None = None, lang: str = "zh"):
        self.gettext = gettext or (lambda message: message)
        self.lang = lang

    def _lookup(self, table: dict[str, str], code: str) -> str:
        message = table.get(code)
        return self.gettext(message) if message else code

    def action(self, code: str) -> str:
        return self._lookup(ACTIONS, code)

    def role(self, code: str) -> str:
        return self._lookup(ROLES, code) if code else ""

    def channel(self, code: str) -> str:
        return self._lookup(CHANNELS, code) if code in CHANNELS else self.value(code)

    def column(self, code: str) -> str:
        return self._lookup(COLUMNS, code)

    def value(self, code):
        return self._lookup(VALUES, code) if isinstance(code, str) else code

    def header(self, columns: Iterable[str]) -> list[str]:
        return [self.column(c) for c in columns]

    def day(self, text: str) -> str:
        """2026-12-10 -> 12月10日 / 10 Dec; anything else as it is."""
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            return text
        return f"{day.month}月{day.day}日" if self.lang == "zh" else f"{day.day} {EN_MONTHS[day.month - 1]}"

    def _value(self, name: str, text: str) -> str:
        """A detail's value in words, by its name."""
        g = self.gettext
        if name in ("day", "from_day", "to_day", "since"):
            if text == "now":
                return g(_("现在"))
            return self.day(text) if text not in ("…", "") else text
        if name == "start":
            return g(_("全天")) if text == "all day" else text
        if name == "weekday":
            if text in WEEKDAY_SETS:
                return g(WEEKDAY_SETS[text])
            return g(WEEKDAYS[int(text)]) if text.isdigit() and int(text) < 7 else text
        if name == "scope":
            parts = [p for p in text.split(", ") if p]
            shown = [g(_("全区")) if p == "whole district" else
                     (g(_("接种点#%(id)s")) % {"id": p[6:]} if p.startswith("site #") else p) for p in parts]
            return g(_("，")).join(shown)
        if name == "fields":
            site_fields = {"name": "site_name", "phone": "site_phone"}  # site_edit: a site's fields
            return g(_("、")).join(self.column(site_fields.get(f, f)) for f in text.split(", "))
        if name == "span":
            return self._span(text)
        tables = {"role": ROLES, "channel": CHANNELS, "kind": SEARCH_KINDS, "refusal": CHECK_IN_REFUSALS,
                  "level": LEVELS, "what": GROUP_ACTIONS, "table": REPORT_TABLES, "outcome": HANDOFF_OUTCOMES,
                  "problem": IMPORT_PROBLEMS}
        if name in tables:
            return self._lookup(tables[name], text)
        return text

    def _span(self, text: str) -> str:
        """export_report's span: "all days" or "FROM..TO", then a site code and a sub-district."""
        first, _sep, rest = text.partition(" ")
        if text.startswith("all days"):
            days, rest = self.gettext(_("全部日期")), text[len("all days"):].strip()
        elif ".." in first:
            start, end = first.split("..", 1)
            days = self.gettext(_("%(from_day)s至%(to_day)s")) % {
                "from_day": self._value("day", start), "to_day": self._value("day", end)}
        else:
            return text
        return " ".join(p for p in (days, rest) if p)

    def detail(self, action: str, detail: str) -> str:
        """An audit entry's detail in words (as written when no pattern knows its shape)."""
        if not detail:
            return ""
        for actions, pattern, message in _COMPILED:
            if action not in actions:
                continue
            found = pattern.match(detail)
            if found:
                values = {k: self._value(k, v) for k, v in found.groupdict().items()}
                try:
                    return self.gettext(message) % values
                except (KeyError, ValueError, TypeError):
                    return detail
        return detail

    def import_reason(self, stored: str) -> str:
        """An import refusal in words: its reasons joined; as stored when written before codes."""
        decoded = _decode_reasons(stored)
        if decoded is None:
            return stored
        shown = []
        for code, values in decoded:
            message = IMPORT_REASONS.get(code)
            if message is None:
                shown.append(code)
                continue
            if "column" in values:
                values = {**values, "column": self.column(values["column"])}
            if "day" in values or "earliest" in values:
                values = {**values, **{k: self.day(values[k]) for k in ("day", "earliest") if k in values}}
            try:
                shown.append(self.gettext(message) % values)
            except (KeyError, ValueError, TypeError):
                shown.append(code)
        return self.gettext(_("；")).join(shown)
