"""What a group list refuses: a list or an action not taken as given, a list not found or not this
account's, a choice that is no longer what the page showed."""
from __future__ import annotations


class ListError(ValueError):
    """A list or an action cannot be taken as given; `code` says why: no_name (the list needs a
    name), no_area (the account has no sub-district), too_many (more than MAX_ROWS rows),
    no_windows (no open time window chosen)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class NoSuchList(LookupError):
    """No list with this id."""


class Changed(Exception):
    """The choice posted is not what the page showed (a select changed and the page was not
    looked at again, or the list or the places changed meanwhile): nothing was done. `page` is
    the list (or move) page for the choice as posted, to show again."""

    def __init__(self, page: "ListPage"):
        super().__init__("changed")
        self.page = page


class NotYours(Exception):
    """The list belongs to another sub-district: this account may not see it."""

    def __init__(self, list_id: int):
        super().__init__(list_id)
        self.list_id = list_id
