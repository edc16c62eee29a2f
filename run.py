"""Command line: `python run.py COMMAND [options]` (docs/cli.md); no command (or `serve`) serves."""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import glob
import logging
import os
import re
import shutil
import signal
import sys
import tempfile

from models import csv_safe
from models.db.setup import DatabaseUnusable, close_db, init_db
from models.district import District
from web.settings import Settings, build_district, load_settings

OK, REJECTED = 0, 1  # argparse itself exits 2 on bad usage


def date_arg(text: str) -> dt.date:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text} is not a date (YYYY-MM-DD)")


def times_arg(text: str) -> list[tuple[str, str]]:
    from models.operations.slots import SlotError, parse_times

    try:
        return parse_times(text)
    except SlotError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def count_arg(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text} is not a whole number 0 or more")
    return int(text)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return REJECTED


async def audit_cli(action: str, detail: str) -> None:
    """Put an admin action done at the command line in the audit trail: by "cli", no role, no
    address. `detail` says what and how many, never a full ID or phone number."""
    from models.staff.audit import record

    await record(action=action, username="cli", address="", detail=detail)


# ---- commands: each gets (settings, district, args) with the database open; returns the exit status


async def cmd_demo(settings: Settings, district: District, args) -> int:
    from models.demo.loader import NotADemoDatabase, load_demo

    try:
        result = await load_demo(district, force=args.force)
    except NotADemoDatabase as exc:
        # `make run` calls demo on every start: a real database is served as it is.
        print(f"demo: {exc}", file=sys.stderr)
        return OK
    print("Demo data loaded: " + ", ".join(f"{n} {what}" for what, n in result.totals.items()))
    print("The people below are fictional demo data (演示数据，人物和身份证号均为虚构).")
    print("Open a link and type the ID number to try each case (or type the phone at "
          f"{settings.base_url}/entry): case — name — ID number — phone — link")
    for link in result.links:
        print(f"  {link.label} — {link.name} — {link.id_number} — {link.phone} — {link.url}")
    print(f"Staff logins (demo passwords 演示账号) at {settings.base_url}/staff:")
    for role, username, password, scope in result.staff:
        print(f"  {role:<12} {username} / {password}  ({scope})")
    return OK


class ImportProgress:
    """What a long import shows while it runs: on a terminal, one line on standard error redrawn
    in place (rows done, percent, rows a second); otherwise a log line with the counts every
    LOG_EVERY rows. Refused rows are printed to standard error as they come, in line order."""

    LOG_EVERY = 10_000

    def __init__(self, kind: str, stream=None):
        self.kind = kind
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = None
        self.drawn = False
        self.drawn_at = 0.0
        self.logged = 0

    def progress(self, result) -> None:
        import time

        now = time.monotonic()
        if self.started is None:  # the check pass is done: rows are written from here
            self.started = now
        rate = result.rows / max(now - self.started, 1e-6)
        if self.tty:
            if now - self.drawn_at >= 0.2 or result.rows == result.total:
                self.drawn_at = now
                done = result.rows / result.total if result.total else 1.0
                bar = "#" * int(24 * done) + "-" * (24 - int(24 * done))
                self.stream.write(f"\r\033[K{self.kind} [{bar}] {done:4.0%} {result.rows:,}/"
                                  f"{result.total:,} rows  {rate:,.0f} rows/s")
                self.stream.flush()
                self.drawn = True
        elif result.rows - self.logged >= self.LOG_EVERY:
            self.logged = result.rows
            logging.getLogger("booking.imports").info(
                "%s: %d of %d rows, %d created, %d updated, %d unchanged, %d rejected, %.0f rows/s",
                self.kind, result.rows, result.total, result.created, result.updated,
                result.unchanged, result.rejected, rate)

    def reject(self, error) -> None:
        self.clear()
        print(error, file=self.stream)

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.drawn = False


async def _import(kind: str, run_import, path: str) -> int:
    from pathlib import Path

    from models.operations.imports import ImportFileError

    action = "import_" + kind.replace(" ", "_")  # the audit trail's import_sites, import_first_doses
    shown = ImportProgress(kind)
    try:
        result = await run_import(path, on_progress=shown.progress, on_reject=shown.reject)
    except ImportFileError as exc:
        shown.clear()
        await audit_cli(action, f"file refused, nothing imported file={Path(path).name}")
        return fail(str(exc))
    shown.clear()
    await audit_cli(action, f"{result.summary()} file={Path(path).name}")
    print(f"{kind}: {result.summary()}")
    return REJECTED if result.rejected else OK


