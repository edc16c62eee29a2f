"""Staff accounts: create, reset a password, disable and re-enable."""
from __future__ import annotations

ROUTES: list = []
