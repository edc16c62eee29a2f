"""Reading a group list: an upload or a paste (`name,id_number,phone`, the header optional) with the
imports' CSV conventions (models/operations/imports/csvfile.py: read_csv(): UTF-8 with or without
a BOM, blank lines skipped, cells trimmed), full-width digits and commas folded; a tab between
columns (a spreadsheet pasted) counts as a comma. Nothing is checked here but the file's shape."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from ...operations.imports import csvfile
from .errors import ListError

MAX_ROWS = 500  # rows in one list: a committee's list is tens, a workplace's a few hundred
LIST_COLUMNS = ("name", "id_number", "phone")  # in this order when there is no header
REQUIRED = ("name", "id_number")

# A header cell, as committees write it, and the column it names.
HEADER_NAMES = {
    "name": "name", "姓名": "name", "名字": "name",
    "id_number": "id_number", "id": "id_number", "身份证": "id_number", "身份证号": "id_number",
    "身份证号码": "id_number", "证件号码": "id_number", "公民身份号码": "id_number",
    "phone": "phone", "mobile": "phone", "手机": "phone", "手机号": "phone", "手机号码": "phone",
    "电话": "phone", "联系电话": "phone",
}

# What _prepared() folds in an upload: full-width digits, X and commas (separators, ID numbers
# and phones); nothing else, so names stay as typed.
_FOLD = str.maketrans("０１２３４５６７８９Ｘｘ，", "0123456789Xx,")


@dataclass(frozen=True)
class Typed:
    """One person as typed: nothing checked yet."""

    name: str
    id_number: str
    phone: str = ""


def _prepared(data: bytes) -> str:
    """The text of an upload or a paste as a CSV file with our header, for csvfile.read_csv()."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise csvfile.ImportFileError("not UTF-8 text", "not_utf8") from None
    # Full-width commas and digits (an input method's), and the tabs of a pasted spreadsheet.
    # Only these: a name keeps its full-width punctuation as typed (「·」「（」), see clean_text().
    lines = text.translate(_FOLD).splitlines()
    lines = [line.replace("\t", ",") if "\t" in line and "," not in line else line for line in lines]
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise csvfile.ImportFileError("no rows", "empty")
    try:
        cells = next(csv.reader([lines[first]]))
    except csv.Error:
        cells = []
    named = [HEADER_NAMES.get(c.strip().lower()) for c in cells]
    if any(named):
        lines[first] = ",".join(n or f"column{i}" for i, n in enumerate(named))
    else:
        lines.insert(first, ",".join(LIST_COLUMNS))
    return "\n".join(lines) + "\n"


def parse_list(data: bytes, filename: str = "list") -> list[Typed]:
    """The people of an uploaded or pasted list. Raises csvfile.ImportFileError (not_utf8,
    bad_csv, long_line, missing_columns, empty) or ListError (too_many)."""
    binary = io.BytesIO(_prepared(data).encode())
    people = []
    for _, row in csvfile.read_csv(binary, filename, REQUIRED):
        people.append(Typed(row["name"], row["id_number"], row.get("phone", "")))
        if len(people) > MAX_ROWS:
            raise ListError("too_many")
    return people


def clean_text(text: str, limit: int) -> str:
    """A name as typed (full-width punctuation kept: same_name() folds it only to compare), fit
    to keep and show: a long digit run (an ID or phone number in the wrong column) starred out."""
    text = "".join(ch for ch in text or "" if ch.isprintable() or ch == "\u3000").strip()
    return csvfile.LONG_NUMBER.sub(lambda m: "*" * len(m.group()), text)[:limit]
