"""The shape the code promises: the domain's layers, each importing only those below it; thin
handlers over one booking service, a domain that knows no HTTP, and links made by route name.
These read the source; they fail when a shortcut creeps back in."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The layers of models/, bottom to top (models/__init__.py says why each sits where it does). A
# module may import its own layer and those below it, never one above: a leaf anyone may use;
# the rules before the tables that store what they decide; staff accounts and scope before the
# people they scope; the district (rule book, keys, SMS caps) once the parts it bundles exist;
# the booking service on all of that; the operators' tools; the channels, ways in that call the
# booking service (a group list reads its CSV as imports do); the demo data set last.
LAYERS = (
    ("models.clock", "models.tokens", "models.csv_safe", "models.booking_codes", "models.retry",
     "models.metrics", "models.channel"),
    ("models.rules",),
    ("models.db",),
    ("models.staff",),
    ("models.people",),
    ("models.messaging",),
    ("models.district",),
    ("models.booking",),
    ("models.operations",),
    ("models.channels",),
    ("models.demo",),
)


def layer_of(module: str) -> int | None:
    """The layer a dotted module name belongs to (None: outside models/, or models itself)."""
    for n, names in enumerate(LAYERS):
        if any(module == name or module.startswith(name + ".") for name in names):
            return n
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path):
    """Every module a file imports, absolute or relative, at module level or inside a function:
    (line, dotted name). `from models import metrics` names models.metrics."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                module_file = root / Path(*sub.split("."))
                found = module_file.with_suffix(".py").exists() or (module_file / "__init__.py").exists()
                yield node.lineno, sub if found else target


def upward_imports(root: Path = ROOT) -> list[str]:
    """Every import in models/ that runs from a lower layer to a higher one."""
    found = []
    for path in sorted((root / "models").rglob("*.py")):
        here = layer_of(_module_name(path, root))
        if here is None:
            continue
        for line, module in _imports(path, root):
            there = layer_of(module)
            if there is not None and there > here:
                found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return list(dict.fromkeys(found))  # `from x import a, b` once


def test_every_module_of_the_domain_has_a_layer():
    for path in (ROOT / "models").rglob("*.py"):
        name = _module_name(path, ROOT)
        assert name == "models" or layer_of(name) is not None, f"{name} is in no layer: add it to LAYERS"


def test_no_import_in_the_domain_runs_up_the_layers():
    assert upward_imports() == []


def test_the_layer_check_sees_relative_function_level_and_package_imports(tmp_path):
    """The check itself: each way of writing an import that runs up is caught."""
    for folder in ("models/rules", "models/booking"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "models/__init__.py").write_text("")
    (tmp_path / "models/metrics.py").write_text("")
    (tmp_path / "models/booking/service.py").write_text("from .. import metrics\n")
    (tmp_path / "models/rules/a.py").write_text("from ..booking import service\n")
    (tmp_path / "models/rules/b.py").write_text("def f():\n    import models.booking.service\n")
    (tmp_path / "models/rules/c.py").write_text("from models.booking.service import x\n")
    assert upward_imports(tmp_path) == [
        "models/rules/a.py:1 imports models.booking.service",
        "models/rules/b.py:2 imports models.booking.service",
        "models/rules/c.py:1 imports models.booking.service",
    ]
HANDLERS = sorted((ROOT / "web" / "routes").rglob("*.py"))
QUERY_METHODS = {"filter", "get", "get_or_none", "create", "all", "exclude", "update", "delete",
                 "bulk_create", "get_or_create", "exists", "count", "raw", "execute_query"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imported_names(tree: ast.Module, module_prefix: str) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(module_prefix):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def test_no_handler_module_queries_the_database():
    for path in HANDLERS + [ROOT / "web" / "app.py"]:
        tree = _tree(path)
        tables = _imported_names(tree, "models.db.tables")
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = getattr(node, "module", None) or node.names[0].name
                assert not module.startswith("tortoise"), f"{path.name} imports {module}"
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in tables
                    and node.func.attr in QUERY_METHODS):
                raise AssertionError(f"{path.name}:{node.lineno} queries {node.func.value.id} itself")


def _calls(path: Path) -> set[str]:
    return {f"{n.func.value.id}.{n.func.attr}" for n in ast.walk(_tree(path))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name)}


def test_resident_and_call_centre_book_through_the_same_service_functions():
    for name in ("resident.py", "callcentre.py"):
        path = ROOT / "web" / "routes" / name
        calls = _calls(path)
        for use_case in ("service.stand", "service.choose", "service.confirm", "service.cancel"):
            assert use_case in calls, f"{name} does not call {use_case}"
        assert "engine" not in _imported_names(_tree(path), "models.booking"), \
            f"{name} talks to the engine directly"


def test_the_domain_knows_nothing_of_the_web():
    for path in (ROOT / "models").rglob("*.py"):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("web", "starlette")), f"{path} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(("web", "starlette")), f"{path} imports {alias.name}"


def test_nothing_in_the_domain_reads_the_environment():
    for path in list((ROOT / "models").rglob("*.py")) + list((ROOT / "web").rglob("*.py")):
        if path.name == "settings.py":
            continue  # the one place that reads the environment, at start-up
        text = path.read_text(encoding="utf-8")
        assert "os.environ" not in text and "getenv" not in text, f"{path} reads the environment"


def test_links_and_redirects_are_made_by_route_name():
    literal = re.compile(r'(href|action|data-hx-(get|post))="/(?!static/)')
    for path in (ROOT / "templates").rglob("*.html"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not literal.search(line), f"{path.relative_to(ROOT)}:{n} has a literal path: {line.strip()}"
    for path in HANDLERS:
        text = path.read_text(encoding="utf-8")
        assert "RedirectResponse(" not in text, f"{path.name} builds its own redirect: use see_other()"
        assert not re.search(r'see_other\(\s*f?["\']/', text), f"{path.name} redirects to a literal path"
