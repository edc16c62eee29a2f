"""The staff's language everywhere (issue 22): every audit action the code can write has a name in
the vocabulary (models/staff/vocabulary.py), every shape of detail it writes is put in words, the
audit page shows no raw code, and every CSV download opens in Excel and WPS (a BOM, headers in
the interface's language).

The code's actions and details are found by reading the sources (ast): a new `record(…)` with an
action or a detail the vocabulary does not know fails here, naming the file and line.
"""
from __future__ import annotations

import ast
import csv
import io
import itertools
import re
from pathlib import Path

import pytest

from models.db.tables import AuditEntry
from models.people import lookup
from models.staff import vocabulary
from models.staff.vocabulary import Words
from tests.pages import get_page
from tests.staff_helpers import make_staff, sign_in
from tests.test_csv_safe import csv_downloads, hostile  # noqa: F401 (a fixture: formulas in every CSV's cells)

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.glob("web/**/*.py"), *ROOT.glob("models/**/*.py"), ROOT / "run.py"])
SAMPLE = "7"  # what a value written into a detail stands for when the shapes are checked

# Actions the code computes: the expression as written -> what it can be.
DYNAMIC = {
    'f"reveal_{field}"': {f"reveal_{f}" for f in lookup.FIELDS},
    "placed.kind": {"book", "move"},
    "change.kind": {"book", "move", "cancel"},
    "OUT_OF_AREA": {"out_of_area"},
    'f"group_{action}"': {"group_book", "group_move", "group_cancel"},
    # web/routes/admin/invitations.py: _start(…, action, detail) records the batch's end
    "action@web/routes/admin/invitations.py": {"invite", "remind", "reissue_expired"},
    # run.py: _import's action is "import_" + its kind; audit_cli passes its argument on
    "action@run.py": {"import_sites", "import_first_doses"},
}
PASS_THROUGH = {("web/staff_auth.py", "action"), ("run.py", "action")}  # def record(…)/audit_cli(…) bodies


def _calls():
    """(file, line, action expression, detail expression or None) of every audit write."""
    for path in SOURCES:
        rel = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            keywords = {k.arg: k.value for k in node.keywords}
            action = detail = None
            if name == "record" and "action" in keywords:  # models.staff.audit.record(action=…)
                action, detail = keywords["action"], keywords.get("detail")
            elif name == "record" and len(node.args) >= 2:  # web.staff_auth.record(request, action, …)
                action, detail = node.args[1], keywords.get("detail")
            elif name == "audit_cli" and len(node.args) == 2:
                action, detail = node.args
            elif name == "refuse_outside":  # web/scoping.py records out_of_area "METHOD PATH detail"
                action = ast.Name("OUT_OF_AREA")
                detail = keywords.get("detail")
                detail = ast.JoinedStr([ast.Constant("GET /x "), detail]) if detail is not None else None
            else:
                continue
            yield rel, node.lineno, action, detail


def _actions_of(rel: str, expr) -> set[str] | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        a, b = _actions_of(rel, expr.body), _actions_of(rel, expr.orelse)
        return a | b if a is not None and b is not None else None
    source = ast.unparse(expr).replace("'", '"')
    return DYNAMIC.get(source) or DYNAMIC.get(f"{source}@{rel}")


def _samples(expr) -> list[str] | None:
    """Every text the detail expression can give, each value written as SAMPLE; None: unknown."""
    if isinstance(expr, ast.Constant):
        return [str(expr.value)]
    if isinstance(expr, ast.FormattedValue):
        return _samples(expr.value) if isinstance(expr.value, ast.IfExp) else _value(expr.value)
    if isinstance(expr, ast.JoinedStr):
        parts = [_samples(v) for v in expr.values]
        return None if None in parts else ["".join(p) for p in itertools.product(*parts)]
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        left, right = _samples(expr.left), _samples(expr.right)
        return None if left is None or right is None else [a + b for a in left for b in right]
    if isinstance(expr, ast.IfExp):
        a, b = _samples(expr.body), _samples(expr.orelse)
        return None if a is None or b is None else a + b
    if isinstance(expr, ast.BoolOp) and isinstance(expr.op, ast.Or):
        found = [_samples(v) if not isinstance(v, (ast.Name, ast.Attribute)) else [SAMPLE] for v in expr.values]
        return None if None in found else [s for f in found for s in f]
    if isinstance(expr, ast.Subscript):  # f"…"[:300]
        return _samples(expr.value)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "strip":
        found = _samples(expr.func.value)
        return None if found is None else [s.strip() for s in found]
    if isinstance(expr, ast.Attribute):  # site.code, account.username: a value, no words
        return [SAMPLE]
    return None


