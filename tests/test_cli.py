"""`python run.py …` as operators use it: exit status, what is printed, and no personal data on screen."""
from __future__ import annotations

import csv
import datetime as dt
import io
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run
from models.people import pii
from tests.pii_scan import find_personal_numbers

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "docs" / "samples"


@pytest.fixture
def cli(tmp_path):
    """Run `python run.py ARGS` on a fresh SQLite file; returns (exit status, stdout, stderr)."""
    env = {**os.environ, "DATABASE_URL": f"sqlite://{tmp_path}/x.sqlite3", "SECRET_KEY": "test",
           "BASE_URL": "http://127.0.0.1:8000", "SMS_BACKEND": "console"}

    def call(*args: str, stdin: str = "") -> tuple[int, str, str]:
        done = subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=env, input=stdin,
                              capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr

    return call


def test_import_reports_bad_rows_keeps_good_ones_and_reimport_changes_nothing(cli, tmp_path):
    good = pii.build_id_number("440106", dt.date(1980, 5, 17), 11)
    other = pii.build_id_number("440106", dt.date(1972, 2, 3), 12)
    bad = pii.build_id_number("440106", dt.date(1985, 1, 9), 13)
    bad = bad[:17] + ("1" if bad[17] == "0" else "0")
    path = tmp_path / "doses.csv"
    path.write_bytes("\ufeff".encode() + "\n".join([
        "name,id_number,phone,first_dose_date,site_code,vaccine,subdistrict",
        f"张三明,{good},13812345678,2021-06-01,TH01,北京生物,",
        "",
        f"李四华,{bad},13812345679,2021-06-01,TH01,,",
        f"王五芳,{other},13812345670,2021-02-30,TH01,,",
        f"赵六军,{other},13812345671,2021-06-01,X01,,",
        ",,,,,,",
    ]).encode())
    assert cli("import-sites", str(SAMPLES / "sites.csv"))[0] == 0

    status, out, err = cli("import-first-doses", str(path))
    assert status == 1
    assert "first doses: 1 created, 0 updated, 0 unchanged, 3 rejected" in out
    assert err.splitlines() == [
        "line 4: id_number check character is wrong",
        "line 5: first_dose_date 2021-02-30 is not a date (YYYY-MM-DD)",
        f"line 6: unknown site code X01; id_number {pii.mask_id(other)} appears again (first on line 5)",
    ]
    assert find_personal_numbers(out + err) == []

    status, out, _ = cli("import-first-doses", str(path))
    assert status == 1 and "0 created, 0 updated, 1 unchanged, 3 rejected" in out


def test_invite_outbox_and_send_sms(cli):
    cli("import-sites", str(SAMPLES / "sites.csv"))
    status, out, _ = cli("import-first-doses", str(SAMPLES / "first_doses.csv"))
    assert status == 0 and "6 created" in out
    status, out, _ = cli("invite", "--as-of", "2021-06-23")
    assert status == 0 and out.startswith("invited 4 residents")
    assert cli("invite", "--as-of", "2021-06-23")[1].startswith("invited 0 residents")

    status, out, _ = cli("outbox")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["id", "phone", "status", "body"] and len(rows) == 5
    assert all(r[2] == "queued" and "****" in r[1] and "http://127.0.0.1:8000/b/" in r[3]
               for r in rows[1:])
    assert all(len(r[3]) <= 134 for r in rows[1:])

    status, out, err = cli("send-sms", "--once")
    assert status == 0 and "sms: 4 sent, 0 to retry, 0 failed for good" in out
    assert "SMS to 139****0001" in err and "/b/…" in err and find_personal_numbers(err) == []
    assert len(list(csv.reader(io.StringIO(cli("outbox", "--status", "sent")[1])))) == 5


def test_open_slots_create_user_and_bad_usage(cli):
    assert cli("import-sites", str(SAMPLES / "sites.csv"))[0] == 0
    status, out, _ = cli("open-slots", "--site", "TH01", "--from", "2021-07-01", "--to", "2021-07-03",
                         "--times", "08:30-09:30,14:00-15:00", "--capacity", "20")
    assert status == 0 and "slots: 6 created, 0 raised, 0 lowered, 0 unchanged" in out
    status, _, err = cli("open-slots", "--site", "TH01", "--from", "2021-07-01", "--to", "2021-07-03",
                         "--times", "9:30-10:30", "--capacity", "20")
    assert status == 2 and "HH:MM-HH:MM" in err

    status, _, err = cli("create-user", "--role", "admin", "--username", "boss", stdin="short\n")
    assert status == 1 and "at least 10 characters" in err
    status, out, _ = cli("create-user", "--role", "site", "--site", "TH01", "--username", "door1",
                         stdin="a long enough password\n")
    assert status == 0 and "created site account door1" in out


def test_demo_prints_its_fictional_people_their_links_and_the_staff_logins(cli):
    status, out, _ = cli("demo")
    assert status == 0
    assert "fictional" in out and "admin / demo-admin-2021" in out
    showcase = [line for line in out.splitlines() if "/b/" in line]
    assert len(showcase) == 12  # one a case, the family on 黄桂英's phone two more
    case, name, number, phone, link = showcase[0].strip().split(" — ")
    assert name == "张三明" and pii.validate_id(number) == number
    assert pii.normalise_phone(phone) == phone, "the made-up phone, in full, for /entry"
    assert link.startswith("http://127.0.0.1:8000/b/")


