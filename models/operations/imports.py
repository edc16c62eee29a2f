"""CSV imports of sites and first-dose records: each row checked, good rows upserted one by one."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tortoise.exceptions import BaseORMException

from ..db.tables import Site
from ..people import pii
from ..people.residents import upsert_resident
from ..rules.tianhe import normalise_subdistrict

SITE_COLUMNS = ("code", "name", "subdistrict", "address")  # `phone` may be left out
DOSE_COLUMNS = ("name", "id_number", "phone", "first_dose_date", "site_code")  # + vaccine, subdistrict

# Inactivated vaccines were first given in China in mid-2020: an earlier date is a typo.
EARLIEST_FIRST_DOSE = dt.date(2020, 1, 1)
SITE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# YYYY-MM-DD; also YYYY/M/D, which is how Excel shows and re-saves dates in a Chinese locale.
DATE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$")
LONG_NUMBER = re.compile(r"\d{7,}")

ID_REASONS = {
    "length": "id_number must be 18 characters",
    "format": "id_number must be 17 digits followed by a digit or X",
    "birth_date": "id_number birth date is not a real date",
    "checksum": "id_number check character is wrong",
    "region": "id_number area code (first 6 digits) is not a known area code",
}


class ImportFileError(ValueError):
    """The whole file cannot be imported (unreadable, not UTF-8, a required column missing)."""


@dataclass(frozen=True)
class RowError:
    line: int  # physical line in the file; the header is line 1
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.errors)

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def summary(self) -> str:
        return (f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.rejected} rejected")


def read_csv(path: str | Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Check the whole file, then return its rows as (line number, {column: cell}).

    The file is read once (a pipe or /dev/stdin works too) and parsed twice: a whole-file problem
    surfaces before any row is written.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path}: is a directory, not a CSV file") from None
    except UnicodeDecodeError:
        raise ImportFileError(
            f"{path.name}: not UTF-8 text; in Excel use Save As \"CSV UTF-8\"") from None
    for _ in _rows(text, path.name, required):
        pass
    return _rows(text, path.name, required)


def _rows(text: str, name: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    while True:
        line = reader.line_num + 1  # where the next row starts (blank lines count)
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ImportFileError(f"{name}: line {line}: not valid CSV ({exc})") from None
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        if header is None:
            header = [c.lower() for c in cells]
            missing = [c for c in required if c not in header]
            if missing:
                raise ImportFileError(f"{name}: missing column(s) {', '.join(missing)}; "
                                      f"the header must name {', '.join(required)}")
            continue
        yield line, {col: (cells[i] if i < len(cells) else "") for i, col in enumerate(header)}
    if header is None:
        raise ImportFileError(f"{name}: the file is empty (no header row)")


async def import_sites(path: str | Path) -> ImportResult:
    """Create or update the sites listed in a CSV file."""
    result = ImportResult()
    seen: dict[str, int] = {}
    for line, row in read_csv(path, SITE_COLUMNS):
        reasons, values = _check_site(row)
        code = values.get("code")
        if code in seen:
            reasons.append(f"site code {code} appears again (first on line {seen[code]})")
        elif code:
            seen[code] = line
        if reasons:
            result.errors.append(RowError(line, "; ".join(reasons)))
            continue
        try:
            result.count(await _upsert_site(values))
        except BaseORMException:
            result.errors.append(RowError(line, "the database refused this row"))
    return result


def _check_site(row: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    reasons: list[str] = []
    code = row["code"]
    if not SITE_CODE.match(code):
        reasons.append("code is empty" if not code else
                       "code must be up to 32 letters, digits, '-' or '_'")
    subdistrict = normalise_subdistrict(row["subdistrict"])
    if not subdistrict:
        reasons.append("subdistrict is empty" if not row["subdistrict"] else
                       f"subdistrict {_quote(row['subdistrict'])} is not one of Tianhe's 21 sub-districts")
    for column, limit in (("name", 100), ("address", 200), ("phone", 40)):
        value = row.get(column, "")
        if not value and column != "phone":
            reasons.append(f"{column} is empty")
        elif len(value) > limit:
            reasons.append(f"{column} is longer than {limit} characters")
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


async def import_first_doses(vault: pii.Vault, path: str | Path, *, today: dt.date) -> ImportResult:
    """Create or update first-dose records from a CSV file; re-importing the same file changes nothing."""
    result = ImportResult()
    sites = {site.code: site for site in await Site.all()}
    seen: dict[str, int] = {}
    for line, row in read_csv(path, DOSE_COLUMNS):
        reasons, values = _check_first_dose(row, sites, today)
        number = values.get("id_number")
        if number in seen:
            reasons.append(f"id_number {pii.mask_id(number)} appears again (first on line {seen[number]})")
        elif number:
            seen[number] = line
        if reasons:
            result.errors.append(RowError(line, "; ".join(reasons)))
            continue
        try:
            _, outcome = await upsert_resident(vault, **values)
        except BaseORMException:
            result.errors.append(RowError(line, "the database refused this row"))
            continue
        result.count(outcome)
    return result


def _check_first_dose(row: dict[str, str], sites: dict[str, Site], today: dt.date):
    """Return (reasons the row is refused, the values for upsert_resident)."""
    reasons: list[str] = []
    values: dict = {"name": row["name"], "vaccine": row.get("vaccine", "")}
    if not row["name"]:
        reasons.append("name is empty")
    elif len(row["name"]) > 50:
        reasons.append("name is longer than 50 characters")
    if len(values["vaccine"]) > 50:
        reasons.append("vaccine is longer than 50 characters")

    first_dose = _check_date(row["first_dose_date"], today, reasons)
    values["first_dose_date"] = first_dose

    if not row["id_number"]:
        reasons.append("id_number is empty")
    else:
        try:
            values["id_number"] = pii.validate_id(row["id_number"])
        except pii.InvalidIdNumber as exc:
            reason = ID_REASONS.get(exc.reason, "id_number is not a valid resident ID number")
            if exc.reason == "length":
                reason += f", not {len(pii.normalise_id(row['id_number']))}"
            reasons.append(reason)
        else:
            born = pii.birth_date(values["id_number"])
            if born > (first_dose or today):
                reasons.append("id_number birth date is after the first dose")

    if not row["phone"]:
        reasons.append("phone is empty")
    else:
        try:
            values["phone"] = pii.normalise_phone(row["phone"])
        except pii.InvalidPhone:
            reasons.append("phone is not a mainland mobile number (11 digits starting with 1)")

    code = row["site_code"]
    values["site"] = sites.get(code)
    if not code:
        reasons.append("site_code is empty")
    elif values["site"] is None:
        reasons.append(f"unknown site code {_quote(code)}")

    subdistrict = row.get("subdistrict", "")
    values["subdistrict"] = normalise_subdistrict(subdistrict) if subdistrict else ""
    if values["subdistrict"] is None:
        reasons.append(f"subdistrict {_quote(subdistrict)} is not one of Tianhe's 21 sub-districts")
    return reasons, values


def _quote(text: str) -> str:
    """A cell value fit to print: a long run of digits may be an ID number or phone put in the wrong column."""
    text = text[:32]
    return LONG_NUMBER.sub(lambda m: "*" * len(m.group()), text)


def _check_date(text: str, today: dt.date, reasons: list[str]) -> dt.date | None:
    if not text:
        reasons.append("first_dose_date is empty")
        return None
    match = DATE.match(text)
    try:
        day = dt.date(*map(int, match.groups())) if match else None
    except ValueError:
        day = None
    if day is None:
        # Quote the value only when it looks like a date: a misplaced ID number or phone must not be echoed.
        shown = f" {text}" if match else ""
        reasons.append(f"first_dose_date{shown} is not a date (YYYY-MM-DD)")
    elif day > today:
        reasons.append(f"first_dose_date {day} is in the future")
    elif day < EARLIEST_FIRST_DOSE:
        reasons.append(f"first_dose_date {day} is before vaccination began ({EARLIEST_FIRST_DOSE})")
    else:
        return day
    return None
