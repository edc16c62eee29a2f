"""Sites and capacity: create and edit sites, open or close them, the weekly template, per-window capacity."""
from __future__ import annotations

ROUTES: list = []
