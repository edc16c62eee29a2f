"""A district-sized data set for the reports' benchmark: 1,000,000 residents, 100 sites, 60 days of slots.

    DATABASE_URL=sqlite:///tmp/district.sqlite3 SECRET_KEY=bench .venv/bin/python scripts/district_data.py

SQLite only, into a new (empty) database file; it takes a few minutes and prints its progress.
Everything is fictional and reproducible (--seed). As of --today (default: today):

- 100 sites over the 21 sub-districts; slots on 60 days (30 before today, today, 29 after), four
  windows of 40 places a day each (a few windows closed);
- residents with a first dose spread evenly over the 84 days before today, a product from the
  rule book, living mostly in their first-dose site's sub-district;
- most book their second dose soon after day 21, some late, some never: past days' bookings are
  checked in (second dose recorded), a no-show or cancelled; today's are half checked in; future
  days' get fewer the further away they are; a few had their second dose before the slots begin.

The schema comes from the migrations (`init_db`), the rows from plain sqlite3 executemany in a few
big transactions; ID numbers and phones are hashed and encrypted with SECRET_KEY's keys, as
imports do, so the server started with the same SECRET_KEY can read them. Staff log-in for the
benchmark: `admin` / the --password (default: district-bench-password).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.db.setup import close_db, init_db, is_sqlite  # noqa: E402
from models.people import pii  # noqa: E402
from models.rules.tianhe import AREA_CODE, SUBDISTRICTS  # noqa: E402
from web.settings import load_settings  # noqa: E402

WINDOWS = [("08:30", "10:00"), ("10:00", "11:30"), ("14:00", "15:30"), ("15:30", "17:00")]
CAPACITY = 40
DAYS_BEFORE, DAYS_AFTER = 30, 29  # with today: 60 days of slots
FIRST_DOSE_DAYS = 84  # first doses on each of the 84 days before today
VACCINES = ["北京生物", "武汉生物", "科兴", ""]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗梁宋郑谢韩唐冯邓曹彭曾萧田潘袁蔡"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉梅"
CODE_ALPHABET = "ACEFHJKMNPRTWXY3479"  # models/booking_codes.py
CHUNK = 50_000


def say(started: float, text: str) -> None:
    print(f"[{time.monotonic() - started:6.1f}s] {text}", flush=True)


def booking_code(n: int) -> str:
    """A unique 8-character code per booking number (a bijection of 0..19^8-1)."""
    x = (n * 7_777_777_777 + 12_345) % 19**8
    return "".join(CODE_ALPHABET[(x // 19**k) % 19] for k in range(8))


class Places:
    """The places of each (site, day): four windows, their capacity left, closed ones skipped."""

    def __init__(self):
        self.left: dict[tuple[int, dt.date], list[list]] = {}  # [slot_id, places left, taken]

    def add(self, site: int, day: dt.date, slot_id: int, capacity: int) -> None:
        self.left.setdefault((site, day), []).append([slot_id, capacity, 0])

    def take(self, site: int, day: dt.date, rng: random.Random, holds: bool) -> int | None:
        windows = [w for w in self.left.get((site, day), ()) if w[1] > 0]
        if not windows:
            return None
        w = rng.choice(windows)
        if holds:  # active and checked-in bookings hold their place; no-shows and cancelled do not
            w[1] -= 1
            w[2] += 1
        return w[0]


def fast_connection(url: str) -> sqlite3.Connection:
    """A plain sqlite3 connection for bulk loading (also bench/dataset.py): autocommit, so each
    caller's BEGIN/COMMIT makes the transactions, no fsync, a big cache."""
    db = sqlite3.connect(url.removeprefix("sqlite://").split("?")[0], isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-800000")
    db.execute("PRAGMA temp_store=MEMORY")
    return db


def fictional_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


def build(args, settings, started: float) -> None:
    path = settings.database_url.removeprefix("sqlite://").split("?")[0]
    db = fast_connection(path)
    if db.execute("SELECT COUNT(*) FROM site").fetchone()[0]:
        sys.exit(f"error: {path} already holds sites: generate into a new database file")
    vault = pii.Vault(settings.secret_key)
    rng = random.Random(args.seed)
    today = args.today
    now = dt.datetime.combine(today, dt.time(12, 0)).isoformat(sep=" ") + "+00:00"

    # ---- sites: spread over the sub-districts, about five each
    sites = []  # (id, code, subdistrict)
    rows = []
    for n in range(1, args.sites + 1):
        sub = SUBDISTRICTS[(n - 1) % len(SUBDISTRICTS)]
        code = f"D{n:03d}"
        sites.append((n, code, sub))
        rows.append((n, code, f"{sub}第{(n - 1) // len(SUBDISTRICTS) + 1}接种点", sub,
                     f"天河区{sub}{n}号", f"020-8{n:07d}", 1))
    db.execute("BEGIN")
    db.executemany("INSERT INTO site (id, code, name, subdistrict, address, phone, active) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("COMMIT")
    by_sub: dict[str, list[int]] = {}
    for site_id, _, sub in sites:
        by_sub.setdefault(sub, []).append(site_id)
    say(started, f"{len(sites)} sites")

    # ---- slots
    first_slot_day = today - dt.timedelta(days=DAYS_BEFORE)
    last_slot_day = today + dt.timedelta(days=DAYS_AFTER)
    places = Places()
    slots = []  # (id, site, day, start, end, capacity, closed_reason)
    slot_id = 0
    for site_id, _, _ in sites:
        day = first_slot_day
        while day <= last_slot_day:
            for start, end in WINDOWS:
                slot_id += 1
                closed = "设备检修" if rng.random() < 0.005 else ""
                slots.append([slot_id, site_id, day, start, end, CAPACITY, closed])
                if not closed:
                    places.add(site_id, day, slot_id, CAPACITY)
            day += dt.timedelta(days=1)
    say(started, f"{len(slots):,} slots planned")

    # ---- residents and what happened to each
    birth_seq: dict[dt.date, int] = {}
    residents = []
    bookings = []  # (id, code, resident, slot, status, channel, created, updated)
    counts = {"done": 0, "no_show": 0, "cancelled": 0, "active": 0, "before": 0, "never": 0}
    invited_days = 14
    db.execute("BEGIN")

    def flush() -> None:
        db.executemany(
            "INSERT INTO resident (id, name, id_hash, id_cipher, id_masked, birth_year, phone_hash, "
            "phone_cipher, phone_masked, first_dose_date, first_site_id, vaccine, subdistrict, "
            "second_dose_date, second_dose_site_id, invited_at, reminded_at, lang, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
            residents)
        residents.clear()

    for rid in range(1, args.residents + 1):
        site_id, _, site_sub = sites[rng.randrange(len(sites))]
        sub = site_sub if rng.random() < 0.85 else SUBDISTRICTS[rng.randrange(len(SUBDISTRICTS))]
        first = today - dt.timedelta(days=rng.randint(1, FIRST_DOSE_DAYS))
        while True:
            born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(23_000))
            seq = birth_seq.get(born, 0)
            if seq < 1000:
                birth_seq[born] = seq + 1
                break
        number = pii.build_id_number(AREA_CODE, born, seq)
        phone = f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"
        invited = first + dt.timedelta(days=invited_days)
        second_day = second_site = None

        r = rng.random()
        if r < 0.07:
            counts["never"] += 1  # never books: due, then overdue
        else:
            target = first + dt.timedelta(days=21 + min(int(rng.expovariate(1 / 5)), 45))
            if target < first_slot_day:  # before the service's slots: recorded, no booking
                if rng.random() < 0.97:
                    second_day, second_site = target, site_id
                    counts["before"] += 1
            elif target > today and rng.random() > max(0.08, 1 - (target - today).days / 21):
                pass  # has not booked that far ahead yet
            else:
                outcome = ("active" if target > today else
                           ("done" if rng.random() < 0.5 else "active") if target == today else
                           rng.choices(("done", "no_show", "cancelled"), (94, 4, 2))[0])
                holds = outcome in ("active", "done")
                options = [site_id] + rng.sample(by_sub[site_sub], len(by_sub[site_sub]))
                found = None
                for shift in range(4):
                    day = target + dt.timedelta(days=shift)
                    if day > last_slot_day or (outcome != "active" and day > today) or (
                            outcome == "active" and day < today):
                        break
                    for candidate in options:
                        slot = places.take(candidate, day, rng, holds)
                        if slot is not None:
                            found = (candidate, day, slot)
                            break
                    if found:
                        break
                if found:
                    site_at, day, slot = found
                    bid = len(bookings) + 1
                    made = (min(day, today) - dt.timedelta(days=rng.randint(0, 7)))
                    made_at = f"{max(made, invited).isoformat()} 02:00:00+00:00"
                    bookings.append((bid, booking_code(bid), rid, slot, outcome,
                                     rng.choice(("sms", "sms", "sms", "phone", "group")), made_at, made_at))
                    counts[outcome] += 1
                    if outcome == "done":
                        second_day, second_site = day, site_at
        invited_at = f"{invited.isoformat()} 01:00:00+00:00" if invited <= today else None
        residents.append((
            rid, fictional_name(rng),
            vault.keyed_hash(number), vault.encrypt(number), pii.mask_id(number), born.year,
            vault.keyed_hash(phone), vault.encrypt(phone), pii.mask_phone(phone), first.isoformat(),
            site_id, rng.choice(VACCINES), sub, second_day.isoformat() if second_day else None,
            second_site, invited_at, "en" if rng.random() < 0.03 else "zh", now, now))
        if len(residents) >= CHUNK:
            flush()
            say(started, f"{rid:,} of {args.residents:,} residents")
    flush()
    db.execute("COMMIT")
    say(started, f"{args.residents:,} residents: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))

    # ---- slots (with the places their bookings hold), then the bookings
    taken = {w[0]: w[2] for windows in places.left.values() for w in windows}
    db.execute("BEGIN")
    db.executemany('INSERT INTO slot (id, site_id, day, start, "end", capacity, booked, held, '
                   "closed_reason) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                   [(s[0], s[1], s[2].isoformat(), s[3], s[4], s[5], taken.get(s[0], 0), s[6])
                    for s in slots])
    db.execute("COMMIT")
    say(started, f"{len(slots):,} slots")
    db.execute("BEGIN")
    for at in range(0, len(bookings), CHUNK * 4):
        db.executemany("INSERT INTO booking (id, code, resident_id, slot_id, status, request_key, "
                       "channel, created_at, updated_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                       bookings[at:at + CHUNK * 4])
        say(started, f"{min(at + CHUNK * 4, len(bookings)):,} of {len(bookings):,} bookings")
    db.execute("COMMIT")

    # ---- the benchmark's admin account, then statistics for the query planner
    from models.staff.accounts import hash_password

    db.execute("INSERT INTO staff_user (username, password_hash, role, subdistrict, active, created_at, "
               "failed_logins) VALUES ('admin', ?, 'admin', '', 1, ?, 0)",
               (hash_password(args.password), now))
    db.execute("ANALYZE")
    db.close()
    say(started, "done (ANALYZE run)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None,
                        help="the day the data is as of (default: today in Beijing)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--password", default="district-bench-password",
                        help="the password of the `admin` account")
    args = parser.parse_args(argv)
    settings = load_settings()
    if not is_sqlite(settings.database_url):
        print("error: DATABASE_URL must be a SQLite file (sqlite:///tmp/district.sqlite3)", file=sys.stderr)
        return 2
    if args.today is None:
        from models.clock import SystemClock

        args.today = SystemClock().today()
    started = time.monotonic()
    asyncio.run(_schema(settings.database_url))
    say(started, f"schema ready in {settings.database_url}")
    build(args, settings, started)
    return 0


async def _schema(url: str) -> None:
    await init_db(url)
    await close_db()


if __name__ == "__main__":
    sys.exit(main())