def test_serve_creates_the_schema_then_runs_uvicorn_without_access_log(monkeypatch, tmp_path):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path}/x.sqlite3")
    monkeypatch.setenv("SECRET_KEY", "test-secret-key-not-for-production")  # conftest's
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert run.main(["--port", "8123"]) == 0
    (args, kwargs), = calls
    assert args == ("web.app:app_factory",)
    # One worker without Redis: rate limits counted in one process are counted once.
    # Kept-alive connections outlive a waiting page's refresh (at most 20 s); a worker slow to
    # answer the supervisor on a loaded machine is not killed.
    assert kwargs == dict(factory=True, host="127.0.0.1", port=8123, workers=1,
                          proxy_headers=False, access_log=False, loop="uvloop", http="httptools",
                          timeout_keep_alive=30, timeout_worker_healthcheck=30)
    assert (tmp_path / "x.sqlite3").exists()


def test_serve_runs_one_worker_per_cpu_when_redis_counts_the_limits(monkeypatch, tmp_path):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path}/x.sqlite3")
    monkeypatch.setenv("SECRET_KEY", "test-secret-key-not-for-production")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/15")
    assert run.main(["serve"]) == 0 and calls[0][1]["workers"] == (os.cpu_count() or 1)
    assert run.main(["serve", "--workers", "3"]) == 0 and calls[1][1]["workers"] == 3


def test_a_setting_that_cannot_be_read_is_named_without_a_traceback(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path}/x.sqlite3")
    monkeypatch.setenv("PURGE_AFTER_DAYS", "soon")
    assert run.main(["check"]) == 2
    err = capsys.readouterr().err
    assert "PURGE_AFTER_DAYS" in err and "Traceback" not in err


def run_cli(url: str, *args: str, timeout: float = 30) -> tuple[int, str, float]:
    """`python run.py ARGS` with DATABASE_URL=url: (exit status, standard error, seconds taken)."""
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "test", "SMS_BACKEND": "console"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return done.returncode, done.stderr, time.monotonic() - started


def test_four_slashes_mean_an_absolute_path(tmp_path):
    """sqlite:////srv/booking/db.sqlite3, as many tools write it: the file at /srv/booking (issue 22:
    the command waited for ever, on a lock that was never released)."""
    url = f"sqlite:///{tmp_path}/srv/booking/db.sqlite3"
    assert url.startswith("sqlite:////")
    for _ in range(2):  # and again, on the file the first run made: nothing left locked
        status, err, _ = run_cli(url, "check")
        assert status == 0, err
    assert (tmp_path / "srv" / "booking" / "db.sqlite3").stat().st_size > 0
    assert not (ROOT / str(tmp_path).lstrip("/")).exists()  # not read as a relative path


@pytest.fixture
def silent_server():
    """A port that accepts connections and never answers, as a firewalled or hung server does."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case, says", [
    ("folder", "is a folder, not a database file"),
    ("under a file", "cannot create"),
    ("not a database", "file is not a database"),
    ("scheme", "mysql:// is not supported"),
    ("no answer", "did not answer within 5 seconds"),
    ("refused", "Connection refused"),
])
def test_an_unusable_database_url_stops_at_once_with_one_line(tmp_path, silent_server, case, says):
    (tmp_path / "db.sqlite3").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "junk.sqlite3").write_text("not a database, just text " * 100)
    url = {
        "folder": f"sqlite://{tmp_path}/db.sqlite3",
        "under a file": f"sqlite://{tmp_path}/afile/db.sqlite3",
        "not a database": f"sqlite://{tmp_path}/junk.sqlite3",
        "scheme": "mysql://booking:s3cret-pw@db.internal/booking",
        "no answer": f"postgres://booking:s3cret-pw@127.0.0.1:{silent_server}/booking",
        "refused": f"postgres://booking:s3cret-pw@127.0.0.1:{closed_port()}/booking",
    }[case]
    status, err, took = run_cli(url, "check")
    assert status == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: DATABASE_URL: ") and says in err, err
    assert "s3cret-pw" not in err
    assert took < 15


# Every command that opens the database, with the least it needs to parse its arguments.
COMMAND_ARGS = {
    "serve": [], "demo": [], "import-sites": [str(SAMPLES / "sites.csv")],
    "import-first-doses": ["doses.csv"], "invite": [], "send-sms": [], "outbox": [],
    "open-slots": ["--site", "TH01", "--from", "2021-07-01", "--to", "2021-07-01",
                   "--times", "09:00-10:00", "--capacity", "5"],
    "create-user": ["--role", "admin", "--username", "chen"], "check": [], "close-day": [],
    "send-reminders": [], "close-window": ["--site", "TH01", "--day", "2021-07-01", "--reason", "x",
                                            "--cancel"],
    "backup": [], "purge": [], "rotate-keys": [],
}


@pytest.mark.timeout(60)
def test_every_command_stops_on_a_database_that_cannot_be_made(monkeypatch, tmp_path, capsys):
    assert set(COMMAND_ARGS) == set(run.COMMANDS) | {"serve"}  # a new command: add it here
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path}/afile/db.sqlite3")
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(48))  # serve would refuse a weak one first
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("uvicorn started"))
    for command, args in COMMAND_ARGS.items():
        assert run.main([command, *args]) == 2, command
        err = capsys.readouterr().err
        assert err.startswith("error: DATABASE_URL: cannot create") and len(err.splitlines()) == 1, (command, err)