# Values written into a detail that are texts of several parts (a closure, a span of days, the
# first half of a detail): their details are checked by WRITTEN's examples instead.
COMPOSITE = {"c", "where", "detail", "span", "what", "route", "outcome", "scope", "summary", "_span"}


def _value(expr) -> list[str] | None:
    """A value put into an f-string: one value (SAMPLE), or None when it is a text of several parts."""
    if isinstance(expr, ast.Name):
        return None if expr.id in COMPOSITE else [SAMPLE]
    if isinstance(expr, ast.Call):
        func = expr.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return None if name in COMPOSITE else [SAMPLE]
    return [SAMPLE]


def _has_words(text: str) -> bool:
    return bool(re.search(r"[A-Za-z]{2,}", text.replace("GET /x", "")))


CALLS = list(_calls())


def test_the_sources_are_read():
    # Guards the tests below: a parser that found nothing would make them pass trivially.
    assert len(CALLS) > 60
    assert {"book", "check_in_refused", "reveal_id", "login_throttled", "close_window"} <= {
        a for rel, _line, expr, _d in CALLS for a in (_actions_of(rel, expr) or ())}


def test_every_action_the_code_can_write_has_a_chinese_name():
    unknown, unnamed = [], []
    for rel, line, expr, _detail in CALLS:
        if (rel, ast.unparse(expr)) in PASS_THROUGH:
            continue
        actions = _actions_of(rel, expr)
        if actions is None:
            unknown.append(f"{rel}:{line}: {ast.unparse(expr)} (add what it can be to DYNAMIC)")
            continue
        unnamed += [f"{rel}:{line}: {a}" for a in sorted(actions) if a not in vocabulary.ACTIONS]
    assert not unknown, "\n".join(unknown)
    assert not unnamed, "actions without a name in models/staff/vocabulary.py ACTIONS:\n" + "\n".join(unnamed)
    for code, name in vocabulary.ACTIONS.items():
        assert re.search(r"[\u4e00-\u9fff]", name) and not re.search(r"[a-z]{2,}", name), (code, name)


# Details built from values the parser cannot follow: a real example of each.
WRITTEN = [
    ("close_window", "TH01 2026-12-10 all day -> TH02 2026-12-11: 0 moved, 3 cancelled, 0 changed meanwhile, "
                     "1 window(s) closed"),
    ("close_window", "TH01 2026-12-10 08:30 (cancel all): 0 moved, 3 cancelled, 0 changed meanwhile, "
                     "1 window(s) closed"),
    ("close_window", "TH01 2026-12-10 all day (move to TH02 2026-12-11): 2 moved, 1 cancelled, 0 changed "
                     "meanwhile, 3 window(s) closed"),
    ("invite_start", "五山街, site #3, 120 due"),
    ("invite", "whole district, 120 due: 120 sent"),
    ("remind", "invited 7+ days ago, 12 due: stopped after 5"),
    ("reissue_expired", "whole district, 3 due: 3 sent"),
    ("import_first_doses", "run 4: doses.csv: 2 created, 0 updated, 0 unchanged, 2 rejected"),
    ("import_first_doses", "run 4: doses.csv: refused (not_utf8), nothing written"),
    ("import_sites", "3 created, 0 updated, 0 unchanged, 0 rejected file=sites.csv"),
    ("import_first_doses", "file refused, nothing imported file=doses.csv"),
    ("login_throttled", "device"),
    ("login_throttled", "device (cap reached: more from this address are only counted for now)"),
    ("handoff", "bad_signature (cap reached: more from this address are only counted for now)"),
    ("export_report", "sites 2021-06-25..2021-07-01 S01 五山街"),
    ("export_report", "subdistricts all days 石牌街"),
    ("check_in_refused", "other_day 4401**********4018 site=TH01"),
    ("book", "ABCD-EFGH TH01 2026-12-10 08:30 via family_doctor"),
    ("group_book", "list 3: 5 book, 1 outside the area"),
    ("template_add", "TH01 weekday workdays 08:30-09:30 x20"),
]


