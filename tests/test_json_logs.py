"""One log line per request with its id (also sent back as X-Request-Id); with LOG_FORMAT=json,
one JSON object a line; never an ID number, a phone number or a link token."""
from __future__ import annotations

import datetime as dt
import json
import logging

import httpx
import pytest

from models.people import pii
from tests.conftest import TEST_SECRET
from tests.pii_scan import find_personal_numbers
from tests.realserver import Server
from web.logs import JsonFormatter, setup_logging

NUMBER = pii.build_id_number("440106", dt.date(1950, 1, 1), 7)
PHONE = "13912345678"
TOKEN = "SECRETLINKTOKEN0123456789abcdef"


@pytest.fixture(autouse=True)
def quiet_test_client():
    """The test client (httpx) logs each URL it asks for, query string and all: that is the
    client's log, not the service's, and must stay out of the suite's personal-data scan."""
    client_log = logging.getLogger("httpx")
    level = client_log.level
    client_log.setLevel(logging.WARNING)
    yield
    client_log.setLevel(level)


def access_lines(records) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "booking.access"]


async def test_each_request_logs_one_line_with_the_id_it_sends_back(client, caplog):
    with caplog.at_level(logging.INFO):
        first = await client.get("/healthz")
        second = await client.get("/healthz")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert ids[0] != ids[1] and all(len(i) >= 12 for i in ids)
    lines = access_lines(caplog.records)
    assert len(lines) == 2
    assert [r.getMessage().endswith(f"id={i}") for r, i in zip(lines, ids)] == [True, True]


async def test_a_json_line_has_the_fields_and_no_personal_data(client, caplog):
    with caplog.at_level(logging.INFO):
        r = await client.get(f"/b/{TOKEN}", params={"id_number": NUMBER, "phone": PHONE})
        await client.get(f"/no/such/{NUMBER}/{PHONE}")
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(record)) for record in access_lines(caplog.records)]
    opened, unknown = lines
    assert set(opened) >= {"time", "level", "logger", "message", "request_id", "method", "path",
                           "status", "ms"}
    assert opened["request_id"] == r.headers["x-request-id"]
    assert (opened["method"], opened["path"], opened["status"]) == ("GET", "/b/…", r.status_code)
    assert opened["logger"] == "booking.access" and opened["level"] == "INFO"
    assert opened["time"].endswith("Z") and isinstance(opened["ms"], float)
    assert unknown["path"] == "/no/such/…/…" and unknown["status"] == 404
    text = json.dumps(lines, ensure_ascii=False)
    assert TOKEN not in text and find_personal_numbers(text) == []


def test_lines_logged_while_a_request_is_answered_carry_its_id():
    from web.logs import REQUEST_ID

    record = logging.LogRecord("booking", logging.ERROR, __file__, 1, "sending failed: %s", ("x",), None)
    reset = REQUEST_ID.set("abcDEF123456")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(reset)
    assert line["request_id"] == "abcDEF123456" and line["message"] == "sending failed: x"
    assert "request_id" not in json.loads(JsonFormatter().format(record))  # outside a request


def test_control_characters_cannot_forge_a_json_line():
    forged = 'a\nb\r{"level": "ERROR"}'
    record = logging.LogRecord("booking", logging.INFO, __file__, 1, forged, (), None)
    out = JsonFormatter().format(record)
    assert "\n" not in out and json.loads(out)["message"] == forged


def test_setup_logging_replaces_the_plain_handler():
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        setup_logging("json")
        setup_logging("json")
        ours = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
        assert len(ours) == 1
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
        for h in before:
            if h not in root.handlers:
                root.addHandler(h)


def test_settings_refuse_an_unknown_log_format(monkeypatch):
    from web.settings import load_settings

    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        load_settings()
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    assert load_settings().log_format == "json"


@pytest.mark.slow
def test_a_real_server_logs_json_lines_without_personal_data(tmp_path):
    server = Server(f"sqlite://{tmp_path}/j.sqlite3", TEST_SECRET, workers=2, LOG_FORMAT="json")
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            sent = [c.get(f"/b/{TOKEN}", params={"q": NUMBER}),
                    c.get(f"/h/{TOKEN}"),
                    c.get(f"/x/{PHONE}"),
                    c.get("/healthz")]
    finally:
        server.stop()
    text = server.log_path.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = {line["request_id"]: line for line in lines if line["logger"] == "booking.access"}
    for r in sent:
        line = access[r.headers["x-request-id"]]
        assert line["status"] == r.status_code and line["method"] == "GET"
    assert {access[r.headers["x-request-id"]]["path"] for r in sent} == {"/b/…", "/h/…", "/x/…",
                                                                         "/healthz"}
    assert TOKEN not in text and find_personal_numbers(text) == []
    # Every line is JSON but the two run.py itself prints at start (where it serves, a note).
    plain = [line for line in text.splitlines() if line and not line.startswith("{")]
    assert all(line.startswith(("Serving on", "note:")) for line in plain), plain
