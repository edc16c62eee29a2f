"""Lighthouse (mobile, its default) on every resident page, against the real server.

    .venv/bin/python scripts/lighthouse.py        # or: make lighthouse

Seeds a temporary SQLite database (sites, slots, one resident with a personal link), starts
`run.py serve` on a free port, walks the journey with httpx to get the cookies each page needs,
and runs the pinned Lighthouse (tools/lighthouse) on each page with those cookies. Writes the
scores to docs/lighthouse.md and prints them; the JSON reports go to test-artifacts/lighthouse/.
Exit status 0 even when a score is under target (it is a measurement); `--strict` makes it 1.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from models.db.tables import Slot  # noqa: E402
from tests.conftest import TEST_SECRET  # noqa: E402
from tests.factories import journey_world  # noqa: E402
from tests.realserver import CHROMIUM, CHROMIUM_ARGS, Server, seed  # noqa: E402

LIGHTHOUSE = ROOT / "tools" / "lighthouse" / "node_modules" / "lighthouse" / "cli" / "index.js"
REPORT_DIR = ROOT / "test-artifacts" / "lighthouse"
DOC = ROOT / "docs" / "lighthouse.md"
CATEGORIES = ("performance", "accessibility", "best-practices")
TARGETS = {"performance": 98, "accessibility": 100, "best-practices": 100}
METRICS = {  # audit id -> column
    "first-contentful-paint": "FCP", "largest-contentful-paint": "LCP",
    "total-blocking-time": "TBT", "cumulative-layout-shift": "CLS", "speed-index": "SI",
}


def build_world(url: str) -> dict:
    """The browser journey test's world (tests/factories.journey_world), plus the first window."""
    _, people = journey_world(url, {"me": {}})
    number, token = people["me"]

    async def first_window():
        return await Slot.filter(site__code="TH01").order_by("day", "start").first()

    slot = seed(url, first_window)
    return {"token": token, "number": number, "site": slot.site_id, "slot": slot.id}


