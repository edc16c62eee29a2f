"""Every setting read from the environment (or a `.env` file), typed, in one place."""
from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

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


def _read_dotenv(path: Path) -> dict[str, str]:
    """Return KEY=VALUE pairs of a `.env` file, ignoring comments and blank lines."""
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip('"').strip("'")
    return values


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


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite://data/booking.sqlite3"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = field(default="", repr=False)
    # Keys in use before a rotation (SECRET_KEY_OLD, comma-separated): what they encrypted or
    # signed stays readable; everything new uses secret_key; `run.py rotate-keys` rewrites the rest.
    secret_key_old: tuple[str, ...] = field(default=(), repr=False)
    sms_backend: str = "console"  # console | aliyun | tencent (models/messaging/gateways/)
    sms_signature: str = "天河区卫健局"
    sms_template_codes: str = ""  # confirm=SMS_123,confirm.en=SMS_124,… (see docs/sms.md)
    sms_endpoint: str = ""
    sms_access_key_id: str = field(default="", repr=False)
    sms_access_key_secret: str = field(default="", repr=False)
    sms_app_id: str = ""
    sms_region: str = "ap-guangzhou"
    sms_timeout_seconds: float = 10.0
    sms_per_phone_per_hour: int = 10
    # SMS one number may be sent on demand (log-in codes, link re-sends): models/messaging/caps.py
    sms_on_demand_per_hour: int = 5
    sms_on_demand_per_day: int = 10
    sms_rate_per_second: int = 50
    sms_max_attempts: int = 10
    sms_in_server: bool = False  # the server process also runs the SMS sender (`make run`)
    # The official account's callback (/wechat, models/channels/wechat.py): off while no token.
    wechat_token: str = field(default="", repr=False)
    wechat_app_id: str = ""
    wechat_aes_key: str = field(default="", repr=False)  # EncodingAESKey: safe mode when set
    redis_url: str = ""  # shared rate-limit counters for several workers or hosts
    redis_prefix: str = "booking"  # keys of this service (a district) in a shared Redis
    vaccine_rules_file: str = str(RULES_FILE)
    link_days_valid: int = 60
    verify_max_failures: int = 5
    verify_lock_minutes: int = 30
    booking_lead_days: int = 7
    hold_minutes: int = 5
    # `run.py purge`: personal data is erased this many days after a window closed without a
    # second dose (models/operations/purge.py; a given second dose: from the next day).
    purge_after_days: int = 30
    # Rate limits (web/limits.py; the `limits` library's notation). Each attempt is counted
    # before it is checked; a good one is given back, so what counts is failures (and attempts
    # in flight). Shared by every worker and host: in Redis with REDIS_URL, else in the
    # database. Client addresses count by address (IPv6: by /64). Unknown or dead link tokens
    # per client address:
    rate_limit_open_link: str = "30/minute"
    rate_limit_verify: str = "60/minute"  # wrong ID numbers per client address
    rate_limit_staff_login: str = "30 per 15 minutes"  # wrong passwords per client address
    rate_limit_login_guess: str = "5 per 15 minutes"  # per username and address (or device)
    # Wrong passwords per username from every address together (a browser the person signed in
    # on before is counted on its own instead: the owner is never kept out).
    rate_limit_login_account: str = "10 per 15 minutes"
    # The public way in (models/channels/entry.py), per client address: log-in codes asked for
    # (each may cost an SMS, so every one counts), and wrong codes or bookings not found.
    rate_limit_sms_code: str = "20/hour"
    rate_limit_entry: str = "30 per 15 minutes"
    # Wrong ID numbers typed for one booking code on /find (real or made up, alike), and for
    # one person of a proved phone: the asker is stopped, the person's own link is not locked.
    rate_limit_find_code: str = "5 per 30 minutes"
    rate_limit_entry_person: str = "5 per 30 minutes"
    # Audit rows of noisy refusals (a throttled sign-in, a bad hand-off signature): per action
    # and address, and per action from everywhere; beyond, only /metrics counts them.
    rate_limit_audit: str = "10 per 15 minutes"
    rate_limit_audit_all: str = "200/hour"
    # The city platform's hand-off (models/channels/handoff.py): signed calls per partner, and
    # refused signatures per address.
    rate_limit_handoff: str = "600/minute"
    # The site console's look-ups (a booking code or an ID number at the door), per staff
    # account from every address, each one counted: a burst, and an hour's volume (a big site's
    # busiest honest hour is under 500; several desks may share one account).
    rate_limit_site_lookup: str = "30/minute"
    rate_limit_site_lookup_hour: str = "600/hour"
    # Partners of the hand-off API and their shared secrets ((name, secret), …); none: it is off.
    handoff_partners: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # Proxies whose X-Forwarded-For is believed (addresses or networks); none by default.
    trusted_proxies: tuple[str, ...] = ()
    # The waiting room (web/waiting_room.py), per server process: resident requests in flight
    # (0: no waiting room), and how long a GET, then a POST, may wait in line before the page.
    waiting_room_active: int = 16
    waiting_room_wait: float = 5.0
    waiting_room_post_wait: float = 20.0
    # /metrics (web/metrics.py): open to `Authorization: Bearer <metrics_token>`, or to clients
    # from metrics_allow (addresses or networks); neither set: off (404 to everyone).
    metrics_token: str = field(default="", repr=False)
    metrics_allow: tuple[str, ...] = ()
    # Where each server process writes its counters for /metrics to add up (prometheus-client's
    # multiprocess mode): set by `run.py serve` before the workers start; empty: this process only.
    metrics_dir: str = ""
    log_format: str = "text"  # text | json (one JSON object per line: web/logs.py)
    # `run.py backup` (models/operations/backup.py): where copies go, and how many are kept.
    backup_dir: str = str(DATA_DIR / "backups")
    backup_keep: int = 14
    # True when SECRET_KEY was not set and the key was generated into data/secret_key (`doctor`).
    secret_key_generated: bool = False
    debug: bool = False

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


