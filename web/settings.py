"""Every setting read from the environment (or a `.env` file), typed, in one place.

Each setting is declared once, as a field of Settings: `setting("ENV_VAR", default, reader)`.
load_settings() reads every declared variable through Starlette's Config (the environment, then
`.env`) with the field's reader, which bounds it and names the variable in its error; the
configuration tables of README.md and docs/data-formats.md are tested against the declarations
(tests/test_docs.py)."""
from __future__ import annotations

import re

import ipaddress
import os
import secrets
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path

from starlette.config import Config

from models.clock import SystemClock
from models.district import District
from models.messaging.caps import SmsCaps
from models.messaging.config import SmsConfig, parse_template_codes
from models.channels.wechat import check_settings as check_wechat_settings
from models.channels.handoff import parse_partners
from models.people.pii import Vault
from models.rules.interval import RULES_FILE, RuleBook

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"


def _secret_key(data_dir: Path) -> str:
    """Return the secret kept in data/secret_key, creating it on first run."""
    path = data_dir / "secret_key"
    if path.is_file():
        return path.read_text().strip()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the database goes there too
    key = secrets.token_urlsafe(48)
    # O_EXCL: when several workers start at once, exactly one writes the key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


# ---- how a variable's text is read (None: not set). Each reader names the variable in its error.


def _as_given(name: str, text: str | None, default):
    return default if text is None else text


def _trimmed(name: str, text: str | None, default):
    return default if text is None else text.strip()


def _or_default(name: str, text: str | None, default):
    """Spaces trimmed; empty means the default."""
    return (text or "").strip() or default


def _lowered(name: str, text: str | None, default):
    return (text or "").strip().lower() or default


def _address(name: str, text: str | None, default):
    return _as_given(name, text, default).rstrip("/")


def _flag(name: str, text: str | None, default):
    return text in ("1", "true", "yes")


def _items(name: str, text: str | None, default):
    """A comma-separated list; empty items are dropped."""
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def _database(name: str, text: str | None, default):
    return parse_database_url(text or "")


def _partners(name: str, text: str | None, default):
    return parse_partners(text or "")


