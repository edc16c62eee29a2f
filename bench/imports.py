"""Measure the first-dose import and an invitation batch, as the command line runs them.

    .venv/bin/python bench/imports.py --rows 1000000 --invite 100000            # SQLite
    .venv/bin/python bench/imports.py --rows 100000 --invite 100000 --db postgres \
        --pg-url postgres://postgres@127.0.0.1/postgres

On a shared machine, wrap it in `flock /tmp/bench.lock …` so that two measurements never overlap.

What it does, in a new temporary directory (removed afterwards unless --keep):
1. writes a sites CSV (100 sites over the 21 sub-districts) and a first-dose CSV of --rows rows:
   fictional people with valid ID numbers (check character, birth date, Tianhe's area code),
   mainland mobile numbers, first doses 22 to 84 days before today (so all are due), a product
   from the rule book, a few rows with full-width digits, dashes, blank lines and a BOM (the
   reader's slow paths), and --bad rows that are refused (bad check character, unknown site);
2. a fresh database: a SQLite file in the temporary directory, or a new PostgreSQL database
   (created on --pg-url's server, dropped afterwards);
3. `run.py import-sites`, then `run.py import-first-doses` (timed), optionally a second time
   (--rerun: every row unchanged), then `run.py invite --limit M` (timed): each its own process,
   as an operator runs them, its peak RSS read from the kernel (wait4's ru_maxrss);
4. checks the counts the commands print, and prints one JSON line:
   {"db", "import": {rows, seconds, rows_per_s, cpu_seconds, peak_rss_mb}, "invite": {…}, …}.

The processes' standard error (progress lines, refused rows) goes to <tmp>/*.log.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stdnum.cn import ric  # noqa: E402

SUBDISTRICTS = ("五山街", "员村街", "车陂街", "沙河街", "石牌街", "兴华街", "沙东街", "林和街",
                "棠下街", "猎德街", "冼村街", "天园街", "天河南街", "元岗街", "黄村街", "龙洞街",
                "长兴街", "凤凰街", "前进街", "珠吉街", "新塘街")
REGIONS = ("440106", "440104", "440103", "440105", "440111", "430102")  # all known area codes
VACCINES = ("北京生物", "武汉生物", "科兴", "")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗梁宋郑谢韩唐冯邓曹彭曾萧田潘袁蔡"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉梅"
MOBILE = ("138", "139", "137", "135", "150", "186", "189", "158", "136", "188")
SITES = 100
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def site_code(n: int) -> str:
    return f"BT{n:03d}"


def write_sites(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("code,name,subdistrict,address,phone\n")
        for n in range(SITES):
            sub = SUBDISTRICTS[n % len(SUBDISTRICTS)]
            out.write(f"{site_code(n)},{sub}第{n}接种点,{sub},天河区测试路{n}号,020-8521{n:04d}\n")


def id_number(n: int) -> str:
    """The n-th fictional ID number: distinct for every n below 21,900 days × 1000 × len(REGIONS)."""
    region = REGIONS[n % len(REGIONS)]
    n //= len(REGIONS)
    born = dt.date(1940, 1, 1) + dt.timedelta(days=n // 1000 * 131 % 21900)
    body = f"{region}{born:%Y%m%d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def write_first_doses(path: Path, rows: int, bad: int, today: dt.date, seed: int) -> int:
    """The first-dose CSV; returns how many rows should be refused."""
    rng = random.Random(seed)
    bad_lines = set(rng.sample(range(rows), min(bad, rows)))
    with path.open("w", encoding="utf-8-sig", newline="") as out:  # with a BOM, as Excel saves
        out.write("name,id_number,phone,first_dose_date,site_code,vaccine,subdistrict\n")
        for n in range(rows):
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
            number = id_number(n)
            phone = rng.choice(MOBILE) + f"{rng.randrange(10**8):08d}"
            first = today - dt.timedelta(days=rng.randrange(22, 85))
            site = rng.randrange(SITES)
            sub = SUBDISTRICTS[site % len(SUBDISTRICTS)] if rng.random() < 0.7 else ""
            if n in bad_lines:
                if n % 2:
                    number = number[:17] + ("0" if number[17] != "0" else "1")  # wrong check character
                else:
                    site = SITES + 1  # an unknown site
            elif n % 97 == 0:
                number = f"{number[:6]} {number[6:14]}-{number[14:]}".translate(FULL_WIDTH)
            if n % 1000 == 999:
                out.write("\n")  # a blank line now and then
            out.write(f"{name},{number},{phone},{first:%Y-%m-%d},{site_code(site)},"
                      f"{rng.choice(VACCINES)},{sub}\n")
    return len(bad_lines)


def run_cli(repo: Path, args: list[str], env: dict, log: Path) -> tuple[float, object, str, int]:
    """Run `run.py ARGS`; return (seconds, its resource usage, standard output, exit status)."""
    started = time.monotonic()
    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, "run.py", *args], cwd=repo, env=env,
                                stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    return seconds, usage, out, proc.returncode


def measured(rows: int, seconds: float, usage) -> dict:
    """The figures of one command; CPU seconds (its own, user + system) matter on a shared
    machine, where wall-clock seconds grow with the others' load."""
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