def _number(env: dict, name: str, default, kind=int, *, zero: bool = False):
    text = env.get(name, "")
    if not text.strip():
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a number") from None
    if value < 0 or (value == 0 and not zero) or value != value or value == float("inf"):
        raise ValueError(f"{name}: must be more than 0" + (" or 0" if zero else ""))
    return value


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


def load_settings(**overrides) -> Settings:
    """Build Settings from the environment, then `.env`, then defaults; overrides win."""
    env = {**_read_dotenv(ROOT / ".env"), **os.environ}
    values = dict(
        database_url=parse_database_url(env.get("DATABASE_URL", "")),
        base_url=env.get("BASE_URL", Settings.base_url).rstrip("/"),
        secret_key=env.get("SECRET_KEY", ""),
        secret_key_old=tuple(k.strip() for k in env.get("SECRET_KEY_OLD", "").split(",") if k.strip()),
        sms_backend=env.get("SMS_BACKEND", Settings.sms_backend),
        sms_signature=env.get("SMS_SIGNATURE", Settings.sms_signature),
        sms_template_codes=env.get("SMS_TEMPLATE_CODES", ""),
        sms_endpoint=env.get("SMS_ENDPOINT", ""),
        sms_access_key_id=env.get("SMS_ACCESS_KEY_ID", ""),
        sms_access_key_secret=env.get("SMS_ACCESS_KEY_SECRET", ""),
        sms_app_id=env.get("SMS_APP_ID", ""),
        sms_region=env.get("SMS_REGION", Settings.sms_region),
        sms_timeout_seconds=_number(env, "SMS_TIMEOUT_SECONDS", Settings.sms_timeout_seconds, float),
        sms_per_phone_per_hour=_number(env, "SMS_PER_PHONE_PER_HOUR", Settings.sms_per_phone_per_hour),
        sms_on_demand_per_hour=_number(env, "SMS_ON_DEMAND_PER_HOUR", Settings.sms_on_demand_per_hour),
        sms_on_demand_per_day=_number(env, "SMS_ON_DEMAND_PER_DAY", Settings.sms_on_demand_per_day),
        sms_rate_per_second=_number(env, "SMS_RATE_PER_SECOND", Settings.sms_rate_per_second),
        sms_max_attempts=_number(env, "SMS_MAX_ATTEMPTS", Settings.sms_max_attempts),
        sms_in_server=env.get("SMS_IN_SERVER", "") in ("1", "true", "yes"),
        wechat_token=env.get("WECHAT_TOKEN", "").strip(),
        wechat_app_id=env.get("WECHAT_APP_ID", "").strip(),
        wechat_aes_key=env.get("WECHAT_AES_KEY", "").strip(),
        redis_url=env.get("REDIS_URL", ""),
        redis_prefix=env.get("REDIS_PREFIX", Settings.redis_prefix),
        vaccine_rules_file=env.get("VACCINE_RULES_FILE", Settings.vaccine_rules_file),
        debug=env.get("DEBUG", "") in ("1", "true", "yes"),
        rate_limit_open_link=env.get("RATE_LIMIT_OPEN_LINK", Settings.rate_limit_open_link),
        rate_limit_verify=env.get("RATE_LIMIT_VERIFY", Settings.rate_limit_verify),
        rate_limit_staff_login=env.get("RATE_LIMIT_STAFF_LOGIN", Settings.rate_limit_staff_login),
        rate_limit_login_guess=env.get("RATE_LIMIT_LOGIN_GUESS", Settings.rate_limit_login_guess),
        rate_limit_sms_code=env.get("RATE_LIMIT_SMS_CODE", Settings.rate_limit_sms_code),
        rate_limit_entry=env.get("RATE_LIMIT_ENTRY", Settings.rate_limit_entry),
        rate_limit_login_account=env.get("RATE_LIMIT_LOGIN_ACCOUNT",
                                         Settings.rate_limit_login_account),
        rate_limit_find_code=env.get("RATE_LIMIT_FIND_CODE", Settings.rate_limit_find_code),
        rate_limit_entry_person=env.get("RATE_LIMIT_ENTRY_PERSON", Settings.rate_limit_entry_person),
        rate_limit_audit=env.get("RATE_LIMIT_AUDIT", Settings.rate_limit_audit),
        rate_limit_audit_all=env.get("RATE_LIMIT_AUDIT_ALL", Settings.rate_limit_audit_all),
        rate_limit_handoff=env.get("RATE_LIMIT_HANDOFF", Settings.rate_limit_handoff),
        rate_limit_site_lookup=env.get("RATE_LIMIT_SITE_LOOKUP", Settings.rate_limit_site_lookup),
        rate_limit_site_lookup_hour=env.get("RATE_LIMIT_SITE_LOOKUP_HOUR",
                                            Settings.rate_limit_site_lookup_hour),
        handoff_partners=parse_partners(env.get("HANDOFF_PARTNERS", "")),
        trusted_proxies=tuple(p.strip() for p in env.get("TRUSTED_PROXIES", "").split(",")
                              if p.strip()),
        purge_after_days=_number(env, "PURGE_AFTER_DAYS", Settings.purge_after_days, zero=True),
        waiting_room_active=_number(env, "WAITING_ROOM_ACTIVE", Settings.waiting_room_active,
                                    zero=True),
        waiting_room_wait=_number(env, "WAITING_ROOM_WAIT", Settings.waiting_room_wait, float,
                                  zero=True),
        waiting_room_post_wait=_number(env, "WAITING_ROOM_POST_WAIT",
                                       Settings.waiting_room_post_wait, float, zero=True),
        metrics_token=env.get("METRICS_TOKEN", "").strip(),
        metrics_allow=tuple(p.strip() for p in env.get("METRICS_ALLOW", "").split(",") if p.strip()),
        metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR", "").strip(),
        log_format=env.get("LOG_FORMAT", "").strip().lower() or Settings.log_format,
        backup_dir=env.get("BACKUP_DIR", "").strip() or Settings.backup_dir,
        backup_keep=_number(env, "BACKUP_KEEP", Settings.backup_keep),
    )
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
