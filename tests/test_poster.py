"""The A4 poster: /poster and `python run.py poster` carry a QR code that decodes back to the
public way in at BASE_URL, and the three ways to book.

The QR codes are read the way a phone would read them: Chromium draws what is served (the page,
on screen and as printed, and the SVG file), zxing-cpp decodes the screenshot. No second drawing
of the code is trusted in place of the served one.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import BASE_URL, TEST_SECRET
from tests.pages import get_page, text

ROOT = Path(__file__).resolve().parent.parent
PRINTED_BASE_URL = "https://yuyue.thwjj.example.cn"  # a district's address, as an operator sets it
SVG = "{http://www.w3.org/2000/svg}"


async def test_the_poster_page_has_the_qr_code_the_address_and_three_ways_to_book(client, db):
    page = await get_page(client, "/poster")
    body = text(page)
    assert f"{BASE_URL}/entry" in body
    for way in ("短信链接", "扫描上方二维码", "拨打12345"):
        assert way in body
    svg = page.find("svg")
    assert svg["viewbox"] == "0 0 210 297" and svg["width"] == "210mm"
    qr = svg.find("svg", class_="qr")
    assert qr.title.string == f"{BASE_URL}/entry" and qr.find("path")
    css = page.find("link", href=lambda h: h and h.startswith("/static/poster.css"))
    printed = (ROOT / "static" / "poster.css").read_text()
    assert css and "@page{size:A4" in printed and "@media print" in printed


async def test_the_start_page_links_the_poster(client, db):
    start = await get_page(client, "/")
    assert start.find("a", href="/poster")


def run_poster(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BASE_URL": PRINTED_BASE_URL, "SECRET_KEY": TEST_SECRET}
    return subprocess.run([sys.executable, "run.py", "poster", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_run_poster_writes_an_a4_svg_in_chinese_or_english():
    done = run_poster()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(done.stdout.encode())
    assert root.tag == f"{SVG}svg" and (root.get("width"), root.get("height")) == ("210mm", "297mm")
    words = "".join(root.itertext())
    assert f"{PRINTED_BASE_URL}/entry" in words and "拨打12345" in words
    english = run_poster("--lang", "en")
    assert english.returncode == 0 and 'lang="en"' in english.stdout
    assert "Book your second COVID-19 vaccine dose" in english.stdout
    assert run_poster("--lang", "fr").returncode == 2


# ---- decoded from what Chromium draws


def decode(png: bytes) -> list[str]:
    zxingcpp = pytest.importorskip("zxingcpp")
    image = pytest.importorskip("PIL.Image")
    return [found.text for found in zxingcpp.read_barcodes(image.open(io.BytesIO(png)))]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.realserver import Server

    path = tmp_path_factory.mktemp("poster") / "poster.sqlite3"
    server = Server(f"sqlite://{path}", TEST_SECRET)
    yield server
    server.stop()


@pytest.mark.browser
def test_the_served_poster_decodes_to_the_public_way_in_on_screen_and_printed(server, browser):
    context = browser.new_context(viewport={"width": 800, "height": 1200}, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.base_url}/poster")
    poster = page.locator(".poster svg").first
    assert decode(poster.screenshot()) == [f"{server.base_url}/entry"]
    page.emulate_media(media="print")
    assert page.locator(".screen-only").is_hidden(), "only the poster is printed"
    assert decode(page.screenshot(full_page=True)) == [f"{server.base_url}/entry"]
    context.close()


@pytest.mark.browser
def test_the_svg_file_decodes_to_base_url(browser, tmp_path):
    done = run_poster()
    path = tmp_path / "poster.svg"
    path.write_text(done.stdout, encoding="utf-8")
    context = browser.new_context(viewport={"width": 794, "height": 1123})
    page = context.new_page()
    page.goto(path.as_uri())
    assert decode(page.screenshot()) == [f"{PRINTED_BASE_URL}/entry"]
    context.close()


@pytest.mark.browser
def test_the_poster_leads_to_a_page_that_works(server, browser):
    """The address in the QR code is the phone-number page (the test does not trust the path)."""
    context = browser.new_context(viewport={"width": 360, "height": 740}, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.base_url}/poster")
    address = decode(page.locator(".poster svg").first.screenshot())[0]
    page.goto(address)
    assert page.locator("input#phone").is_visible()
    context.close()
