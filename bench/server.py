"""The server under test and what is asked of the database after: `run.py serve` in its own
process group, the settings it runs with, `run.py check`, the bookings made."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-not-for-production"
# Left out of the server's environment: it runs with the shipped limits and waiting room.
SHIPPED_ENV_DROPPED = ("RATE_LIMIT_", "WAITING_ROOM_", "DATABASE_URL", "SECRET_KEY", "BASE_URL", "REDIS_URL",
                       "SMS_IN_SERVER", "DEBUG", "TRUSTED_PROXIES")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`run.py serve` in its own process group (so a stop reaches every worker), logging to a file."""

    def __init__(self, env: dict, workers: int, log_path: Path, send_sms: bool, server: str = "uvicorn"):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "BASE_URL": self.base_url}
        self.log = open(log_path, "ab")
        # granian: the same app, workers and environment (bench/granian_serve.py; issue 25).
        start = ["run.py", "serve"] if server == "uvicorn" else ["-m", "bench.granian_serve"]
        command = [sys.executable, *start, "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", str(workers)] + (["--send-sms"] if send_sms else [])
        self.proc = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: see {self.log.name}")
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the server did not answer /healthz in {timeout:.0f}s: see {self.log.name}")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by every live process of the server's group
        (the supervisor and its workers), from /proc: the figure that is comparable on a shared
        machine. 0.0 where /proc is missing."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else ():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (name) "
            if int(fields[2]) == self.proc.pid:  # process group
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


def server_env(url: str, redis_url: str = "", extra: list[str] = ()) -> dict:
    """The environment of the server: ours, less any setting that would change what is measured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SHIPPED_ENV_DROPPED)}
    # No quiet hours: a place freed in the bench is offered at once, whatever the time of day.
    env.update(DATABASE_URL=url, SECRET_KEY=SECRET, QUIET_HOURS="off")
    if redis_url:
        env["REDIS_URL"] = redis_url
    for pair in extra:
        name, _, value = pair.partition("=")
        env[name] = value
    return env


def run_check(env: dict) -> dict:
    """`run.py check` on the database, as an operator would run it after the rush."""
    done = subprocess.run([sys.executable, "run.py", "check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    lines = done.stdout.strip().splitlines()
    return {"ok": done.returncode == 0, "exit_status": done.returncode,
            "summary": lines[-1] if lines else done.stderr.strip()[-300:],
            "errors": [line for line in lines if line.startswith("ERROR")][:10]}


def count_bookings(url: str) -> int:
    sql = "SELECT COUNT(*) FROM booking WHERE status = 'active'"
    if url.startswith("sqlite://"):
        import sqlite3

        db = sqlite3.connect(url.removeprefix("sqlite://").split("?")[0])
        try:
            return db.execute(sql).fetchone()[0]
        finally:
            db.close()
    import asyncio

    import asyncpg

    async def count():
        conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(count())


def settings_for(env: dict):
    """The Settings a process started with `env` reads."""
    from web.settings import load_settings

    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def default_workers(env: dict) -> int:
    """How many workers `run.py serve` starts with `env` when not told (what `make run` gets)."""
    import run

    workers = run.build_parser().parse_args(["serve"]).workers
    if workers is None and hasattr(run, "default_workers"):  # decided from the settings
        workers = run.default_workers(settings_for(env))
    return workers or 1


def served_settings(env: dict) -> dict:
    """The server's rate limits and waiting room, as its settings read them from `env`."""
    from web.settings import rate_limit_rules

    settings = settings_for(env)
    room = {name.removeprefix("waiting_room_"): value for name, value in vars(settings).items()
            if name.startswith("waiting_room_")}
    return {"rate_limits": rate_limit_rules(settings), "waiting_room": room or None}


def on_this_machine(url: str) -> bool:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "") in ("", "127.0.0.1", "localhost", "::1")


def on_this_machine(url: str) -> bool:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "") in ("", "127.0.0.1", "localhost", "::1")
