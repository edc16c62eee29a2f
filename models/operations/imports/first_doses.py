"""The rules for a row of a first-dose file: what refuses it (every reason, in the vocabulary's
codes and in English), and the record a good row makes, its ID number and phone hashed and
encrypted. Checker does this for a batch, in the server's process or in a worker process
(pipeline.py); the same rows are refused for the same reasons either way.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import NamedTuple

from ...people import pii
from ...rules.tianhe import normalise_subdistrict
from ...staff.vocabulary import Reason, reason
from .csvfile import quote
from .runs import empty, not_a_subdistrict, too_long

DOSE_COLUMNS = ("name", "id_number", "phone", "first_dose_date", "site_code")  # + vaccine, subdistrict

# Inactivated vaccines were first given in China in mid-2020: an earlier date is a typo.
EARLIEST_FIRST_DOSE = dt.date(2020, 1, 1)
# YYYY-MM-DD; also YYYY/M/D, which is how Excel shows and re-saves dates in a Chinese locale.
DATE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$")

# Why an ID number is refused (pii.InvalidIdNumber.reason): the code stored, the command line's words.
ID_REASONS = {
    "length": ("id_length", "id_number must be 18 characters"),
    "format": ("id_format", "id_number must be 17 digits followed by a digit or X"),
    "birth_date": ("id_birth_date", "id_number birth date is not a real date"),
    "checksum": ("id_checksum", "id_number check character is wrong"),
    "region": ("id_region", "id_number area code (first 6 digits) is not a known area code"),
}

# What upsert_resident() compares on an existing record (and writes when one differs).
COMPARED = ("name", "phone_hash", "phone_masked", "first_dose_date", "first_site_id", "vaccine",
            "subdistrict")


# A checked row's record, as Checker.rows() gives it: COMPARED first, then what a new one adds.
FIELDS = COMPARED + ("id_masked", "birth_year", "id_cipher", "phone_cipher")


class SiteRef(NamedTuple):
    """What a first-dose row needs of its site (upsert_resident reads the same two)."""
    id: int
    subdistrict: str


@dataclass(frozen=True)
class Checker:
    """What checking a first-dose row needs; handed once to each worker process (pickled: the
    Vault as its derived keys, pii.Vault.__reduce__)."""
    vault: pii.Vault
    sites: dict[str, SiteRef]
    today: dt.date

    def rows(self, batch: list[tuple[int, dict[str, str]]], encrypt: bool) -> list[tuple]:
        """Each row checked, as (line, reasons, ID hash or "", ID number, phone, fields): the
        reasons it is refused (the repeated-ID one is added by the caller, who sees the whole
        file), the normalised ID number and phone, and for a row without reasons the record's
        FIELDS as upsert_resident() writes them (the two ciphers only when `encrypt`, else None:
        a record already there needs none). Tuples, not dicts: a worker's answers cross a pipe."""
        vault = self.vault
        out = []
        for line, row in batch:
            reasons, values = check_first_dose(row, self.sites, self.today)
            number = values.get("id_number")
            phone = values.get("phone")
            id_hash = vault.keyed_hash(number) if number else ""
            fields = None
            if not reasons:
                site: SiteRef = values["site"]
                fields = (
                    values["name"].strip(), vault.keyed_hash(phone), pii.mask_phone(phone),
                    values["first_dose_date"], site.id, values["vaccine"].strip(),
                    (values["subdistrict"] or site.subdistrict).strip(),
                    pii.mask_id(number), values["birth_date"].year,
                    vault.encrypt(number) if encrypt else None,
                    vault.encrypt(phone) if encrypt else None)
            out.append((line, reasons, id_hash, number, phone, fields))
        return out


def check_first_dose(row: dict[str, str], sites: dict[str, SiteRef], today: dt.date):
    """Return (reasons the row is refused, the values for upsert_resident)."""
    reasons: list[Reason] = []
    values: dict = {"name": row["name"], "vaccine": row.get("vaccine", "")}
    if not row["name"]:
        reasons.append(empty("name"))
    elif len(row["name"]) > 50:
        reasons.append(too_long("name", 50))
    if len(values["vaccine"]) > 50:
        reasons.append(too_long("vaccine", 50))

    first_dose = _check_date(row["first_dose_date"], today, reasons)
    values["first_dose_date"] = first_dose

    if not row["id_number"]:
        reasons.append(empty("id_number"))
    else:
        try:
            values["id_number"] = pii.validate_id(row["id_number"])
        except pii.InvalidIdNumber as exc:
            code, text = ID_REASONS.get(exc.reason, ("id_invalid", "id_number is not a valid resident ID number"))
            if exc.reason == "length":
                length = len(pii.normalise_id(row["id_number"]))
                reasons.append(reason(code, f"{text}, not {length}", length=length))
            else:
                reasons.append(reason(code, text))
        else:
            born = values["birth_date"] = pii.birth_date(values["id_number"])
            if born > (first_dose or today):
                reasons.append(reason("id_born_after", "id_number birth date is after the first dose"))

    if not row["phone"]:
        reasons.append(empty("phone"))
    else:
        try:
            values["phone"] = pii.normalise_phone(row["phone"])
        except pii.InvalidPhone:
            reasons.append(reason("phone_invalid", "phone is not a mainland mobile number (11 digits starting with 1)"))

    code = row["site_code"]
    values["site"] = sites.get(code)
    if not code:
        reasons.append(empty("site_code"))
    elif values["site"] is None:
        reasons.append(reason("site_unknown", f"unknown site code {quote(code)}", code=quote(code)))

    subdistrict = row.get("subdistrict", "")
    values["subdistrict"] = normalise_subdistrict(subdistrict) if subdistrict else ""
    if values["subdistrict"] is None:
        reasons.append(not_a_subdistrict(subdistrict))
    return reasons, values


def _check_date(text: str, today: dt.date, reasons: list[Reason]) -> dt.date | None:
    if not text:
        reasons.append(empty("first_dose_date"))
        return None
    match = DATE.match(text)
    try:
        day = dt.date(*map(int, match.groups())) if match else None
    except ValueError:
        day = None
    if day is None:
        # Quote the value only when it looks like a date: a misplaced ID number or phone must not be echoed.
        shown = f" {text}" if match else ""
        english = f"first_dose_date{shown} is not a date (YYYY-MM-DD)"
        reasons.append(reason("date_format", english, value=text) if match else reason("date_format_hidden", english))
    elif day > today:
        reasons.append(reason("date_future", f"first_dose_date {day} is in the future", day=day))
    elif day < EARLIEST_FIRST_DOSE:
        reasons.append(reason("date_too_early", f"first_dose_date {day} is before vaccination began "
                                                f"({EARLIEST_FIRST_DOSE})", day=day, earliest=EARLIEST_FIRST_DOSE))
    else:
        return day
    return None