def _quiet_hours(name: str, text: str | None, default):
    """"21:30-08:00" (no offer SMS from the first time to the second); "off" or "" for none."""
    text = (text or "").strip()
    if text.lower() in ("off", "none", "no", "0") or (text == "" and default is None):
        return None
    if not text:
        return default
    parts = [part.strip() for part in text.split("-")]
    if len(parts) != 2 or not all(re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", part) for part in parts) \
            or parts[0] == parts[1]:
        raise ValueError(f"{name}: {text!r} is not two times like 21:30-08:00 (or off)")
    return parts[0], parts[1]


_quiet_hours.bounds = "HH:MM-HH:MM or off"


def _number(kind=int, *, zero: bool = False):
    """A count (int) or seconds (float): more than 0, or 0 too with `zero`; blank: the default."""

    def read(name: str, text: str | None, default):
        text = text or ""
        if not text.strip():
            return default
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not a number") from None
        if value < 0 or (value == 0 and not zero) or value != value or value == float("inf"):
            raise ValueError(f"{name}: must be more than 0" + (" or 0" if zero else ""))
        return value

    read.bounds = "0 or more" if zero else "more than 0"
    return read


def setting(env: str, default, read=_as_given, *, secret: bool = False, shown: str | None = None):
    """One setting, declared once: the environment variable it is read from, its default, how its
    text is read (and bounded), whether it is a secret (kept out of repr), and, when the default
    is not written as the docs' tables write it, how they do (tests/test_docs.py compares)."""
    return field(default=default, repr=not secret,
                 metadata={"env": env, "read": read, "shown": shown})


@dataclass(frozen=True)
class Settings:
    database_url: str = setting("DATABASE_URL", "sqlite://data/booking.sqlite3", _database)
    base_url: str = setting("BASE_URL", "http://127.0.0.1:8000", _address)
    secret_key: str = setting("SECRET_KEY", "", secret=True, shown="data/secret_key")  # "": generated
    # Keys in use before a rotation (SECRET_KEY_OLD, comma-separated): what they encrypted or
    # signed stays readable; everything new uses secret_key; `run.py rotate-keys` rewrites the rest.
    secret_key_old: tuple[str, ...] = setting("SECRET_KEY_OLD", (), _items, secret=True)
    # console | aliyun | tencent (models/messaging/gateways/)
    sms_backend: str = setting("SMS_BACKEND", "console")
    sms_signature: str = setting("SMS_SIGNATURE", "天河区卫健局")
    # confirm=SMS_123,confirm.en=SMS_124,… (see docs/sms.md)
    sms_template_codes: str = setting("SMS_TEMPLATE_CODES", "")
    sms_endpoint: str = setting("SMS_ENDPOINT", "", shown="the vendor's")
    sms_access_key_id: str = setting("SMS_ACCESS_KEY_ID", "", secret=True)
    sms_access_key_secret: str = setting("SMS_ACCESS_KEY_SECRET", "", secret=True)
    sms_app_id: str = setting("SMS_APP_ID", "")
    sms_region: str = setting("SMS_REGION", "ap-guangzhou")
    sms_timeout_seconds: float = setting("SMS_TIMEOUT_SECONDS", 10.0, _number(float))
    sms_per_phone_per_hour: int = setting("SMS_PER_PHONE_PER_HOUR", 10, _number())
    # SMS one number may be sent on demand (log-in codes, link re-sends): models/messaging/caps.py
    sms_on_demand_per_hour: int = setting("SMS_ON_DEMAND_PER_HOUR", 5, _number())
    sms_on_demand_per_day: int = setting("SMS_ON_DEMAND_PER_DAY", 10, _number())
    sms_rate_per_second: int = setting("SMS_RATE_PER_SECOND", 50, _number())
    sms_max_attempts: int = setting("SMS_MAX_ATTEMPTS", 10, _number())
    # the server process also runs the SMS sender (`make run`)
    sms_in_server: bool = setting("SMS_IN_SERVER", False, _flag)
    # The official account's callback (/wechat, models/channels/wechat.py): off while no token.
    wechat_token: str = setting("WECHAT_TOKEN", "", _trimmed, secret=True)
    wechat_app_id: str = setting("WECHAT_APP_ID", "", _trimmed)
    # EncodingAESKey: safe mode when set
    wechat_aes_key: str = setting("WECHAT_AES_KEY", "", _trimmed, secret=True)
    redis_url: str = setting("REDIS_URL", "")  # shared rate-limit counters for several workers or hosts
    # keys of this service (a district) in a shared Redis
    redis_prefix: str = setting("REDIS_PREFIX", "booking")
    vaccine_rules_file: str = setting("VACCINE_RULES_FILE", str(RULES_FILE),
                                      shown=str(RULES_FILE.relative_to(ROOT)))
    link_days_valid: int = 60
    verify_max_failures: int = 5
    verify_lock_minutes: int = 30
    booking_lead_days: int = 7
    hold_minutes: int = 5
    # The waiting list (models/booking/waitlist.py): how long an offer holds a freed place for
    # the person it is sent to; a place for the same day (a site's leftover doses): shorter; no
    # offer SMS in the quiet hours (a place freed then is held and offered when they end).
    offer_minutes: int = setting("OFFER_MINUTES", 120, _number())
    same_day_offer_minutes: int = setting("SAME_DAY_OFFER_MINUTES", 45, _number())
    quiet_hours: tuple[str, str] | None = setting("QUIET_HOURS", ("21:30", "08:00"), _quiet_hours,
                                                  shown="21:30-08:00")
    # `run.py purge`: personal data is erased this many days after a window closed without a
    # second dose (models/operations/purge.py; a given second dose: from the next day).
    purge_after_days: int = setting("PURGE_AFTER_DAYS", 30, _number(zero=True))
    # Rate limits (web/limits.py; the `limits` library's notation). Each attempt is counted
    # before it is checked; a good one is given back, so what counts is failures (and attempts
    # in flight). Shared by every worker and host: in Redis with REDIS_URL, else in the
    # database. Client addresses count by address (IPv6: by /64). Unknown or dead link tokens
    # per client address:
    rate_limit_open_link: str = setting("RATE_LIMIT_OPEN_LINK", "30/minute")
    # wrong ID numbers per client address
    rate_limit_verify: str = setting("RATE_LIMIT_VERIFY", "60/minute")
    # wrong passwords per client address
    rate_limit_staff_login: str = setting("RATE_LIMIT_STAFF_LOGIN", "30 per 15 minutes")
    # per username and address (or device)
    rate_limit_login_guess: str = setting("RATE_LIMIT_LOGIN_GUESS", "5 per 15 minutes")
    # Wrong passwords per username from every address together (a browser the person signed in
    # on before is counted on its own instead: the owner is never kept out).
    rate_limit_login_account: str = setting("RATE_LIMIT_LOGIN_ACCOUNT", "10 per 15 minutes")
    # The public way in (models/channels/entry.py), per client address: log-in codes asked for
    # (each may cost an SMS, so every one counts), and wrong codes or bookings not found.
    rate_limit_sms_code: str = setting("RATE_LIMIT_SMS_CODE", "20/hour")
    rate_limit_entry: str = setting("RATE_LIMIT_ENTRY", "30 per 15 minutes")
    # Wrong ID numbers typed for one booking code on /find (real or made up, alike), and for
    # one person of a proved phone: the asker is stopped, the person's own link is not locked.
    rate_limit_find_code: str = setting("RATE_LIMIT_FIND_CODE", "5 per 30 minutes")
    rate_limit_entry_person: str = setting("RATE_LIMIT_ENTRY_PERSON", "5 per 30 minutes")
    # Audit rows of noisy refusals (a throttled sign-in, a bad hand-off signature): per action
    # and address, and per action from everywhere; beyond, only /metrics counts them.
    rate_limit_audit: str = setting("RATE_LIMIT_AUDIT", "10 per 15 minutes")
    rate_limit_audit_all: str = setting("RATE_LIMIT_AUDIT_ALL", "200/hour")
    # The city platform's hand-off (models/channels/handoff.py): signed calls per partner, and
    # refused signatures per address.
    rate_limit_handoff: str = setting("RATE_LIMIT_HANDOFF", "600/minute")
    # The site console's look-ups (a booking code or an ID number at the door), per staff
    # account from every address, each one counted: a burst, and an hour's volume (a big site's
    # busiest honest hour is under 500; several desks may share one account).
    rate_limit_site_lookup: str = setting("RATE_LIMIT_SITE_LOOKUP", "30/minute")
    rate_limit_site_lookup_hour: str = setting("RATE_LIMIT_SITE_LOOKUP_HOUR", "600/hour")
    # Partners of the hand-off API and their shared secrets ((name, secret), …); none: it is off.
    handoff_partners: tuple[tuple[str, str], ...] = setting("HANDOFF_PARTNERS", (), _partners,
                                                            secret=True)
    # Proxies whose X-Forwarded-For is believed (addresses or networks); none by default.
    trusted_proxies: tuple[str, ...] = setting("TRUSTED_PROXIES", (), _items)
    # The waiting room (web/waiting_room.py), per server process: resident requests in flight
    # (0: no waiting room), and how long a GET, then a POST, may wait in line before the page.
    waiting_room_active: int = setting("WAITING_ROOM_ACTIVE", 16, _number(zero=True))
    waiting_room_wait: float = setting("WAITING_ROOM_WAIT", 5.0, _number(float, zero=True))
    waiting_room_post_wait: float = setting("WAITING_ROOM_POST_WAIT", 20.0, _number(float, zero=True))
    # /metrics (web/metrics.py): open to `Authorization: Bearer <metrics_token>`, or to clients
    # from metrics_allow (addresses or networks); neither set: off (404 to everyone).
    metrics_token: str = setting("METRICS_TOKEN", "", _trimmed, secret=True)
    metrics_allow: tuple[str, ...] = setting("METRICS_ALLOW", (), _items)
    # Where each server process writes its counters for /metrics to add up (prometheus-client's
    # multiprocess mode): set by `run.py serve` before the workers start; empty: this process only.
    metrics_dir: str = setting("PROMETHEUS_MULTIPROC_DIR", "", _trimmed)
    # text | json (one JSON object per line: web/logs.py)
    log_format: str = setting("LOG_FORMAT", "text", _lowered)
    # `run.py backup` (models/operations/backup.py): where copies go, and how many are kept.
    backup_dir: str = setting("BACKUP_DIR", str(DATA_DIR / "backups"), _or_default, shown="data/backups")
    backup_keep: int = setting("BACKUP_KEEP", 14, _number())
    # True when SECRET_KEY was not set and the key was generated into data/secret_key (`doctor`).
    secret_key_generated: bool = False
    debug: bool = setting("DEBUG", False, _flag)

    @property
    def signing_keys(self) -> list[str]:
        """For itsdangerous (sessions, the device cookie, the waiting room): oldest first; it
        signs with the last, secret_key, and accepts a signature by any."""
        return [*reversed(self.secret_key_old), self.secret_key]

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def metrics_on(self) -> bool:
        """/metrics answers someone (a token or trusted addresses are set)."""
        return bool(self.metrics_token or self.metrics_allow)

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)


DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql", "asyncpg")


def parse_database_url(text: str) -> str:
    """DATABASE_URL in the one form the rest of the code reads: `sqlite://` then the file's path
    (relative to the working folder, or absolute: `sqlite:///srv/db.sqlite3`, and the four slashes
    many tools write, `sqlite:////srv/db.sqlite3`, mean the same absolute path), or a PostgreSQL
    address as given. Anything else is a ValueError naming the setting (never its password)."""
    text = text.strip() or Settings.database_url
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError("DATABASE_URL: not a database address; use sqlite:///path/to/booking.sqlite3 "
                         "or postgres://user:password@host:5432/booking")
    if scheme.lower() not in DATABASE_SCHEMES:
        raise ValueError(f"DATABASE_URL: {scheme}:// is not supported; use sqlite:// (a file) "
                         "or postgres:// (PostgreSQL)")
    if scheme.lower() != "sqlite":  # no host is PostgreSQL's own socket: asyncpg's default
        return text
    path, _, query = rest.partition("?")
    if path.startswith("//"):  # sqlite:////srv/x: an absolute path written with four slashes
        path = "/" + path.lstrip("/")
    if not path or path.endswith("/"):
        raise ValueError("DATABASE_URL: no file name after sqlite://; use sqlite:///path/to/booking.sqlite3")
    if ":memory:" in path:
        raise ValueError("DATABASE_URL: an in-memory SQLite database is not supported; use a file")
    return f"sqlite://{path}" + (f"?{query}" if query else "")


