"""The tables. Personal values are stored only hashed (for lookup), encrypted and masked."""
from __future__ import annotations

from tortoise import fields
from tortoise.expressions import Q
from tortoise.models import Model, ModelMeta

from . import places


class _Table(ModelMeta):
    """Tortoise's own metaclass, told to skip reading each class's source for `#:` field comments
    (`_no_comments`): that re-parses this whole file once per table, a quarter of a second of
    CPU in every process that imports it (each server worker, each run.py command)."""

    def __new__(mcs, name, bases, attrs):
        attrs.setdefault("_no_comments", True)
        return super().__new__(mcs, name, bases, attrs)


class Site(Model, metaclass=_Table):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=100)
    subdistrict = fields.CharField(max_length=50, db_index=True)
    address = fields.CharField(max_length=200)
    phone = fields.CharField(max_length=40, default="")
    active = fields.BooleanField(default=True)

    class Meta:
        table = "site"


class SiteTemplate(Model, metaclass=_Table):
    """One time window of a site's weekly template: applied to a date range, it opens slots."""

    id = fields.IntField(primary_key=True)
    site = fields.ForeignKeyField("models.Site", related_name="template")
    weekday = fields.IntField()  # 0 Monday … 6 Sunday
    start = fields.CharField(max_length=5)
    end = fields.CharField(max_length=5)
    capacity = fields.IntField()

    class Meta:
        table = "site_template"
        unique_together = (("site", "weekday", "start"),)


class RiskArea(Model, metaclass=_Table):
    """A sub-district marked medium or high risk: from `since`, its residents cannot book."""

    id = fields.IntField(primary_key=True)
    subdistrict = fields.CharField(max_length=50, unique=True)
    level = fields.CharField(max_length=10, default="medium")
    marked_at = fields.DatetimeField(auto_now_add=True)
    since = fields.DateField(null=True)  # None: from the moment it was marked

    class Meta:
        table = "risk_area"


class Resident(Model, metaclass=_Table):
    """A first-dose record: the person the second dose is booked for."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=50)
    id_hash = fields.CharField(max_length=64, unique=True)
    id_cipher = fields.TextField()
    id_masked = fields.CharField(max_length=18)  # pii.mask_id(): 440106**********3X
    # Only the year in clear (reports, the 70-or-more rule's ordering); the full date is read from
    # the encrypted ID number where it is needed (residents.birth_date_of, rule 8).
    birth_year = fields.IntField()
    phone_hash = fields.CharField(max_length=64, db_index=True)
    phone_cipher = fields.TextField()
    phone_masked = fields.CharField(max_length=11)
    first_dose_date = fields.DateField()
    first_site = fields.ForeignKeyField("models.Site", related_name="first_doses")
    vaccine = fields.CharField(max_length=50, default="")
    subdistrict = fields.CharField(max_length=50, default="")
    second_dose_date = fields.DateField(null=True)
    second_dose_site = fields.ForeignKeyField(
        "models.Site", related_name="second_doses", null=True
    )
    invited_at = fields.DatetimeField(null=True)
    reminded_at = fields.DatetimeField(null=True)
    lang = fields.CharField(max_length=5, default="zh")  # the language SMS are written in
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "resident"
        # The reports (models/operations/reports.py) read these instead of the table: counts per
        # sub-district, product and first-dose day; second doses per sub-district and day.
        indexes = (("subdistrict", "vaccine", "first_dose_date", "second_dose_date"),
                   ("subdistrict", "second_dose_date"))


class Slot(Model, metaclass=_Table):
    """One time window at one site on one day, with its capacity and places taken."""

    id = fields.IntField(primary_key=True)
    site = fields.ForeignKeyField("models.Site", related_name="slots")
    day = fields.DateField()
    start = fields.CharField(max_length=5)  # "09:00": sorts and compares as text
    end = fields.CharField(max_length=5)
    capacity = fields.IntField()
    booked = fields.IntField(default=0)  # bookings holding a place: status active or done
    held = fields.IntField(default=0)  # hold rows, live or expired but not yet swept
    closed_reason = fields.CharField(max_length=100, default="")  # set: closed, nobody can book it

    class Meta:
        table = "slot"
        unique_together = (("site", "day", "start"),)

    @property
    def free(self) -> int:
        return places.free(self.capacity, self.booked, self.held)

    @staticmethod
    def has_room() -> Q:
        """The filter for slot rows with a free place: booked + held < capacity (models/db/places.py
        defines it once; the engine takes a place only with an UPDATE under its SQL form)."""
        return places.has_room_filter()


class Hold(Model, metaclass=_Table):
    """A place kept for a resident for a few minutes while they check their answers."""

    id = fields.IntField(primary_key=True)
    slot = fields.ForeignKeyField("models.Slot", related_name="holds")
    resident = fields.OneToOneField("models.Resident", related_name="hold")
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "hold"


class Booking(Model, metaclass=_Table):
    ACTIVE = "active"
    CANCELLED = "cancelled"
    DONE = "done"
    NO_SHOW = "no_show"

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=12, unique=True)
    resident = fields.ForeignKeyField("models.Resident", related_name="bookings")
    slot = fields.ForeignKeyField("models.Slot", related_name="bookings")
    status = fields.CharField(max_length=12, default=ACTIVE, db_index=True)
    request_key = fields.CharField(max_length=64, null=True, unique=True)
    channel = fields.CharField(max_length=20, default="sms")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "booking"
        indexes = (("slot_id", "status"),)  # a window's bookings by status (reports, closing)


class Link(Model, metaclass=_Table):
    """A personal booking link: only the hash of its token is kept."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    resident = fields.ForeignKeyField("models.Resident", related_name="links")
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    revoked = fields.BooleanField(default=False)
    failures = fields.IntField(default=0)
    locked_until = fields.DatetimeField(null=True)

    class Meta:
        table = "link"


