"""Every CSV the service writes (downloads and the command line's): cells that stay text in a
spreadsheet.

Excel, WPS and LibreOffice read a cell that begins with `=`, `+`, `-` or `@` as a formula (and a
leading tab or carriage return is dropped before that check): a site name such as
`=HYPERLINK("http://…","点此")` would become a live link, `=cmd|…` worse (OWASP "CSV
injection"). Such a cell is written with a single quote in front (`'=HYPERLINK(…)`), which the
spreadsheet shows as typed text. A leading `-` followed only by digits (a negative number, with
an optional decimal part) is left alone: it is a number, not a formula. Numbers (int, float)
pass through; None becomes an empty cell.

Use `writer(out)` in place of `csv.writer(out)`, or `cells(values)` for one row.
"""
from __future__ import annotations

import csv
import re
from typing import Any, Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NEGATIVE_NUMBER = re.compile(r"-\d+(\.\d+)?")


def cell(value: Any) -> Any:
    """The value as a cell that a spreadsheet keeps as text (see the module's docstring)."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_STARTS) and not NEGATIVE_NUMBER.fullmatch(text):
        return "'" + text
    return text


def cells(values: Iterable[Any]) -> list:
    return [cell(v) for v in values]


class SafeWriter:
    """csv.writer's writerow/writerows, every cell through cell()."""

    def __init__(self, out, **kwargs):
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, values: Iterable[Any]):
        return self._writer.writerow(cells(values))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for values in rows:
            self.writerow(values)


def writer(out, **kwargs) -> SafeWriter:
    """A CSV writer on `out` (as csv.writer) whose every cell stays text in a spreadsheet."""
    return SafeWriter(out, **kwargs)
