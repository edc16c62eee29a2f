"""Rate limits that count before they let through.

Every limited action takes a hit FIRST, atomically (count and compare in one step of the
store), and only then does the costly or secret work: the password check (Argon2), the ID
number compared, the SMS queued. Fifty requests sent at once get the limit's number through,
never fifty. Where letting a success keep its hit would turn honest people away (residents
behind one carrier address, an office of staff), the caller gives the hit back once the
attempt proved good (`give_back`): what stays counted is failures and attempts in flight.

The count: a sliding window (two fixed windows, the previous one weighted by how much of it
still lies in the last `period` seconds, rounded up). Burst-proof at the windows' edge (the
previous window counts in full at its end), a few bytes per key, and the same arithmetic in
every store, so the numbers do not depend on where the counts live:

- Redis when REDIS_URL is set (one Lua script per hit: atomic on the server);
- otherwise the database (models/db/counters.py: one INSERT … ON CONFLICT … RETURNING), so the
  workers of `serve --workers N`, and several hosts on one database, count together;
- this process's memory only when asked (`store="memory"`: a test, a one-off tool).

Keys are a keyed hash of the limit's name and what it counts: neither store holds an address,
a username or a booking code in clear. Client addresses are counted by `address_key`: an IPv6
address by its /64 (one subscriber's whole network), an IPv4 one alone.

If the store cannot be reached, the residents' limits let everything through and the log says
so (at most once a minute): a district's booking must not stop for the counters' store, and the
link lock after wrong ID numbers lives in the database and still holds. Staff sign-in (the
rules in FAIL_CLOSED) refuses instead: without a count, guessing passwords would be free.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from limits import parse

from models import metrics

log = logging.getLogger("booking")

# Refused when their store is away: a password guess must never go uncounted.
FAIL_CLOSED = frozenset({"staff_login", "login_guess", "login_account"})
LOGIN_LIMITS = frozenset({"login_guess", "login_account"})  # a username or device locked out
AUDIT = "audit"  # rows of one action from one address; AUDIT_ALL: of one action from anywhere
AUDIT_ALL = "audit_all"


def address_key(address: str) -> str:
    """What a client address is counted as: IPv4 alone; IPv6 by its /64 (a subscriber gets a
    whole /64 and can change the rest at will); an IPv4-mapped IPv6 address as its IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address[:64]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True)
class Hit:
    """The answer to one hit: allowed (then counted in window `period`), or refused (then
    nothing was counted, and `retry_after` says in how many seconds one would be allowed)."""

    allowed: bool
    name: str
    key: str = ""
    period: int = -1
    count: int = 0  # the window's count with this hit (allowed)
    retry_after: int = 0  # seconds (refused)

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Rule:
    amount: int
    seconds: int


def _estimate(rule: Rule, prev: int, now: float) -> tuple[int, float]:
    """(the previous window's hits still in the sliding window, rounded up; the fraction of the
    current window gone by)."""
    gone = (now % rule.seconds) / rule.seconds
    return math.ceil(prev * (1 - gone) - 1e-9), gone


def _retry_after(rule: Rule, prev: int, cur: int, now: float) -> int:
    """Seconds until ceil(prev · weight) + cur + 1 <= amount (the next hit allowed), told as
    at most one window: the estimate weighs the last window's hits as if spread evenly, so when
    they all came at its start it asks for up to window/amount more; a client back after one
    window is then told the few seconds left, rather than a wait longer than the limit says."""
    gone = (now % rule.seconds) / rule.seconds
    room = rule.amount - cur - 1
    if room >= 0:
        wait = 0.0 if prev <= 0 else max(1 - room / prev - gone, 0.0) * rule.seconds
    else:  # this window is full: in the next, this window's hits are the previous ones
        wait = (1 - gone) * rule.seconds + max(1 - (rule.amount - 1) / max(cur, 1), 0) * rule.seconds
    return min(max(math.ceil(wait), 1), rule.seconds)


class _Unavailable(Exception):
    pass


