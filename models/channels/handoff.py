"""The city health platform's hand-off (广州健康通): a partner that has verified a person by its own
real-name log-in asks, in a signed server-to-server request, whether they can book, and gets a
one-time address (/h/…) that opens their journey already verified.

A request carries X-Partner, X-Timestamp (unix seconds), X-Nonce and X-Signature: the hex
HMAC-SHA256, keyed with the partner's secret, of "METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nSHA256HEX(body)".
Refused as codes: bad_signature, stale (more than 5 minutes off), replayed (a nonce seen in the
window), rate_limited, bad_request, invalid_id. Every call is audited under "partner:<name>",
never with the ID number in clear. The answer about the person is always the same shape:
{"can_book": …} with a `reason` from the booking service's refusals (or "not_found"); for
"no_room" it adds "waitlist": true (they may join the waiting list) and the one-time address,
which opens on the page with the join form.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Protocol

from tortoise.exceptions import IntegrityError

from ..booking import service
from ..clock import as_utc
from ..db.tables import HandoffNonce, HandoffTicket, Link, Resident
from ..district import District
from ..rules.eligibility import Refusal
from ..staff import audit
from ..people import links, pii, residents
from ..tokens import new_link_token, token_hash

WINDOW_SECONDS = 300  # a request's timestamp may be this far from our clock, either way
TICKET_MINUTES = 10  # a one-time address lives this long
TICKET_PATH = "/h/"
SESSION_LINK_HOURS = 12  # the link the opened journey rides on (its token is never shown)
MAX_BODY = 4096
LANGS = ("zh", "en")
_NAME = re.compile(r"[a-z0-9_-]{1,20}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{8,64}")
_HEX = re.compile(r"[0-9a-f]{64}")
MIN_SECRET = 16


def parse_partners(text: str) -> tuple[tuple[str, str], ...]:
    """HANDOFF_PARTNERS ("jkt:SECRET[,other:SECRET2]") as (name, secret) pairs; ValueError naming
    the problem (never the secret) when a part is malformed."""
    pairs: dict[str, str] = {}
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        name, colon, secret = part.partition(":")
        name, secret = name.strip().lower(), secret.strip()
        if not colon or not _NAME.fullmatch(name):
            raise ValueError("HANDOFF_PARTNERS: each partner is name:secret, the name in a-z, 0-9, _ "
                             "or - (at most 20)")
        if len(secret) < MIN_SECRET:
            raise ValueError(f"HANDOFF_PARTNERS: the secret of {name!r} is shorter than {MIN_SECRET}")
        if name in pairs:
            raise ValueError(f"HANDOFF_PARTNERS: {name!r} is named twice")
        pairs[name] = secret
    return tuple(pairs.items())


def string_to_sign(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join((method.upper(), path, timestamp, nonce,
                      hashlib.sha256(body).hexdigest())).encode()


def sign(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The X-Signature a partner sends (the README shows the same in a few lines of Python)."""
    return hmac.new(secret.encode(), string_to_sign(method, path, timestamp, nonce, body),
                    hashlib.sha256).hexdigest()


class Limiter(Protocol):
    """What the hand-off needs of the rate limits (web/limits.py: RateLimits): a hit counted
    before the signature is checked (truthy when allowed), given back when it was good; the
    audit rows of bad signatures capped ("" when over the cap)."""

    def address_key(self, address: str) -> str: ...

    async def hit(self, name: str, *keys: str): ...

    async def give_back(self, *hits) -> None: ...

    async def audit_quota(self, action: str, address: str) -> str: ...


LIMIT = "handoff"  # the rate limit's name: every signed call of a partner counts, and every
# refused signature of an address


@dataclass(frozen=True)
class Call:
    """One request as the web layer read it: the headers as sent, the raw body."""

    method: str
    path: str
    partner: str
    timestamp: str
    nonce: str
    signature: str
    body: bytes
    address: str


@dataclass(frozen=True)
class Answer:
    """The HTTP status and the JSON body to send back."""

    status: int
    body: dict = field(default_factory=dict)


class _Refused(Exception):
    def __init__(self, status: int, code: str):
        super().__init__(code)
        self.status = status
        self.code = code


def _authenticate(partners: dict[str, str], call: Call, now: dt.datetime) -> str:
    """The partner's name, when the signature is theirs and the timestamp is fresh."""
    secret = partners.get(call.partner.strip().lower())
    signature = call.signature.strip().lower()
    if secret is None or not _HEX.fullmatch(signature):
        raise _Refused(401, "bad_signature")
    expected = sign(secret, call.method, call.path, call.timestamp, call.nonce, call.body)
    if not hmac.compare_digest(expected, signature):
        raise _Refused(401, "bad_signature")
    if not (call.timestamp.isascii() and call.timestamp.isdigit() and len(call.timestamp) <= 12):
        raise _Refused(400, "bad_request")
    if abs(now.timestamp() - int(call.timestamp)) > WINDOW_SECONDS:
        raise _Refused(401, "stale")
    if not _NONCE.fullmatch(call.nonce):
        raise _Refused(400, "bad_request")
    return call.partner.strip().lower()


async def _use_nonce(partner: str, nonce: str, now: dt.datetime) -> None:
    """Keep the nonce for the window (twice over: a timestamp may be 5 minutes early or late)."""
    await HandoffNonce.filter(seen_at__lt=as_utc(now) - dt.timedelta(seconds=3 * WINDOW_SECONDS)).delete()
    try:
        await HandoffNonce.create(partner=partner, nonce=nonce, seen_at=as_utc(now))
    except IntegrityError:
        raise _Refused(401, "replayed") from None


