"""Group booking (/group): a sub-district office or a residents' committee books a list of people
together — its elderly residents, a workplace's staff.

One concept a module: parsing (reading an upload or a paste), storage (lists and rows as kept,
who sees which), standing (where each row stands, and what an action came to for it), picker
(site, day and windows), pages (what each page shows), actions (book, move, cancel through the
booking service, channel "group"), errors. web/routes/group.py and the tests use the names below
as `groups.<name>`; each lives in one of those modules.
"""
from __future__ import annotations

from .actions import Change, Done, book, book_shown, cancel, move, move_shown, request_key
from .errors import Changed, ListError, NoSuchList, NotYours
from .pages import ListPage, cancel_page, list_page, move_page, result_page
from .parsing import MAX_ROWS, Typed, parse_list
from .picker import MAX_WINDOWS, Fit, Picker
from .standing import (ALREADY_BOOKED, BOOKED, CANCELLED, DUPLICATE, ELIGIBLE, FULL, INVALID_ID, MOVED,
                       NAME_MISMATCH, NO_NAME, NOT_ALLOWED, NOT_FOUND, NOT_OURS, OTHER_AREA, STATUSES,
                       UNCHANGED, Row, Summary, same_name)
from .storage import (add_member, correct_member, create_list, find_list, find_member, lists_for,
                      remove_member)

__all__ = [
    "ALREADY_BOOKED", "BOOKED", "CANCELLED", "DUPLICATE", "ELIGIBLE", "FULL", "INVALID_ID",
    "MAX_ROWS", "MAX_WINDOWS", "MOVED", "NAME_MISMATCH", "NO_NAME", "NOT_ALLOWED", "NOT_FOUND",
    "NOT_OURS", "OTHER_AREA", "STATUSES", "UNCHANGED",
    "Change", "Changed", "Done", "Fit", "ListError", "ListPage", "NoSuchList", "NotYours", "Picker",
    "Row", "Summary", "Typed",
    "add_member", "book", "book_shown", "cancel", "cancel_page", "correct_member", "create_list",
    "find_list", "find_member", "list_page", "lists_for", "move", "move_page", "move_shown",
    "parse_list", "remove_member", "request_key", "result_page", "same_name",
]
