"""The counters `/metrics` shows (web/metrics.py), which the domain moves as things happen; the
gauges, read from the database at scrape time, are models/operations/gauges.py.

Counters live in this process (prometheus-client). Under `run.py serve` every worker writes
them to files in one directory (the client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR, made
afresh by `serve` before the workers start) and a scrape adds every worker's up. The database
gauges need no such care: whichever worker answers a scrape reads them from the database.

The domain only calls the small functions below (`booked`, `moved`, `cancelled`, `refused`,
`locked_out`); it never sees the web or the registry. A leaf: it imports nothing of the domain,
so every layer may count.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

# Our own registry: the library's default one also holds its process and platform collectors,
# which multiprocess mode cannot add up across workers.
REGISTRY = CollectorRegistry(auto_describe=True)

BOOKINGS_MADE = Counter("booking_bookings_made", "Bookings made, by channel",
                        ["channel"], registry=REGISTRY)
BOOKINGS_MOVED = Counter("booking_bookings_moved", "Bookings moved to another window, by channel",
                         ["channel"], registry=REGISTRY)
BOOKINGS_CANCELLED = Counter(
    "booking_bookings_cancelled",
    "Bookings cancelled, by channel (the district's closures and risk areas: district)",
    ["channel"], registry=REGISTRY)
RATE_LIMIT_REFUSALS = Counter("booking_rate_limit_refusals",
                              "Requests refused by a rate limit, by limit", ["limit"],
                              registry=REGISTRY)
SIGNIN_LOCKOUTS = Counter(
    "booking_signin_lockouts",
    "Sign-ins locked out: staff (a username's wrong passwords), link (a personal link locked "
    "after wrong ID numbers)", ["who"], registry=REGISTRY)
AUDIT_CAPPED = Counter(
    "booking_audit_capped",
    "Audit rows not written because their cap was reached (refused sign-ins, bad signatures), "
    "by action", ["action"], registry=REGISTRY)


def booked(channel: str) -> None:
    BOOKINGS_MADE.labels(channel).inc()


def moved(channel: str) -> None:
    BOOKINGS_MOVED.labels(channel).inc()


def cancelled(channel: str) -> None:
    BOOKINGS_CANCELLED.labels(channel).inc()


def refused(limit: str) -> None:
    RATE_LIMIT_REFUSALS.labels(limit).inc()


def locked_out(who: str) -> None:
    SIGNIN_LOCKOUTS.labels(who).inc()


def audit_capped(action: str) -> None:
    AUDIT_CAPPED.labels(action).inc()
