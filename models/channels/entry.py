"""The public way in, for people without a personal link (lost the SMS, new phone, saw the poster).

A 6-digit code by SMS to the phone number they type; then everyone registered with that phone
(a shared phone is the norm for older residents), each confirmed by their own ID number; or a
booking found by its code and the ID number. Each ends in a live personal link of the resident,
so the web layer starts the very journey the SMS link starts.

Nobody can learn here whether a number is registered: an unknown number gets a code row too, one
whose hash no code matches, so it is answered, limited, timed out and locked exactly like a
known number typed with a wrong code. Only no SMS leaves.
"""
from __future__ import annotations

import datetime as dt
import hmac
import secrets
import unicodedata
from dataclasses import dataclass

from cryptography.fernet import InvalidToken
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from ..booking_codes import CODE_ALPHABET, CODE_LENGTH, normalise_code
from ..clock import as_utc
from ..db.tables import Booking, Link, LoginCode, Resident
from ..district import District
from ..messaging import caps
from ..messaging.outbox import queue
from ..messaging.wording import login_code
from ..people import links, pii
from ..retry import retrying

CODE_DIGITS = 6
CODE_MINUTES = 5  # a code is good for this long
MAX_TRIES = 5  # wrong codes before a code is dead
RESEND_SECONDS = 60  # one code a minute per phone number
PHONE_SESSION_MINUTES = 30  # from the code's sending: time to book for the whole family
# What a booking code is made of, as the /find page says it: the digits it may hold, and the
# letters it never holds (those easily misread: O and 0, I and 1, S and 5 …).
CODE_DIGITS_USED = tuple(ch for ch in CODE_ALPHABET if ch.isdigit())
CODE_LETTERS_NEVER = tuple(ch for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if ch not in CODE_ALPHABET)


class EntryRefused(Exception):
    """What was asked cannot be done; `reason` says why, the web layer words it.

    Reasons: phone (not a mainland mobile number), wait (a code went out less than a minute ago:
    `wait` seconds, `sent` says where), code_format (not 6 digits: a typo, not a guess), no_code
    (none asked for, or already used), expired, wrong (`tries_left`), too_many (the code is dead),
    not_on_phone, invalid_<length|format|checksum|birth_date|region> (the ID number is mistyped),
    mismatch (`tries_left`), locked (`until`), booking_code (not a booking code), not_found,
    sms_cap (the number has had all the SMS it may be sent on demand for now: `until`).
    """

    def __init__(self, reason: str, *, tries_left: int = 0, wait: int = 0,
                 until: dt.datetime | None = None, sent: "CodeSent | None" = None):
        super().__init__(reason)
        self.reason = reason
        self.tries_left = tries_left
        self.wait = wait
        self.until = until
        self.sent = sent


@dataclass(frozen=True)
class CodeSent:
    """Where a code went, as the code page needs it: the number sealed (encrypted, for the
    session cookie, which is signed but readable), masked (for the screen), and when another
    code may be asked for."""

    sealed_phone: str
    masked_phone: str
    resend_at: dt.datetime


@dataclass(frozen=True)
class PhoneLogin:
    """A phone number proved by its code: the code's row id (all the session keeps) and until
    when the family on that phone may be booked for without another code."""

    login_id: int
    phone_hash: str
    valid_until: dt.datetime


@dataclass(frozen=True)
class Member:
    """One person registered with the phone, as the family page shows them."""

    resident_id: int
    masked_name: str
    id_tail: str  # the last two characters of the ID number (all the mask shows), to tell two 张*明 apart
    state: str  # open (may book or is not yet due), booked, vaccinated


def _phone(phone_text: str) -> str:
    try:
        return pii.normalise_phone(phone_text)
    except pii.InvalidPhone:
        raise EntryRefused("phone") from None


def _code_hash(district: District, phone_hash: str, code: str) -> str:
    """Keyed with the server secret: a copy of the table alone does not give 6 digits away."""
    return district.vault.keyed_hash(f"login-code:{phone_hash}:{code}")


async def _last_code(phone_hash: str) -> LoginCode | None:
    return await LoginCode.filter(phone_hash=phone_hash).order_by("-created_at", "-id").first()


def seal_phone(district: District, phone: str) -> str:
    return district.vault.encrypt(phone)


def unseal_phone(district: District, sealed: str) -> str | None:
    """The number a session's code was sent to, or None for anything else."""
    if not sealed or len(sealed) > 400:
        return None
    try:
        return district.vault.decrypt(sealed)
    except (InvalidToken, ValueError):  # forged, truncated or made with an old key: no number
        return None