async def cmd_import_sites(settings: Settings, district: District, args) -> int:
    from models.operations.imports import import_sites

    return await _import("sites", import_sites, args.file)


async def cmd_import_first_doses(settings: Settings, district: District, args) -> int:
    from models.operations.imports import import_first_doses

    def run(path, **shown):
        return import_first_doses(district.vault, path, today=district.clock.today(),
                                  command_line=True, **shown)

    return await _import("first doses", run, args.file)


async def cmd_open_slots(settings: Settings, district: District, args) -> int:
    from models.operations.slots import SlotError, open_slots

    span = f"site={args.site} {args.from_day}..{args.to_day} capacity={args.capacity}"
    try:
        result = await open_slots(args.site, args.from_day, args.to_day, args.times, args.capacity,
                                  district=district)
    except SlotError as exc:
        await audit_cli("open_slots", f"refused: {exc} {span}")
        return fail(str(exc))
    await audit_cli("open_slots", f"{result.created} created, {result.raised} raised, "
                    f"{result.lowered} lowered, {result.unchanged} unchanged, "
                    f"{len(result.conflicts)} conflicts {span}")
    print(f"slots: {result.created} created, {result.raised} raised, {result.lowered} lowered, "
          f"{result.unchanged} unchanged")
    for held in result.held:
        print(f"{held.day} {held.start}: {held.booked} places are booked, more than the "
              f"{held.requested} asked for; capacity set to {held.booked}")
    for day, asked, existing in result.conflicts:
        print(f"{day} {asked}: overlaps the existing window {existing}; left as it was",
              file=sys.stderr)
    return REJECTED if result.conflicts else OK


class InviteProgress:
    """An invitation batch as it goes: on a terminal a bar on standard error, redrawn in place;
    otherwise a log line with the count every LOG_EVERY invitations."""

    LOG_EVERY = 10_000

    def __init__(self, total: int, stream=None):
        self.total, self.stream = total, stream or sys.stderr
        self.tty, self.drawn_at, self.drawn = self.stream.isatty(), 0.0, False

    def __call__(self, done: int) -> None:
        import time

        if self.tty:
            now = time.monotonic()
            if now - self.drawn_at >= 0.2 or done >= self.total:
                share = min(done / self.total, 1.0) if self.total else 1.0
                bar = "#" * int(24 * share) + "-" * (24 - int(24 * share))
                self.stream.write(f"\r\033[Kinvite [{bar}] {share:4.0%} {done:,}/{self.total:,}")
                self.stream.flush()
                self.drawn_at, self.drawn = now, True
        elif done % self.LOG_EVERY == 0:
            logging.getLogger("booking.invitations").info("invite: %d of %d invited", done, self.total)

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()


async def cmd_invite(settings: Settings, district: District, args) -> int:
    from models.operations.invitations import InviteError, due_count, invite

    as_of = args.as_of or district.clock.today()
    total = await due_count(district.rules, as_of)
    shown = InviteProgress(total if args.limit is None else min(total, args.limit))
    try:
        result = await invite(district, as_of=as_of, limit=args.limit, dry_run=args.dry_run,
                              progress=None if args.dry_run else shown)
    except InviteError as exc:
        return fail(str(exc))
    finally:
        shown.clear()
    if result.dry_run:
        print(f"would invite {result.count} residents (dry run: nothing written)")
    else:
        await audit_cli("invite", f"{result.count} invited, {result.count} SMS queued "
                        f"as_of={args.as_of or district.clock.today()}"
                        + (f" limit={args.limit}" if args.limit is not None else ""))
        print(f"invited {result.count} residents: {result.count} SMS queued "
              "(`python run.py send-sms` delivers them)")
    return OK


