"""Invitation batches, reminders, links re-issued, and the list of people past day 56."""
from __future__ import annotations

ROUTES: list = []
