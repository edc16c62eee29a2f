"""Uploading the first-dose CSV: progress that updates itself, counts, the rejected rows as CSV."""
from __future__ import annotations

ROUTES: list = []
