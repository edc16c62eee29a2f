"""Delivering the outbox: claim due messages, send them through a gateway, retry, never drop.

Several senders may run at once, on SQLite and on PostgreSQL: each claims a batch in one short
transaction (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the whole transaction holds the write
lock from BEGIN IMMEDIATE), marking it `sending` with a lease. A sender that dies mid-batch leaves
rows whose lease runs out; another sender takes them again. Only a crash between the gateway's
answer and our write can send a message twice, and then the lease (5 minutes) has to pass first.

Order: priority (log-in codes, then news about a booking, then reminders, then invitation
batches), then age. A failure is retried with exponential backoff and jitter over hours; after
`max_attempts`, or at once when the gateway says retrying cannot help (an invalid number, a
rejected signature or template), the message is failed with the gateway's reason, and an admin
can resend it. Per-number and global limits only ever delay a message, with one exception: a
message with a deadline (`expires_at`: a log-in code, good for 5 minutes) is never sent once it
has passed. It ends `expired`, unsent and unpaid for: past its deadline when it comes up (a
sender paused or behind), or when the per-number limit or a retry would send it too late.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
from dataclasses import dataclass, field

from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from ..clock import as_utc
from ..db.tables import SmsMessage
from ..people.pii import Vault
from .config import SmsConfig
from .gateways import GatewayError, Outgoing
from .sms import CODE_KIND

log = logging.getLogger("booking.sms")

LEASE = dt.timedelta(minutes=5)  # longer than any gateway call (SmsConfig.timeout_seconds)
FIRST_RETRY_SECONDS = 30
LONGEST_WAIT_SECONDS = 3600  # 10 attempts: about 1.5 to 3 hours from the first to the last
PER_PHONE_WINDOW = dt.timedelta(hours=1)
RECEIPT_DAYS = 3  # gateways keep delivery reports for a few days; older `sent` stays sent
COUNTED = (SmsMessage.SENT, SmsMessage.DELIVERED)


def retry_delay(attempts: int, rng: random.Random) -> dt.timedelta:
    """Exponential backoff with jitter: 30 s, 1 min, 2 min … capped at an hour, each taken at a
    random 50–100 % so that a gateway outage does not end in every sender retrying at once."""
    ceiling = min(LONGEST_WAIT_SECONDS, FIRST_RETRY_SECONDS * 2 ** (attempts - 1))
    return dt.timedelta(seconds=ceiling * rng.uniform(0.5, 1.0))


class Unlimited:
    """A global rate that never says no (tests and the console backend)."""

    def hit(self) -> bool:
        return True


class GatewayRate:
    """What the gateway allows this account per second, shared by every sender with Redis."""

    def __init__(self, limit: int, storage_uri: str = "memory://", prefix: str = "booking",
                 per: str = "second"):
        from limits import parse, storage, strategies

        self._item = parse(f"{limit}/{per}")
        self._limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))
        self._key = f"{prefix}:sms-gateway"

    def hit(self) -> bool:
        return self._limiter.hit(self._item, self._key)


@dataclass
class Report:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0  # for good: the gateway's reason kept, an admin can resend
    delayed: int = 0  # over a per-number limit: sent later
    held_back: int = 0  # over the gateway's rate: left for the next round
    expired: int = 0  # past their deadline (log-in codes): dropped unsent
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"sms: {self.sent} sent, {self.retrying} to retry, {self.failed} failed for good, "
                f"{self.delayed} delayed by the per-number limit, {self.expired} expired unsent")


def _due(now: dt.datetime) -> Q:
    waiting = Q(status=SmsMessage.QUEUED) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    abandoned = Q(status=SmsMessage.SENDING) & Q(claimed_until__lt=now)
    return (waiting | abandoned) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


async def expire(now: dt.datetime) -> int:
    """Every message still to send whose deadline has come (a log-in code past its 5 minutes,
    waiting for a retry, or left by a sender that died) ends `expired`, unsent: how many."""
    now = as_utc(now)
    waiting = Q(status=SmsMessage.QUEUED) | (Q(status=SmsMessage.SENDING) & Q(claimed_until__lt=now))
    return await SmsMessage.filter(waiting, expires_at__lte=now).update(
        status=SmsMessage.EXPIRED, claimed_until=None)


def _too_late(msg: SmsMessage, when: dt.datetime) -> bool:
    """The message would arrive worthless if sent at `when`."""
    return msg.expires_at is not None and as_utc(msg.expires_at) <= when


async def claim(now: dt.datetime, batch: int) -> list[SmsMessage]:
    """Take up to `batch` due messages for this sender, most urgent first (none past its deadline)."""
    now = as_utc(now)  # SQLite compares times as text: one zone for every stored time
    async with in_transaction() as conn:
        rows = await (SmsMessage.filter(_due(now)).order_by("priority", "id").limit(batch)
                      .select_for_update(skip_locked=True).using_db(conn))
        if rows:
            await SmsMessage.filter(id__in=[m.id for m in rows]).using_db(conn).update(
                status=SmsMessage.SENDING, claimed_until=now + LEASE)
    return rows


async def _sent_within(phone_hash: str, since: dt.datetime) -> list[tuple[dt.datetime, bool]]:
    """(when, a log-in code?) of each message sent to the number since then, oldest first; only
    messages that went (sent, delivered): an expired code never did, so it never counts."""
    rows = await (SmsMessage.filter(phone_hash=phone_hash, status__in=COUNTED, sent_at__gt=since)
                  .order_by("sent_at").values_list("sent_at", "kind"))
    return [(as_utc(at), kind == CODE_KIND) for at, kind in rows]


class PhoneLimit:
    """At most `per_hour` messages to one number in any hour; the next waits for its turn.

    A log-in code counts only the log-in codes sent to the number: booking news, reminders and
    invitations (ours, and a resident's own doing) never hold a code back, let alone make it
    expire. Every other message counts everything sent to the number, codes included."""

    def __init__(self, per_hour: int, now: dt.datetime):
        self.per_hour, self.now = per_hour, now
        self._sent: dict[str, list[tuple[dt.datetime, bool]]] = {}

    async def next_turn(self, phone_hash: str, *, code: bool = False) -> dt.datetime | None:
        """None: send now (and count it); otherwise the moment this number may have another."""
        if not phone_hash:
            return None
        if phone_hash not in self._sent:
            self._sent[phone_hash] = await _sent_within(phone_hash, self.now - PER_PHONE_WINDOW)
        sent = self._sent[phone_hash]
        times = [at for at, was_code in sent if was_code or not code]
        if len(times) >= self.per_hour:
            return times[-self.per_hour] + PER_PHONE_WINDOW
        sent.append((self.now, code))
        return None


def outgoing(vault: Vault, msg: SmsMessage) -> Outgoing:
    params = json.loads(vault.decrypt(msg.params_cipher)) if msg.params_cipher else {}
    key = msg.template if msg.lang == "zh" else f"{msg.template}.{msg.lang}"
    return Outgoing(phone=vault.decrypt(msg.phone_cipher), template_key=key, template=msg.template,
                    params=params, body=vault.decrypt(msg.body_cipher), lang=msg.lang)


async def _release(msg: SmsMessage, **changes) -> None:
    """Write the outcome, if this sender still holds the message (its lease not taken over)."""
    await SmsMessage.filter(id=msg.id, status=SmsMessage.SENDING).update(claimed_until=None, **changes)


async def send_due(vault: Vault, backend, config: SmsConfig, *, now: dt.datetime, batch: int = 200,
                   rate=None, rng: random.Random | None = None) -> Report:
    """One round: claim a batch and deliver it."""
    rate = rate or Unlimited()
    rng = rng or random.Random()
    now = as_utc(now)
    report = Report()
    phones = PhoneLimit(config.per_phone_per_hour, now)
    report.expired = await expire(now)
    messages = await claim(now, batch)
    report.claimed = len(messages)
    for index, msg in enumerate(messages):
        if _too_late(msg, now):  # claimed a moment before its deadline by a slow round
            await _release(msg, status=SmsMessage.EXPIRED)
            report.expired += 1
            continue
        turn = await phones.next_turn(msg.phone_hash, code=msg.kind == CODE_KIND)
        if turn is not None and _too_late(msg, turn):  # its turn comes after it is worthless
            await _release(msg, status=SmsMessage.EXPIRED, last_error="per-number limit")
            report.expired += 1
            continue
        if turn is not None:
            await _release(msg, status=SmsMessage.QUEUED, next_attempt_at=turn)
            report.delayed += 1
            continue
        if not rate.hit():
            for rest in messages[index:]:
                await _release(rest, status=SmsMessage.QUEUED)
            report.held_back = len(messages) - index
            break
        await _deliver(vault, backend, config, msg, now=now, rng=rng, report=report)
    return report


async def _deliver(vault, backend, config: SmsConfig, msg: SmsMessage, *, now, rng, report: Report) -> None:
    attempts = msg.attempts + 1
    try:
        gateway_id = await backend.send(outgoing(vault, msg))
    except Exception as exc:  # a gateway error of any kind: keep the message
        reason, permanent = _reason(exc)
        if permanent or attempts >= config.max_attempts:
            await _release(msg, status=SmsMessage.FAILED, attempts=attempts, last_error=reason)
            log.warning("SMS %s (%s) failed for good after %d attempts: %s", msg.id, msg.kind, attempts, reason)
            report.failed += 1
        elif _too_late(msg, retry_at := now + retry_delay(attempts, rng)):  # a retry comes too late
            await _release(msg, status=SmsMessage.EXPIRED, attempts=attempts, last_error=reason)
            report.expired += 1
        else:
            await _release(msg, status=SmsMessage.QUEUED, attempts=attempts, last_error=reason,
                           next_attempt_at=retry_at)
            report.retrying += 1
        report.errors.append(reason)
        return
    await _release(msg, status=SmsMessage.SENT, attempts=attempts, sent_at=now,
                   gateway_id=(gateway_id or "")[:64], last_error="")
    report.sent += 1


def _reason(exc: Exception) -> tuple[str, bool]:
    if isinstance(exc, GatewayError):
        return exc.reason[:200], exc.permanent
    return f"{type(exc).__name__}: {exc}"[:200], False


async def apply_receipts(vault: Vault, backend, *, now: dt.datetime, batch: int = 500) -> int:
    """Ask the gateway what became of recent messages; delivered or failed ones are updated."""
    now = as_utc(now)
    pending = await (SmsMessage.filter(status=SmsMessage.SENT, sent_at__gte=now - dt.timedelta(days=RECEIPT_DAYS))
                     .exclude(gateway_id="").order_by("id").limit(batch))
    if not pending:
        return 0
    receipts = await backend.receipts([(m.gateway_id, vault.decrypt(m.phone_cipher), m.sent_at)
                                       for m in pending])
    updated = 0
    for receipt in receipts:  # some gateways report each message once, asked or not: keep them all
        if receipt.delivered:
            changes = dict(status=SmsMessage.DELIVERED, delivered_at=now)
        else:
            changes = dict(status=SmsMessage.FAILED, last_error=(receipt.reason or "not delivered")[:200])
        updated += await SmsMessage.filter(gateway_id=receipt.gateway_id, status=SmsMessage.SENT).update(**changes)
    return updated


async def status_counts() -> dict[str, int]:
    """How many messages are in each state (every state named, zero included)."""
    rows = await SmsMessage.annotate(n=Count("id")).group_by("status").values_list("status", "n")
    counts = {status: 0 for status in SmsMessage.STATUSES}
    counts.update(dict(rows))
    return counts


async def resend_failed(ids: list[int] | None = None) -> int:
    """Put failed messages back in the queue (all of them, or those in `ids`), tries counted anew."""
    query = SmsMessage.filter(status=SmsMessage.FAILED)
    if ids is not None:
        query = query.filter(id__in=ids)
    return await query.update(status=SmsMessage.QUEUED, attempts=0, next_attempt_at=None,
                              claimed_until=None)


async def run_sender(vault: Vault, backend, config: SmsConfig, clock, *, once: bool = False, rate=None,
                     batch: int = 200, idle_seconds: float = 1.0, receipts_every: float = 60.0,
                     say=print, each_round=None) -> None:
    """The sender as a service: deliver what is due, poll receipts every minute, forever.

    `once`: deliver everything due now (not what waits for a retry), read receipts, return.
    `each_round`: awaited before each round's sending (run.py: waiting-list offers that ran out
    are passed on, so the next person's offer goes in the same round); its count is said.
    """
    rate = rate or Unlimited()
    last_receipts = None
    while True:
        if each_round is not None:
            try:
                if swept := await each_round():
                    say(f"waiting list: {swept} offers ran out, passed on")
            except Exception:  # sending must go on; the next round tries again
                log.exception("the waiting list's sweep failed")
        now = clock.utc()
        report = await send_due(vault, backend, config, now=now, batch=batch, rate=rate)
        if report.sent or report.retrying or report.failed or report.delayed or report.expired:
            say(str(report))
        if last_receipts is None or (now - last_receipts).total_seconds() >= receipts_every or once:
            try:
                if updated := await apply_receipts(vault, backend, now=now):
                    say(f"sms: {updated} delivery reports")
            except Exception as exc:  # a receipt outage must not stop sending
                log.warning("delivery reports unavailable: %s", _reason(exc)[0])
            last_receipts = now
        if report.held_back:
            await asyncio.sleep(0.05)  # the gateway's rate: wait for the window to move
            continue
        if report.claimed < batch:  # nothing more due now
            if once:
                return
            await asyncio.sleep(idle_seconds)