class ImportRun(Model, metaclass=_Table):
    """One import of a CSV file (from the browser or the CLI): its progress and its counts."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    id = fields.IntField(primary_key=True)
    kind = fields.CharField(max_length=20)  # first_doses or sites
    filename = fields.CharField(max_length=200, default="")
    status = fields.CharField(max_length=10, default=RUNNING)
    rows = fields.IntField(default=0)  # rows read so far
    created = fields.IntField(default=0)
    updated = fields.IntField(default=0)
    unchanged = fields.IntField(default=0)
    rejected = fields.IntField(default=0)
    error = fields.CharField(max_length=300, default="")  # why the whole file failed
    user = fields.ForeignKeyField("models.StaffUser", related_name="imports", null=True)
    started_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "import_run"


class ImportReject(Model, metaclass=_Table):
    """A row an import refused: its line in the file and every reason."""

    id = fields.IntField(primary_key=True)
    run = fields.ForeignKeyField("models.ImportRun", related_name="rejects")
    line = fields.IntField()
    reason = fields.CharField(max_length=500)

    class Meta:
        table = "import_reject"


class SmsMessage(Model, metaclass=_Table):
    """One SMS in the outbox, written in the same transaction as what it reports.

    A message is a gateway template (`template`, approved in advance by the operator) and its
    parameters; `body_cipher` is the same text rendered, for the console backend and for operators.
    Senders claim due messages (status `sending` until `claimed_until`), so several can run at once.
    """

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"  # worthless before it could go (a log-in code past its 5 minutes): never sent
    STATUSES = (QUEUED, SENDING, SENT, DELIVERED, FAILED, EXPIRED)

    id = fields.IntField(primary_key=True)
    resident = fields.ForeignKeyField("models.Resident", related_name="sms", null=True)
    kind = fields.CharField(max_length=20)
    phone_cipher = fields.TextField()
    phone_masked = fields.CharField(max_length=11)
    phone_hash = fields.CharField(max_length=64, default="", db_index=True)  # per-phone limits
    body_cipher = fields.TextField()  # the body of an invitation holds a live link token
    template = fields.CharField(max_length=30, default="")
    params_cipher = fields.TextField(default="")  # JSON of the template's parameters, encrypted
    lang = fields.CharField(max_length=5, default="zh")
    priority = fields.SmallIntField(default=2)  # 0 log-in code, 1 booking news, 2 reminders, 3 batches
    status = fields.CharField(max_length=10, default=QUEUED, db_index=True)
    attempts = fields.IntField(default=0)
    last_error = fields.CharField(max_length=200, default="")
    next_attempt_at = fields.DatetimeField(null=True)  # None: due now
    claimed_until = fields.DatetimeField(null=True)  # a sender's lease while status is `sending`
    gateway_id = fields.CharField(max_length=64, default="", db_index=True)  # for delivery receipts
    dedupe_key = fields.CharField(max_length=80, null=True, unique=True)  # "run twice, sent once"
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(null=True)  # not sent from then on (`expired`); None: any time

    class Meta:
        table = "sms_message"
        # The sender's next messages; and every message counted by status and kind (/metrics)
        # along an index alone, however many millions were sent.
        indexes = (("status", "priority", "next_attempt_at"), ("status", "kind"))


class SmsQuota(Model, metaclass=_Table):
    """SMS asked for on demand to one phone number (log-in codes, link re-sends) in the last day,
    for the per-number caps (models/messaging/caps.py). One row per number, taken with INSERT …
    ON CONFLICT DO UPDATE in the transaction that queues the message: its lock makes two requests
    for one number count one after the other. Rows unused for a day are deleted (purge)."""

    id = fields.IntField(primary_key=True)
    phone_hash = fields.CharField(max_length=64, unique=True)  # the number's keyed hash, as elsewhere
    times = fields.TextField(default="")  # seconds since 1970 of each one let through, comma-separated
    last_at = fields.BigIntField(db_index=True)  # seconds since 1970 of the last one

    class Meta:
        table = "sms_quota"


class LoginCode(Model, metaclass=_Table):
    """A 6-digit code sent by SMS to a phone number, for the public way in without a link.

    Only a hash of the code is kept; `tries` counts wrong answers. One row per code sent.
    """

    id = fields.IntField(primary_key=True)
    phone_hash = fields.CharField(max_length=64, db_index=True)
    code_hash = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    tries = fields.IntField(default=0)
    used = fields.BooleanField(default=False)

    class Meta:
        table = "login_code"


class StaffUser(Model, metaclass=_Table):
    """A staff account: site staff are tied to one site, sub-district staff to one sub-district."""

    # A clinic account (family doctors, a community health centre) is tied to one sub-district,
    # or explicitly to the whole district (district_wide); with neither it sees nobody.
    ROLES = ("callcentre", "site", "subdistrict", "admin", "clinic")

    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=40, unique=True)
    password_hash = fields.CharField(max_length=200)  # argon2id, never the password itself
    role = fields.CharField(max_length=12)
    site = fields.ForeignKeyField("models.Site", related_name="staff", null=True)
    subdistrict = fields.CharField(max_length=50, default="")
    # A clinic account chosen on purpose to serve the whole district (never a default: issue 21).
    district_wide = fields.BooleanField(default=False)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    failed_logins = fields.IntField(default=0)  # consecutive; reset by a good log-in
    locked_until = fields.DatetimeField(null=True)  # no longer set: see models/staff/sessions.py

    class Meta:
        table = "staff_user"


class StaffSession(Model, metaclass=_Table):
    """A signed-in staff member's session: the cookie holds only a random token, hashed here."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    user = fields.ForeignKeyField("models.StaffUser", related_name="sessions")
    created_at = fields.DatetimeField(auto_now_add=True)
    last_seen = fields.DatetimeField()
    expires_at = fields.DatetimeField()  # absolute lifetime, however active
    revoked = fields.BooleanField(default=False)
    address = fields.CharField(max_length=45, default="")

    class Meta:
        table = "staff_session"


