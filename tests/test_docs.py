"""README.md and docs/*.md name only things that exist: paths, functions and classes, dotted names.

No database: files are looked up on disk, `path.py: name()` references are found with `ast`, and
dotted references (`models.db.setup.TORTOISE_ORM`) are imported. Each failure names the document
and what is missing in it.
"""
from __future__ import annotations

import ast
import functools
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Made at run time, not kept in the repository.
RUNTIME_DIRS = ("test-artifacts/", "data/")
PATH_ENDINGS = (".py", ".md", ".html", ".toml", ".csv", ".txt", ".sh", ".json")
PACKAGES = ("models", "web")
OUTSIDE = str(ROOT.parent) + "/"  # an absolute path next to the checkout (another project's files)

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# `models/booking/service.py: stand()`, `models/rules/interval.py: Window.allows(), has_started()`
PY_REFERENCE = re.compile(r"^(?P<path>[\w./-]+\.py):\s+(?P<names>.+)$")
NAME = re.compile(r"^(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:\(\))?$")
DOTTED = re.compile(r"(?<![\w./-])(?:%s)(?:\.[A-Za-z_]\w*)+" % "|".join(PACKAGES))
URL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, sqlite:, postgres: …


def code_spans(text: str) -> list[str]:
    """Inline code spans and the lines of fenced blocks, each as written."""
    spans = []
    for block in FENCE.finditer(text):
        spans.extend(block.group(0).splitlines()[1:-1])
    for match in INLINE_CODE.finditer(FENCE.sub("", text)):
        spans.append(match.group(2).strip())
    return spans


def links(text: str) -> list[str]:
    return [m.group(1) for m in LINK.finditer(FENCE.sub("", text))]


def looks_like_path(token: str) -> bool:
    return "/" in token and (token.endswith(PATH_ENDINGS) or token.endswith("/"))


def path_tokens(span: str) -> list[str]:
    """Words of a code span that look like repository paths (URLs and server paths left out)."""
    found = []
    for word in span.split():
        word = word.strip("\"'()[]").rstrip(":,;")
        if not word or URL.match(word) or "://" in word:
            continue
        if word.startswith("/") and not word.startswith(OUTSIDE):
            continue  # a server path (`/staff/calls`) or a machine file (`/usr/bin/chromium`)
        if looks_like_path(word) or word.startswith(("../", OUTSIDE)):
            found.append(word)
    return found


def outside(path: Path) -> bool:
    try:
        path.resolve().relative_to(ROOT)
    except ValueError:
        return True
    return False


def check_path(base: Path, target: str) -> str | None:
    """Why `target` (relative to `base`) is not a file or folder of the repository, or None."""
    if target.startswith("/"):
        return f"{target}: an absolute path, outside the repository"
    path = base / target
    if outside(path):
        return f"{target}: points outside the repository"
    relative = path.resolve().relative_to(ROOT).as_posix()
    if relative.startswith(RUNTIME_DIRS) or relative + "/" in RUNTIME_DIRS:
        return None
    if target.endswith("/") and not path.is_dir():
        return f"{target}: no such folder"
    if not target.endswith("/") and not path.exists():
        return f"{target}: no such file"
    return None


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation dropped, - for spaces."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", FENCE.sub("", markdown), re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


def check_anchor(base: Path, target: str, text: str) -> str | None:
    """Why a link's `#anchor` names no heading of the linked document (or this one), or None."""
    path, _, anchor = target.partition("#")
    if not anchor:
        return None
    doc = (base / path) if path else None
    if doc is not None and (doc.suffix != ".md" or not doc.is_file() or outside(doc)):
        return None  # the path check reports a missing file; other files have no headings here
    markdown = doc.read_text(encoding="utf-8") if doc else text
    if anchor not in heading_anchors(markdown):
        return f"{target}: no heading #{anchor} in {path or 'this document'}"
    return None