async def _pg(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="first-dose rows to import")
    parser.add_argument("--invite", type=int, default=None,
                        help="invitations in the batch (default: as many as --rows)")
    parser.add_argument("--bad", type=int, default=None,
                        help="rows that are refused (default: 1 in 1,000)")
    parser.add_argument("--rerun", action="store_true", help="import the same file again (timed)")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1/postgres"),
        help="a PostgreSQL server to create the temporary database on")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose run.py runs")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    invite = args.rows if args.invite is None else args.invite
    bad = args.rows // 1000 if args.bad is None else args.bad

    tmp = Path(tempfile.mkdtemp(prefix="bench-imports-"))
    today = dt.date.today()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS_", "REDIS_"))}
    env.update(SECRET_KEY="bench-imports", SMS_BACKEND="console", BASE_URL="http://127.0.0.1:8000",
               PYTHONUNBUFFERED="1")
    pg_db = None
    try:
        started = time.monotonic()
        write_sites(tmp / "sites.csv")
        refused = write_first_doses(tmp / "first_doses.csv", args.rows, bad, today, args.seed)
        generated = time.monotonic() - started
        if args.db == "sqlite":
            env["DATABASE_URL"] = f"sqlite://{tmp / 'bench.sqlite3'}"
        else:
            pg_db = f"bench_imports_{os.getpid()}"
            asyncio.run(_pg(args.pg_url, f"CREATE DATABASE {pg_db}"))
            parts = urlsplit(args.pg_url)
            env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{pg_db}"))

        log = tmp / "stderr.log"
        _, _, out, status = run_cli(args.repo, ["import-sites", str(tmp / "sites.csv")], env, log)
        if status:
            raise SystemExit(f"import-sites failed ({status}): {out} (see {log})")
        result: dict = {"db": args.db, "generate_seconds": round(generated, 1)}

        seconds, usage, out, status = run_cli(
            args.repo, ["import-first-doses", str(tmp / "first_doses.csv")], env, log)
        expect = f"first doses: {args.rows - refused} created, 0 updated, 0 unchanged, {refused} rejected"
        if expect not in out:
            raise SystemExit(f"import: expected {expect!r}, got {out!r} (status {status}, see {log})")
        result["import"] = measured(args.rows, seconds, usage)

        if args.rerun:
            seconds, usage, out, status = run_cli(
                args.repo, ["import-first-doses", str(tmp / "first_doses.csv")], env, log)
            expect = f"first doses: 0 created, 0 updated, {args.rows - refused} unchanged, {refused} rejected"
            if expect not in out:
                raise SystemExit(f"re-import: expected {expect!r}, got {out!r} (see {log})")
            result["reimport"] = measured(args.rows, seconds, usage)

        if invite:
            seconds, usage, out, status = run_cli(args.repo, ["invite", "--limit", str(invite)], env, log)
            done = re.search(r"invited (\d+) residents", out)
            expected = min(invite, args.rows - refused)
            if status or not done or int(done.group(1)) != expected:
                raise SystemExit(f"invite: expected {expected} invited, got {out!r} (see {log})")
            result["invite"] = measured(expected, seconds, usage)
        result["machine"] = {"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}
        print(json.dumps(result), flush=True)
    finally:
        if pg_db:
            asyncio.run(_pg(args.pg_url, f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)"))
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