class AuditEntry(Model, metaclass=_Table):
    """One staff action. Append-only: the database refuses UPDATE and DELETE (migration 0004)."""

    id = fields.IntField(primary_key=True)
    at = fields.DatetimeField(auto_now_add=True, db_index=True)
    user = fields.ForeignKeyField("models.StaffUser", related_name="audit", null=True)
    username = fields.CharField(max_length=40, db_index=True)  # kept as typed for failed log-ins
    role = fields.CharField(max_length=12, default="")
    action = fields.CharField(max_length=40, db_index=True)
    resident = fields.ForeignKeyField("models.Resident", related_name="audit", null=True)
    detail = fields.CharField(max_length=300, default="")
    address = fields.CharField(max_length=45, default="")

    class Meta:
        table = "audit_entry"


class GroupList(Model, metaclass=_Table):
    """A list of people a sub-district office or residents' committee books together (/group).

    `subdistrict` is the sub-district whose staff may see the list ("" for an admin's list, seen
    by admins only); `runs` counts the book, move and cancel actions taken on it."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    owner = fields.ForeignKeyField("models.StaffUser", related_name="group_lists")
    subdistrict = fields.CharField(max_length=50, default="", db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    runs = fields.IntField(default=0)
    last_action = fields.CharField(max_length=10, default="")  # book, move or cancel
    last_at = fields.DatetimeField(null=True)

    class Meta:
        table = "group_list"


class GroupMember(Model, metaclass=_Table):
    """One row of a group list, as typed: the ID number kept hashed (to find the record),
    encrypted and masked, never in clear; the phone encrypted and masked. `booking` is the
    booking this list made (kept when moved); `outcome` what the list's latest action on this
    row came to, in action number `run`."""

    id = fields.IntField(primary_key=True)
    group = fields.ForeignKeyField("models.GroupList", related_name="members")
    row = fields.IntField()  # 1, 2, … in the order the rows came
    name = fields.CharField(max_length=50)
    id_hash = fields.CharField(max_length=64, default="", db_index=True)  # "" when not a valid ID
    id_cipher = fields.TextField(default="")
    id_masked = fields.CharField(max_length=18, default="")
    id_problem = fields.CharField(max_length=12, default="")  # why not valid: empty, length, checksum…
    phone_cipher = fields.TextField(default="")
    phone_masked = fields.CharField(max_length=11, default="")
    resident = fields.ForeignKeyField("models.Resident", related_name="group_rows", null=True,
                                      on_delete=fields.SET_NULL)
    booking = fields.ForeignKeyField("models.Booking", related_name="group_rows", null=True,
                                     on_delete=fields.SET_NULL)
    outcome = fields.CharField(max_length=20, default="")
    run = fields.IntField(default=0)
    added_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "group_member"
        unique_together = (("group", "row"),)


class HandoffTicket(Model, metaclass=_Table):
    """A one-time address (/h/…) made for a partner's signed hand-off (models/channels/handoff.py):
    only the hash of its token is kept; it lives minutes and opens one journey, once."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    partner = fields.CharField(max_length=20)
    resident = fields.ForeignKeyField("models.Resident", related_name="handoffs")
    lang = fields.CharField(max_length=2, default="")  # the language the partner asked for
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "handoff_ticket"


