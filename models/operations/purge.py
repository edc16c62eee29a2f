"""Personal data kept no longer than needed (PIPL art. 19): `python run.py purge`.

Whose data goes: people whose second dose was given (before the day the purge runs as of), and
people without a second dose whose window closed (their product's `max_days`, the rule book's
`due_by`) more than `after_days` (PURGE_AFTER_DAYS) ago. Left for a later run: anyone with an
active booking, a hold, an open waiting-list offer (a place held for them, like a hold), or an
SMS still queued or being sent.

What goes, per person: the encrypted ID number and phone (replaced by an encryption of ERASED, so
every screen that reveals them shows that word instead of failing), the keyed look-up hashes (the
day and month of birth go with the encrypted number: only `birth_year` is stored in clear, and kept),
the masked ID down to its region code, the masked phone, the name down to its masked form, the
phone, body and parameters of their SMS, the same values on group-list rows that point at them;
their links are revoked; their waiting-list entry and its offers are deleted (the resident row
stays, so nothing else would take them off the list, and an offer needs their phone). The keyed hashes go too: ID numbers and mobile numbers are guessable
(a region code, a birth date and a 3-digit sequence; 11 digits from known prefixes), so anyone
holding the hash and SECRET_KEY finds the number by trying them all in minutes: a keyed hash of
a guessable number is the number (pseudonymised data, still personal data under PIPL).

What stays: sub-district, vaccine product, first- and second-dose days and sites, bookings and
their windows and channels (every figure of models/operations/reports.py), and the audit trail
(which names residents by row id only). Also erased, whoever they belong to: SMS sent to a phone
without a record (log-in codes of the public way in) and log-in codes, older than `after_days`.

Idempotent: an erased record is marked by its id_hash (`erased:<row id>`, never a hex digest, so
no look-up matches it) and is never touched again.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tortoise.expressions import Q, Subquery
from tortoise.transactions import in_transaction

from ..clock import TZ, as_utc
from ..db import rewrites
from ..db.tables import (Booking, GroupMember, Hold, Link, LoginCode, Resident, SmsMessage,
                         WaitlistEntry, WaitlistOffer)
from ..district import District
from ..messaging import caps
from ..people.pii import mask_name
from ..rules.interval import RuleBook

ERASED = "已删除"  # what a screen that decrypts an erased value shows ("erased")
MARK = "erased:"  # id_hash of an erased record: "erased:<row id>" (unique, as the column must be)
BATCH = 1000
PENDING = (SmsMessage.QUEUED, SmsMessage.SENDING)
ERASED_PHONE = "*" * 11  # the masked phone of an erased record or SMS


@dataclass(frozen=True)
class PurgeResult:
    given: int  # people erased because their second dose was given
    closed: int  # people erased because their window closed long enough ago
    messages: int  # SMS rows erased (of those people, and to phones without a record)
    group_rows: int  # group-list rows of those people
    login_codes: int  # old log-in codes deleted
    dry_run: bool = False
    list_entries: int = 0  # waiting-list entries of those people (their offers with them)

    @property
    def people(self) -> int:
        return self.given + self.closed

    def summary(self) -> str:
        return (f"{self.people} people ({self.given} second dose given, {self.closed} window closed), "
                f"{self.messages} SMS, {self.group_rows} group-list rows, "
                f"{self.login_codes} log-in codes, {self.list_entries} waiting-list entries")


def closed_before(rules: RuleBook, as_of: dt.date, after_days: int) -> Q:
    """No second dose and the window (first dose + the product's max_days) closed more than
    `after_days` days before `as_of`: first_dose_date < as_of - after_days - max_days."""
    def older(rule) -> dict:
        return {"first_dose_date__lt": as_of - dt.timedelta(days=after_days + rule.max_days)}

    named = list(rules.products)
    found = Q(**older(rules.default))
    if named:
        found = found & ~Q(vaccine__in=named)
    for name, rule in rules.products.items():
        found = found | Q(Q(vaccine=name), Q(**older(rule)))
    return found


def _due(rules: RuleBook, as_of: dt.date, after_days: int):
    """Records to erase now (not yet erased, nothing under way for them)."""
    given = Q(second_dose_date__lt=as_of)
    closed = Q(closed_before(rules, as_of, after_days), second_dose_date__isnull=True)
    return (Resident.filter(given | closed)
            .exclude(id_hash__startswith=MARK)
            .exclude(id__in=Subquery(Booking.filter(status=Booking.ACTIVE).values("resident_id")))
            .exclude(id__in=Subquery(Hold.all().values("resident_id")))
            .exclude(id__in=Subquery(WaitlistOffer.filter(status=WaitlistOffer.OPEN).values("resident_id")))
            .exclude(id__in=Subquery(SmsMessage.filter(status__in=PENDING, resident_id__isnull=False)
                                     .values("resident_id"))))


def _cutoff(as_of: dt.date, after_days: int) -> dt.datetime:
    """The start of the day `after_days` before `as_of`, as stored (UTC)."""
    return as_utc(dt.datetime.combine(as_of - dt.timedelta(days=after_days), dt.time(), tzinfo=TZ))


def _orphan_messages(as_of: dt.date, after_days: int):
    """SMS to a phone without a record (log-in codes), finished, older than the cutoff."""
    return (SmsMessage.filter(resident_id__isnull=True, created_at__lt=_cutoff(as_of, after_days))
            .exclude(status__in=PENDING).exclude(phone_masked=ERASED_PHONE))


def _old_codes(as_of: dt.date, after_days: int):
    return LoginCode.filter(expires_at__lt=_cutoff(as_of, after_days))


def _region_only(id_masked: str) -> str:
    return id_masked[:6] + "*" * 12


FIELDS = ("id", "name", "id_masked", "second_dose_date")


async def _erase_batch(erased_cipher: str, rows: list[dict], as_of: dt.date, conn) -> tuple[int, int, int]:
    """Erase these records and what points at them, in one transaction; (SMS, group rows,
    waiting-list entries)."""
    ids = [r["id"] for r in rows]
    now = as_utc(dt.datetime.combine(as_of, dt.time(), tzinfo=TZ))
    # One statement for the batch (models/db/rewrites.py): an ORM update per person made a
    # million take half an hour.
    await rewrites.erase_residents(conn, [
        dict(id=r["id"], name=mask_name(r["name"]), id_hash=f"{MARK}{r['id']}", id_cipher=erased_cipher,
             id_masked=_region_only(r["id_masked"]), phone_cipher=erased_cipher, phone_masked=ERASED_PHONE)
        for r in rows], now)
    messages = await SmsMessage.filter(resident_id__in=ids).using_db(conn).update(
        phone_cipher=erased_cipher, phone_masked=ERASED_PHONE, phone_hash="",
        body_cipher=erased_cipher, params_cipher="")
    await Link.filter(resident_id__in=ids, revoked=False).using_db(conn).update(revoked=True)
    members = await GroupMember.filter(resident_id__in=ids).using_db(conn).values(
        "id", "name", "id_masked", "phone_masked")
    for m in members:
        await GroupMember.filter(id=m["id"]).using_db(conn).update(
            name=mask_name(m["name"]), id_hash="", id_cipher="",
            id_masked=_region_only(m["id_masked"]), phone_cipher="",
            phone_masked=ERASED_PHONE if m["phone_masked"] else "")
    # Off the waiting list (_off_the_list kept out anyone an offer holds a place for).
    await WaitlistOffer.filter(resident_id__in=ids).using_db(conn).delete()
    entries = await WaitlistEntry.filter(resident_id__in=ids).using_db(conn).delete()
    return messages, len(members), entries


async def _off_the_list(rows: list[dict], conn) -> list[dict]:
    """The rows to erase now: their list entries locked (PostgreSQL), so that no place can be
    offered to them before they are deleted; a person an offer was made to since `_due` read
    them (a place held for them, counted in the slot) is left for a later run."""
    ids = [r["id"] for r in rows]
    entries = await WaitlistEntry.filter(resident_id__in=ids).using_db(conn).select_for_update().values_list(
        "resident_id", "status")
    offered = {resident_id for resident_id, status in entries if status == WaitlistEntry.OFFERED}
    return [r for r in rows if r["id"] not in offered]


async def purge(district: District, *, as_of: dt.date, after_days: int,
                dry_run: bool = False) -> PurgeResult:
    """Erase the personal data no longer needed as of `as_of` (see the module's docstring);
    with dry_run, only count. Running it again changes nothing more."""
    rules = district.rules
    if dry_run:
        due = _due(rules, as_of, after_days)
        given = await due.filter(second_dose_date__isnull=False).count()
        closed = await due.filter(second_dose_date__isnull=True).count()
        messages = await SmsMessage.filter(resident_id__in=Subquery(due.values("id"))).count()
        messages += await _orphan_messages(as_of, after_days).count()
        group_rows = await GroupMember.filter(resident_id__in=Subquery(due.values("id"))).count()
        entries = await WaitlistEntry.filter(resident_id__in=Subquery(due.values("id"))).count()
        return PurgeResult(given, closed, messages, group_rows,
                           await _old_codes(as_of, after_days).count(), dry_run=True, list_entries=entries)

    erased_cipher = district.vault.encrypt(ERASED)  # one token for all: it says nothing
    given = closed = messages = group_rows = entries = 0
    last_id = 0
    while True:
        async with in_transaction() as conn:
            rows = await (_due(rules, as_of, after_days).filter(id__gt=last_id).order_by("id")
                          .limit(BATCH).using_db(conn).values(*FIELDS))
            if not rows:
                break
            last_id = rows[-1]["id"]
            rows = await _off_the_list(rows, conn)
            n_messages, n_rows, n_entries = await _erase_batch(erased_cipher, rows, as_of, conn) \
                if rows else (0, 0, 0)
        given += sum(1 for r in rows if r["second_dose_date"] is not None)
        closed += sum(1 for r in rows if r["second_dose_date"] is None)
        messages += n_messages
        group_rows += n_rows
        entries += n_entries
    async with in_transaction() as conn:
        messages += await _orphan_messages(as_of, after_days).using_db(conn).update(
            phone_cipher=erased_cipher, phone_masked=ERASED_PHONE, phone_hash="",
            body_cipher=erased_cipher, params_cipher="")
        codes = await _old_codes(as_of, after_days).using_db(conn).delete()
    # The SMS caps' rows (keyed hashes of numbers) of numbers that asked for nothing for a day.
    await caps.forget(as_utc(dt.datetime.combine(as_of, dt.time(), tzinfo=TZ)))
    return PurgeResult(given, closed, messages, group_rows, codes, list_entries=entries)
