"""deploy/: the nginx site checked by `nginx -t` and then run for real in front of a stand-in
app (TLS, the client's address passed on, static files with long caching, no second gzip, the
body limits, /metrics closed), the systemd units by `systemd-analyze verify` and by reading
them, and the settings example against web/settings.py."""
from __future__ import annotations

import configparser
import gzip
import http.server
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

import run
from web.routes.admin.imports import UPLOAD_PATH, UPLOADS
from web.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SITE = DEPLOY / "booking.conf"
UNITS = sorted(DEPLOY.glob("*.service")) + sorted(DEPLOY.glob("*.timer"))
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="Debian's nginx is not installed: "
                                 "sh scripts/install-nginx.sh (make test runs it)")


def make_cert(where: Path) -> tuple[Path, Path]:
    cert, key = where / "fullchain.pem", where / "privkey.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=booking.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def nginx_conf(tmp: Path, *, app_port: int = 8000, http_port: int = 80, https_port: int = 443) -> Path:
    """The site as deployed, with the test's certificate, this checkout and free ports, inside a
    main configuration like Debian's (which turns gzip on for every site)."""
    cert, key = make_cert(tmp)
    site = SITE.read_text()
    for old, new in [("/etc/ssl/booking/fullchain.pem", str(cert)), ("/etc/ssl/booking/privkey.pem", str(key)),
                     ("/srv/booking/", f"{ROOT}/"), ("127.0.0.1:8000", f"127.0.0.1:{app_port}"),
                     ("listen 80;", f"listen 127.0.0.1:{http_port};"),
                     ("listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl")]:
        assert old in site, old
        site = site.replace(old, new)
    site = "\n".join(line for line in site.splitlines() if "[::]" not in line)  # no IPv6 here
    (tmp / "booking.conf").write_text(site)
    main = tmp / "nginx.conf"
    temp = "\n".join(f"{kind}_temp_path {tmp}/{kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main.write_text(f"""
{"user root;" if os.getuid() == 0 else ""}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {tmp}/access.log;
    {temp}
    gzip on;
    gzip_types text/plain text/css application/json application/javascript text/xml;
    include {tmp}/booking.conf;
}}
""")
    return main


@needs_nginx
def test_nginx_accepts_the_site(tmp_path):
    main = nginx_conf(tmp_path)
    done = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "error.log")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


class StandIn(http.server.ThreadingHTTPServer):
    """The app's place on its port: answers every request with 2 KB of HTML, keeps what it saw."""

    daemon_threads = True

    def __init__(self, port: int):
        self.seen: list[dict] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(inner):
                length = int(inner.headers.get("Content-Length") or 0)
                inner.rfile.read(length)
                self.seen.append({"path": inner.path, "headers": dict(inner.headers), "length": length})
                body = ("<p>" + "預約 " * 500 + "</p>").encode()
                inner.send_response(200)
                inner.send_header("Content-Type", "text/html; charset=utf-8")
                inner.send_header("Content-Length", str(len(body)))
                inner.end_headers()
                inner.wfile.write(body)

            do_POST = do_GET

            def log_message(inner, *args):
                pass

        super().__init__(("127.0.0.1", port), Handler)