def lighthouse(url: str, cookies: dict[str, str], name: str) -> dict:
    """Run Lighthouse once (mobile: its default emulation and simulated throttling); return the report."""
    out = REPORT_DIR / f"{name}.report.json"
    cmd = [
        "node", str(LIGHTHOUSE), url,
        f"--chrome-path={CHROMIUM}",
        "--chrome-flags=--headless=new " + " ".join(CHROMIUM_ARGS),
        "--only-categories=" + ",".join(CATEGORIES),
        "--output=json", f"--output-path={out}", "--quiet",
    ]
    if cookies:
        header = "; ".join(f"{k}={v}" for k, v in cookies.items())
        cmd.append("--extra-headers=" + json.dumps({"Cookie": header}))
    started = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, check=True)
    report = json.loads(out.read_text())
    if report.get("runtimeError"):
        raise RuntimeError(f"{name}: {report['runtimeError']}")
    final = report.get("finalDisplayedUrl") or report.get("finalUrl")
    if final != url:  # a redirect means the page audited is not the one meant (lost session?)
        raise RuntimeError(f"{name}: asked for {url}, Lighthouse ended on {final}")
    print(f"  {name:<13} {url}  ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return report


def scores(report: dict) -> dict[str, int]:
    return {c: round(report["categories"][c]["score"] * 100) for c in CATEGORIES}


def shortfalls(report: dict) -> dict[str, list[str]]:
    """Per category under full marks: its weighted audits that did not pass, with their weight."""
    found = {}
    for c in CATEGORIES:
        cat = report["categories"][c]
        if cat["score"] >= 1:
            continue
        lines = []
        for ref in cat["auditRefs"]:
            audit = report["audits"][ref["id"]]
            if ref.get("weight", 0) > 0 and audit.get("score") is not None and audit["score"] < 1:
                value = f" ({audit['displayValue']})" if audit.get("displayValue") else ""
                lines.append(f"`{ref['id']}` score {audit['score']:.2f}, weight {ref['weight']}{value}: "
                             f"{audit['title']}{evidence(audit)}")
        found[c] = lines
    return found


def evidence(audit: dict, most: int = 3) -> str:
    """What the audit found, briefly: e.g. the console error and the URL it is about."""
    found = []
    for item in (audit.get("details") or {}).get("items", [])[:most]:
        if not isinstance(item, dict):
            continue
        url = item.get("url") or (item.get("sourceLocation") or {}).get("url") or ""
        words = item.get("description") or item.get("reason") or ""
        where = f"`{urlsplit(url).path}`" if url.startswith("http") else ""
        text = " ".join(part for part in (words, where) if part)
        if text:
            found.append(text)
    return (" — " + "; ".join(found)) if found else ""


def metrics(report: dict) -> dict[str, str]:
    row = {}
    for audit_id, col in METRICS.items():
        audit = report["audits"].get(audit_id, {})
        row[col] = (audit.get("displayValue") or "–").replace("\xa0", " ")
    weight = report["audits"].get("total-byte-weight", {}).get("numericValue")
    row["bytes"] = f"{weight / 1024:.1f} KiB" if weight is not None else "–"
    return row


def walk_and_audit(base: str, world: dict) -> list[tuple[str, str, dict]]:
    """The resident journey with httpx, auditing each GET page while it is reachable."""
    results = []

    def audit(name: str, path: str, client: httpx.Client | None):
        url = base + path
        cookies = dict(client.cookies.items()) if client else {}
        if client:  # the page must answer 200 with these cookies, not send us elsewhere
            r = client.get(path)
            assert r.status_code == 200, f"{name}: GET {path} -> {r.status_code} {r.headers.get('location')}"
            cookies = dict(client.cookies.items())
        results.append((name, path, lighthouse(url, cookies, name)))
        return r.text if client else ""

    def post(client: httpx.Client, path: str, data: dict, to: str):
        r = client.post(path, data={"csrftoken": client.cookies["csrftoken"], **data})
        assert r.status_code == 303 and r.headers["location"] == to, \
            f"POST {path} -> {r.status_code} {r.headers.get('location')}"

    # Warm-up, not recorded: the first Chromium started on a machine pays for cold font and disk
    # caches (the CJK font above all), which Lighthouse then scales 4x as if the page had cost it.
    lighthouse(base + "/", {}, "warm-up")
    audit("start", "/", None)  # a first visit: no cookies at all
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as c:
        r = c.get(f"/b/{world['token']}")
        assert r.status_code == 303 and "session" in c.cookies, "the personal link sets no session"
        audit("verify", "/booking", c)                      # greeting + ID check (sets csrftoken)
        post(c, "/booking/verify", {"id_number": world["number"]}, "/booking/site")
        audit("site", "/booking/site", c)
        post(c, "/booking/site", {"site": world["site"]}, "/booking/slot")
        audit("slot", "/booking/slot", c)
        post(c, "/booking/slot", {"slot": world["slot"]}, "/booking/check")  # holds the place
        # Audited before confirming: its GET gave the session the page's request key, kept after.
        page = audit("check", "/booking/check", c)
        request_key = page.split('name="key" value="', 1)[1].split('"', 1)[0]
        post(c, "/booking/confirm", {"key": request_key, "slot": world["slot"]}, "/booking/done")
        audit("confirmation", "/booking/done", c)
        audit("booking", "/booking", c)                     # coming back: their own booking
        audit("cancel", "/booking/cancel", c)               # "are you sure?" (GET only; nothing cancelled)
    return results


def markdown(results, *, chromium: str, seconds: float) -> str:
    lines = [
        "# Lighthouse on the resident pages",
        "",
        f"Made by `make lighthouse` (`scripts/lighthouse.py`) on {dt.date.today().isoformat()}: "
        f"Lighthouse {results[0][2]['lighthouseVersion']}, {chromium}, default **mobile** mode "
        "(Moto G Power emulation, simulated slow 4G and 4× CPU), against `run.py serve` on a "
        f"fresh SQLite database; {seconds:.0f} s in all. Targets: performance ≥ {TARGETS['performance']}, "
        f"accessibility {TARGETS['accessibility']}, best practices {TARGETS['best-practices']}.",
        "",
        "| page | path | performance | accessibility | best practices |",
        "|---|---|---:|---:|---:|",
    ]
    for name, path, report in results:
        s = scores(report)
        cells = [f"{s[c]}" if s[c] >= TARGETS[c] else f"**{s[c]}** ✗" for c in CATEGORIES]
        lines.append(f"| {name} | `{path}` | " + " | ".join(cells) + " |")
    lines += ["", "| page | FCP | LCP | TBT | CLS | Speed Index | transferred |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, _, report in results:
        m = metrics(report)
        lines.append(f"| {name} | {m['FCP']} | {m['LCP']} | {m['TBT']} | {m['CLS']} | {m['SI']} | {m['bytes']} |")
    misses = [(name, shortfalls(report)) for name, _, report in results]
    misses = [(n, f) for n, f in misses if f]
    lines += ["", "## Audits that cost points", ""]
    if not misses:
        lines.append("None: every category at 100 on every page.")
    for name, found in misses:
        for cat, audits in found.items():
            lines.append(f"- **{name}**, {cat}: " + ("; ".join(audits) if audits
                                                      else "no weighted audit failed outright (metric scores below 1)"))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a score is under target")
    args = parser.parse_args()
    if not LIGHTHOUSE.exists():
        print("Lighthouse is missing: npm ci --prefix tools/lighthouse --no-audit --no-fund", file=sys.stderr)
        return 2
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lighthouse-") as tmp:
        url = f"sqlite://{tmp}/lighthouse.sqlite3"
        world = build_world(url)
        server = Server(url, TEST_SECRET)
        try:
            print(f"auditing {server.base_url} (one Chromium per page):", file=sys.stderr)
            results = walk_and_audit(server.base_url, world)
        finally:
            server.stop()
    text = markdown(results, chromium=chromium or "Chromium", seconds=time.monotonic() - started)
    DOC.write_text(text, encoding="utf-8")
    print(text)
    print(f"written to {DOC.relative_to(ROOT)}; reports in {REPORT_DIR.relative_to(ROOT)}/", file=sys.stderr)
    under = any(scores(r)[c] < TARGETS[c] for _, _, r in results for c in CATEGORIES)
    return 1 if (args.strict and under) else 0


if __name__ == "__main__":
    sys.exit(main())
