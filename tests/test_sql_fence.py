"""SQL behind one door: every query string lives in models/db, or in the booking engine (the one
place that writes places: engine.py, and offers.py, its waiting list's offers); and the two rules a slot is judged by, each defined once in
models/db/places.py in Python, as a Tortoise filter and in SQL, agree on every case.

The fence reads the source: a string literal or f-string (not a docstring) that reads as SQL —
a statement (SELECT, INSERT, UPDATE, DELETE, PRAGMA, WITH, BEGIN … in capitals, as the code
writes SQL; a few shapes in any case), or a fragment (WHERE, JOIN, ORDER BY, `column = ?`) —
anywhere in models/, web/ or run.py outside those two places fails it, with file and line."""
from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path

from models.db import fast, places
from models.db.tables import Slot
from models.rules.interval import has_started
from tests.conftest import NOW
from tests.factories import make_site

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("models", "web", "run.py")
ALLOWED = ("models/db/", "models/booking/engine.py", "models/booking/offers.py")

_STATEMENT = re.compile(
    r"^\s*\(?\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|WITH|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|"
    r"VACUUM|ANALYZE|EXPLAIN|CREATE|DROP|ALTER|REINDEX|TRUNCATE|COPY|SET LOCAL)\b\s*\S")
_SHAPES = [re.compile(p) for p in (
    r"\bSELECT\b[\s\S]*\bFROM\b", r"\bINSERT\s+INTO\b", r"\bDELETE\s+FROM\b", r"\bUPDATE\s+\S+\s+SET\b",
    r"\bPRAGMA\s+\w", r"\bWHERE\b", r"\bJOIN\b", r"\bORDER BY\b", r"\bGROUP BY\b", r"\bON CONFLICT\b",
    r"\bFOR UPDATE\b", r"[\w\"]\s*(=|<>|!=|<=|>=|<|>)\s*(\?|\$\d)",
    # lower-case SQL, in shapes prose does not take
    r"(?i)\bselect\s[\s\S]*\bfrom\s+[\"\w.]+\s+(where|order|group|join|limit)\b",
    r"(?i)\binsert\s+into\s+[\"\w.]+\s*\(", r"(?i)\bdelete\s+from\s+[\"\w.]+\s+where\b",
    r"(?i)\bupdate\s+[\"\w.]+\s+set\s+[\"\w]+\s*=", r"(?i)^\s*pragma\s+\w+\s*(=|$|\()",
)]


def is_sql(text: str) -> bool:
    return bool(_STATEMENT.match(text)) or any(p.search(text) for p in _SHAPES)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _strings(tree: ast.AST):
    """(line, text) of every string literal and f-string (its fixed parts, `{}` for each value)
    but docstrings; an f-string's own parts are not read twice."""
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            yield node.lineno, "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in node.values)


def query_strings_outside(root: Path = ROOT) -> list[str]:
    """Every string that reads as SQL in models/, web/ and run.py, outside models/db and the
    engine: `path:line: the string's start`."""
    found = []
    for name in SCANNED:
        top = root / name
        for path in sorted([top] if top.is_file() else top.rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative.startswith(ALLOWED):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), relative)
            for line, text in _strings(tree):
                if is_sql(text):
                    found.append(f"{relative}:{line}: {' '.join(text.split())[:80]}")
    return sorted(found)


def test_no_query_string_lives_outside_models_db_and_the_engine():
    found = query_strings_outside()
    assert not found, "SQL outside models/db and models/booking/engine.py:\n" + "\n".join(found)


def test_the_fence_knows_sql_from_prose():
    for sql in ('SELECT id FROM "slot" WHERE id = ?', "PRAGMA integrity_check", " AND s.site_id = ?",
                "UPDATE resident SET name = ? WHERE id = ?", "select count(*) from booking where status = 'x'",
                "DELETE FROM hold", 'sl."day" >= ? AND sl.held < sl.capacity - sl.booked',
                "WITH w AS (SELECT 1) SELECT * FROM w", "insert into site (code) values ($1)"):
        assert is_sql(sql), sql
    for prose in ("create slots, or set their capacity (never below bookings)", "Select a site from the list",
                  "update your booking", "delete", "set, {} characters", "请选择接种点", "(with url: )?\\S*\\?\\S*"):
        assert not is_sql(prose), prose


def test_the_fence_reads_fstrings_and_skips_docstrings(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.py").write_text(
        '"""We run SELECT id FROM slot WHERE id = ? here."""\n'
        'def f(t):\n    """UPDATE slot SET booked = 1: said, not run."""\n'
        '    return f"SELECT {t} FROM x WHERE y = ?"\n', encoding="utf-8")
    (tmp_path / "models" / "db").mkdir()
    (tmp_path / "models" / "db" / "b.py").write_text('Q = "DELETE FROM hold WHERE id = ?"\n', encoding="utf-8")
    assert query_strings_outside(tmp_path) == ["models/a.py:4: SELECT {} FROM x WHERE y = ?"]


# ---- the rules a slot is judged by: Python, filter and SQL agree

async def _ids(sql: str, params: list) -> set[int]:
    return {row["id"] for row in await fast.rows(f"SELECT sl.id AS id FROM {fast.table(Slot)} sl WHERE {sql}",
                                                 params)}


async def test_has_room_is_the_same_in_python_as_a_filter_and_in_sql(db):
    site = await make_site()
    slots = {}
    day = NOW.date() + dt.timedelta(days=1)
    n = 0
    for capacity in range(0, 4):
        for booked in range(0, capacity + 1):
            for held in range(0, capacity - booked + 1):  # the database refuses booked + held > capacity
                n += 1
                slot = await Slot.create(site=site, day=day, start=f"{n // 60:02d}:{n % 60:02d}", end="23:59",
                                         capacity=capacity, booked=booked, held=held)
                slots[slot.id] = (capacity, booked, held)
    python = {i for i, (c, b, h) in slots.items() if places.has_room(c, b, h)}
    assert python == {i for i, (c, b, h) in slots.items() if places.free(c, b, h) > 0}
    assert 0 < len(python) < len(slots)
    assert await _ids(places.has_room_sql("sl"), []) == python
    assert set(await Slot.filter(places.has_room_filter()).values_list("id", flat=True)) == python
    assert set(await Slot.filter(Slot.has_room()).values_list("id", flat=True)) == python
    assert {s.id for s in await Slot.all() if s.free > 0} == python


async def test_window_started_is_the_same_in_python_as_a_filter_and_in_sql(db):
    site = await make_site()
    now = NOW.replace(hour=9, minute=0, second=30)
    cases = {}
    for days in (-1, 0, 1):
        day = now.date() + dt.timedelta(days=days)
        for start in ("00:00", "08:59", "09:00", "09:01", "10:00", "23:59"):
            slot = await Slot.create(site=site, day=day, start=start, end="23:59", capacity=1)
            cases[slot.id] = (day, start)
    python = {i for i, (day, start) in cases.items() if not has_started(day, start, now)}
    assert python == {i for i, (day, start) in cases.items() if (day, start) > (now.date(), "09:00")}
    conn = fast.db()
    assert await _ids(places.not_started_sql("sl"), places.not_started_params(conn, now)) == python
    assert set(await Slot.filter(places.not_started_filter(now)).values_list("id", flat=True)) == python