def free_ports(n: int) -> list[int]:
    """n distinct free ports (held open together while chosen, so none is chosen twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start(tmp_path: Path, app_port: int, http_port: int, https_port: int):
    """The stand-in app and nginx on these ports; (app, nginx) once it is *our* nginx that
    answers on https_port, None when a port was taken meanwhile by another process (a free port
    is only free when it is chosen)."""
    try:
        app = StandIn(app_port)
    except OSError:
        return None
    threading.Thread(target=app.serve_forever, daemon=True).start()
    main = nginx_conf(tmp_path, app_port=app_port, http_port=http_port, https_port=https_port)
    nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "error.log"),
                              "-g", "daemon off;"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while nginx.poll() is None and time.monotonic() < deadline:  # until nginx answers, or dies
        try:
            r = httpx.get(f"https://127.0.0.1:{https_port}/healthz", verify=False, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.05)
            continue
        # Answered over TLS by nginx (its Server header), and nginx still running: ours.
        if r.headers.get("server", "").startswith("nginx") and nginx.poll() is None:
            return app, nginx
        break
    _stop(app, nginx)
    return None


def _stop(app, nginx) -> None:
    if nginx.poll() is None:
        nginx.terminate()
    nginx.wait(timeout=20)
    app.shutdown()
    app.server_close()


@pytest.fixture
def proxied(tmp_path):
    """nginx with the site in front of the stand-in app; yields (https address, http address, app)."""
    for _ in range(5):  # a port taken by another process between choosing and binding: again
        app_port, http_port, https_port = free_ports(3)
        started = _start(tmp_path, app_port, http_port, https_port)
        if started is not None:
            break
    else:
        pytest.fail("nginx could not be started on free ports: " + (tmp_path / "error.log").read_text()[-2000:])
    app, nginx = started
    app.seen.clear()  # the probe above is not one of the test's requests
    try:
        yield f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", app
    finally:
        _stop(app, nginx)


@needs_nginx
def test_nginx_passes_the_client_on_and_does_not_compress_what_the_app_sends(proxied):
    https, _, app = proxied
    with httpx.Client(verify=False, headers={"Accept-Encoding": "gzip"}) as c:
        page = c.get(f"{https}/b/sometoken", headers={"X-Forwarded-For": "198.51.100.9",
                                                      "Host": "booking.example.gov.cn"})
    assert page.status_code == 200
    assert "content-encoding" not in page.headers, "the app compresses its own pages: nginx must not"
    (seen,) = app.seen
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    # The last address is the one nginx saw: the app (TRUSTED_PROXIES=127.0.0.1) believes only it.
    assert headers["x-forwarded-for"] == "198.51.100.9, 127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["host"] == "booking.example.gov.cn"
    assert seen["path"] == "/b/sometoken"


@needs_nginx
def test_nginx_serves_static_files_itself_compressed_and_cached_for_a_year(proxied):
    https, _, app = proxied
    with httpx.Client(verify=False) as c:
        css = c.get(f"{https}/static/app.css?v=abc", headers={"Accept-Encoding": "gzip"})
    assert css.status_code == 200
    assert css.headers["content-encoding"] == "gzip"
    assert css.content == (ROOT / "static" / "app.css").read_bytes()  # httpx has undone the gzip
    assert "immutable" in css.headers["cache-control"] and "max-age=31536000" in css.headers["cache-control"]
    assert css.headers["content-type"].startswith("text/css")
    assert app.seen == [], "static files never reach the app"


@needs_nginx
def test_nginx_closes_metrics_redirects_http_and_limits_bodies(proxied):
    https, http, app = proxied
    with httpx.Client(verify=False) as c:
        assert c.get(f"{https}/metrics").status_code == 404
        moved = c.get(f"{http}/staff?x=1", headers={"Host": "booking.example.gov.cn"})
        assert moved.status_code == 301
        assert moved.headers["location"] == "https://booking.example.gov.cn/staff?x=1"
        big = b"x" * (2 * 1024 * 1024)
        assert c.post(f"{https}/staff/login", content=big).status_code == 413
        assert c.post(f"{https}{UPLOAD_PATH}", content=big).status_code == 200
    assert [s["path"] for s in app.seen] == [UPLOAD_PATH]
    assert app.seen[0]["length"] == len(big)


def test_the_upload_limit_is_the_apps():
    site = SITE.read_text()
    block = re.search(r"location = " + re.escape(UPLOAD_PATH) + r" \{(.*?)\}", site, re.S).group(1)
    size = re.search(r"client_max_body_size (\d+)m;", block).group(1)
    assert int(size) * 1024 * 1024 == UPLOADS[UPLOAD_PATH]


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def test_every_service_runs_a_command_of_run_py_as_the_booking_user():
    services = [p for p in UNITS if p.suffix == ".service"]
    assert {p.name for p in services} >= {"booking-web.service", "booking-sms.service"}
    for path in services:
        s = unit(path)["Service"]
        assert s["User"] == "booking" and s["WorkingDirectory"] == "/srv/booking", path.name
        assert s["EnvironmentFile"] == "/etc/booking/booking.env", path.name
        program, script, *args = shlex.split(s["ExecStart"])
        assert program == "/srv/booking/.venv/bin/python" and script == "run.py", path.name
        assert (ROOT / script).is_file() and (ROOT / ".venv" / "bin" / "python").exists()
        parsed = run.build_parser().parse_args(args)  # exits 2 on an option run.py does not know
        assert parsed.command == "serve" or parsed.command in run.COMMANDS, path.name
        if s.get("Type", "simple") == "simple":  # the long-running ones come back after a crash
            assert s["Restart"] == "on-failure", path.name
        else:
            assert (DEPLOY / path.name.replace(".service", ".timer")).is_file(), path.name
    web = unit(DEPLOY / "booking-web.service")["Service"]
    assert "--host 127.0.0.1 --port 8000" in web["ExecStart"]  # where the nginx site proxies to


def test_systemd_analyze_verifies_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: the systemd package)")
    env = tmp_path / "booking.env"
    env.write_text((DEPLOY / "booking.env.example").read_text())
    names = []
    for path in UNITS:
        text = path.read_text().replace("/srv/booking", str(ROOT)).replace("/etc/booking/booking.env", str(env))
        (tmp_path / path.name).write_text(text)
        names.append(path.name)
    done = subprocess.run([analyze, "verify", "--man=no", *names], cwd=tmp_path, capture_output=True, text=True)
    if done.returncode != 0 and "Failed to" in done.stderr and "bus" in done.stderr.lower():
        pytest.skip(f"systemd-analyze cannot run here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_the_settings_example_names_real_settings_and_a_production_setup(monkeypatch):
    example = (DEPLOY / "booking.env.example").read_text()
    values = dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))
    from web.settings import variables

    known = set(variables())  # every variable the settings declare (web/settings.py)
    assert set(values) <= known, set(values) - known
    assert {"SECRET_KEY", "BASE_URL", "DATABASE_URL", "SMS_BACKEND", "SMS_ACCESS_KEY_ID",
            "SMS_ACCESS_KEY_SECRET", "SMS_TEMPLATE_CODES", "TRUSTED_PROXIES"} <= set(values)
    for name, value in values.items():  # as systemd's EnvironmentFile hands them over
        monkeypatch.setenv(name, value.replace("CHANGE-ME", "x" * 48))
    settings = load_settings()
    assert settings.https and settings.sms_backend != "console" and settings.secret_key == "x" * 48
    assert settings.trusted_proxies == ("127.0.0.1",)
