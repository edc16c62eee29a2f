"""`run.py doctor`: does this configuration look like a production server's? Each check says in
plain words what is fine or what is missing; any missing thing makes the run fail."""
from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..db.setup import DatabaseUnusable
from ..messaging.config import SmsConfig
from ..people.pii import secret_problem
from .backup import backups, kind_of, sqlite_path

MIN_SECRET_LENGTH = 32
BACKUP_MAX_AGE = dt.timedelta(hours=26)  # hourly or daily backups: a day's one, plus slack
MIN_FREE_BYTES = 1 << 30  # 1 GiB
MIN_FREE_SHARE = 0.10
GATEWAY_KEYS = {
    "aliyun": ("SMS_ACCESS_KEY_ID", "SMS_ACCESS_KEY_SECRET", "SMS_SIGNATURE", "SMS_TEMPLATE_CODES"),
    "tencent": ("SMS_ACCESS_KEY_ID", "SMS_ACCESS_KEY_SECRET", "SMS_APP_ID", "SMS_SIGNATURE",
                "SMS_TEMPLATE_CODES"),
}


@dataclass(frozen=True)
class Production:
    """What the doctor looks at, handed over by run.py from the settings."""

    secret_key: str
    secret_key_generated: bool  # not set: the development key generated into data/secret_key
    base_url: str
    sms: SmsConfig
    database_url: str
    backup_dir: Path


@dataclass
class Finding:
    ok: bool
    what: str  # the check, e.g. "SECRET_KEY"
    says: str  # what is fine, or what is missing and what to do


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def add(self, ok: bool, what: str, says: str) -> None:
        self.findings.append(Finding(ok, what, says))


async def examine(conf: Production, *, now: dt.datetime, ping) -> Diagnosis:
    """Every check; `ping` is an async callable that raises when the database does not answer."""
    d = Diagnosis()
    _secret(d, conf)
    _base_url(d, conf.base_url)
    _gateway(d, conf.sms)
    await _database(d, ping)
    _backups(d, conf.backup_dir, now)
    _disk(d, conf)
    return d


def _secret(d: Diagnosis, conf: Production) -> None:
    if conf.secret_key_generated:
        d.add(False, "SECRET_KEY", "not set: the key generated into data/secret_key on first run is "
              "in use. Set SECRET_KEY (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`) "
              "and keep it safe apart from the backups; changing it later makes every stored ID "
              "number unreadable, so set it to the current key's value if data exists")
    elif len(conf.secret_key) < MIN_SECRET_LENGTH:
        d.add(False, "SECRET_KEY", f"too short ({len(conf.secret_key)} characters; "
              f"at least {MIN_SECRET_LENGTH})")
    elif problem := secret_problem(conf.secret_key):  # what `serve` refuses too (issue 21)
        d.add(False, "SECRET_KEY", problem)
    else:
        d.add(True, "SECRET_KEY", f"set, {len(conf.secret_key)} characters")


def _base_url(d: Diagnosis, base_url: str) -> None:
    url = urlsplit(base_url)
    if url.scheme != "https":
        d.add(False, "BASE_URL", f"{base_url} is not https://: SMS links would send residents to "
              "an unencrypted address, and cookies would not be Secure")
    elif url.hostname in (None, "", "localhost", "127.0.0.1", "::1"):
        d.add(False, "BASE_URL", f"{base_url} is not a public address")
    else:
        d.add(True, "BASE_URL", base_url)


def _gateway(d: Diagnosis, sms: SmsConfig) -> None:
    if sms.backend == "console":
        d.add(False, "SMS_BACKEND", "console: messages are only written to the log, nobody "
              "receives them. Set SMS_BACKEND=aliyun or tencent and its keys (docs/sms.md)")
        return
    if sms.backend not in GATEWAY_KEYS:
        d.add(False, "SMS_BACKEND", f"unknown gateway {sms.backend!r}; known: aliyun, tencent")
        return
    have = {"SMS_ACCESS_KEY_ID": sms.access_key_id, "SMS_ACCESS_KEY_SECRET": sms.access_key_secret,
            "SMS_APP_ID": sms.app_id, "SMS_SIGNATURE": sms.signature,
            "SMS_TEMPLATE_CODES": sms.template_codes}
    missing = [name for name in GATEWAY_KEYS[sms.backend] if not have[name]]
    if missing:
        d.add(False, "SMS_BACKEND", f"{sms.backend}, but {', '.join(missing)} not set")
    else:
        d.add(True, "SMS_BACKEND", f"{sms.backend}, keys and template codes set")


async def _database(d: Diagnosis, ping) -> None:
    try:
        await ping()
    except Exception as exc:  # whatever the driver raises, the answer is the same: unreachable
        # DatabaseUnusable says why in words that hold no password (models/db/setup.py); any
        # other error only by its kind, as a driver's message may quote the URL.
        why = str(exc) if isinstance(exc, DatabaseUnusable) else type(exc).__name__
        d.add(False, "DATABASE_URL", f"the database does not answer: {why}")
    else:
        d.add(True, "DATABASE_URL", "the database answers")


def _backups(d: Diagnosis, folder: Path, now: dt.datetime) -> None:
    found = backups(folder)
    if not found:
        d.add(False, "backups", f"none in {folder}: run `python run.py backup` from a timer "
              "(README: Backups and restore)")
        return
    newest = found[-1]
    made = dt.datetime.fromtimestamp(newest.stat().st_mtime, dt.timezone.utc)
    age = now - made
    hours = age.total_seconds() / 3600
    if age > BACKUP_MAX_AGE:
        d.add(False, "backups", f"the newest, {newest.name}, is {hours:.0f} hours old "
              f"(more than {BACKUP_MAX_AGE.total_seconds() / 3600:.0f}): is the backup timer running?")
    else:
        d.add(True, "backups", f"the newest, {newest.name}, is {hours:.1f} hours old")


def _disk(d: Diagnosis, conf: Production) -> None:
    places = {"backups": conf.backup_dir}
    try:
        if kind_of(conf.database_url) == "sqlite":
            places["database"] = sqlite_path(conf.database_url).resolve().parent
    except Exception:
        pass
    for what, folder in places.items():
        where = folder
        while not where.exists() and where != where.parent:  # the folder may not exist yet
            where = where.parent
        usage = shutil.disk_usage(where)
        free_gb, share = usage.free / (1 << 30), usage.free / usage.total if usage.total else 0
        if usage.free < MIN_FREE_BYTES or share < MIN_FREE_SHARE:
            d.add(False, f"disk ({what})", f"only {free_gb:.1f} GB free ({share:.0%}) at {where}: "
                  "free some space before the database or the backups fill it")
        else:
            d.add(True, f"disk ({what})", f"{free_gb:.1f} GB free ({share:.0%}) at {where}")
