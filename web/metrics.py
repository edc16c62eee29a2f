"""`/metrics` in the Prometheus text format, and the per-request counts behind it.

Requests are counted by route NAME (never the path: a personal link's token is in its path) and
status, with a latency histogram per route; web/security.py's SecurityHeaders hands each
finished request to `observe`. The domain's counters (bookings, rate-limit refusals, sign-in
lock-outs) are in models/metrics.py; the gauges (live holds, places free, the SMS
outbox, the waiting list and its offers) are read from the database at each scrape
(models/operations/gauges.py).

Not public: `Authorization: Bearer <METRICS_TOKEN>`, or a client address in METRICS_ALLOW;
anyone else (and everyone while neither is set) gets the same 404 as an unknown address.

Several workers (`run.py serve --workers N`): each writes its counters to files in one
directory (PROMETHEUS_MULTIPROC_DIR, made afresh by `serve` before the workers start), and the
worker answering a scrape adds them all up (prometheus-client's MultiProcessCollector).
"""
from __future__ import annotations

import hmac
import ipaddress

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from models.metrics import REGISTRY
from models.operations.gauges import Gauges, read_gauges

from .http import client_address, district
from .security import ROUTE_KEY

# Seconds. Up to the waiting room's longest wait for a POST (20 s by default).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)
REQUESTS = Counter("booking_http_requests", "HTTP requests answered, by route name and status",
                   ["route", "status"], registry=REGISTRY)
LATENCY = Histogram("booking_http_request_duration_seconds",
                    "Time to answer a request, by route name", ["route"], buckets=BUCKETS,
                    registry=REGISTRY)
_series: dict[tuple[str, int], tuple] = {}  # (route, status) -> its two series, looked up once


def observe(route: str, status: int, seconds: float) -> None:
    """Count one answered request (SecurityHeaders calls it as the request ends)."""
    series = _series.get((route, status))
    if series is None:
        series = _series[(route, status)] = (REQUESTS.labels(route, str(status)),
                                             LATENCY.labels(route))
    series[0].inc()
    series[1].observe(seconds)


class RouteName:
    """The innermost middleware: tells SecurityHeaders (outermost) which route answered. The
    router writes it in the scope, but a middleware may pass a copy of the scope down (Starlette's
    own do), so the outer layers may never see it there; the list SecurityHeaders put in the scope
    is shared by the copies."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            answered = scope.get(ROUTE_KEY)
            if route is not None and answered is not None:
                answered.append(getattr(route, "name", None) or "none")


def multiprocess() -> bool:
    """This process writes its counters to PROMETHEUS_MULTIPROC_DIR (decided by the client when
    it is first imported: the variable set then)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def may_scrape(request: Request) -> bool:
    settings = request.app.state.settings
    if settings.metrics_token:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
                token.strip().encode(), settings.metrics_token.encode()):
            return True
    if settings.metrics_allow:
        try:
            address = ipaddress.ip_address(client_address(request))
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(allowed, strict=False)
                   for allowed in settings.metrics_allow)
    return False


class _Collected:
    """A collector of ready-made metric families (this scrape's)."""

    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


def gauge_families(gauges: Gauges) -> list:
    holds = GaugeMetricFamily("booking_live_holds", "Places held right now while residents check "
                              "their answers (holds not yet expired)", value=gauges.live_holds)
    free = GaugeMetricFamily("booking_places_free", "Places residents could still book: open "
                             "windows not begun, at active sites, less live holds", labels=["day"])
    for day, n in gauges.places_free.items():
        free.add_metric([day], n)
    sms = GaugeMetricFamily("booking_sms_messages", "SMS in the outbox by kind and status (queued, "
                            "sending, sent, delivered, failed; expired: a log-in code dropped "
                            "unsent past its 5 minutes)", labels=["kind", "status"])
    for (kind, status), n in sorted(gauges.sms.items()):
        sms.add_metric([kind, status], n)
    listed = GaugeMetricFamily("booking_waitlist_people", "People on the waiting list: waiting, or "
                               "offered a place held for them now", labels=["status"])
    for status, n in gauges.waitlist.items():
        listed.add_metric([status], n)
    offers = GaugeMetricFamily("booking_waitlist_offers", "Waiting-list offers made, by what became "
                               "of them (open: a place held now; taken, declined, expired, "
                               "withdrawn); a purged person's go with them", labels=["status"])
    for status, n in gauges.offers.items():
        offers.add_metric([status], n)
    return [holds, free, sms, listed, offers]


async def metrics_page(request: Request) -> Response:
    """GET /metrics: every worker's counters added up, and the district's gauges as of now."""
    if not may_scrape(request):
        raise HTTPException(404)
    gauges = await read_gauges(district(request).clock.now())
    registry = CollectorRegistry()
    if multiprocess():
        MultiProcessCollector(registry, path=request.app.state.settings.metrics_dir or None)
    else:
        registry.register(_Collected(list(REGISTRY.collect())))
    registry.register(_Collected(gauge_families(gauges)))
    # The text format every Prometheus reads (0.26's CONTENT_TYPE_LATEST says version 1.0.0).
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
