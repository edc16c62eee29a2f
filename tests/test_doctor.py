"""`run.py doctor` on a development configuration (everything missing, said plainly, exit 1) and on
a production one (exit 0); backups too old and a full disk are caught."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path


from models.messaging.config import SmsConfig
from models.operations import doctor
from tests.realserver import ROOT

GOOD_SECRET = "kP3vX9qLm2Rt7Yw1Zs4Hb6Nc8Jd0Fg5Ua3Se7Wo1Ti9Ey2Qr4"  # 48, random-looking: "k" * 48 is refused
GOOD = {"SECRET_KEY": GOOD_SECRET, "BASE_URL": "https://yuyue.thwjj.example.cn",
        "SMS_BACKEND": "aliyun", "SMS_ACCESS_KEY_ID": "LTAI-test", "SMS_ACCESS_KEY_SECRET": "s3cret",
        "SMS_TEMPLATE_CODES": "confirm=SMS_1,invite=SMS_2"}


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def missing(out: str) -> set[str]:
    return {line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("MISSING")}


def test_a_development_configuration_is_told_what_is_missing(tmp_path):
    env = {"SECRET_KEY": "short", "BASE_URL": "http://127.0.0.1:8000", "SMS_BACKEND": "console",
           "DATABASE_URL": "postgres://nobody@127.0.0.1:1/nothing",  # nothing listens on port 1
           "BACKUP_DIR": str(tmp_path / "backups")}
    done = run(env, "doctor")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert missing(done.stdout) == {"SECRET_KEY", "BASE_URL", "SMS_BACKEND", "DATABASE_URL", "backups"}
    assert "too short" in done.stdout and "is not https://" in done.stdout
    assert "nobody receives them" in done.stdout and "does not answer" in done.stdout
    assert "127.0.0.1:1" in done.stdout, "it says why (models/db/setup.py's words), not only a kind"
    assert "run `python run.py backup`" in done.stdout
    assert done.stdout.rstrip().endswith("doctor: 5 thing(s) to fix")
    assert "short" not in done.stdout.replace("too short", ""), "the secret itself is never printed"


def test_a_production_configuration_passes_then_an_old_backup_does_not(tmp_path):
    env = {**GOOD, "DATABASE_URL": f"sqlite://{tmp_path}/live.sqlite3",
           "BACKUP_DIR": str(tmp_path / "backups")}
    made = run(env, "backup")
    assert made.returncode == 0, made.stderr
    done = run(env, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert missing(done.stdout) == set()
    assert done.stdout.rstrip().endswith("doctor: ready for production")
    assert GOOD_SECRET not in done.stdout and "s3cret" not in done.stdout

    copy = next((tmp_path / "backups").glob("booking-*.sqlite3"))
    old = time.time() - 30 * 3600
    os.utime(copy, (old, old))
    done = run(env, "doctor")
    assert done.returncode == 1
    assert missing(done.stdout) == {"backups"} and "30 hours old" in done.stdout


def test_a_gateway_without_its_keys_is_named(tmp_path):
    env = {**GOOD, "SMS_BACKEND": "tencent", "SMS_ACCESS_KEY_SECRET": "",
           "DATABASE_URL": f"sqlite://{tmp_path}/live.sqlite3", "BACKUP_DIR": str(tmp_path)}
    done = run(env, "doctor")
    assert done.returncode == 1
    assert "tencent, but SMS_ACCESS_KEY_SECRET, SMS_APP_ID not set" in done.stdout


def _production(tmp_path: Path, **changes) -> doctor.Production:
    sms = SmsConfig(backend="aliyun", signature="天河区卫健局", template_codes={"confirm": "SMS_1"},
                    endpoint="", access_key_id="id", access_key_secret="secret", app_id="",
                    region="", timeout_seconds=10, per_phone_per_hour=10, rate_per_second=50,
                    max_attempts=10)
    values = dict(secret_key=GOOD_SECRET, secret_key_generated=False, base_url="https://a.example.cn",
                  sms=sms, database_url=f"sqlite://{tmp_path}/x.sqlite3", backup_dir=tmp_path)
    return doctor.Production(**{**values, **changes})


async def _answers():
    return None


async def test_the_generated_development_key_is_not_a_production_secret(tmp_path):
    found = await doctor.examine(_production(tmp_path, secret_key_generated=True),
                                 now=dt.datetime.now(dt.timezone.utc), ping=_answers)
    assert [f.what for f in found.findings if not f.ok] == ["SECRET_KEY", "backups"]
    assert "data/secret_key" in found.findings[0].says


def test_load_settings_says_when_the_key_was_generated(tmp_path, monkeypatch):
    from web import settings

    monkeypatch.setattr(settings, "DATA_DIR", tmp_path)
    monkeypatch.setattr(settings, "ROOT", tmp_path)  # no .env of the checkout is read
    monkeypatch.delenv("SECRET_KEY", raising=False)
    assert settings.load_settings().secret_key_generated
    monkeypatch.setenv("SECRET_KEY", GOOD_SECRET)
    assert not settings.load_settings().secret_key_generated


async def test_a_disk_nearly_full_is_reported(tmp_path, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path: Usage(100 << 30, 96 << 30, 4 << 30))
    (tmp_path / "booking-20261128T001500Z.sqlite3").write_bytes(b"x")
    found = await doctor.examine(_production(tmp_path), now=dt.datetime.now(dt.timezone.utc),
                                 ping=_answers)
    bad = [f for f in found.findings if not f.ok]
    assert {f.what for f in bad} == {"disk (backups)", "disk (database)"}
    assert "only 4.0 GB free (4%)" in bad[0].says
