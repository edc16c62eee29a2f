"""Closing a day or a window: how many bookings it touches, then a bulk move or cancellation."""
from __future__ import annotations

ROUTES: list = []