class HandoffNonce(Model, metaclass=_Table):
    """A nonce a partner signed a request with, kept while its timestamp could still be accepted:
    the same nonce again is a replay."""

    id = fields.IntField(primary_key=True)
    partner = fields.CharField(max_length=20)
    nonce = fields.CharField(max_length=64)
    seen_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "handoff_nonce"
        unique_together = (("partner", "nonce"),)


class RateCounter(Model, metaclass=_Table):
    """One rate limit's count for one key in one window (web/limits.py), when no Redis is set:
    every worker and host on the database counts together. `key` is a keyed hash of the limit's
    name and what it counts (an address, a username…): no personal value is kept here. Rows
    whose window is over are deleted as the counting goes on."""

    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=64)
    period = fields.BigIntField()  # the window's number: seconds since 1970 // its length
    hits = fields.IntField(default=0)
    expires = fields.BigIntField(db_index=True)  # seconds since 1970 when it no longer counts

    class Meta:
        table = "rate_counter"
        unique_together = (("key", "period"),)


class WaitlistEntry(Model, metaclass=_Table):
    """A person on the waiting list (models/booking/waitlist.py): what they would accept, and
    where they stand. One row per person: joining again changes the choice. The list's order
    (README, "The waiting list"): whose interval ends soonest (`due_by`), then people aged 70 or
    more (`senior`), then the earliest to join (`joined_at`)."""

    WAITING = "waiting"  # on the list, no offer open
    OFFERED = "offered"  # an offer holds a place for them (one at a time)
    BOOKED = "booked"  # booked by any channel: off the list
    LEFT = "left"  # took themselves off (or a member of staff did for them)
    REMOVED = "removed"  # three offers let expire: off the list, told by SMS how to rejoin
    ACTIVE = (WAITING, OFFERED)

    id = fields.IntField(primary_key=True)
    resident = fields.OneToOneField("models.Resident", related_name="waitlist")
    status = fields.CharField(max_length=10, default=WAITING)
    scope = fields.CharField(max_length=12, default="site")  # site | subdistrict | any
    site = fields.ForeignKeyField("models.Site", related_name="waitlist")  # their first-dose site
    subdistrict = fields.CharField(max_length=50, default="")  # that site's sub-district
    days = fields.CharField(max_length=10, default="any")  # any | weekdays | weekends
    part = fields.CharField(max_length=10, default="any")  # any | morning | afternoon
    first_day = fields.DateField()  # the first day their second dose may be given
    due_by = fields.DateField()  # the last day of their interval (order: soonest first)
    senior = fields.BooleanField(default=False)  # 70 or more on joining (rule 8)
    joined_at = fields.DatetimeField()
    expired_offers = fields.SmallIntField(default=0)  # offers let run out since joining
    callback = fields.BooleanField(default=False)  # no mobile phone: an agent calls with offers
    channel = fields.CharField(max_length=20, default="sms")  # how they joined
    added_by = fields.ForeignKeyField("models.StaffUser", related_name="waitlist_added", null=True,
                                      on_delete=fields.SET_NULL)
    ended_at = fields.DatetimeField(null=True)  # booked, left or removed

    class Meta:
        table = "waitlist_entry"
        indexes = (("status", "due_by", "senior", "joined_at"),)