async def cmd_send_sms(settings: Settings, district: District, args) -> int:
    from models.booking import waitlist
    from models.messaging.delivery import GatewayRate, run_sender
    from models.messaging.gateways import get_backend
    from web.settings import sms_config

    try:
        config = sms_config(settings)
        backend = get_backend(config)
    except ValueError as exc:
        return fail(str(exc))
    rate = GatewayRate(config.rate_per_second, settings.redis_url or "memory://", settings.redis_prefix)
    if not args.once:
        # systemd and docker stop with SIGTERM: finish like Ctrl-C, with the database closed.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    try:
        await run_sender(district.vault, backend, config, district.clock, once=args.once, rate=rate,
                         say=lambda line: print(line, flush=True),
                         each_round=lambda: waitlist.sweep(district))
    except asyncio.CancelledError:
        print("stopped", file=sys.stderr)
    return OK


async def cmd_outbox(settings: Settings, district: District, args) -> int:
    from models.messaging.outbox import COLUMNS, outbox_rows

    out = csv_safe.writer(sys.stdout)
    out.writerow(COLUMNS)
    async for row in outbox_rows(district.vault, args.status):
        out.writerow(row)
    return OK


def read_password() -> str:
    """One line from stdin; asked for twice without echo when stdin is a terminal."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password (10 characters or more): ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def cmd_create_user(settings: Settings, district: District, args) -> int:
    from models.staff.accounts import StaffError, create_user

    try:
        password = read_password()
        user = await create_user(role=args.role, username=args.username, password=password,
                                 site_code=args.site, subdistrict=args.subdistrict,
                                 district_wide=args.district_wide)
    except (StaffError, ValueError) as exc:
        await audit_cli("create_user", f"refused: {exc}")
        return fail(str(exc))
    scope = f" for site {args.site}" if user.role == "site" else (
        f" for {user.subdistrict}" if user.subdistrict else (
            " for the whole district" if user.district_wide else ""))
    await audit_cli("create_user", f"{user.role} {user.username}{scope}")
    print(f"created {user.role} account {user.username}{scope}")
    return OK


async def cmd_close_day(settings: Settings, district: District, args) -> int:
    from models.operations.checkin import close_day

    day = args.day or district.clock.today()
    marked = await close_day(day, by="cli")
    await audit_cli("close_day", f"{sum(marked.values())} no-shows at {len(marked)} sites "
                    f"day={day.isoformat()}")
    for code, n in sorted(marked.items()):
        print(f"{code}: {n} no-show(s)")
    print(f"close-day: {sum(marked.values())} booking(s) marked no-show; their places are free again")
    return OK


async def cmd_send_reminders(settings: Settings, district: District, args) -> int:
    from models.operations.reminders import queue_day_before

    today = district.clock.today()
    day = args.day or today + dt.timedelta(days=1)
    if day < today:
        return fail(f"--day {day.isoformat()} is in the past")
    count = await queue_day_before(district, day)
    await audit_cli("send_reminders", f"{count} day-before SMS queued day={day.isoformat()}")
    print(f"send-reminders: {count} reminder(s) queued for {day.isoformat()} "
          "(bookings already reminded are not sent again)")
    return OK


async def cmd_close_window(settings: Settings, district: District, args) -> int:
    from models.operations import closing

    try:
        site = await closing.site_by_code(args.site)
        if site is None:
            return fail(f"unknown site code {args.site}")
        c = await closing.closure(site, args.day, args.start or "", args.reason,
                                  today=district.clock.today())
        move_to = None
        if args.move_to_site:
            to_site = await closing.site_by_code(args.move_to_site)
            if to_site is None:
                return fail(f"unknown site code {args.move_to_site}")
            move_to = await closing.target(c, to_site, args.move_to_day, now=district.clock.now())
        preview = await closing.preview(c)
        where = f"move to {move_to.site.code} {move_to.day}" if move_to else "cancel all"
        print(f"close-window: {c}: {len(preview.windows)} window(s), {preview.bookings} active "
              f"booking(s) ({preview.people} people); {where}"
              + (f": {move_to.free} free place(s) in {len(move_to.windows)} window(s)" if move_to else ""))
        if args.dry_run:
            movable = min(move_to.free, preview.bookings) if move_to else 0
            print(f"would move up to {movable}, cancel at least {preview.bookings - movable} "
                  "(dry run: nothing written)")
            return OK
        result = await closing.close(district, c, move_to=move_to)
    except closing.ClosingError as exc:
        return fail(closing.REASONS[exc.code])
    await audit_cli("close_window", f"{c} ({where}): {result.moved} moved, {result.cancelled} "
                    f"cancelled, {result.gone} changed meanwhile, {result.closed} window(s) closed")
    print(f"close-window: {result.moved} moved, {result.cancelled} cancelled, {result.gone} changed "
          f"meanwhile; {result.moved + result.cancelled} SMS queued; {result.closed} window(s) closed")
    return OK


async def cmd_check(settings: Settings, district: District, args) -> int:
    from models.operations.checks import check_database

    report = await check_database(district.rules)
    for line in report.errors:
        print(f"ERROR {line}")
    for line in report.warnings:
        print(f"WARNING {line}")
    print("check: " + ("ok" if report.ok else f"{len(report.errors)} broken invariant(s)")
          + f", {len(report.warnings)} warning(s)")
    return OK if report.ok else REJECTED


async def cmd_purge(settings: Settings, district: District, args) -> int:
    from models.operations.purge import purge

    as_of = args.as_of or district.clock.today()
    result = await purge(district, as_of=as_of, after_days=settings.purge_after_days,
                         dry_run=args.dry_run)
    span = f"as_of={as_of.isoformat()} after_days={settings.purge_after_days}"
    if result.dry_run:
        print(f"purge: would erase {result.summary()} (dry run: nothing written)")
        return OK
    await audit_cli("purge", f"erased {result.summary()} {span}"[:300])
    print(f"purge: erased {result.summary()}")
    return OK


async def cmd_backup(settings: Settings, district: District, args) -> int:
    from models.operations.backup import BackupError, make_backup

    to_dir = args.to or settings.backup_dir
    keep = settings.backup_keep if args.keep is None else args.keep
    try:
        done = await make_backup(settings.database_url, to_dir, keep, now=district.clock.now())
    except BackupError as exc:
        await audit_cli("backup", f"failed: {exc}"[:300])
        return fail(str(exc))
    await audit_cli("backup", f"{done.path.name} {done.size} bytes sha256={done.sha256[:12]}, "
                    f"{len(done.pruned)} older removed (keep {keep})")
    print(f"backup: {done.path} ({done.size:,} bytes), checksum in {done.path.name}.sha256")
    for old in done.pruned:
        print(f"removed {old.name} (keeping the newest {keep})")
    print("note: keep SECRET_KEY apart from the backups, and safe: without it no ID number or "
          "phone in a copy can be read")
    return OK


async def cmd_rotate_keys(settings: Settings, district: District, args) -> int:
    from models.operations.rotation import RotationError, rotate_keys

    if not settings.secret_key_old:
        print("rotate-keys: SECRET_KEY_OLD is not set: every value is checked against SECRET_KEY "
              "alone (set the old key there to rotate)", file=sys.stderr)
    try:
        result = await rotate_keys(district.vault, now=district.clock.now(),
                                   say=lambda line: print(f"rotate-keys: {line}", flush=True))
    except RotationError as exc:
        await audit_cli("rotate_keys", f"stopped: {exc}"[:300])
        return fail(str(exc))
    await audit_cli("rotate_keys", f"done: {result.summary()}"[:300])
    print(f"rotate-keys: done: {result.summary()}")
    print("rotate-keys: every cipher and look-up hash is under SECRET_KEY; SECRET_KEY_OLD can be "
          "removed once every server runs with the new key (sessions signed with the old one "
          "then end)")
    return OK


async def restore(settings: Settings, args) -> int:
    """`restore FILE`: check the checksum, put the copy in (an empty database unless --force),
    then bring the schema up to date as every command does and run `check`."""
    from pathlib import Path

    from models.operations.backup import BackupError, restore as restore_backup

    try:
        done = await restore_backup(settings.database_url, args.file, force=args.force)
    except BackupError as exc:
        return fail(str(exc))
    overwritten = ", ".join(f"{n} {table}" for table, n in done.overwritten.items() if n)
    print(f"restore: {Path(args.file).name} restored" + (f" over {overwritten} rows" if overwritten else ""))

    async def audited_check(settings: Settings, district: District, args) -> int:
        await audit_cli("restore", f"from {Path(args.file).name}, checksum ok"
                        + (f", forced over {overwritten} rows" if overwritten else ""))
        return await cmd_check(settings, district, args)

    return await with_db(settings, audited_check, args)


async def doctor(settings: Settings, args) -> int:
    """`doctor`: not through with_db, so that a database that does not answer is reported, not
    a traceback; it changes nothing (no migration)."""
    from pathlib import Path

    from models.db.setup import ping
    from models.operations.doctor import Production, examine
    from web.settings import sms_config

    async def reachable() -> None:
        try:
            await init_db(settings.database_url, migrate_schema=False)
            await ping()
        finally:
            await close_db()

    conf = Production(secret_key=settings.secret_key, secret_key_generated=settings.secret_key_generated,
                      base_url=settings.base_url, sms=sms_config(settings),
                      database_url=settings.database_url, backup_dir=Path(settings.backup_dir))
    found = await examine(conf, now=dt.datetime.now(dt.timezone.utc), ping=reachable)
    for f in found.findings:
        print(f"{'ok     ' if f.ok else 'MISSING'} {f.what}: {f.says}")
    missing = sum(not f.ok for f in found.findings)
    print("doctor: " + ("ready for production" if found.ok else f"{missing} thing(s) to fix"))
    return OK if found.ok else REJECTED


async def with_db(settings: Settings, command, args, *, district: District | None = None) -> int:
    """Bring the schema up to date, open the database, run the command, close the database."""
    await init_db(settings.database_url)
    try:
        return await command(settings, district or build_district(settings), args)
    finally:
        await close_db()


def default_workers(settings: Settings) -> int:
    """One per CPU (each worker uses one core) when the rate-limit counts are shared in Redis;
    one otherwise, so that a limit of 5 wrong passwords means 5 and not 5 per worker."""
    return (os.cpu_count() or 1) if settings.redis_url else 1


def weak_secret(settings: Settings) -> str | None:
    """The one line `serve` refuses to start with, or None: a SECRET_KEY that was set but is a
    placeholder (CHANGE-ME, deploy/booking.env.example's value, "secret" …), under 32 characters
    or a few characters repeated. The key generated into data/secret_key when none is set (`make
    run`, `demo`) is random and passes; `doctor` asks for a real one in production."""
    from models.people.pii import secret_problem

    if settings.secret_key_generated:
        return None
    problem = secret_problem(settings.secret_key)
    if problem is None:
        return None
    return (f"error: SECRET_KEY {problem}: set a random one of 32 characters or more "
            "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))'); not serving")


def serve(settings: Settings, args) -> int:
    import uvicorn

    if refused := weak_secret(settings):
        print(refused, file=sys.stderr, flush=True)
        return 2
    args.workers = args.workers or default_workers(settings)

    if args.send_sms:  # read by every worker's settings (web/app.py: send_sms_forever)
        os.environ["SMS_IN_SERVER"] = "1"
    # Create the schema once here, so several workers starting together do not race to create it.
    asyncio.run(with_db(settings, _nothing, args))
    print(f"Serving on http://{args.host}:{args.port} (SMS links point at {settings.base_url})",
          flush=True)
    if args.workers > 1 and not settings.redis_url:  # web/limits.py: the database store
        print("note: without REDIS_URL the workers share rate-limit counts in the database",
              flush=True)
    made_dir = metrics_dir(settings, args.workers)
    # No access log: a resident's first request carries their link token in the path.
    # uvloop and httptools: with uvicorn's pure-Python defaults (asyncio, h11) the HTTP layer
    # alone caps a worker at about 1,500 requests/s (bench/RESULTS.md).
    # LOG_FORMAT=json: uvicorn's own lines go through our JSON handler too (no log_config of its own).
    try:
        uvicorn.run("web.app:app_factory", factory=True, host=args.host, port=args.port,
                    workers=args.workers, proxy_headers=False, access_log=False,
                    loop="uvloop", http="httptools",
                    # Longer than a waiting-room page asks a browser to wait before it refreshes
                    # (at most 20 s): at uvicorn's 5 s, the refresh met a connection being closed.
                    timeout_keep_alive=30,
                    # A worker busy starting (or a loaded machine) is not a hung one: at
                    # uvicorn's 5 s, workers were killed and restarted for good under load.
                    timeout_worker_healthcheck=30,
                    **({"log_config": None} if settings.log_format == "json" else {}))
    finally:
        if made_dir:
            shutil.rmtree(made_dir, ignore_errors=True)
    return OK


def metrics_dir(settings: Settings, workers: int) -> str | None:
    """With /metrics on and several workers: the directory where each worker writes its counters
    (prometheus-client's multiprocess mode), set in the environment the workers inherit, and
    emptied first: counts start from 0 at each start. PROMETHEUS_MULTIPROC_DIR if set (its old
    *.db files removed), else a new temporary directory, removed again on exit (returned).
    One worker answers every scrape itself and needs none."""
    if settings.metrics_dir:
        os.makedirs(settings.metrics_dir, exist_ok=True)
        for old in glob.glob(os.path.join(settings.metrics_dir, "*.db")):
            os.remove(old)
        return None
    if not settings.metrics_on or workers < 2:
        return None
    made = tempfile.mkdtemp(prefix="booking-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made  # read by each worker's settings and client
    return made


async def _nothing(settings: Settings, district: District, args) -> int:
    return OK


def print_poster(settings: Settings, args) -> int:
    """The A4 poster as SVG on standard output: the QR code of BASE_URL's public way in. No
    database: a poster can be made anywhere the settings are."""
    from starlette.routing import Router

    from web.app import ROUTES
    from web.poster import poster_svg

    address = settings.base_url.rstrip("/") + Router(ROUTES).url_path_for("entry")
    sys.stdout.write(poster_svg(address, args.lang, standalone=True))
    return OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Second-dose booking, Tianhe district.")
    _serve_options(parser)  # `python run.py --port 9000` serves too
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="the web server (the default)")
    _serve_options(p)
    p = sub.add_parser("demo", help="load the demo data set (idempotent); print demo links and logins")
    p.add_argument("--force", action="store_true", help="load it even into a database with other sites")
    p = sub.add_parser("import-sites", help="upsert sites from CSV: code,name,subdistrict,address,phone")
    p.add_argument("file")
    p = sub.add_parser("import-first-doses", help="upsert first-dose records from CSV: "
                       "name,id_number,phone,first_dose_date,site_code,vaccine,subdistrict")
    p.add_argument("file")
    p = sub.add_parser("open-slots", help="create slots, or set their capacity (never below bookings)")
    p.add_argument("--site", required=True, metavar="CODE")
    p.add_argument("--from", dest="from_day", required=True, type=date_arg, metavar="DATE")
    p.add_argument("--to", dest="to_day", required=True, type=date_arg, metavar="DATE")
    p.add_argument("--times", required=True, type=times_arg, metavar="HH:MM-HH:MM[,...]")
    p.add_argument("--capacity", required=True, type=count_arg, metavar="N")
    p = sub.add_parser("invite", help="queue an invitation SMS with a personal link for everyone due")
    p.add_argument("--as-of", type=date_arg, metavar="DATE", help="default: today")
    p.add_argument("--limit", type=count_arg, metavar="N")
    p.add_argument("--dry-run", action="store_true", help="only count; write nothing")
    p = sub.add_parser("send-sms", help="deliver the SMS outbox through SMS_BACKEND, as a service "
                       "(several may run at once)")
    p.add_argument("--once", action="store_true", help="deliver what is due now, then stop")
    p = sub.add_parser("outbox", help="list SMS messages as CSV: id,phone,status,body")
    p.add_argument("--status", choices=["queued", "sending", "sent", "delivered", "failed"])
    p = sub.add_parser("check", help="verify places, holds and bookings agree; exit 1 if not")
    p = sub.add_parser("poster", help="the A4 poster with the QR code of the public way in, as SVG "
                       "on standard output")
    p.add_argument("--lang", choices=["zh", "en"], default="zh")
    p = sub.add_parser("close-day", help="mark the day's remaining bookings as no-shows (every site)")
    p.add_argument("--day", type=date_arg, metavar="DATE", help="default: today")
    p = sub.add_parser("send-reminders", help="queue the day-before reminder SMS for every booking "
                       "of a day (once per booking, however often it runs)")
    p.add_argument("--day", type=date_arg, metavar="DATE", help="default: tomorrow")
    p = sub.add_parser("close-window", help="close a day or a window at a site; move its bookings "
                       "to another site and day (as many as fit, the rest cancelled) or cancel them")
    p.add_argument("--site", required=True, metavar="CODE")
    p.add_argument("--day", required=True, type=date_arg, metavar="DATE")
    p.add_argument("--start", metavar="HH:MM", help="only the window starting then (default: the whole day)")
    p.add_argument("--reason", required=True, metavar="TEXT", help="kept on the closed windows")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--move-to-site", metavar="CODE")
    mode.add_argument("--cancel", action="store_true", help="cancel every booking on them")
    p.add_argument("--move-to-day", type=date_arg, metavar="DATE")
    p.add_argument("--dry-run", action="store_true", help="only show what it would touch")
    p = sub.add_parser("purge", help="erase the personal data no longer needed: second dose given, "
                       "or window closed more than PURGE_AFTER_DAYS ago (counts and audit kept)")
    p.add_argument("--as-of", type=date_arg, metavar="DATE", help="default: today")
    p.add_argument("--dry-run", action="store_true", help="only count; write nothing")
    p = sub.add_parser("create-user", help="create a staff account; the password is read from stdin")
    p.add_argument("--role", required=True, choices=["callcentre", "site", "subdistrict", "admin", "clinic"])
    p.add_argument("--username", required=True)
    p.add_argument("--site", metavar="CODE", help="for role site")
    p.add_argument("--subdistrict", metavar="NAME", help="for role subdistrict; for role clinic, the "
                   "sub-district it serves (or --district-wide)")
    p.add_argument("--district-wide", action="store_true", help="for role clinic: serves the whole "
                   "district (a clinic account names its sub-district or this, never neither)")
    p = sub.add_parser("backup", help="an online, consistent copy of the database, named by UTC "
                       "time, with a .sha256 beside it; keeps the newest N")
    p.add_argument("--to", metavar="DIR", help="default: BACKUP_DIR (data/backups)")
    p.add_argument("--keep", type=count_arg, metavar="N", help="default: BACKUP_KEEP (14)")
    p = sub.add_parser("restore", help="restore a backup into DATABASE_URL (refused when it holds "
                       "data, unless --force), then run check")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--force", action="store_true", help="overwrite a database that holds data")
    p = sub.add_parser("rotate-keys", help="after a new SECRET_KEY (the old one in SECRET_KEY_OLD): "
                       "encrypt every ID number, phone and SMS again and recompute the look-up "
                       "hashes with the new key, in batches; resumable")
    p = sub.add_parser("doctor", help="check the configuration a production server needs; "
                       "exit 1 if anything is missing")
    return parser


def _serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=None,
                   help="server processes (default: one per CPU with REDIS_URL, where every worker "
                   "counts rate limits together; one without it)")
    p.add_argument("--send-sms", action="store_true",
                   help="also deliver the SMS outbox from the server (for `make run`; in production "
                   "run `send-sms` as its own service)")


COMMANDS = {
    "demo": cmd_demo,
    "import-sites": cmd_import_sites,
    "import-first-doses": cmd_import_first_doses,
    "open-slots": cmd_open_slots,
    "invite": cmd_invite,
    "send-sms": cmd_send_sms,
    "outbox": cmd_outbox,
    "create-user": cmd_create_user,
    "check": cmd_check,
    "close-day": cmd_close_day,
    "send-reminders": cmd_send_reminders,
    "close-window": cmd_close_window,
    "backup": cmd_backup,
    "purge": cmd_purge,
    "rotate-keys": cmd_rotate_keys,
}


# Files this process and its workers create are the service user's alone (0600, folders 0700):
# the SQLite database and its -wal/-shm, backups and their checksums, data/ and data/secret_key,
# an uploaded file set aside for import. The deploy units set UMask=0077 too.
PRIVATE_UMASK = 0o077


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("tortoise").setLevel(logging.WARNING)
    try:
        settings = load_settings()
    except ValueError as exc:  # a setting that cannot be read: say which, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if settings.log_format == "json":
        from web.logs import setup_logging

        setup_logging("json")
    try:
        return run_command(settings, args)
    except DatabaseUnusable as exc:  # one line, at once: never a traceback, never a hang
        print(f"error: DATABASE_URL: {exc}", file=sys.stderr)
        return 2


def run_command(settings: Settings, args) -> int:
    """The chosen command (serving when none), its exit status."""
    if args.command in (None, "serve"):
        return serve(settings, args)
    if args.command == "poster":
        return print_poster(settings, args)
    try:
        if args.command == "restore":  # before any migration or connection touches the target
            return asyncio.run(restore(settings, args))
        if args.command == "doctor":
            return asyncio.run(doctor(settings, args))
        return asyncio.run(with_db(settings, COMMANDS[args.command], args))
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return OK


if __name__ == "__main__":
    sys.exit(main())
