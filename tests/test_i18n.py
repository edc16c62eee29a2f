"""The English catalog is complete: every message in the sources has a reviewed translation.

Messages are extracted afresh from templates/, web/ and models/ with babel.cfg (the same
mapping scripts/i18n.sh uses), so a string added to a template fails here until it is
translated in locale/en/LC_MESSAGES/messages.po. To fix a failure: sh scripts/i18n.sh,
then fill in the entries it lists.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "locale" / "en" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {**DEFAULT_KEYWORDS, "_": None, "gettext": None, "ngettext": (1, 2)}

# %(name)s, %(n)d, %s ... and %% (a literal per cent sign).
PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa%]")
TAG = re.compile(r"</?[a-zA-Z][^<>]*>")


def _extract() -> dict[str, tuple[str, ...]]:
    """msgid -> all its ids (one, or singular and plural), with the places it comes from."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f, "babel.cfg")
    found: dict[str, tuple[str, ...]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS, strip_comment_tags=True,
    ):
        ids = (message,) if isinstance(message, str) else tuple(m for m in message if m)
        if ids and ids[0]:
            found.setdefault(ids[0], ids)
    return found


@pytest.fixture(scope="module")
def extracted() -> dict[str, tuple[str, ...]]:
    return _extract()


@pytest.fixture(scope="module")
def catalog():
    with PO.open("rb") as f:
        return read_po(f)


def _forms(message) -> list[str]:
    return list(message.string) if isinstance(message.string, (list, tuple)) else [message.string]


def _placeholders(text: str) -> list[str]:
    return sorted(m.group(0) for m in PLACEHOLDER.finditer(text) if m.group(0) != "%%")


def test_extraction_finds_the_templates(extracted):
    # Guards the test itself: a broken babel.cfg would make "nothing missing" trivially true.
    assert len(extracted) > 50
    assert "选择接种点" in extracted


def test_every_message_has_a_reviewed_english_translation(extracted, catalog):
    problems = []
    for msgid, ids in sorted(extracted.items()):
        message = catalog.get(ids if len(ids) > 1 else msgid)
        if message is None:
            problems.append(f"missing:      {msgid!r}")
        elif message.fuzzy:
            problems.append(f"fuzzy:        {msgid!r}")
        elif (len(ids) > 1) != message.pluralizable:
            problems.append(f"plural/singular differs from the source: {msgid!r}")
        elif not all(form.strip() for form in _forms(message)):
            problems.append(f"untranslated: {msgid!r}")
    assert not problems, (
        f"{len(problems)} message(s) need work in locale/en/LC_MESSAGES/messages.po "
        "(run sh scripts/i18n.sh, then translate):\n" + "\n".join(problems)
    )


def test_catalog_has_no_fuzzy_header_or_plural_gaps(catalog):
    assert not catalog.fuzzy, "the catalog header is marked fuzzy"
    assert catalog.num_plurals == 2
    short = [m.id[0] for m in catalog if m.id and m.pluralizable and len(_forms(m)) != 2]
    assert not short, f"plural entries without both English forms: {short}"


def test_placeholders_match(catalog):
    """Jinja's newstyle gettext always applies `%`, so each translation must carry the
    msgid's %(name)s placeholders exactly, and a literal per cent sign must be written %%."""
    problems = []
    for message in catalog:
        if not message.id or not message.string:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        expected = _placeholders(ids[-1])
        for form in _forms(message):
            if form and _placeholders(form) != expected:
                problems.append(f"{ids[0]!r}: expects {expected}, has {_placeholders(form)} in {form!r}")
            stray = PLACEHOLDER.sub("", form)
            if "%" in stray:
                problems.append(f"{ids[0]!r}: stray % in {form!r} (write %% for a per cent sign)")
    assert not problems, "\n".join(problems)


def test_markup_matches(catalog):
    """Translations are trusted as HTML (Jinja wraps them in Markup): same tags as the msgid,
    and no other <, > or & that the browser would read as markup."""
    problems = []
    for message in catalog:
        if not message.id or not message.string:
            continue
        msgid = message.id if isinstance(message.id, str) else message.id[0]
        for form in _forms(message):
            if sorted(TAG.findall(form)) != sorted(TAG.findall(msgid)):
                problems.append(f"{msgid!r}: tags differ in {form!r}")
            elif re.search(r"[<>&]", TAG.sub("", form)):
                problems.append(f"{msgid!r}: bare <, > or & in {form!r}")
    assert not problems, "\n".join(problems)


def test_the_app_loads_the_catalog():
    from web import i18n

    english = i18n._load("en")
    assert english.gettext("选择接种点") == "Choose a vaccination site"
    mismatch = "身份证号码与记录不符。还可以再试%(num)s次。"
    assert english.ngettext(mismatch, mismatch, 1) % {"num": 1} != english.ngettext(
        mismatch, mismatch, 2) % {"num": 2}