class MemoryStore:
    """This process's own counts (one process only)."""

    def __init__(self):
        self.hits: dict[tuple[str, int], list] = {}  # (key, period) -> [count, expires]
        self._swept = 0.0

    def _count(self, key: str, period: int) -> int:
        return self.hits.get((key, period), [0])[0]

    async def take(self, key: str, rule: Rule, now: float) -> tuple[int | None, int, int]:
        if now - self._swept > 60:
            self._swept = now
            self.hits = {k: v for k, v in self.hits.items() if v[1] >= now}
        period = int(now // rule.seconds)
        prev, cur = self._count(key, period - 1), self._count(key, period)
        estimate, _ = _estimate(rule, prev, now)
        if estimate + cur + 1 > rule.amount:
            return None, prev, cur
        self.hits[(key, period)] = [cur + 1, (period + 2) * rule.seconds]
        return cur + 1, prev, cur + 1

    async def give_back(self, key: str, period: int) -> None:
        if self._count(key, period) > 0:
            self.hits[(key, period)][0] -= 1

    async def counts(self, key: str, rule: Rule, now: float) -> tuple[int, int]:
        period = int(now // rule.seconds)
        return self._count(key, period - 1), self._count(key, period)


_TAKE = """
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local estimate = math.ceil(prev * tonumber(ARGV[1]) - 1e-9)
if estimate + cur + 1 > tonumber(ARGV[2]) then return {0, prev, cur} end
cur = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, prev, cur}
"""
_GIVE_BACK = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisStore:
    """Counts in Redis, shared by every worker and host (one Lua script per hit)."""

    def __init__(self, url: str, prefix: str):
        import redis.asyncio as redis

        self.url, self.prefix = url, prefix
        self._redis = redis
        self._clients: dict[int, object] = {}  # one client per event loop (tests run several)

    def _client(self):
        loop = id(asyncio.get_running_loop())
        client = self._clients.get(loop)
        if client is None:
            client = self._redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
            self._clients = {loop: client}
        return client

    def _key(self, key: str, period: int) -> str:
        return f"{self.prefix}:limit:{key}:{period}"

    async def _call(self, script: str, keys: list[str], args: list):
        try:
            return await self._client().eval(script, len(keys), *keys, *args)
        except Exception as error:  # noqa: BLE001 - any failure of the store: see the module
            raise _Unavailable(type(error).__name__) from error

    async def take(self, key: str, rule: Rule, now: float) -> tuple[int | None, int, int]:
        period = int(now // rule.seconds)
        weight = 1 - (now % rule.seconds) / rule.seconds
        ok, prev, cur = await self._call(
            _TAKE, [self._key(key, period), self._key(key, period - 1)],
            [repr(weight), rule.amount, 2 * rule.seconds + 1])
        return (int(cur) if ok else None), int(prev), int(cur)

    async def give_back(self, key: str, period: int) -> None:
        await self._call(_GIVE_BACK, [self._key(key, period)], [])

    async def counts(self, key: str, rule: Rule, now: float) -> tuple[int, int]:
        period = int(now // rule.seconds)
        try:
            prev, cur = await self._client().mget(self._key(key, period - 1), self._key(key, period))
        except Exception as error:  # noqa: BLE001
            raise _Unavailable(type(error).__name__) from error
        return int(prev or 0), int(cur or 0)


class DatabaseStore:
    """Counts in the database (models/db/counters.py): every worker and host on it together."""

    def __init__(self):
        self._swept = 0.0

    async def take(self, key: str, rule: Rule, now: float) -> tuple[int | None, int, int]:
        from models.db import counters

        period = int(now // rule.seconds)
        try:
            if now - self._swept > 60:
                self._swept = now
                await counters.forget(int(now))
            found = await counters.counts(key, [period - 1])
            prev = found.get(period - 1, 0)
            estimate, _ = _estimate(rule, prev, now)
            count = await counters.take(key, period, rule.amount - estimate,
                                        (period + 2) * rule.seconds)
            if count is None:
                cur = (await counters.counts(key, [period])).get(period, 0)
                return None, prev, cur
        except Exception as error:  # noqa: BLE001
            raise _Unavailable(type(error).__name__) from error
        return count, prev, count

    async def give_back(self, key: str, period: int) -> None:
        from models.db import counters

        try:
            await counters.give_back(key, period)
        except Exception as error:  # noqa: BLE001
            raise _Unavailable(type(error).__name__) from error

    async def counts(self, key: str, rule: Rule, now: float) -> tuple[int, int]:
        from models.db import counters

        period = int(now // rule.seconds)
        try:
            found = await counters.counts(key, [period - 1, period])
        except Exception as error:  # noqa: BLE001
            raise _Unavailable(type(error).__name__) from error
        return found.get(period - 1, 0), found.get(period, 0)


class RateLimits:
    """The service's limits by name (web/settings.py: rate_limit_rules), in one store."""

    FAIL_CLOSED = FAIL_CLOSED
    address_key = staticmethod(address_key)

    def __init__(self, rules: dict[str, str], *, redis_url: str = "", prefix: str = "booking",
                 store: str = "", secret: str = "", clock=time.time):
        if store == "memory":
            self.store = MemoryStore()
        elif redis_url:
            self.store = RedisStore(redis_url, prefix)
        else:
            self.store = DatabaseStore()
        self.rules = {}
        for name, text in rules.items():
            item = parse(text)
            self.rules[name] = Rule(item.amount, int(item.get_expiry()))
        self._secret = (secret or "rate-limits").encode()
        self._clock = clock
        self._complained_at = 0.0

    def _key(self, name: str, keys: tuple[str, ...]) -> str:
        digest = hmac.new(self._secret, "\x1f".join((name, *keys)).encode("utf-8", "replace"),
                          hashlib.sha256).hexdigest()
        return f"{name[:20]}:{digest[:40]}"

    def _unavailable(self, error: Exception) -> None:
        if time.monotonic() - self._complained_at > 60:
            self._complained_at = time.monotonic()
            log.error("rate limits not counted: their store is unavailable (%s)", error)

    async def hit(self, name: str, *keys: str) -> Hit:
        """Count one attempt and say whether it may go ahead (nothing counted when refused)."""
        rule, key, now = self.rules[name], self._key(name, keys), self._clock()
        try:
            count, prev, cur = await self.store.take(key, rule, now)
        except _Unavailable as error:
            self._unavailable(error)
            if name in FAIL_CLOSED:
                metrics.refused(name)
                return Hit(False, name, retry_after=60)
            return Hit(True, name)
        if count is None:  # every caller refuses the request then (/metrics counts it)
            metrics.refused(name)
            if name in LOGIN_LIMITS:
                metrics.locked_out("staff")
            return Hit(False, name, key, retry_after=_retry_after(rule, prev, cur, now))
        return Hit(True, name, key, int(now // rule.seconds), count)

    async def hit_all(self, counters: list[tuple[str, ...]]) -> list[Hit]:
        """One hit on each (name, *keys) in order, stopping at the first refused: the hits
        before it are given back (the attempt is not made, so it counts nowhere) and the counters
        after it are not touched, so a crowd of refused attempts never holds a place, even for a
        moment, in a counter it was not refused by (before, fifty refused sign-ins each held a
        place in the address's counter while in flight, and could push a good attempt out of
        it). One answer per counter: the counters not tried are `Hit(False, name)` with nothing
        counted and no wait of their own."""
        hits: list[Hit] = []
        for name, *keys in counters:
            hit = await self.hit(name, *keys)
            hits.append(hit)
            if not hit:
                await self.give_back(*hits)
                hits += [Hit(False, n) for n, *_ in counters[len(hits):]]
                break
        return hits

    async def give_back(self, *hits: Hit) -> None:
        """Uncount allowed hits: the attempt turned out good (or was never made)."""
        for hit in hits:
            if hit.allowed and hit.period >= 0:
                try:
                    await self.store.give_back(hit.key, hit.period)
                except _Unavailable as error:
                    self._unavailable(error)

    async def retry_after(self, name: str, *keys: str) -> int:
        """Seconds until the next attempt would be allowed (at least 1)."""
        rule, now = self.rules[name], self._clock()
        try:
            prev, cur = await self.store.counts(self._key(name, keys), rule, now)
        except _Unavailable as error:
            self._unavailable(error)
            return 60
        return _retry_after(rule, prev, cur, now)

    async def audit_quota(self, action: str, address: str) -> str:
        """Whether to write an audit row of a noisy action (a refused sign-in, a bad signature):
        "write", "last" (write it and say that more from here are only counted for a while), or
        "" (over the cap: only /metrics counts it). Capped per action and address group, and
        per action from everywhere."""
        if AUDIT not in self.rules:
            return "write"
        hits = await self.hit_all([(AUDIT, action, address_key(address)), (AUDIT_ALL, action)])
        if not all(hits):
            metrics.audit_capped(action)
            return ""
        last = any(h.count >= self.rules[h.name].amount for h in hits if h.period >= 0)
        return "last" if last else "write"