def _rate_ok(text: str) -> bool:
    from limits import parse

    try:
        item = parse(text)
    except ValueError:
        return False
    return item.amount > 0 and item.get_expiry() > 0


def variables() -> dict[str, Field]:
    """Each environment variable and the Settings field it sets, in declaration order (the
    other fields are fixed in code). The docs' tables are tested against it (tests/test_docs.py)."""
    return {f.metadata["env"]: f for f in fields(Settings) if "env" in f.metadata}


def load_settings(**overrides) -> Settings:
    """Build Settings from the environment, then `.env`, then defaults; overrides win. Each
    variable is read as its field declares (`setting(…)` in Settings); then the checks that
    look at several, or at what an override set."""
    config = Config(ROOT / ".env" if (ROOT / ".env").is_file() else None, environ=os.environ)
    values = {f.name: f.metadata["read"](env, config.get(env, default=None), f.default)
              for env, f in variables().items()}
    values.update(overrides)
    for proxy in values["trusted_proxies"]:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(f"TRUSTED_PROXIES: {proxy!r} is not an address or network") from None
    for allowed in values["metrics_allow"]:
        try:
            ipaddress.ip_network(allowed, strict=False)
        except ValueError:
            raise ValueError(f"METRICS_ALLOW: {allowed!r} is not an address or network") from None
    if values["metrics_token"] and len(values["metrics_token"]) < 16:
        raise ValueError("METRICS_TOKEN: use 16 characters or more (a random one: "
                         "python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if values["log_format"] not in ("text", "json"):
        raise ValueError(f"LOG_FORMAT: {values['log_format']!r} is neither text nor json")
    check_wechat_settings(values["wechat_token"], values["wechat_app_id"], values["wechat_aes_key"])
    for name, text in values.items():  # each limit in the `limits` notation, e.g. "5 per 15 minutes"
        if name.startswith("rate_limit_") and not _rate_ok(text):
            raise ValueError(f"{name.upper()}: {text!r} is not a limit like \"5 per 15 minutes\"")
    if not values["secret_key"]:
        values["secret_key"] = _secret_key(DATA_DIR)
        values.setdefault("secret_key_generated", True)
    return Settings(**values)


def build_district(settings: Settings, *, clock: SystemClock | None = None) -> District:
    """The rule book, keys and clock every part of the domain is handed (built once per process)."""
    return District(
        rules=RuleBook.from_file(settings.vaccine_rules_file, lead_days=settings.booking_lead_days),
        vault=Vault(settings.secret_key, settings.secret_key_old),
        clock=clock or SystemClock(),
        base_url=settings.base_url,
        hold_minutes=settings.hold_minutes,
        link_days_valid=settings.link_days_valid,
        verify_max_failures=settings.verify_max_failures,
        verify_lock_minutes=settings.verify_lock_minutes,
        sms_caps=SmsCaps(per_hour=settings.sms_on_demand_per_hour, per_day=settings.sms_on_demand_per_day),
        offer_minutes=settings.offer_minutes,
        same_day_offer_minutes=settings.same_day_offer_minutes,
        quiet_hours=settings.quiet_hours,
    )


def sms_config(settings: Settings) -> SmsConfig:
    """The gateway and the sending limits (models/messaging/config.py)."""
    return SmsConfig(
        backend=settings.sms_backend, signature=settings.sms_signature,
        template_codes=parse_template_codes(settings.sms_template_codes),
        endpoint=settings.sms_endpoint, access_key_id=settings.sms_access_key_id,
        access_key_secret=settings.sms_access_key_secret, app_id=settings.sms_app_id,
        region=settings.sms_region, timeout_seconds=settings.sms_timeout_seconds,
        per_phone_per_hour=settings.sms_per_phone_per_hour,
        rate_per_second=settings.sms_rate_per_second, max_attempts=settings.sms_max_attempts,
    )


def rate_limit_rules(settings: Settings) -> dict[str, str]:
    """Each limit's name and its setting (web/limits.py: RateLimits)."""
    return {
        "open_link": settings.rate_limit_open_link,
        "verify": settings.rate_limit_verify,
        "staff_login": settings.rate_limit_staff_login,
        "login_guess": settings.rate_limit_login_guess,
        "login_account": settings.rate_limit_login_account,
        "sms_code": settings.rate_limit_sms_code,
        "entry": settings.rate_limit_entry,
        "find_code": settings.rate_limit_find_code,
        "entry_person": settings.rate_limit_entry_person,
        "handoff": settings.rate_limit_handoff,
        "site_lookup": settings.rate_limit_site_lookup,
        "site_lookup_hour": settings.rate_limit_site_lookup_hour,
        "audit": settings.rate_limit_audit,
        "audit_all": settings.rate_limit_audit_all,
    }