def _read_body(body: bytes) -> tuple[str, str]:
    """(id_number as sent, lang) from {"id_number": "…", "lang": "zh"|"en"}."""
    if len(body) > MAX_BODY:
        raise _Refused(400, "bad_request")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _Refused(400, "bad_request") from None
    if not isinstance(data, dict) or not isinstance(data.get("id_number"), str):
        raise _Refused(400, "bad_request")
    lang = data.get("lang", "")
    if lang not in ("", *LANGS) or len(data["id_number"]) > 64:
        raise _Refused(400, "bad_request")
    return data["id_number"], lang


async def _ticket(district: District, partner: str, resident: Resident, lang: str,
                  now: dt.datetime) -> str:
    """A one-time address for the resident: its token shown once, only its hash kept."""
    token = new_link_token()
    await HandoffTicket.create(token_hash=token_hash(token), partner=partner, resident=resident,
                               lang=lang, created_at=as_utc(now),
                               expires_at=as_utc(now) + dt.timedelta(minutes=TICKET_MINUTES))
    return f"{district.base_url.rstrip('/')}{TICKET_PATH}{token}"


async def _about(district: District, partner: str, resident: Resident, lang: str,
                 now: dt.datetime) -> dict:
    """Whether the resident can book now; the address into their journey if they can, if they
    have a booking to see, move or cancel, or if there is no room (it opens on the page that
    lets them join the waiting list: `waitlist`)."""
    standing = await service.stand(district, resident, now)
    body: dict = {"can_book": standing.refusal is None}
    if standing.refusal is not None:
        body["reason"] = str(standing.refusal)
    if standing.refusal == Refusal.TOO_EARLY:
        body["opens_on"] = standing.window.opens_on.isoformat()
        body["earliest"] = standing.window.earliest.isoformat()
    if standing.booking is not None:
        slot = standing.booking.slot
        body["booking"] = {"day": slot.day.isoformat(), "start": slot.start, "end": slot.end,
                           "site": slot.site.name}
    if standing.refusal == Refusal.NO_ROOM:
        body["waitlist"] = True
    if standing.refusal in (None, Refusal.BOOKED, Refusal.NO_ROOM):
        body["url"] = await _ticket(district, partner, resident, lang, now)
        body["expires_in"] = TICKET_MINUTES * 60
    return body


def _audit_name(partner: str) -> str:
    name = partner.strip().lower()
    return f"partner:{name if _NAME.fullmatch(name) else '?'}"


async def hand_off(district: District, partners: dict[str, str], call: Call,
                   limits: Limiter) -> Answer:
    """Answer one signed request of a partner: whether the person can book, and how."""
    now = district.clock.now()
    resident: Resident | None = None
    masked = ""
    try:
        # Counted before the signature is checked; a good signature gives it back, so what
        # stays counted per address is bad signatures (even sent all at once).
        by_address = await limits.hit(LIMIT, "address", limits.address_key(call.address))
        if not by_address:
            return Answer(429, {"error": "rate_limited"})  # a flood of bad signatures: not audited
        try:
            partner = _authenticate(partners, call, now)
        except _Refused as refused:
            if refused.code != "bad_signature":  # signed by a partner: not a stranger's guess
                await limits.give_back(by_address)
            raise
        await limits.give_back(by_address)
        if not await limits.hit(LIMIT, "partner", partner):  # every signed call counts
            raise _Refused(429, "rate_limited")
        await _use_nonce(partner, call.nonce, now)
        id_text, lang = _read_body(call.body)
        try:
            number = pii.validate_id(id_text)
        except pii.InvalidIdNumber:
            raise _Refused(422, "invalid_id") from None
        masked = pii.mask_id(number)
        resident = await Resident.get_or_none(id_hash=district.vault.keyed_hash(number))
        if resident is None:
            answer = Answer(200, {"can_book": False, "reason": "not_found"})
        else:
            answer = Answer(200, await _about(district, partner, resident, lang, now))
        outcome = "ok" if answer.body["can_book"] else answer.body["reason"]
    except _Refused as refused:
        answer, outcome = Answer(refused.status, {"error": refused.code}), refused.code
        if refused.code == "bad_signature":  # anyone can send these: their rows are capped
            quota = await limits.audit_quota("handoff:bad_signature", call.address)
            if not quota:
                return answer
            if quota == "last":
                outcome += " (cap reached: more from this address are only counted for now)"
    await audit.record(action="handoff", address=call.address, username=_audit_name(call.partner),
                       resident=resident, detail=f"{outcome} {masked}".strip())
    return answer


@dataclass(frozen=True)
class Opened:
    """A one-time address just used: the link the journey rides on, the language asked for, and
    whether the person may choose a place now (else the booking page says why, or shows theirs)."""

    link_id: int
    lang: str
    may_choose: bool


async def open_ticket(district: District, token: str, *, address: str) -> Opened | None:
    """Use up a one-time address; None when unknown, expired or used (one answer for all)."""
    if not token or len(token) > 64:
        return None
    moment = district.clock.now()
    now = as_utc(moment)
    used = await HandoffTicket.filter(token_hash=token_hash(token), used_at=None,
                                      expires_at__gt=now).update(used_at=now)
    if not used:
        return None
    ticket = await HandoffTicket.get(token_hash=token_hash(token)).select_related("resident")
    _, values = links.new_link(now=now, days_valid=1)
    values["expires_at"] = now + dt.timedelta(hours=SESSION_LINK_HOURS)
    link = await Link.create(resident=ticket.resident, **values)
    if ticket.lang:  # their SMS in the language they read the platform in
        await residents.prefer_language(ticket.resident, ticket.lang)
    await audit.record(action="handoff_open", address=address, username=_audit_name(ticket.partner),
                       resident=ticket.resident)
    standing = await service.stand(district, ticket.resident, moment)
    return Opened(link.id, ticket.lang, standing.refusal is None)
