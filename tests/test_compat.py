"""The compatibility floor: our CSS and JavaScript work on Chrome 53 (WeChat's X5 engine, old Chromium
WebViews on Android 5+) and iOS Safari 10.

CSS: doiuse (caniuse data, through browserslist) over static/*.css and any <style> in templates, driven by
tests/compat/check_css.mjs, which lets a feature through only with a fallback (an earlier declaration of the
same property, or inside @supports) or for a reason written there. JS: es-check es5 --checkFeatures over
static/app.js (syntax and ES2015+ built-ins). The tools are pinned in package.json; `make test` installs them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from tests.realserver import ROOT

NODE_MODULES = ROOT / "node_modules"
CHECK_CSS = ROOT / "tests" / "compat" / "check_css.mjs"
# static/htmx-1.9.12.min.js is not checked: vendored htmx 1.x, which is written for IE11 (ES5) and supports
# it; checking a minified third-party file would only test their build, not our code.
OUR_JS = [ROOT / "static" / "app.js"]


@pytest.fixture(scope="module")
def node():
    exe = shutil.which("node")
    missing = [p for p in ("doiuse", "es-check", "postcss") if not (NODE_MODULES / p).is_dir()]
    if exe and not missing:
        return exe
    reason = f"node {'found' if exe else 'missing'}; node_modules lacks {missing}: `make test` installs them (npm ci)"
    if os.environ.get("CI"):
        pytest.fail(reason)  # CI runs `make test`, so there the check must run
    pytest.skip(reason)


def css_sources(tmp_path):
    files = sorted((ROOT / "static").glob("*.css"))
    for template in sorted((ROOT / "templates").rglob("*.html")):
        blocks = re.findall(r"<style[^>]*>(.*?)</style>", template.read_text(encoding="utf-8"), re.S | re.I)
        for i, css in enumerate(blocks):
            out = tmp_path / f"{template.relative_to(ROOT).as_posix().replace('/', '__')}.{i}.css"
            out.write_text(css, encoding="utf-8")
            files.append(out)
    return files


def test_css_has_no_unsupported_feature_without_a_fallback(node, tmp_path):
    files = css_sources(tmp_path)
    assert any(f.name == "app.css" for f in files)
    run = subprocess.run([node, str(CHECK_CSS), *map(str, files)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    found = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    listing = "\n".join(f"  {f['where']}: {f['feature']} in `{f['css']}` (missing: {f['missing']})" for f in found)
    assert run.returncode == 0 and not found, (
        f"CSS features that Chrome 53 / Android WebView / iOS Safari 10 lack, with no fallback:\n{listing}\n"
        f"{run.stderr[-2000:]}")


def test_the_css_checker_catches_what_it_should(node, tmp_path):
    """The checker itself: the features the issue names fail, and the same ones with a fallback pass."""
    bad = tmp_path / "bad.css"
    bad.write_text(".a:has(input:checked){color:red}\n.b{display:flex;gap:1em}\n.c{display:grid}\n"
                   ".d{width:min(100%,30em)}\n.e{inset:0}\n.f{aspect-ratio:1}\n.g:is(.h){color:red}\n",
                   encoding="utf-8")
    good = tmp_path / "good.css"
    good.write_text(".c{display:block;display:grid;grid-template-columns:minmax(0,1fr) 2fr}\n"
                    ".d{width:100%;width:min(100%,30em)}\n@supports (aspect-ratio:1){.f{aspect-ratio:1}}\n"
                    ".g{font-family:ui-monospace,Menlo,monospace;text-decoration:none}\n", encoding="utf-8")
    run = subprocess.run([node, str(CHECK_CSS), str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    features = {json.loads(line)["feature"] for line in run.stdout.splitlines() if line.startswith("{")}
    assert run.returncode == 1
    assert {"css-has", "flexbox-gap", "css-grid", "css-math-functions", "css-logical-props", "aspect-ratio",
            "css-matches-pseudo"} <= features, (
        features)
    ok = subprocess.run([node, str(CHECK_CSS), str(good)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_our_javascript_is_es5(node):
    es_check = NODE_MODULES / "es-check" / "lib" / "cli" / "index.js"
    assert es_check.exists(), "es-check's entry point moved: see node_modules/es-check/package.json"
    run = subprocess.run([node, str(es_check), "es5", "--checkFeatures", "--noColor", *map(str, OUR_JS)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"static/app.js is not ES5:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"


def test_our_javascript_checks_for_newer_web_apis():
    """es-check sees the language, not the browser's APIs: fetch (Chrome 42, iOS 10.3) and a few others only
    behind a check that they are there."""
    for path in OUR_JS:
        js = path.read_text(encoding="utf-8")
        for api in ("fetch", "IntersectionObserver", "ResizeObserver", "structuredClone"):
            if re.search(rf"\b{api}\s*\(|new\s+{api}\b", js):
                assert re.search(rf"(['\"]{api}['\"]\s+in\s+window|window\.{api}\b|typeof\s+{api}\b)", js), (
                    f"{path.name} uses {api} without checking that the browser has it")