class WaitlistOffer(Model, metaclass=_Table):
    """A freed place held for the next person on the list until `expires_at`: counted in the
    slot's `held` while `open`, like a hold. Its personal link (/o/…) keeps only the token's
    hash; its SMS is queued in the transaction that made it, to go at `sends_at` (quiet hours)."""

    OPEN = "open"
    TAKEN = "taken"  # booked (through the offer's page or any channel)
    DECLINED = "declined"  # "not for me"
    EXPIRED = "expired"  # not answered in time
    WITHDRAWN = "withdrawn"  # the person booked elsewhere, left the list, or the window closed
    STATUSES = (OPEN, TAKEN, DECLINED, EXPIRED, WITHDRAWN)

    id = fields.IntField(primary_key=True)
    entry = fields.ForeignKeyField("models.WaitlistEntry", related_name="offers")
    resident = fields.ForeignKeyField("models.Resident", related_name="offers")
    slot = fields.ForeignKeyField("models.Slot", related_name="offers")
    token_hash = fields.CharField(max_length=64, unique=True)
    status = fields.CharField(max_length=10, default=OPEN)
    same_day = fields.BooleanField(default=False)  # a place for today: the shorter hold
    callback = fields.BooleanField(default=False)  # for an agent to phone, no SMS
    created_at = fields.DatetimeField()
    sends_at = fields.DatetimeField()  # the SMS goes then (08:00 for a place freed at night)
    expires_at = fields.DatetimeField()
    answered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "waitlist_offer"
        indexes = (("status", "expires_at"), ("resident_id", "status"), ("slot_id", "status"))
