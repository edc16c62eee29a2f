"""Reading a CSV file as Excel or WPS saves it, a line at a time: UTF-8 with or without a BOM,
blank lines skipped, the header's names in any case, cells trimmed; and showing bits of it
safely (a file name, a cell) where a misplaced ID or phone number must not be echoed.

The imports read their files with it, and so do group lists (models/channels/groups/parsing.py).
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path
from typing import BinaryIO, Iterator

MAX_LINE = 100_000  # characters on one physical line: a real row has about 100
LONG_NUMBER = re.compile(r"\d{7,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ImportFileError(ValueError):
    """The whole file cannot be imported (unreadable, not UTF-8, a required column missing), or an
    import stopped part-way. `code` names the problem for a page to explain in the user's
    language (missing_file, unreadable, not_utf8, bad_csv, long_line, missing_columns, empty,
    interrupted); `detail` is the bit it may show (column names, a line, rows written)."""

    def __init__(self, message: str, code: str = "unreadable", detail: str = ""):
        super().__init__(message)
        self.code = code
        self.detail = detail


@contextlib.contextmanager
def opened(source) -> Iterator[tuple[BinaryIO, str]]:
    """The source (a path, or a binary file object) as a seekable binary file, and its name."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise ImportFileError(f"{path}: no such file", "missing_file") from None
        except IsADirectoryError:
            raise ImportFileError(f"{path}: is a directory, not a CSV file", "unreadable") from None
        except OSError as exc:
            raise ImportFileError(f"{path}: cannot be read ({exc.strerror})", "unreadable") from None
        name, owned = path.name, handle
    else:
        handle, owned = source, None
        name = Path(str(getattr(source, "name", "") or "input")).name
    try:
        if handle.seekable():
            yield handle, name
        else:  # a pipe: keep a copy on disk (not in memory) to read it twice
            with tempfile.TemporaryFile(prefix="import-") as spool:
                shutil.copyfileobj(handle, spool, 1024 * 1024)
                spool.seek(0)
                yield spool, name
    finally:
        if owned is not None:
            owned.close()


def _lines(text: io.TextIOWrapper, name: str) -> Iterator[str]:
    while True:
        line = text.readline(MAX_LINE)
        if not line:
            return
        if len(line) >= MAX_LINE and not line.endswith(("\n", "\r")):
            raise ImportFileError(f"{name}: a line is longer than {MAX_LINE} characters; "
                                  "is this a CSV file?", "long_line")
        yield line


def read_csv(binary: BinaryIO, name: str, required: tuple[str, ...], *,
             header_to: list | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a CSV file as (line number, {column: cell}), read a line at a time.

    UTF-8 with or without a BOM; blank lines skipped; the first other row is the header (names in
    any case); cells trimmed. Raises ImportFileError when the file cannot be read as such: at its
    start for a missing column, at the end for an empty file, where it is met for a bad byte.
    With header_to (a list), the rows are (line number, [cells]) instead, the header's names
    appended to header_to before the first: row_dict(header, cells) makes the same dict.
    """
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(_lines(text, name))
        header: list[str] | None = None
        while True:
            line = reader.line_num + 1  # where the next row starts (blank lines count)
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise ImportFileError(f"{name}: line {line}: not valid CSV ({exc})", "bad_csv",
                                      str(line)) from None
            except UnicodeDecodeError:
                raise ImportFileError(
                    f"{name}: not UTF-8 text; in Excel use Save As \"CSV UTF-8\"", "not_utf8") from None
            cells = [c.strip() for c in cells]
            if not any(cells):
                continue
            if header is None:
                header = [c.lower() for c in cells]
                missing = [c for c in required if c not in header]
                if missing:
                    raise ImportFileError(f"{name}: missing column(s) {', '.join(missing)}; "
                                          f"the header must name {', '.join(required)}",
                                          "missing_columns", ", ".join(missing))
                if header_to is not None:
                    header_to.extend(header)
                continue
            yield line, (cells if header_to is not None else row_dict(header, cells))
        if header is None:
            raise ImportFileError(f"{name}: the file is empty (no header row)", "empty")
    finally:
        text.detach()  # the binary file stays open: its owner closes it


def row_dict(header: list[str], cells: list[str]) -> dict[str, str]:
    return {col: (cells[i] if i < len(cells) else "") for i, col in enumerate(header)}


def check_header(source, required: tuple[str, ...]) -> None:
    """Read only the start of a file: raise ImportFileError if its encoding (as far as the first
    few kilobytes show), its header or its emptiness already refuses it."""
    with opened(source) as (binary, name):
        rows = read_csv(binary, name, required)
        try:
            next(rows, None)
        finally:
            rows.close()


def safe_filename(name: str) -> str:
    """A file name fit to store and show: no folders, no control characters, long digit runs
    (an ID or phone number someone named the file after) starred out."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = _CONTROL.sub("", unicodedata.normalize("NFKC", base)).strip()
    return LONG_NUMBER.sub(lambda m: "*" * len(m.group()), base)[:100] or "upload.csv"


def quote(text: str) -> str:
    """A cell value fit to print: a long run of digits may be an ID number or phone put in the wrong column."""
    text = text[:32]
    return LONG_NUMBER.sub(lambda m: "*" * len(m.group()), text)
