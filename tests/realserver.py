"""Real-server test plumbing: seed a database, start `run.py serve`, launch Debian's Chromium."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tortoise.backends.base.executor import EXECUTOR_CACHE

from models.db.setup import close_db, init_db

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "test-artifacts" / "screenshots"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(url: str, build) -> object:
    """Run the async `build()` against a fresh database at `url`; return what it returns."""

    async def run():
        EXECUTOR_CACHE.clear()
        await init_db(url)
        try:
            return await build()
        finally:
            await close_db()

    return asyncio.run(run())


class PortTaken(RuntimeError):
    """The chosen port was bound by someone else between choosing and binding."""


class Server:
    """The real server, started as `python run.py serve` does, on a free port."""

    def __init__(self, database_url: str, secret: str, workers: int = 1, **env_extra: str):
        self.workers = workers
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        # The suite runs in several processes: a port found free can be taken by another test's
        # server before ours binds it. Then (and only then) choose another one.
        for attempt in range(5):
            self.port = free_port()
            self.base_url = f"http://127.0.0.1:{self.port}"
            self.env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": secret,
                        "BASE_URL": self.base_url, **env_extra}
            self.log_path = ROOT / "test-artifacts" / f"server-{self.port}.log"
            try:
                self.start()
                return
            except PortTaken:
                continue
        raise RuntimeError("no free port could be bound in five tries")

    def start(self) -> None:
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "run.py", "serve", "--port", str(self.port),
             "--workers", str(self.workers)],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() reaches every worker
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                if b"already in use" in self.log_path.read_bytes()[-4000:]:
                    raise PortTaken(self.port)
                raise RuntimeError(f"server exited with {self.proc.returncode}: see {self.log_path}")
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        """kill -9 the server and all its workers, as a crash would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def shot(page, name: str) -> None:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)