def defined_names(tree: ast.Module | ast.ClassDef) -> dict[str, ast.AST]:
    """Functions, classes and assigned names at the top of a module or class body."""
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names[leaf.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def check_py_reference(span: str) -> list[str]:
    """For `path.py: name()` or `path.py: Class.method()` (several, comma-separated): what is
    missing."""
    match = PY_REFERENCE.match(span)
    if not match:
        return []
    path = ROOT / match["path"]
    if outside(path) or not path.is_file():
        # A path with a folder is reported by the path check already.
        return [] if looks_like_path(match["path"]) else [f"`{span}`: no such file {match['path']}"]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems = []
    for part in (p.strip() for p in match["names"].split(",")):
        name = NAME.match(part)
        if not name:
            problems.append(f"`{span}`: cannot read {part!r} as a name, Class.method or name()")
            continue
        scope: ast.AST = tree
        for piece in name["name"].split("."):
            scoped = isinstance(scope, (ast.Module, ast.ClassDef))
            found = defined_names(scope).get(piece) if scoped else None
            if found is None:
                problems.append(f"`{span}`: {match['path']} defines no {name['name']}")
                break
            scope = found
    return problems


# Where the code is: defined names and words are looked up here (not in .venv or node_modules).
CODE_FILES = ("run.py", "Makefile", ".ci", "models", "web", "scripts", "tests", "config",
              "templates")
BARE_CALL = re.compile(r"^(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\(\)$")  # `Window.allows()`
CONSTANT = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")  # `REDIS_URL`, `MAX_CHARS`


@dataclass(frozen=True)
class CodeIndex:
    defs: frozenset[str]  # every def and class name, and every Class.member
    words: frozenset[str]  # every identifier-like word in the code, strings included
    modules: frozenset[str]  # the names of the .py files


@functools.cache
def code_index() -> CodeIndex:
    defs: set[str] = set()
    words: set[str] = set()
    modules: set[str] = set()
    this_file = Path(__file__).resolve()
    for top in CODE_FILES:
        start = ROOT / top
        files = [start] if start.is_file() else sorted(f for f in start.rglob("*") if f.is_file())
        for file in files:
            if "__pycache__" in file.parts or file.suffix in (".pyc", ".png") or file == this_file:
                continue
            text = file.read_text(encoding="utf-8", errors="replace")
            words.update(re.findall(r"[A-Za-z_]\w*", text))
            if file.suffix != ".py":
                continue
            modules.add(file.stem)
            for node in ast.walk(ast.parse(text, filename=str(file))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    defs.add(node.name)
                if isinstance(node, ast.ClassDef):
                    defs.update(f"{node.name}.{name}" for name in defined_names(node))
    return CodeIndex(frozenset(defs), frozenset(words), frozenset(modules))


def check_bare_name(span: str) -> str | None:
    """`name()`, `Class.method()`, `module.name()` and `UPPER_CASE` names must be in the code."""
    code = code_index()
    if CONSTANT.match(span):
        return None if span in code.words else f"`{span}`: no such name anywhere in the code"
    call = BARE_CALL.match(span)
    if not call or span.startswith(tuple(p + "." for p in PACKAGES)):
        return None  # not a bare call; dotted package references are imported instead
    *owners, name = call["name"].split(".")
    if name not in code.defs:
        return f"`{span}`: no function or class {name} in the code"
    if owners and owners[-1][:1].isupper() and f"{owners[-1]}.{name}" not in code.defs:
        return f"`{span}`: no {owners[-1]}.{name} in the code"
    if owners and not owners[-1][:1].isupper() and owners[-1] not in code.modules:
        return f"`{span}`: no module {owners[-1]}.py in the repository"
    return None


def resolve_dotted(reference: str) -> str | None:
    """Import the longest module prefix of `models.x.y`, then look up the rest; why not, or None."""
    parts = reference.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name + ".") or exc.name == module_name:
                continue  # this prefix is not a module: try a shorter one
            return f"{reference}: importing {module_name} failed ({exc})"
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return f"{reference}: {'.'.join(parts[:cut])} has no {'.'.join(parts[cut:])}"
            obj = getattr(obj, attr)
        return None
    return f"{reference}: no such module"


def problems_in(text: str, base: Path) -> list[str]:
    """Everything `text` (a Markdown document in folder `base`) names that does not exist."""
    problems = []
    for target in links(text):
        if URL.match(target):
            continue
        why = check_path(base, target.split("#")[0]) if not target.startswith("#") else None
        why = why or check_anchor(base, target, text)
        if why:
            problems.append(f"link {why}")
    for span in code_spans(text):
        for token in path_tokens(span):
            why = check_path(ROOT, token)
            if why:
                problems.append(f"`{span}`: {why}")
        problems.extend(check_py_reference(span))
        why = check_bare_name(span)
        if why:
            problems.append(why)
        for reference in DOTTED.findall(span):
            why = resolve_dotted(reference.rstrip("."))
            if why:
                problems.append(f"`{span}`: {why}")
    for match in re.finditer(r"(?<![\w.])\.\./[^\s)`\"']*", text):
        if outside(base / match.group(0)):
            problems.append(f"{match.group(0)}: points outside the repository")
    return sorted(set(problems))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_doc_names_only_what_exists(doc: Path):
    problems = problems_in(doc.read_text(encoding="utf-8"), doc.parent)
    assert not problems, (f"{doc.relative_to(ROOT)} names what does not exist:\n  "
                          + "\n  ".join(problems))


def test_docs_exist():
    for name in ("cli.md", "rules.md", "data-formats.md"):
        assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"
        assert f"docs/{name}" in (ROOT / "README.md").read_text(encoding="utf-8"), \
            f"README.md does not link docs/{name}"


# ---- the checker itself catches bad references


def test_checker_finds_what_is_missing():
    bad = f"""
A [design note](../../shared/design/product.md) and ![](docs/screenshots/nope.png),
[a lost heading](docs/cli.md#no-such-command).
See `models/rules/nowhere.py`, `models/rules/eligibility.py: nobody()`,
`models/rules/interval.py: Window.nothing()`, `{ROOT.parent}/shared/design/product.md`,
`models.booking.service.vanished` and `models.nomodule`.
Stale names: `booking.slot_is_allowed()`, `rules.interval_window()`, `Window.is_restricted()`,
`HOLD_MINUTES`, `texts.confirmation()`.
```
python run.py import-sites docs/samples/missing.csv
```
"""
    found = "\n".join(problems_in(bad, ROOT))
    for expected in ("../../shared/design/product.md: points outside the repository",
                     "docs/screenshots/nope.png: no such file",
                     "docs/cli.md#no-such-command: no heading #no-such-command in docs/cli.md",
                     "models/rules/nowhere.py: no such file",
                     "defines no nobody", "defines no Window.nothing",
                     "models.booking.service has no vanished",
                     "models.nomodule: models has no nomodule",
                     "docs/samples/missing.csv: no such file",
                     "/shared/design/product.md: an absolute path, outside the repository",
                     "`booking.slot_is_allowed()`: no function or class slot_is_allowed",
                     "`rules.interval_window()`: no function or class interval_window",
                     "`Window.is_restricted()`: no Window.is_restricted",
                     "`HOLD_MINUTES`: no such name",
                     "`texts.confirmation()`: no module texts.py"):
        assert expected in found, f"the checker missed {expected!r}; it found:\n{found}"


def test_checker_accepts_what_exists():
    good = """
[cli](docs/cli.md#send-sms), ![](docs/screenshots/js-01-verify.png),
`test-artifacts/slow-network.md`,
[settings](docs/data-formats.md#environment-variables),
`models/rules/eligibility.py: refusal()`, `models/db/tables.py: Slot.has_room()`,
`models/rules/interval.py: RuleBook.window(), has_started()`,
`models/rules/interval.py: Window.opens_on`,
`models.db.setup.TORTOISE_ORM`, `/staff/calls`, `sqlite://data/booking.sqlite3`,
`models/db/migrations/`,
`Window.allows()`, `has_started()`, `wording.confirmation()`, `REDIS_URL`, `MAX_CHARS`.
"""
    assert problems_in(good, ROOT) == []


# ---- the configuration tables against the one declaration (web/settings.py: Settings)

ENV_NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")


def _shown(field) -> str:
    """A setting's default as the docs' tables write it."""
    default = field.metadata["shown"] or field.default
    if default in ("", ()):
        return "unset"
    if default is False:
        return "off"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def config_table(doc: Path, heading: str) -> dict[str, str]:
    """Each variable of the first table under `heading` and its default as written there
    (`A`, `B` | `1`, `2` pairs them in order; one default, or "… each", is every name's)."""
    text = doc.read_text(encoding="utf-8").split(heading, 1)[1]
    table: dict[str, str] = {}
    started = False
    for line in text.splitlines():
        if not line.startswith("|"):
            if started:
                break
            continue
        started = True
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = [n for n in ENV_NAME.findall(cells[0]) if not n.startswith("TEST_")]
        if not names:
            continue
        parts = [p.strip() for p in cells[1].split(", ")]
        shown = [(INLINE_CODE.search(p).group(2) if INLINE_CODE.search(p) else p) for p in parts]
        if len(shown) == 1:
            shown = shown * len(names)
        assert len(shown) == len(names), f"{doc.name}: {cells[0]} has defaults {cells[1]}"
        table.update(zip(names, shown))
    return table


def test_the_data_formats_table_lists_every_setting_with_its_default():
    from web.settings import variables

    declared = {name: _shown(field) for name, field in variables().items()}
    assert config_table(ROOT / "docs" / "data-formats.md", "## Environment variables") == declared


def test_the_readme_names_only_declared_settings_with_their_defaults():
    from web.settings import variables

    declared = {name: _shown(field) for name, field in variables().items()}
    readme = config_table(ROOT / "README.md", "## Configuration\n")
    assert readme and {name: declared.get(name) for name in readme} == readme