async def request_code(district: District, phone_text: str, *, now: dt.datetime,
                       lang: str = "zh") -> CodeSent:
    """Send a 6-digit code to the number, valid CODE_MINUTES, one a minute per number, and no
    more than the district's SMS caps for a number (models/messaging/caps.py: `sms_cap`).

    A known number gets its code by SMS (queued in the same transaction as the code row and the
    cap's count, and dropped unsent once expired); an unknown one gets a row no code matches, is
    counted the same, and gets no SMS. Either way the same CodeSent comes back, and a second
    request within the minute is refused `wait`, one over the caps `sms_cap`, the same way."""
    phone = _phone(phone_text)
    phone_hash = district.vault.keyed_hash(phone)
    known = await Resident.filter(phone_hash=phone_hash).exists()
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    code_hash = (_code_hash(district, phone_hash, code) if known
                 else _code_hash(district, phone_hash, secrets.token_hex(16)))  # never typed
    now = as_utc(now)

    def sent(at: dt.datetime) -> CodeSent:
        return CodeSent(seal_phone(district, phone), pii.mask_phone(phone),
                        as_utc(at) + dt.timedelta(seconds=RESEND_SECONDS))

    async def transaction() -> None:
        async with in_transaction() as conn:
            # The number's cap row first: it locks out every other request for this number
            # until this transaction ends, so the minute and the caps are counted one by one.
            quota = await caps.lock(conn, phone_hash, now=now)
            last = await (LoginCode.filter(phone_hash=phone_hash).using_db(conn)
                          .order_by("-created_at", "-id").select_for_update().first())
            if last and as_utc(last.created_at) + dt.timedelta(seconds=RESEND_SECONDS) > now:
                ready = sent(last.created_at)
                wait = max(int((ready.resend_at - now).total_seconds() + 0.999), 1)
                raise EntryRefused("wait", wait=wait, sent=ready)
            try:
                quota.check(district.sms_caps)
            except caps.CapReached as exc:  # the last code, if any, may still be typed
                raise EntryRefused("sms_cap", until=exc.until, sent=CodeSent(
                    seal_phone(district, phone), pii.mask_phone(phone), exc.until)) from None
            await quota.count(conn)
            expires = now + dt.timedelta(minutes=CODE_MINUTES)
            await LoginCode.create(phone_hash=phone_hash, code_hash=code_hash, created_at=now,
                                   expires_at=expires, using_db=conn)
            if known:
                await queue(district.vault, None, login_code(code, lang), phone=phone,
                            expires_at=expires, using_db=conn)

    await retrying(transaction)
    return sent(now)


def _typed_code(code_text: str) -> str:
    code = "".join(unicodedata.normalize("NFKC", code_text or "").split())
    if len(code) != CODE_DIGITS or not (code.isascii() and code.isdigit()):
        raise EntryRefused("code_format")
    return code


async def check_code(district: District, phone_text: str, code_text: str, *,
                     now: dt.datetime) -> PhoneLogin:
    """The typed code against the last one sent to the number.

    Each answer uses up one of MAX_TRIES (taken before comparing, so guesses sent all at once
    get no more); a code is good once. An unknown number's code matches nothing, so it is
    refused wrong, expired or too_many exactly as a known number's wrong code is."""
    phone = _phone(phone_text)
    phone_hash = district.vault.keyed_hash(phone)
    code = _typed_code(code_text)
    now = as_utc(now)
    last = await _last_code(phone_hash)
    if last is None or last.used:
        raise EntryRefused("no_code")
    if last.tries >= MAX_TRIES:
        raise EntryRefused("too_many")
    if as_utc(last.expires_at) <= now:
        raise EntryRefused("expired")
    taken = await LoginCode.filter(id=last.id, used=False, tries__lt=MAX_TRIES).update(
        tries=F("tries") + 1)
    if not taken:
        raise EntryRefused("too_many")
    if not hmac.compare_digest(last.code_hash, _code_hash(district, phone_hash, code)):
        await last.refresh_from_db(fields=["tries"])
        left = max(MAX_TRIES - last.tries, 0)
        raise EntryRefused("wrong" if left else "too_many", tries_left=left)
    if not await LoginCode.filter(id=last.id, used=False).update(used=True):
        raise EntryRefused("no_code")  # the same code, typed twice at once: the first one won
    return PhoneLogin(last.id, phone_hash, _session_end(last))


def _session_end(code: LoginCode) -> dt.datetime:
    return as_utc(code.created_at) + dt.timedelta(minutes=PHONE_SESSION_MINUTES)


async def phone_session(login_id: int | None, *, now: dt.datetime) -> str | None:
    """The phone hash of a log-in still in force (its code used, PHONE_SESSION_MINUTES not
    over), or None."""
    code = await LoginCode.get_or_none(id=login_id, used=True) if login_id else None
    if code is None or _session_end(code) <= as_utc(now):
        return None
    return code.phone_hash