def test_every_detail_the_code_writes_reads_in_chinese():
    unreadable = []
    for rel, line, expr, detail in CALLS:
        if detail is None or (rel, ast.unparse(expr)) in PASS_THROUGH:
            continue
        actions = _actions_of(rel, expr) or set()
        samples = _samples(detail)
        if samples is None:
            continue  # built from variables: WRITTEN has examples of each
        for action, sample in itertools.product(sorted(actions), samples):
            if _has_words(sample) and vocabulary.shape_of(action, sample) is None:
                unreadable.append(f"{rel}:{line}: {action} {sample!r}")
    assert not unreadable, ("details no shape in models/staff/vocabulary.py DETAILS puts in words "
                            "(each value shown as 7):\n" + "\n".join(unreadable))
    words = Words()
    for action, detail in WRITTEN:
        shown = words.detail(action, detail)
        assert not re.search(r"[a-z]{2,}", re.sub(r"\S+\.csv", "", shown)), (action, detail, shown)


def test_a_closure_reads_in_chinese_and_in_english():
    detail = WRITTEN[0][1]
    assert Words().detail("close_window", detail) == \
        "TH01 12月10日 全天 → TH02 12月11日：改约0人，取消3人，期间已变动0人，停诊1个时段"
    from web.i18n import translations
    english = Words(translations("en").gettext, "en").detail("close_window", detail)
    assert "10 Dec" in english and "all day" in english and "3 cancelled" in english and "改约" not in english


# ---- the audit page


@pytest.fixture
async def admin(db, client):
    await make_staff("admin", "boss")
    await sign_in(client, "boss")
    return client


async def test_the_audit_page_shows_no_raw_code(admin):
    for action, detail in WRITTEN:
        await AuditEntry.create(username="cli", role="", action=action, detail=detail, address="")
    await AuditEntry.create(username="agent", role="callcentre", action="reveal_id", detail="", address="")
    soup = await get_page(admin, "/admin")
    table = soup.find("table", class_="data")
    cells = [td.get_text(" ", strip=True) for tr in table.find("tbody").find_all("tr") for td in tr.find_all("td")]
    shown = " | ".join(cells)
    for code in {a for a, _d in WRITTEN} | {"reveal_id", "login", "callcentre"}:
        assert not re.search(rf"(?<![\w/-]){code}(?![\w-])", shown), (code, shown)
    assert "停诊" in shown and "查看完整身份证号" in shown and "12345话务员" in shown
    assert "TH01 12月10日 全天 → TH02 12月11日：改约0人，取消3人" in shown
    options = [o.get_text(strip=True) for o in soup.find("select", id="f-action").find_all("option")]
    assert "查看完整身份证号" in options and "reveal_id" not in options and "login" not in options
    values = [o["value"] for o in soup.find("select", id="f-action").find_all("option")]
    assert "reveal_id" in values  # the filter still asks for the code

    filtered = await get_page(admin, "/admin?action=reveal_id")
    rows = filtered.find("table", class_="data").find("tbody").find_all("tr")
    assert len(rows) == 1 and "查看完整身份证号" in rows[0].get_text()


async def test_the_audit_page_in_english_uses_english_names(admin):
    await AuditEntry.create(username="door", role="site", action="check_in_refused",
                            detail="other_day 4401**********4018 site=TH01", address="")
    admin.cookies.set("lang", "en")
    soup = await get_page(admin, "/admin")
    row = soup.find("table", class_="data").find("tbody").find("tr").get_text(" ", strip=True)
    assert "check_in_refused" not in row and "预约" not in row and "签到" not in row
    assert "Check-in refused" in row and "TH01" in row


# ---- every CSV download: a BOM, headers in the interface's language, no codes


CJK = re.compile(r"[\u4e00-\u9fff]")


async def test_every_csv_download_has_a_bom_and_headers_in_the_staffs_language(client, hostile):
    await sign_in(client, "boss")
    urls = csv_downloads(client.app, hostile)
    codes = set(vocabulary.CHANNELS) | set(vocabulary.VALUES) | set(vocabulary.COLUMNS)
    for lang in ("zh", "en"):
        client.cookies.set("lang", lang)
        for route, url in urls.items():
            response = await client.get(url)
            assert response.status_code == 200, (url, response.text[:300])
            assert response.content.startswith(b"\xef\xbb\xbf"), f"{url}: no BOM, Excel and WPS misread it"
            rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
            header = rows[0]
            if lang == "zh":
                assert all(CJK.search(h) for h in header), (url, header)
            else:
                assert not any(CJK.search(h) for h in header) and all(h[:1].isupper() for h in header), (url, header)
            raw = [cell for row in rows for cell in row if cell in codes]
            assert not raw, (url, lang, raw)
    client.cookies.delete("lang")
