"""Importing the sites file: the rules for a row (code, name, sub-district, address, phone), and
each good row creating or updating its site. A district has dozens of sites: rows are written
one at a time, a batch a transaction as every import does (runs.py).
"""
from __future__ import annotations

import re
from collections import Counter

from tortoise.exceptions import BaseORMException

from ...db.tables import ImportRun, Site, StaffUser
from ...rules.tianhe import normalise_subdistrict
from ...staff.vocabulary import Reason, reason
from .runs import (DATABASE_REFUSED, SITES, ImportResult, Progress, Reject, RowError, add_batch,
                   empty, not_a_subdistrict, run_import, save_progress, too_long)

SITE_COLUMNS = ("code", "name", "subdistrict", "address")  # `phone` may be left out
SITE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# A sites file's columns, as the vocabulary names them (a site's name is not a person's).
SITE_WORDS = {"code": "site_code", "name": "site_name", "address": "site_address", "phone": "site_phone",
              "subdistrict": "subdistrict"}


async def import_sites(source, *, run: ImportRun | None = None, user: StaffUser | None = None,
                       on_progress: Progress | None = None,
                       on_reject: Reject | None = None) -> ImportResult:
    """Create or update the sites listed in a CSV file (a path or a binary file object)."""
    seen: dict[str, int] = {}  # site codes: a district has dozens of sites

    async def prepare(run_id: int, batch, result: ImportResult):
        return lambda: write_batch(run_id, list(batch), result)

    async def write_batch(run_id: int, batch, result: ImportResult) -> list[RowError]:
        rejects: list[RowError] = []
        counts: Counter = Counter()
        for line, row in batch:
            reasons, values = _check_site(row)
            code = values.get("code")
            if code in seen:
                reasons.append(reason("site_repeated", f"site code {code} appears again (first on line {seen[code]})",
                                      code=code, first=seen[code]))
            elif code:
                seen[code] = line
            if reasons:
                rejects.append(RowError.of(line, reasons))
                continue
            try:
                counts[await _upsert_site(values)] += 1
            except BaseORMException:
                rejects.append(RowError.of(line, [DATABASE_REFUSED]))
        await save_progress(run_id, result, counts, len(batch), rejects)
        add_batch(result, counts, len(batch), rejects)
        return rejects

    return await run_import(SITES, source, SITE_COLUMNS, prepare, run=run, user=user,
                            on_progress=on_progress, on_reject=on_reject)


def _check_site(row: dict[str, str]) -> tuple[list[Reason], dict[str, str]]:
    reasons: list[Reason] = []
    code = row["code"]
    if not SITE_CODE.match(code):
        reasons.append(empty("code", SITE_WORDS) if not code else
                       reason("site_code_format", "code must be up to 32 letters, digits, '-' or '_'"))
    subdistrict = normalise_subdistrict(row["subdistrict"])
    if not subdistrict:
        reasons.append(empty("subdistrict", SITE_WORDS) if not row["subdistrict"]
                       else not_a_subdistrict(row["subdistrict"]))
    for column, limit in (("name", 100), ("address", 200), ("phone", 40)):
        value = row.get(column, "")
        if not value and column != "phone":
            reasons.append(empty(column, SITE_WORDS))
        elif len(value) > limit:
            reasons.append(too_long(column, limit, SITE_WORDS))
    values = {"code": code, "name": row["name"], "subdistrict": subdistrict or "",
              "address": row["address"], "phone": row.get("phone", "")}
    return reasons, values


async def _upsert_site(values: dict[str, str]) -> str:
    site = await Site.get_or_none(code=values["code"])
    if site is None:
        await Site.create(**values)
        return "created"
    changed = {k: v for k, v in values.items() if getattr(site, k) != v}
    if not changed:
        return "unchanged"
    for key, value in changed.items():
        setattr(site, key, value)
    await site.save(update_fields=list(changed))
    return "updated"