async def others_on_phone(login_id: int | None, resident_id: int, *, now: dt.datetime) -> bool:
    """Whether the phone of a log-in still in force has someone registered with it besides
    `resident_id`: only then is "book for someone else on this phone" worth offering."""
    phone_hash = await phone_session(login_id, now=now)
    if phone_hash is None:
        return False
    return await Resident.filter(phone_hash=phone_hash).exclude(id=resident_id).exists()


async def family(district: District, phone_hash: str) -> list[Member]:
    """Everyone registered with the phone, eldest first: each books for themselves."""
    # Eldest first by birth year (only the year is stored in clear), then as registered.
    people = await Resident.filter(phone_hash=phone_hash).order_by("birth_year", "id")
    booked = set(await Booking.filter(resident_id__in=[p.id for p in people],
                                      status=Booking.ACTIVE).values_list("resident_id", flat=True))
    return [
        Member(p.id, pii.mask_name(p.name), p.id_masked[-2:],
               "vaccinated" if p.second_dose_date else "booked" if p.id in booked else "open")
        for p in people
    ]


async def member(district: District, phone_hash: str, resident_id: int | None) -> Member | None:
    """One person of the phone's family (None if the id is not one of theirs)."""
    people = await family(district, phone_hash) if resident_id else []
    return next((m for m in people if m.resident_id == resident_id), None)


async def _live_link(district: District, resident: Resident, now: dt.datetime) -> Link:
    """The resident's live link, or a new one: the ID number check counts wrong numbers (and
    locks) on it, so the SMS link and this way in share one lock-out. A new link's token is
    thrown away: this browser's session is the only way to use it."""
    found = await (Link.filter(resident_id=resident.id, revoked=False, expires_at__gt=as_utc(now))
                   .order_by("-expires_at", "-id").first())
    if found is None:
        await links.issue_link(resident, now=now, days_valid=district.link_days_valid)
        found = await Link.filter(resident_id=resident.id, revoked=False).order_by("-id").first()
    return found


def check_id(id_text: str) -> str:
    """The typed ID number, valid in form; a mistyped one (length, characters, check character,
    date, region) is refused `invalid_<reason>` before anything is counted: a typo is not a
    guess."""
    try:
        return pii.validate_id(id_text)
    except pii.InvalidIdNumber as exc:
        raise EntryRefused(f"invalid_{exc.reason}") from None


async def enter_as(district: District, phone_hash: str, resident_id: int | None, id_text: str, *,
                   now: dt.datetime) -> Link:
    """A person of the phone's family proves who they are with their ID number; their live link.

    The asker's tries are counted before this is called, against the asker (the proved phone
    and the person asked for, and the address: web/routes/entry.py), never on the person's own
    link: nobody holding a phone can lock a family member's SMS link. A wrong number is
    `mismatch`; a mistyped one `invalid_<reason>`."""
    number = check_id(id_text)
    resident = (await Resident.get_or_none(id=resident_id, phone_hash=phone_hash)
                if resident_id and phone_hash else None)
    if resident is None:
        raise EntryRefused("not_on_phone")
    if not hmac.compare_digest(district.vault.keyed_hash(number), resident.id_hash):
        raise EntryRefused("mismatch")
    return await _live_link(district, resident, now)


def _booking_code(code_text: str) -> str:
    code = normalise_code(pii.normalise_id(code_text))
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        raise EntryRefused("booking_code")
    return code


def find_key(code_text: str, id_text: str) -> str:
    """The booking code a /find request is counted under (web/routes/entry.py), once both
    fields are well formed: `booking_code` or `invalid_<reason>` otherwise (typos, not
    guesses, are not counted). Real and made-up codes alike: the count tells nothing."""
    code = _booking_code(code_text)
    check_id(id_text)
    return code


_NOBODY = "0" * 64  # compared against for a made-up code: the same work as for a real one


async def find_booking(district: District, code_text: str, id_text: str, *,
                       now: dt.datetime) -> Link:
    """An active booking by its code and the ID number of its resident: their live link, so
    the booking can be seen, moved or cancelled.

    No such code and a code with another person's ID number get the same `not_found`, after the
    same work (one query, one keyed hash compared); nothing is counted on the resident's link
    (the asker is counted, per address and per code, before this: web/routes/entry.py), so
    wrong numbers for a real code lock nobody out of their own booking."""
    code = _booking_code(code_text)
    number = check_id(id_text)
    booking = await Booking.get_or_none(code=code, status=Booking.ACTIVE).select_related("resident")
    expected = booking.resident.id_hash if booking is not None else _NOBODY
    if not hmac.compare_digest(district.vault.keyed_hash(number), expected) or booking is None:
        raise EntryRefused("not_found")
    return await _live_link(district, booking.resident, now)
