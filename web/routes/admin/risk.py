"""Risk areas: mark a sub-district medium or high risk from a day, lift it, its people's bookings."""
from __future__ import annotations

ROUTES: list = []
