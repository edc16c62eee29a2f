"""Rate limits: kept in Redis when REDIS_URL is set, so every worker and host counts together."""
from __future__ import annotations

import os
import secrets

import httpx
import pytest

from web.security import RateLimits

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set")


def _limits(**kw) -> RateLimits:
    return RateLimits(open_link="3/minute", verify="3/minute", staff_login="3/minute", **kw)


def test_without_redis_each_process_counts_alone():
    one, two = _limits(), _limits()
    assert [one.hit("verify", "198.51.100.1") for _ in range(4)] == [True, True, True, False]
    assert two.hit("verify", "198.51.100.1"), "a second process has its own memory"


@needs_redis
def test_with_redis_two_processes_share_one_count():
    prefix = f"test-{secrets.token_hex(4)}"  # a fresh namespace: nothing left from another run
    one, two = _limits(redis_url=REDIS_URL, prefix=prefix), _limits(redis_url=REDIS_URL, prefix=prefix)
    hits = [one.hit("verify", "198.51.100.2"), two.hit("verify", "198.51.100.2"),
            one.hit("verify", "198.51.100.2"), two.hit("verify", "198.51.100.2")]
    assert hits == [True, True, True, False]
    assert one.hit("verify", "198.51.100.3"), "another address has its own count"


@needs_redis
async def test_two_app_workers_with_redis_url_refuse_the_guesser_together(db, settings, clock):
    from web.app import create_app

    settings = settings.with_(redis_url=REDIS_URL, rate_limit_open_link="2/minute")
    apps = [create_app(settings, manage_db=False, clock=clock) for _ in range(2)]
    guesser = f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"  # fresh for this run
    statuses = []
    for n in range(3):
        transport = httpx.ASGITransport(app=apps[n % 2], client=(guesser, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            statuses.append((await c.get(f"/b/guess{n}")).status_code)
    assert statuses == [404, 404, 429]
